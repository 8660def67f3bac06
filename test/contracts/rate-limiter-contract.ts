/**
 * The RateLimiter contract: a sliding one-second window per key (see src/ports/rate-limiter.ts).
 *
 * `make` gives a fresh, empty limiter store for each test; `limiter()` opens a client on it (for a shared
 * adapter, another process's view of the same budgets). Time: as in the queue contract, `clock` is the limiters'
 * clock when the suite can drive it, or null for the wall clock (the suite then sleeps, and allows for a little
 * timing jitter).
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { RateLimiter } from '../../src/ports/rate-limiter.ts';
import type { DrivenClock } from './queue-contract.ts';

export interface RateLimiterContractContext {
  limiter(): RateLimiter;
  clock: DrivenClock | null;
  cleanup(): Promise<void>;
}

export interface RateLimiterContractOptions {
  /** Limiters from one context share their budgets (a shared store such as Redis). */
  shared: boolean;
}

/** Timing slack on the wall clock (a decision and our reading of the clock are not the same instant). */
const JITTER = 40;

export function rateLimiterContract(
  name: string,
  opts: RateLimiterContractOptions,
  make: () => Promise<RateLimiterContractContext>,
): void {
  describe(name, () => {
    let ctx: RateLimiterContractContext;
    let limiter: RateLimiter;
    let opened: RateLimiter[];
    let key: (name: string) => string;

    beforeEach(async () => {
      ctx = await make();
      opened = [];
      limiter = open();
      const run = Math.random().toString(36).slice(2);
      key = (n) => `${n}:${run}`;
    });

    afterEach(async () => {
      await Promise.all(opened.map((l) => l.close()));
      await ctx.cleanup();
    });

    function open(): RateLimiter {
      const l = ctx.limiter();
      opened.push(l);
      return l;
    }

    const now = (): number => (ctx.clock ? ctx.clock.now() : Date.now());
    async function pass(ms: number): Promise<void> {
      if (ctx.clock) ctx.clock.advance(ms);
      else await new Promise((resolve) => setTimeout(resolve, ms));
    }
    /** Exact on a driven clock; within the jitter on the wall clock. */
    function expectAbout(actual: number, expected: number): void {
      if (ctx.clock) expect(actual).toBe(expected);
      else {
        expect(actual).toBeGreaterThanOrEqual(expected - JITTER);
        expect(actual).toBeLessThanOrEqual(expected + JITTER);
      }
    }

    it('allows a burst up to the limit, then refuses until the first units leave the window', async () => {
      const k = key('sender');
      for (let i = 0; i < 5; i++) {
        expect(await limiter.take(k, 1, 5)).toEqual({ allowed: true, retryAfterMs: 0, remaining: 4 - i });
      }
      const refused = await limiter.take(k, 1, 5);
      expect(refused.allowed).toBe(false);
      expect(refused.remaining).toBe(0);
      expectAbout(refused.retryAfterMs, 1000);
      expect(refused.retryAfterMs).toBeLessThanOrEqual(1000);
    });

    it('gives the wait until enough earlier units have left the window for this cost', async () => {
      const k = key('sender');
      const t0 = now();
      expect((await limiter.take(k, 3, 5)).allowed).toBe(true);
      await pass(300);
      expect((await limiter.take(k, 2, 5)).allowed).toBe(true);
      await pass(200);
      const elapsed = now() - t0;
      // The 3 units of t0 leave at t0 + 1000: enough for 1 to 3 units; 4 or 5 also need the 2 taken at t0 + 300.
      for (const cost of [1, 3]) expectAbout((await limiter.take(k, cost, 5)).retryAfterMs, 1000 - elapsed);
      for (const cost of [4, 5]) expectAbout((await limiter.take(k, cost, 5)).retryAfterMs, 1300 - elapsed);
    });

    it('allows the refused take once its retryAfter has passed, and not before', async () => {
      const k = key('sender');
      await limiter.take(k, 4, 4);
      await pass(250);
      const refused = await limiter.take(k, 2, 4);
      expect(refused.allowed).toBe(false);
      if (ctx.clock) {
        await pass(refused.retryAfterMs - 1);
        expect((await limiter.take(k, 2, 4)).allowed).toBe(false);
        await pass(1);
      } else {
        await pass(refused.retryAfterMs + JITTER);
      }
      expect(await limiter.take(k, 2, 4)).toMatchObject({ allowed: true, remaining: 2 });
    });

    it('uses nothing for a refused take', async () => {
      const k = key('sender');
      await limiter.take(k, 2, 3);
      for (let i = 0; i < 10; i++) expect((await limiter.take(k, 2, 3)).allowed).toBe(false);
      expect(await limiter.take(k, 1, 3)).toMatchObject({ allowed: true, remaining: 0 });
    });

    it('keeps keys independent', async () => {
      const [a, b] = [key('carrier-a'), key('carrier-b')];
      expect((await limiter.take(a, 3, 3)).allowed).toBe(true);
      expect((await limiter.take(a, 1, 3)).allowed).toBe(false);
      expect(await limiter.take(b, 3, 3)).toMatchObject({ allowed: true, remaining: 0 });
      expect(await limiter.take(key('carrier-c'), 1, 1)).toMatchObject({ allowed: true });
    });

    it('applies the limit each call gives, to the units already taken', async () => {
      const k = key('sender');
      expect((await limiter.take(k, 2, 2)).allowed).toBe(true);
      expect((await limiter.take(k, 1, 2)).allowed).toBe(false);
      expect(await limiter.take(k, 3, 5)).toMatchObject({ allowed: true, remaining: 0 });
      expect((await limiter.take(k, 1, 3)).allowed).toBe(false);
    });

    it('never lets more than the limit through in any one-second interval, yet uses the whole limit', async () => {
      const k = key('sender');
      const limit = 7;
      const allowedAt: { at: number; cost: number }[] = [];
      // Greedy, bursty callers with mixed costs and irregular gaps.
      let seed = 42;
      const random = () => {
        seed = (seed * 1103515245 + 12345) % 2 ** 31;
        return seed / 2 ** 31;
      };
      const start = now();
      const duration = ctx.clock ? 5000 : 2200;
      while (now() - start < duration) {
        const cost = 1 + Math.floor(random() * 3);
        const before = now();
        const d = await limiter.take(k, cost, limit);
        if (d.allowed) allowedAt.push({ at: ctx.clock ? before : Date.now(), cost });
        await pass(ctx.clock ? Math.floor(random() * 90) : Math.floor(random() * 30));
      }
      // Every interval [x, x + 1000) starting at a take (the worst ones do): within the limit.
      const window = ctx.clock ? 1000 : 1000 - JITTER;
      for (const first of allowedAt) {
        const inWindow = allowedAt.filter((a) => a.at >= first.at && a.at < first.at + window);
        expect(inWindow.reduce((sum, a) => sum + a.cost, 0)).toBeLessThanOrEqual(limit);
      }
      // And the budget was really used: at least (limit - largest cost + 1) per second on average.
      const total = allowedAt.reduce((sum, a) => sum + a.cost, 0);
      expect(total).toBeGreaterThanOrEqual(Math.floor(duration / 1000) * (limit - 2));
    });

    it('refuses arguments no take could satisfy', async () => {
      const k = key('sender');
      await expect(limiter.take(k, 6, 5)).rejects.toThrow(RangeError);
      await expect(limiter.take(k, 0, 5)).rejects.toThrow(RangeError);
      await expect(limiter.take(k, 1.5, 5)).rejects.toThrow(RangeError);
      await expect(limiter.take(k, 1, 0)).rejects.toThrow(RangeError);
      await expect(limiter.take(k, 1, 2.5)).rejects.toThrow(RangeError);
      expect(await limiter.take(k, 5, 5)).toMatchObject({ allowed: true, remaining: 0 });
    });

    if (opts.shared) {
      it('shares one budget between limiters', async () => {
        const k = key('shared');
        const [a, b] = [limiter, open()];
        expect(await a.take(k, 3, 5)).toMatchObject({ allowed: true, remaining: 2 });
        expect(await b.take(k, 2, 5)).toMatchObject({ allowed: true, remaining: 0 });
        expect((await a.take(k, 1, 5)).allowed).toBe(false);
        expect((await b.take(k, 1, 5)).allowed).toBe(false);
      });

      it('lets concurrent limiters through no more than the limit together', async () => {
        const k = key('contended');
        const limiters = [limiter, open(), open()];
        const decisions = await Promise.all(
          Array.from({ length: 60 }, (_, i) => limiters[i % limiters.length]!.take(k, 1, 25)),
        );
        expect(decisions.filter((d) => d.allowed)).toHaveLength(25);
      });
    } else {
      it('keeps the budgets of separate limiters apart', async () => {
        const k = key('local');
        expect((await limiter.take(k, 2, 2)).allowed).toBe(true);
        expect((await open().take(k, 2, 2)).allowed).toBe(true);
      });
    }
  });
}
