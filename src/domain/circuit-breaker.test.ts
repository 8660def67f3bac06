import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CircuitBreaker } from './circuit-breaker.ts';

const opts = { failureThreshold: 3, openMs: 1000, probeMs: 500 };

describe('circuit breaker', () => {
  it('opens after consecutive failures only', () => {
    const c = new CircuitBreaker(opts);
    c.failure(0);
    c.failure(1);
    c.success();
    c.failure(2);
    c.failure(3);
    expect(c.state(4)).toBe('closed');
    c.failure(5);
    expect(c.state(6)).toBe('open');
    expect(c.allow(6)).toBe(false);
  });

  it('lets one probe through when half-open; success closes, failure reopens', () => {
    const c = new CircuitBreaker(opts);
    for (let i = 0; i < 3; i++) c.failure(0);
    expect(c.state(999)).toBe('open');
    expect(c.nextProbeAt(10)).toBe(1000);
    expect(c.state(1000)).toBe('half-open');
    expect(c.allow(1000)).toBe(true);
    expect(c.allow(1001)).toBe(false);
    c.failure(1100);
    expect(c.state(1200)).toBe('open');
    expect(c.allow(2100)).toBe(true);
    c.success();
    expect(c.state(2101)).toBe('closed');
    expect(c.allow(2101)).toBe(true);
  });

  it('allows another probe when the first never reports', () => {
    const c = new CircuitBreaker(opts);
    for (let i = 0; i < 3; i++) c.failure(0);
    expect(c.allow(1000)).toBe(true);
    expect(c.available(1400)).toBe(false);
    expect(c.nextProbeAt(1400)).toBe(1500);
    expect(c.allow(1500)).toBe(true);
  });

  it('never lets more than one request through per probe period while not closed', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 50 }), { maxLength: 200 }), (steps) => {
        const c = new CircuitBreaker(opts);
        for (let i = 0; i < 3; i++) c.failure(0);
        let now = 0;
        const allowed: number[] = [];
        for (const d of steps) {
          now += d;
          if (c.allow(now)) allowed.push(now);
        }
        for (let i = 1; i < allowed.length; i++)
          expect((allowed[i] ?? 0) - (allowed[i - 1] ?? 0)).toBeGreaterThanOrEqual(500);
        for (const t of allowed) expect(t).toBeGreaterThanOrEqual(1000);
      }),
    );
  });
});
