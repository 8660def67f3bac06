/**
 * Redis for the contract runners: `OMNI_TEST_REDIS_URL` (default redis://127.0.0.1:6379). When it cannot be
 * reached the Redis suites are skipped with the reason in their name, except under CI=true, where a missing
 * Redis is a failure (a CI job that silently skips its back end proves nothing).
 */
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { describe, it } from 'vitest';

export const REDIS_URL = process.env.OMNI_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

async function probe(url: string): Promise<string | null> {
  const client = new Redis(url, {
    lazyConnect: true,
    connectTimeout: 1500,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  });
  let cause: string | null = null;
  client.on('error', (err: Error) => {
    cause ??= err.message;
  });
  try {
    await client.connect();
    await client.ping();
    return null;
  } catch (err) {
    return cause ?? (err instanceof Error ? err.message : String(err));
  } finally {
    client.disconnect();
  }
}

const unreachable = await probe(REDIS_URL);

/**
 * `describe` when Redis answers. Otherwise a skipped suite whose name gives the reason, or, under CI=true, a
 * failing test.
 */
export function describeWithRedis(name: string, body: () => void): void {
  if (unreachable === null) {
    describe(name, body);
    return;
  }
  const reason = `Redis unreachable at ${REDIS_URL} (${unreachable}); set OMNI_TEST_REDIS_URL`;
  if (process.env.CI === 'true') {
    describe(name, () => {
      it('needs Redis', () => {
        throw new Error(`${reason}. CI=true: Redis suites must run.`);
      });
    });
  } else {
    console.warn(`[skip] ${name}: ${reason}`);
    describe.skip(`${name} [skipped: ${reason}]`, body);
  }
}

/** A key prefix no other test uses. */
export function testPrefix(): string {
  return `omni-test-${randomBytes(6).toString('hex')}`;
}

/** Deletes every key `prefix:*` (SCAN, so it is safe on a shared Redis). */
export async function deleteKeys(client: Redis, prefix: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await client.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length > 0) await client.del(...keys);
  } while (cursor !== '0');
}

/** Whether Redis answered when the test file loaded. */
export const redisReachable = unreachable === null;
