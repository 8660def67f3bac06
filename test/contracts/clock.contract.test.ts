import { describe, expect, it } from 'vitest';
import { ManualClock, systemClock } from '../../src/adapters/clock/system-clock.ts';
import { clockContract } from './clock-contract.ts';

clockContract('systemClock', () => systemClock);
clockContract('ManualClock', () => new ManualClock());

describe('systemClock', () => {
  it('follows the wall clock', () => {
    const before = Date.now();
    const t = systemClock.now();
    expect(t).toBeGreaterThanOrEqual(before);
    expect(t).toBeLessThanOrEqual(Date.now());
  });
});

describe('ManualClock', () => {
  it('starts at 2026-01-01T00:00:00Z unless told otherwise and stands still', () => {
    const clock = new ManualClock();
    expect(clock.now()).toBe(Date.UTC(2026, 0, 1));
    expect(clock.now()).toBe(clock.now());
    expect(new ManualClock(1_700_000_000_000).now()).toBe(1_700_000_000_000);
  });

  it('moves only when advanced or set', () => {
    const clock = new ManualClock();
    const t = clock.now();
    clock.advance(1500);
    expect(clock.now()).toBe(t + 1500);
    clock.advance(0);
    expect(clock.now()).toBe(t + 1500);
    clock.set(Date.UTC(2027, 5, 1));
    expect(clock.now()).toBe(Date.UTC(2027, 5, 1));
  });
});
