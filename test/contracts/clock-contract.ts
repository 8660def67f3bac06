/**
 * The Clock contract: `now()` is milliseconds since the Unix epoch, a whole number, and never goes backwards.
 * A runner per adapter calls `clockContract(name, make)`.
 */
import { describe, expect, it } from 'vitest';
import type { Clock } from '../../src/ports/clock.ts';

export function clockContract(name: string, make: () => Clock): void {
  describe(name, () => {
    it('returns a whole number of milliseconds since the epoch', () => {
      const t = make().now();
      expect(typeof t).toBe('number');
      expect(Number.isSafeInteger(t)).toBe(true);
      // Sometime after 2020 and before 2100: milliseconds, not seconds or microseconds.
      expect(t).toBeGreaterThan(Date.UTC(2020, 0, 1));
      expect(t).toBeLessThan(Date.UTC(2100, 0, 1));
      expect(Number.isNaN(new Date(t).getTime())).toBe(false);
    });

    it('never goes backwards', async () => {
      const clock = make();
      let last = clock.now();
      for (let i = 0; i < 10_000; i++) {
        const t = clock.now();
        expect(t).toBeGreaterThanOrEqual(last);
        last = t;
      }
      await new Promise((resolve) => setTimeout(resolve, 5));
      expect(clock.now()).toBeGreaterThanOrEqual(last);
    });
  });
}
