import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { backoffDelay, DEFAULT_RETRY_POLICY, hasAttemptsLeft, type RetryPolicy } from './retry-policy.ts';

const policy: RetryPolicy = { maxAttempts: 5, baseDelayMs: 1_000, maxDelayMs: 60_000 };
/** The exponential step after attempt `n` failed, before jitter. */
const step = (p: RetryPolicy, n: number) => Math.min(p.maxDelayMs, p.baseDelayMs * 2 ** Math.max(0, n - 1));

const policyArb = fc
  .record({
    maxAttempts: fc.integer({ min: 1, max: 20 }),
    baseDelayMs: fc.integer({ min: 1, max: 60_000 }),
    extra: fc.integer({ min: 0, max: 3_600_000 }),
  })
  .map(({ maxAttempts, baseDelayMs, extra }) => ({ maxAttempts, baseDelayMs, maxDelayMs: baseDelayMs + extra }));
const randomArb = fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true });
const attemptArb = fc.integer({ min: 1, max: 100 });

describe('backoffDelay', () => {
  it('doubles the step each attempt, half fixed and half jitter', () => {
    expect(backoffDelay(policy, 1, () => 0)).toBe(500);
    expect(backoffDelay(policy, 2, () => 0)).toBe(1_000);
    expect(backoffDelay(policy, 3, () => 0)).toBe(2_000);
    expect(backoffDelay(policy, 1, () => 0.5)).toBe(750);
    expect(backoffDelay(policy, 3, () => 0.999_999)).toBe(4_000);
  });

  it('caps the step at maxDelayMs', () => {
    expect(backoffDelay(policy, 7, () => 0)).toBe(30_000); // 64 s step, capped to 60 s
    expect(backoffDelay(policy, 50, () => 0.999_999)).toBe(60_000);
    expect(backoffDelay(policy, 5_000, () => 0.999_999)).toBe(60_000);
  });

  it('treats attempt numbers below 1 as the first attempt', () => {
    expect(backoffDelay(policy, 0, () => 0)).toBe(500);
    expect(backoffDelay(policy, -3, () => 0)).toBe(500);
  });

  it('stays within [step/2, step] for any policy, attempt and random draw', () => {
    fc.assert(
      fc.property(policyArb, attemptArb, randomArb, (p, n, r) => {
        const d = backoffDelay(p, n, () => r);
        const s = step(p, n);
        expect(Number.isInteger(d)).toBe(true);
        expect(d).toBeGreaterThanOrEqual(Math.floor(s / 2));
        expect(d).toBeLessThanOrEqual(Math.ceil(s));
        expect(d).toBeLessThanOrEqual(p.maxDelayMs);
      }),
      { numRuns: 2000 },
    );
  });

  it("honours the carrier's retryAfterMs as a floor, above the cap too", () => {
    expect(backoffDelay(policy, 1, () => 0, 10_000)).toBe(10_000);
    expect(backoffDelay(policy, 1, () => 0, 100)).toBe(500);
    expect(backoffDelay(policy, 1, () => 0, 0)).toBe(500);
    expect(backoffDelay(policy, 20, () => 0, 3_600_000)).toBe(3_600_000);
    fc.assert(
      fc.property(policyArb, attemptArb, randomArb, fc.integer({ min: 0, max: 86_400_000 }), (p, n, r, after) => {
        const d = backoffDelay(p, n, () => r, after);
        expect(d).toBeGreaterThanOrEqual(after);
        expect(d).toBe(
          Math.max(
            after,
            backoffDelay(p, n, () => r),
          ),
        );
      }),
      { numRuns: 1000 },
    );
  });

  it('never shrinks as attempts grow (same draw), and levels off at the cap', () => {
    fc.assert(
      fc.property(policyArb, randomArb, (p, r) => {
        let last = 0;
        for (let n = 1; n <= 60; n++) {
          const d = backoffDelay(p, n, () => r);
          expect(d).toBeGreaterThanOrEqual(last);
          last = d;
        }
        expect(last).toBe(backoffDelay(p, 1_000, () => r));
      }),
      { numRuns: 500 },
    );
  });

  it('uses Math.random by default and still stays in bounds', () => {
    for (let i = 0; i < 200; i++) {
      const d = backoffDelay(DEFAULT_RETRY_POLICY, 3);
      expect(d).toBeGreaterThanOrEqual(4_000);
      expect(d).toBeLessThanOrEqual(8_000);
    }
  });
});

describe('hasAttemptsLeft', () => {
  it('allows maxAttempts attempts in all, the first included', () => {
    expect(hasAttemptsLeft(policy, 1)).toBe(true);
    expect(hasAttemptsLeft(policy, 4)).toBe(true);
    expect(hasAttemptsLeft(policy, 5)).toBe(false);
    expect(hasAttemptsLeft(policy, 6)).toBe(false);
    expect(hasAttemptsLeft({ ...policy, maxAttempts: 1 }, 1)).toBe(false);
  });
});

describe('DEFAULT_RETRY_POLICY', () => {
  it('is sane: a few attempts, seconds at first, minutes at most', () => {
    const p = DEFAULT_RETRY_POLICY;
    expect(p.maxAttempts).toBeGreaterThan(1);
    expect(p.baseDelayMs).toBeGreaterThan(0);
    expect(p.maxDelayMs).toBeGreaterThanOrEqual(p.baseDelayMs);
    // The last wait before giving up stays under the cap.
    expect(backoffDelay(p, p.maxAttempts - 1, () => 0.999_999)).toBeLessThanOrEqual(p.maxDelayMs);
  });
});
