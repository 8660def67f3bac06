/**
 * Per-sender rate limits (the numbers): with the sender limited to 50 messages/s, 1,000 messages never
 * put more than 50 in any one-second window at the carrier, and they finish within 5% of 20 s.
 */
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createSandboxSender, eventually, startTestServer, type TestServer } from './support/harness.ts';

let s: TestServer;

beforeAll(async () => {
  s = await startTestServer();
  await createSandboxSender(s, { rateLimitPerSecond: 50 });
});
afterAll(async () => {
  await s.stop();
});

it('a sender limited to 50/s never exceeds 50 sends in any one-second window', async () => {
  const total = 1000;
  const messages = Array.from({ length: total }, (_, i) => ({
    to: `+120255501${String(i % 90).padStart(2, '0')}`,
    channel: 'sms',
    body: `limited ${i}`,
  }));
  const started = Date.now();
  const r = await s.api('POST', '/v1/messages/batch', { messages });
  expect(r.body.items.every((i: { id?: string }) => i.id)).toBe(true);
  await eventually(
    async () => {
      const db = new Database(join(s.dataDir, 'sandbox.db'), { readonly: true });
      try {
        return (db.prepare('SELECT count(*) FROM sends').pluck().get() as number) >= total;
      } finally {
        db.close();
      }
    },
    30_000,
    200,
  );
  const elapsed = Date.now() - started;
  const sandbox = new Database(join(s.dataDir, 'sandbox.db'), { readonly: true });
  const times = (sandbox.prepare('SELECT created_at FROM sends ORDER BY created_at').pluck().all() as number[]).slice();
  sandbox.close();
  expect(times).toHaveLength(total);
  let worst = 0;
  for (let a = 0, b = 0; b < times.length; b++) {
    while ((times[b] as number) - (times[a] as number) >= 1000) a++;
    worst = Math.max(worst, b - a + 1);
  }
  console.log(`rate limit: ${total} sends in ${elapsed} ms; most in any one-second window: ${worst}`);
  expect(worst).toBeLessThanOrEqual(50);
  // 1,000 at 50/s: twenty windows, so 19 s from the first send to the last at the least (19.5 s measured alone,
  // with the 25 ms margin per window). The issue asks for "within 5% of 20 s".
  const span = (times.at(-1) as number) - (times[0] as number);
  console.log(`rate limit: first to last send ${span} ms`);
  expect(span).toBeGreaterThanOrEqual(19_000);
  expect(span).toBeLessThanOrEqual(21_000);
}, 90_000);
