/**
 * The Redis adapters against the shared port contracts (OMNI_TEST_REDIS_URL, default redis://127.0.0.1:6379).
 * Every test works under a fresh key prefix and deletes its keys afterwards.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll } from 'vitest';
import { ManualClock } from '../../src/adapters/clock/system-clock.ts';
import { BullmqJobQueue } from '../../src/adapters/redis/bullmq-job-queue.ts';
import { RedisPubSub } from '../../src/adapters/redis/redis-pubsub.ts';
import { RedisRateLimiter } from '../../src/adapters/redis/redis-rate-limiter.ts';
import { deleteKeys, describeWithRedis, REDIS_URL, testPrefix } from '../support/redis.ts';
import { pubsubContract } from './pubsub-contract.ts';
import { queueContract } from './queue-contract.ts';
import { rateLimiterContract } from './rate-limiter-contract.ts';

/** Lease checks this often: a lapsed lease in the contract (200 ms) is noticed well within its slack. */
const LEASE_CHECK_MS = 20;

describeWithRedis('Redis', () => {
  let admin: Redis;
  beforeAll(() => {
    admin = new Redis(REDIS_URL);
  });
  afterAll(async () => {
    await admin.quit();
  });

  queueContract('BullmqJobQueue (wall clock)', async () => {
    const prefix = testPrefix();
    const queue = new BullmqJobQueue({ connection: REDIS_URL, prefix, leaseCheckMs: LEASE_CHECK_MS });
    await queue.ready();
    return {
      queue,
      clock: null,
      cleanup: async () => {
        await queue.close();
        await deleteKeys(admin, prefix);
      },
    };
  });

  pubsubContract('RedisPubSub', async () => {
    const prefix = `${testPrefix()}:`;
    return {
      client: (opts) => new RedisPubSub({ connection: REDIS_URL, prefix, ...opts }),
      cleanup: async () => undefined,
    };
  });

  rateLimiterContract('RedisRateLimiter (manual clock)', { shared: true }, async () => {
    const prefix = testPrefix();
    const clock = new ManualClock();
    return {
      limiter: () => new RedisRateLimiter({ connection: REDIS_URL, prefix, now: () => clock.now() }),
      clock,
      cleanup: () => deleteKeys(admin, prefix),
    };
  });

  rateLimiterContract('RedisRateLimiter (Redis clock)', { shared: true }, async () => {
    const prefix = testPrefix();
    return {
      limiter: () => new RedisRateLimiter({ connection: REDIS_URL, prefix }),
      clock: null,
      cleanup: () => deleteKeys(admin, prefix),
    };
  });
});
