/**
 * Per-sender rate limits: with the sender limited to 50 messages/s, the carrier never sees more than 50 of its
 * messages in any one-second window, and 300 messages take about six seconds.
 */
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { eventually, startTestServer, type TestServer } from './support/harness.ts';

let s: TestServer;

beforeAll(async () => {
  s = await startTestServer();
  // No sender API yet (it arrives with the carriers work): set the limit on the bootstrap sender directly, before
  // the first send loads it.
  const db = new Database(join(s.dataDir, 'omni.db'));
  db.prepare("UPDATE senders SET config = json_set(config, '$.rateLimitPerSecond', 50)").run();
  db.close();
});
afterAll(async () => {
  await s.stop();
});

it('a sender limited to 50/s never exceeds 50 sends in any one-second window', async () => {
  const total = 300;
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
      const m = await s.api('GET', '/v1/messages?status=delivered&limit=500');
      return m.body.items.length >= total;
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
  // 300 at 50/s: six windows, so at least five seconds between the first and the last send.
  expect((times.at(-1) as number) - (times[0] as number)).toBeGreaterThanOrEqual(4900);
}, 60_000);
