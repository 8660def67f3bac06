import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { classifyAttempt, DEFAULT_WEBHOOK_RETRY, nextAttemptAt, parseRetryAfter } from './webhook-retry.ts';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

describe('classifyAttempt', () => {
  it('delivers on 2xx, retries on no answer, 3xx, 408, 429 and 5xx, and gives up on other 4xx', () => {
    expect(classifyAttempt(200)).toBe('delivered');
    expect(classifyAttempt(204)).toBe('delivered');
    expect(classifyAttempt(299)).toBe('delivered');
    for (const s of [null, 301, 408, 429, 500, 502, 503, 599]) expect(classifyAttempt(s)).toBe('retry');
    for (const s of [400, 401, 403, 404, 410, 413, 422, 499]) expect(classifyAttempt(s)).toBe('final');
  });
});

describe('parseRetryAfter', () => {
  const now = Date.UTC(2026, 0, 1);
  it('reads seconds and HTTP dates', () => {
    expect(parseRetryAfter('120', now)).toBe(120_000);
    expect(parseRetryAfter(' 0 ', now)).toBe(0);
    expect(parseRetryAfter(new Date(now + 30_000).toUTCString(), now)).toBe(30_000);
    expect(parseRetryAfter(new Date(now - 30_000).toUTCString(), now)).toBe(0);
  });
  it('ignores what it cannot read', () => {
    for (const v of [undefined, null, '', 'soon', '-5', '1.5']) expect(parseRetryAfter(v, now)).toBeUndefined();
  });
});

describe('nextAttemptAt', () => {
  const created = Date.UTC(2026, 0, 1);

  it('doubles the step, with the random half on top of the fixed half', () => {
    const low = () => 0;
    const high = () => 1;
    const at = (attempt: number, r: () => number) =>
      (nextAttemptAt(DEFAULT_WEBHOOK_RETRY, { attempt, createdAt: created, now: created }, r) as number) - created;
    expect(at(1, low)).toBe(2_500);
    expect(at(1, high)).toBe(5_000);
    expect(at(2, low)).toBe(5_000);
    expect(at(3, high)).toBe(20_000);
    expect(at(30, high)).toBe(10 * HOUR);
  });

  it('retries for about three days, then gives up; the last attempt falls on the three-day mark', () => {
    for (const r of [() => 0, () => 0.5, () => 1]) {
      let now = created;
      let attempts = 1;
      let last = now;
      for (;;) {
        const next = nextAttemptAt(DEFAULT_WEBHOOK_RETRY, { attempt: attempts, createdAt: created, now }, r);
        if (next === null) break;
        expect(next).toBeGreaterThan(now);
        now = next;
        last = next;
        attempts++;
      }
      expect(last).toBe(created + 3 * DAY);
      expect(attempts).toBeGreaterThanOrEqual(14);
      expect(attempts).toBeLessThanOrEqual(30);
    }
  });

  it('honours Retry-After, but never beyond the longest step', () => {
    const base = { attempt: 1, createdAt: created, now: created };
    expect(nextAttemptAt(DEFAULT_WEBHOOK_RETRY, { ...base, retryAfterMs: 60_000 }, () => 0)).toBe(created + 60_000);
    expect(nextAttemptAt(DEFAULT_WEBHOOK_RETRY, { ...base, retryAfterMs: 30 * DAY }, () => 0)).toBe(
      created + 10 * HOUR,
    );
  });

  it('never schedules before now nor after the deadline', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 60 }),
        fc.nat(4 * DAY),
        fc.double({ min: 0, max: 1, noNaN: true }),
        (attempt, age, r) => {
          const now = created + age;
          const next = nextAttemptAt(DEFAULT_WEBHOOK_RETRY, { attempt, createdAt: created, now }, () => r);
          if (age >= 3 * DAY) expect(next).toBeNull();
          else {
            expect(next).not.toBeNull();
            expect(next as number).toBeGreaterThan(now);
            expect(next as number).toBeLessThanOrEqual(created + 3 * DAY);
          }
        },
      ),
    );
  });
});
