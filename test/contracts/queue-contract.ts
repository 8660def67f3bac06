/**
 * The JobQueue contract: the semantics every queue adapter (embedded SQLite today, BullMQ later) must have.
 * A runner per adapter calls `queueContract(name, make)`; `make` returns a fresh, empty queue.
 *
 * Time: when the adapter's clock can be driven, `clock` is that clock and the suite moves it by hand (no
 * sleeping). An adapter on the wall clock passes `clock: null`; the suite then really waits, so every delay and
 * lease here is kept short.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { newId } from '../../src/domain/ids.ts';
import type { Clock } from '../../src/ports/clock.ts';
import { type JobQueue, type NewJob, PRIORITY_VALUE } from '../../src/ports/queue.ts';

/** A clock the suite can move: `now()` is what the queue sees. */
export type DrivenClock = Clock & { advance(ms: number): void };

export interface QueueContractContext {
  queue: JobQueue;
  clock: DrivenClock | null;
  cleanup(): Promise<void>;
}

const LEASE = 200;
const DELAY = 300;
/** Added to waits on the wall clock, so a deadline is safely behind us. */
const SLACK = 60;

/** Depth without empty queues (an adapter may report known queues with zero jobs). */
function nonEmpty(depth: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(depth).filter(([, n]) => n > 0));
}

export function queueContract(name: string, make: () => Promise<QueueContractContext>): void {
  describe(name, () => {
    let ctx: QueueContractContext;
    let queue: JobQueue;
    let org: string;
    let otherOrg: string;

    beforeEach(async () => {
      ctx = await make();
      queue = ctx.queue;
      org = newId('org');
      otherOrg = newId('org');
    });

    afterEach(async () => {
      await ctx.cleanup();
    });

    const now = (): number => (ctx.clock ? ctx.clock.now() : Date.now());

    async function pass(ms: number): Promise<void> {
      if (ctx.clock) ctx.clock.advance(ms);
      else await new Promise((resolve) => setTimeout(resolve, ms + SLACK));
    }

    function job(overrides: Partial<NewJob> = {}): NewJob {
      const messageId = newId('msg');
      return {
        id: `send:${messageId}`,
        queue: 'send',
        payload: messageId,
        orgId: org,
        priority: PRIORITY_VALUE.normal,
        runAt: now(),
        ...overrides,
      };
    }

    describe('enqueue and claim', () => {
      it('hands out an enqueued job with its fields and a first attempt', async () => {
        const j = job({ priority: PRIORITY_VALUE.high, payload: '{"ids":[1,2,3],"attempt":1}' });
        await queue.enqueue([j]);
        const claimed = await queue.claim('send', 10, LEASE);
        expect(claimed).toHaveLength(1);
        expect(claimed[0]).toMatchObject({
          id: j.id,
          queue: 'send',
          payload: '{"ids":[1,2,3],"attempt":1}',
          orgId: org,
          priority: PRIORITY_VALUE.high,
          attempts: 1,
        });
      });

      it('keeps a null organization', async () => {
        await queue.enqueue([job({ orgId: null })]);
        expect((await queue.claim('send', 1, LEASE))[0]?.orgId).toBeNull();
      });

      it('accepts an empty enqueue', async () => {
        await queue.enqueue([]);
        expect(nonEmpty(await queue.depth())).toEqual({});
      });

      it('ignores a job whose id is already enqueued', async () => {
        const j = job({ payload: 'first' });
        await queue.enqueue([j]);
        await queue.enqueue([{ ...j, payload: 'second', priority: PRIORITY_VALUE.high }]);
        await queue.enqueue([j, { ...j, payload: 'third' }]);
        expect((await queue.depth()).send).toBe(1);
        const claimed = await queue.claim('send', 10, LEASE);
        expect(claimed.map((c) => c.payload)).toEqual(['first']);

        // Enqueuing it again while it is leased does not hand it out twice.
        await queue.enqueue([j]);
        expect(await queue.claim('send', 10, LEASE)).toEqual([]);
        expect((await queue.depth()).send).toBe(1);
      });

      it('takes an id again once its job was acked', async () => {
        const j = job();
        await queue.enqueue([j]);
        await queue.claim('send', 1, LEASE);
        await queue.ack([j.id]);
        await queue.enqueue([{ ...j, payload: 'again' }]);
        const claimed = await queue.claim('send', 1, LEASE);
        expect(claimed.map((c) => [c.id, c.payload, c.attempts])).toEqual([[j.id, 'again', 1]]);
      });

      it('keeps queues apart', async () => {
        const send = job();
        const events = job({ queue: 'carrier-events', id: 'events:1:1', payload: '{"ids":[1],"attempt":1}' });
        await queue.enqueue([send, events]);
        expect((await queue.claim('carrier-events', 10, LEASE)).map((c) => c.id)).toEqual([events.id]);
        expect((await queue.claim('send', 10, LEASE)).map((c) => c.id)).toEqual([send.id]);
        expect(await queue.claim('unknown', 10, LEASE)).toEqual([]);
      });

      it('does not hand out a job before its runAt', async () => {
        const later = job({ runAt: now() + DELAY });
        await queue.enqueue([later]);
        expect(await queue.claim('send', 10, LEASE)).toEqual([]);
        await pass(DELAY / 4);
        expect(await queue.claim('send', 10, LEASE)).toEqual([]);
        await pass((DELAY * 3) / 4);
        expect((await queue.claim('send', 10, LEASE)).map((c) => c.id)).toEqual([later.id]);
      });

      it('hands out higher priority first (0, then 1, then 2)', async () => {
        const low = job({ priority: PRIORITY_VALUE.low });
        const normal = job({ priority: PRIORITY_VALUE.normal });
        const high = job({ priority: PRIORITY_VALUE.high });
        await queue.enqueue([low, normal]);
        await queue.enqueue([high]);
        const order: string[] = [];
        for (let i = 0; i < 4; i++) for (const c of await queue.claim('send', 1, LEASE)) order.push(c.id);
        expect(order).toEqual([high.id, normal.id, low.id]);
      });

      it('fills a limited claim with the highest priorities', async () => {
        const low = job({ priority: PRIORITY_VALUE.low });
        const normal = job({ priority: PRIORITY_VALUE.normal });
        const high = job({ priority: PRIORITY_VALUE.high });
        await queue.enqueue([low, normal, high]);
        const first = await queue.claim('send', 2, LEASE);
        expect(first.map((c) => c.id).sort()).toEqual([high.id, normal.id].sort());
        expect((await queue.claim('send', 2, LEASE)).map((c) => c.id)).toEqual([low.id]);
      });

      it('hands out the earlier due job first within a priority', async () => {
        const t = now();
        const newer = job({ runAt: t - 1000 });
        const older = job({ runAt: t - 5000 });
        await queue.enqueue([newer, older]);
        expect((await queue.claim('send', 1, LEASE)).map((c) => c.id)).toEqual([older.id]);
        expect((await queue.claim('send', 1, LEASE)).map((c) => c.id)).toEqual([newer.id]);
      });

      it('claims at most `limit` jobs', async () => {
        await queue.enqueue(Array.from({ length: 5 }, () => job()));
        expect(await queue.claim('send', 3, LEASE)).toHaveLength(3);
        expect(await queue.claim('send', 10, LEASE)).toHaveLength(2);
        expect(await queue.claim('send', 10, LEASE)).toEqual([]);
      });
    });

    describe('leases', () => {
      it('does not hand out a leased job again until its lease has passed, then counts the attempt', async () => {
        const j = job();
        await queue.enqueue([j]);
        expect((await queue.claim('send', 10, LEASE))[0]?.attempts).toBe(1);
        expect(await queue.claim('send', 10, LEASE)).toEqual([]);
        await pass(LEASE / 4);
        expect(await queue.claim('send', 10, LEASE)).toEqual([]);
        await pass((LEASE * 3) / 4);
        const again = await queue.claim('send', 10, LEASE);
        expect(again.map((c) => [c.id, c.attempts])).toEqual([[j.id, 2]]);
        await pass(LEASE);
        expect((await queue.claim('send', 10, LEASE))[0]?.attempts).toBe(3);
      });

      it('removes an acked job for good', async () => {
        const a = job();
        const b = job();
        await queue.enqueue([a, b]);
        await queue.claim('send', 10, LEASE);
        await queue.ack([a.id, 'send:unknown']);
        await queue.ack([]);
        expect((await queue.depth()).send).toBe(1);
        await pass(LEASE);
        expect((await queue.claim('send', 10, LEASE)).map((c) => c.id)).toEqual([b.id]);
        await queue.ack([b.id]);
        expect((await queue.depth()).send ?? 0).toBe(0);
        expect(await queue.nextDueAt('send')).toBeNull();
      });

      it('retry ends the lease and runs the job again at the given time', async () => {
        const j = job();
        await queue.enqueue([j]);
        await queue.claim('send', 10, 60_000);
        const runAt = now() + DELAY;
        await queue.retry(j.id, runAt, 'carrier_timeout: carrier did not answer');
        expect(await queue.nextDueAt('send')).toBe(runAt);
        expect(await queue.claim('send', 10, LEASE)).toEqual([]);
        await pass(DELAY);
        const again = await queue.claim('send', 10, LEASE);
        expect(again.map((c) => [c.id, c.attempts])).toEqual([[j.id, 2]]);
      });

      it('retry at once makes the job claimable before its lease would have ended', async () => {
        const j = job();
        await queue.enqueue([j]);
        await queue.claim('send', 10, 60_000);
        await queue.retry(j.id, now(), 'try again');
        expect((await queue.claim('send', 10, LEASE)).map((c) => c.id)).toEqual([j.id]);
      });
    });

    describe('dead letters', () => {
      it('moves a job to the dead-letter list of its organization', async () => {
        const j = job({ payload: 'msg_payload' });
        await queue.enqueue([j]);
        const [claimed] = await queue.claim('send', 1, LEASE);
        expect(claimed).toBeDefined();
        const before = now();
        await queue.deadLetter(claimed!, 'unreachable_destination: handset unreachable');
        const after = now();

        expect((await queue.depth()).send ?? 0).toBe(0);
        await pass(LEASE);
        expect(await queue.claim('send', 10, LEASE)).toEqual([]);

        const list = await queue.listDeadLetters(org, { limit: 10 });
        expect(list).toHaveLength(1);
        expect(list[0]).toMatchObject({
          jobId: j.id,
          orgId: org,
          queue: 'send',
          payload: 'msg_payload',
          attempts: 1,
          error: 'unreachable_destination: handset unreachable',
        });
        expect(typeof list[0]?.id).toBe('string');
        expect(list[0]?.createdAt).toBeGreaterThanOrEqual(before);
        expect(list[0]?.createdAt).toBeLessThanOrEqual(after);
        expect(await queue.listDeadLetters(otherOrg, { limit: 10 })).toEqual([]);
      });

      it('lists dead letters newest first and pages with the cursor', async () => {
        const jobs = [job(), job(), job(), job({ orgId: otherOrg })];
        await queue.enqueue(jobs);
        const claimed = await queue.claim('send', 10, LEASE);
        const byId = new Map(claimed.map((c) => [c.id, c]));
        for (const j of jobs) {
          await queue.deadLetter(byId.get(j.id)!, `gave up on ${j.id}`);
          await pass(1);
        }
        const mine = jobs.slice(0, 3).map((j) => j.id);

        const page1 = await queue.listDeadLetters(org, { limit: 2 });
        expect(page1.map((d) => d.jobId)).toEqual([mine[2], mine[1]]);
        const page2 = await queue.listDeadLetters(org, { limit: 2, cursor: page1[1]!.id });
        expect(page2.map((d) => d.jobId)).toEqual([mine[0]]);
        expect(await queue.listDeadLetters(org, { limit: 2, cursor: page2[0]!.id })).toEqual([]);
        expect((await queue.listDeadLetters(otherOrg, { limit: 10 })).map((d) => d.jobId)).toEqual([jobs[3]!.id]);
      });
    });

    describe('depth and nextDueAt', () => {
      it('counts jobs per queue, due or not', async () => {
        expect(nonEmpty(await queue.depth())).toEqual({});
        await queue.enqueue([
          job(),
          job({ runAt: now() + 60_000 }),
          job({ queue: 'carrier-events', id: 'events:7:1' }),
        ]);
        await queue.claim('send', 1, LEASE);
        const depth = await queue.depth();
        expect(depth.send).toBe(2);
        expect(depth['carrier-events']).toBe(1);
      });

      it('gives the earliest due time of a queue, or null when it is empty', async () => {
        expect(await queue.nextDueAt('send')).toBeNull();
        const t = now();
        await queue.enqueue([job({ runAt: t + 60_000 }), job({ runAt: t + 5_000 }), job({ runAt: t + 30_000 })]);
        await queue.enqueue([job({ queue: 'carrier-events', id: 'events:9:1', runAt: t + 1_000 })]);
        expect(await queue.nextDueAt('send')).toBe(t + 5_000);
        expect(await queue.nextDueAt('carrier-events')).toBe(t + 1_000);
        expect(await queue.nextDueAt('unknown')).toBeNull();
      });
    });

    describe('onEnqueue', () => {
      it('tells listeners which queue got jobs, until they unsubscribe', async () => {
        const a: string[] = [];
        const b: string[] = [];
        const offA = queue.onEnqueue((q) => a.push(q));
        const offB = queue.onEnqueue((q) => b.push(q));
        try {
          await queue.enqueue([job()]);
          await vi.waitFor(() => {
            expect(a).toContain('send');
            expect(b).toContain('send');
          });
          await queue.enqueue([job({ queue: 'carrier-events', id: 'events:3:1' })]);
          await vi.waitFor(() => expect(a).toContain('carrier-events'));

          offA();
          const seenByA = a.length;
          await queue.enqueue([job()]);
          await vi.waitFor(() => expect(b.filter((q) => q === 'send')).toHaveLength(2));
          expect(a).toHaveLength(seenByA);
        } finally {
          offA();
          offB();
        }
      });
    });
  });
}
