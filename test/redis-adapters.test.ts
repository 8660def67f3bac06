/**
 * What the shared contracts cannot show about the Redis adapters: BullMQ's lease checks, several processes on one
 * Redis, what is left in Redis, and the id/priority mapping. Same Redis rule as the contract runner.
 */
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { BullmqJobQueue, toBullmqId } from '../src/adapters/redis/bullmq-job-queue.ts';
import { RedisPubSub } from '../src/adapters/redis/redis-pubsub.ts';
import { newId } from '../src/domain/ids.ts';
import { type NewJob, PRIORITY_VALUE } from '../src/ports/queue.ts';
import { deleteKeys, describeWithRedis, REDIS_URL, testPrefix } from './support/redis.ts';

const LEASE_CHECK_MS = 20;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describeWithRedis('BullmqJobQueue on Redis', () => {
  let admin: Redis;
  let prefix: string;
  const opened: { close(): Promise<void> }[] = [];

  beforeAll(() => {
    admin = new Redis(REDIS_URL);
  });
  afterAll(async () => {
    await admin.quit();
  });
  beforeEach(() => {
    prefix = testPrefix();
  });
  afterEach(async () => {
    await Promise.all(opened.splice(0).map((q) => q.close()));
    await deleteKeys(admin, prefix);
  });

  /** A queue instance, as one process would have it; all instances of a test share its prefix. */
  async function instance(extra: { notify?: RedisPubSub } = {}): Promise<BullmqJobQueue> {
    const q = new BullmqJobQueue({ connection: REDIS_URL, prefix, leaseCheckMs: LEASE_CHECK_MS, ...extra });
    opened.push(q);
    await q.ready();
    return q;
  }

  function job(overrides: Partial<NewJob> = {}): NewJob {
    const id = newId('msg');
    return {
      id: `send:${id}`,
      queue: 'send',
      payload: id,
      orgId: 'org_1',
      priority: PRIORITY_VALUE.normal,
      runAt: Date.now(),
      ...overrides,
    };
  }

  describe('leases', () => {
    it('brings back a job whose lease lapsed, however often, counting every claim', async () => {
      const q = await instance();
      const j = job();
      await q.enqueue([j]);
      // BullMQ fails a job that stalls more than `maxStalledCount` (default 1) times; the adapter lifts that.
      for (let attempt = 1; attempt <= 6; attempt++) {
        const claimed = await vi.waitFor(
          async () => {
            const c = await q.claim('send', 10, 50);
            expect(c).toHaveLength(1);
            return c;
          },
          { timeout: 2000, interval: 5 },
        );
        expect(claimed[0]).toMatchObject({ id: j.id, attempts: attempt });
      }
      // Nothing marks it for failure either (BullMQ's "deferred failure" once `maxStalledCount` is exceeded).
      expect(await admin.hget(`${prefix}:send:${toBullmqId(j.id)}`, 'defa')).toBeNull();
      expect(await admin.zcard(`${prefix}:send:failed`)).toBe(0);
      expect((await q.depth()).send).toBe(1);
    });

    it('makes a lapsed job claimable within about one lease check of its lease end', async () => {
      const q = await instance();
      await q.enqueue([job()]);
      const lease = 150;
      const claimedAt = Date.now();
      await q.claim('send', 1, lease);
      let back: number | null = null;
      while (back === null && Date.now() - claimedAt < 2000) {
        if ((await q.claim('send', 1, 60_000)).length > 0) back = Date.now();
        else await sleep(2);
      }
      expect(back).not.toBeNull();
      const late = back! - (claimedAt + lease);
      expect(late).toBeGreaterThanOrEqual(0);
      expect(late).toBeLessThan(LEASE_CHECK_MS * 2 + 100);
    });

    it('honours a different lease length per claim on the same queue', async () => {
      const q = await instance();
      const [short, long] = [job(), job()];
      await q.enqueue([short]);
      await q.claim('send', 1, 100);
      await q.enqueue([long]);
      await q.claim('send', 1, 5_000);
      expect(Number(await admin.pttl(`${prefix}:send:${toBullmqId(short.id)}:lock`))).toBeLessThanOrEqual(100);
      expect(Number(await admin.pttl(`${prefix}:send:${toBullmqId(long.id)}:lock`))).toBeGreaterThan(4_000);
      await sleep(100 + LEASE_CHECK_MS * 2 + 60);
      expect((await q.claim('send', 10, 5_000)).map((c) => c.id)).toEqual([short.id]);
    });

    it('acks a job whose lease lapsed (it is removed, not run again)', async () => {
      const q = await instance();
      const j = job();
      await q.enqueue([j]);
      await q.claim('send', 1, 50);
      await sleep(50 + LEASE_CHECK_MS * 2 + 60); // back in the wait list by now
      await q.ack([j.id]);
      expect((await q.depth()).send).toBe(0);
      expect(await q.claim('send', 10, 1000)).toEqual([]);
    });

    it('ignores a retry after the lease lapsed: the job is due again at once', async () => {
      const q = await instance();
      const j = job();
      await q.enqueue([j]);
      await q.claim('send', 1, 50);
      await sleep(50 + LEASE_CHECK_MS * 2 + 60);
      await q.retry(j.id, Date.now() + 60_000, 'too late');
      expect((await q.claim('send', 10, 1000)).map((c) => [c.id, c.attempts])).toEqual([[j.id, 2]]);
    });
  });

  describe('several processes on one Redis', () => {
    it('hands each job to one process at a time, and to another once the lease lapsed', async () => {
      const [a, b] = [await instance(), await instance()];
      const jobs = Array.from({ length: 20 }, () => job());
      await a.enqueue(jobs);
      const [fromA, fromB] = await Promise.all([a.claim('send', 15, 100), b.claim('send', 15, 60_000)]);
      expect(fromA.length + fromB.length).toBe(20);
      expect(new Set([...fromA, ...fromB].map((j) => j.id)).size).toBe(20);

      await b.ack(fromB.map((j) => j.id));
      await sleep(100 + LEASE_CHECK_MS * 2 + 60);
      const again = await b.claim('send', 50, 60_000);
      expect(again.map((j) => j.id).sort()).toEqual(fromA.map((j) => j.id).sort());
      expect(again.every((j) => j.attempts === 2)).toBe(true);
    });

    it('deduplicates across processes and shares depth and dead letters', async () => {
      const [a, b] = [await instance(), await instance()];
      const j = job();
      await Promise.all([a.enqueue([j]), b.enqueue([{ ...j, payload: 'other' }])]);
      expect(await b.depth()).toEqual({ send: 1 });
      const [claimed] = await b.claim('send', 1, 1000);
      await b.deadLetter(claimed!, 'gave up');
      expect((await a.listDeadLetters('org_1', { limit: 10 })).map((d) => d.jobId)).toEqual([j.id]);
      expect(await a.depth()).toEqual({ send: 0 });
    });

    it('does not record a dead letter for a job another process holds by now', async () => {
      const [a, b] = [await instance(), await instance()];
      await a.enqueue([job()]);
      const [claimed] = await a.claim('send', 1, 50);
      await sleep(50 + LEASE_CHECK_MS * 2 + 60);
      expect(await b.claim('send', 1, 60_000)).toHaveLength(1);
      await a.deadLetter(claimed!, 'late');
      expect(await a.listDeadLetters('org_1', { limit: 10 })).toEqual([]);
      expect((await a.depth()).send).toBe(1);
    });

    it('tells onEnqueue listeners of other processes through the pub/sub port', async () => {
      const pubsubs = [
        new RedisPubSub({ connection: REDIS_URL, prefix: `${prefix}:` }),
        new RedisPubSub({ connection: REDIS_URL, prefix: `${prefix}:` }),
      ];
      opened.push(...pubsubs);
      const a = await instance({ notify: pubsubs[0] });
      const b = await instance({ notify: pubsubs[1] });
      const [heardA, heardB] = [[] as string[], [] as string[]];
      a.onEnqueue((q) => heardA.push(q));
      b.onEnqueue((q) => heardB.push(q));
      await a.enqueue([job(), job({ queue: 'carrier-events', id: 'events:1:1' })]);
      await vi.waitFor(() => expect(heardB.sort()).toEqual(['carrier-events', 'send']));
      expect(heardA.sort()).toEqual(['carrier-events', 'send']); // locally once, not again through Redis
    });
  });

  describe('mapping', () => {
    it('takes any id (BullMQ refuses `:` and integers) and keeps the fields', async () => {
      const q = await instance();
      const ids = ['send:msg_1', '12345', 'events:7:1', 'a:b:c:d', '100%', '%3A', 'j', ''];
      await q.enqueue(ids.map((id, i) => job({ id, payload: `p${i}`, runAt: Date.now() - 1000 + i })));
      await q.enqueue(ids.map((id) => job({ id, payload: 'dup' })));
      const claimed = await q.claim('send', 20, 1000);
      expect(claimed.map((c) => [c.id, c.payload])).toEqual(ids.map((id, i) => [id, `p${i}`]));
      await q.ack(ids);
      expect((await q.depth()).send).toBe(0);
    });

    it('refuses a priority BullMQ cannot hold, before storing anything', async () => {
      const q = await instance();
      for (const priority of [-1, 1.5, 2 ** 21 - 1]) {
        await expect(q.enqueue([job(), job({ priority })])).rejects.toThrow(RangeError);
      }
      expect(await q.depth()).toEqual({});
      await q.enqueue([job({ priority: 2 ** 21 - 2 })]);
      expect((await q.claim('send', 1, 1000))[0]?.priority).toBe(2 ** 21 - 2);
    });

    it('claims a large batch in priority order', async () => {
      const q = await instance();
      const t = Date.now() - 10_000;
      const jobs = Array.from({ length: 300 }, (_, i) => job({ priority: i % 3, runAt: t + i }));
      await q.enqueue(jobs);
      const first = await q.claim('send', 250, 60_000);
      expect(first).toHaveLength(250);
      const expected = [...jobs].sort((x, y) => x.priority - y.priority || x.runAt - y.runAt).map((j) => j.id);
      expect(first.map((c) => c.id)).toEqual(expected.slice(0, 250));
      expect((await q.claim('send', 250, 60_000)).map((c) => c.id)).toEqual(expected.slice(250));
    });

    it('leaves no job data behind once jobs are acked or dead-lettered', async () => {
      const q = await instance();
      const jobs = [job(), job(), job({ orgId: null })];
      await q.enqueue(jobs);
      const claimed = await q.claim('send', 10, 1000);
      await q.ack([claimed[0]!.id]);
      await q.deadLetter(claimed[1]!, 'x');
      await q.deadLetter(claimed[2]!, 'y');
      const keys = await admin.keys(`${prefix}:send:j*`);
      expect(keys).toEqual([]);
      // A dead letter without an organization is kept (listed under no organization).
      expect(await admin.zcard(`${prefix}::dead:all`)).toBe(2);
    });

    it('gives the lease end of a leased job as its next due time', async () => {
      const q = await instance();
      await q.enqueue([job()]);
      const before = Date.now();
      await q.claim('send', 1, 30_000);
      const due = await q.nextDueAt('send');
      expect(due).toBeGreaterThanOrEqual(before + 29_000);
      expect(due).toBeLessThanOrEqual(Date.now() + 30_000);
    });
  });
});
