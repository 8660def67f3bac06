import { describe, expect, it } from 'vitest';
import { MemoryRateLimiter } from '../adapters/rate-limiter/memory-rate-limiter.ts';
import type { SendRequest, SendResult } from '../ports/carrier.ts';
import { RATE_LIMITED, RATE_MARGIN_MS, type RateLimit, sendWithinLimit } from './send-within-limit.ts';

const requests = (n: number): SendRequest[] =>
  Array.from({ length: n }, (_, i) => ({
    messageId: `m${i}`,
    channel: 'sms',
    to: '+12025550100',
    from: '+12025550199',
    body: 'hi',
    subject: null,
    attempt: 1,
  }));

/** A clock that only moves when the code under test sleeps, and a log of the chunks sent at each instant. */
function harness(limits: RateLimit[], deadlineIn: number) {
  let t = 1_000_000;
  const limiter = new MemoryRateLimiter(() => t);
  const sent: { at: number; ids: string[] }[] = [];
  const deps = {
    limiter,
    limits,
    now: () => t,
    deadline: t + deadlineIn,
    send: async (chunk: SendRequest[]): Promise<SendResult[]> => {
      sent.push({ at: t, ids: chunk.map((r) => r.messageId) });
      return chunk.map((r) => ({ ok: true, providerMessageId: `p-${r.messageId}` }));
    },
    sleep: async (ms: number) => {
      t += ms;
    },
  };
  return { limiter, deps, sent, now: () => t };
}

describe('sendWithinLimit', () => {
  it('sends in chunks of the smallest limit, one full window at a time', async () => {
    const h = harness(
      [
        { key: 'sender:a', limit: 50 },
        { key: 'account:x', limit: 80 },
      ],
      15_000,
    );
    const results = await sendWithinLimit(h.deps, requests(120));
    expect(results.every((r) => r.ok)).toBe(true);
    expect(h.sent.map((s) => s.ids.length)).toEqual([50, 50, 20]);
    expect(h.sent[1]!.at - h.sent[0]!.at).toBe(1000 + RATE_MARGIN_MS);
  });

  it('fills what is left of a window another worker partly used instead of waiting it out', async () => {
    const h = harness([{ key: 'sender:a', limit: 50 }], 15_000);
    await h.limiter.take('sender:a', 24, 50);
    const results = await sendWithinLimit(h.deps, requests(76));
    expect(results.every((r) => r.ok)).toBe(true);
    // 26 at once (the rest of the window), then 50 when the other worker's 24 and these 26 have left it.
    expect(h.sent.map((s) => [s.at - h.sent[0]!.at, s.ids.length])).toEqual([
      [0, 26],
      [1000 + RATE_MARGIN_MS, 50],
    ]);
  });

  it('holds back what cannot go out before the deadline, due when the window frees', async () => {
    const h = harness([{ key: 'sender:a', limit: 50 }], 2_500);
    const start = h.now();
    const results = await sendWithinLimit(h.deps, requests(200));
    expect(h.sent.map((s) => s.ids.length)).toEqual([50, 50, 50]);
    expect(results.slice(0, 150).every((r) => r.ok)).toBe(true);
    const held = results.slice(150);
    expect(held).toHaveLength(50);
    for (const r of held) {
      expect(r).toMatchObject({ ok: false, retryable: true, error: { code: RATE_LIMITED } });
      // The third window opened at 2,050 ms; the fourth opens 1,025 ms later, past the 2,500 ms deadline.
      expect(h.now() - start + (r as { retryAfterMs: number }).retryAfterMs).toBe(3 * (1000 + RATE_MARGIN_MS));
    }
  });

  it('a message never waits for a window when the deadline has passed', async () => {
    const h = harness([{ key: 'sender:a', limit: 5 }], 0);
    const results = await sendWithinLimit(h.deps, requests(3));
    expect(h.sent).toEqual([]);
    expect(results.map((r) => (r.ok ? 'sent' : r.error.code))).toEqual([RATE_LIMITED, RATE_LIMITED, RATE_LIMITED]);
  });
});
