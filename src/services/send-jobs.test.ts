import { describe, expect, it } from 'vitest';
import { SEND_QUEUE, sendJob, sendJobMessageIds, sendJobs } from './accept-messages.ts';

const msg = (
  id: string,
  over: Partial<{ orgId: string; priority: number; sendAt: number | null; createdAt: number }> = {},
) => ({
  id,
  orgId: over.orgId ?? 'org_a',
  priority: over.priority ?? 1,
  sendAt: over.sendAt ?? null,
  createdAt: over.createdAt ?? 1000,
});

describe('sendJobs', () => {
  it('puts messages that share organization, priority and due time in one job, in order', () => {
    const jobs = sendJobs([msg('m1'), msg('m2'), msg('m3')]);
    expect(jobs).toEqual([
      { id: 'send:m1+3', queue: SEND_QUEUE, payload: 'm1 m2 m3', orgId: 'org_a', priority: 1, runAt: 1000 },
    ]);
    expect(sendJobMessageIds(jobs[0] as (typeof jobs)[number])).toEqual(['m1', 'm2', 'm3']);
  });

  it('messages to send now share a job whatever millisecond each was built in; scheduled ones split by time', () => {
    const jobs = sendJobs([
      msg('m1', { createdAt: 1000 }),
      msg('m2', { createdAt: 1001 }),
      msg('m3', { createdAt: 1003 }),
      msg('s1', { sendAt: 5000, createdAt: 1003 }),
      msg('s2', { sendAt: 5001, createdAt: 1003 }),
    ]);
    expect(jobs.map((j) => [j.id, j.runAt])).toEqual([
      ['send:m1+3', 1000],
      ['send:s1', 5000],
      ['send:s2', 5001],
    ]);
  });

  it('a lone message gets its own job, the one the sweeper and retries use', () => {
    expect(sendJobs([msg('m1')])).toEqual([sendJob(msg('m1'))]);
    expect(sendJobMessageIds(sendJob(msg('m1')))).toEqual(['m1']);
  });

  it('splits by organization, priority and due time, and caps the messages per job', () => {
    const jobs = sendJobs(
      [
        msg('a1'),
        msg('b1', { orgId: 'org_b' }),
        msg('a2'),
        msg('h1', { priority: 0 }),
        msg('s1', { sendAt: 5000 }),
        msg('a3'),
        msg('a4'),
        msg('a5'),
      ],
      2,
    );
    expect(jobs.map((j) => [j.id, j.payload, j.orgId, j.priority, j.runAt])).toEqual([
      ['send:a1+2', 'a1 a2', 'org_a', 1, 1000],
      ['send:a3+2', 'a3 a4', 'org_a', 1, 1000],
      ['send:a5', 'a5', 'org_a', 1, 1000],
      ['send:b1', 'b1', 'org_b', 1, 1000],
      ['send:h1', 'h1', 'org_a', 0, 1000],
      ['send:s1', 's1', 'org_a', 1, 5000],
    ]);
  });
});
