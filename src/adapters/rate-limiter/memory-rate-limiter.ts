/**
 * The in-process rate limiter (one process, or tests): per key, a log of the units allowed in the last second,
 * one entry per millisecond that had any.
 */
import { checkTake, RATE_WINDOW_MS, type RateDecision, type RateLimiter } from '../../ports/rate-limiter.ts';

interface Log {
  /** Oldest first; `at` strictly increasing. */
  entries: { at: number; units: number }[];
  head: number;
  total: number;
}

/** How often keys with nothing left in their window are dropped. */
const SWEEP_MS = 10_000;

export class MemoryRateLimiter implements RateLimiter {
  private readonly logs = new Map<string, Log>();
  private lastSweep = 0;

  constructor(private readonly now: () => number = Date.now) {}

  async take(key: string, cost: number, limitPerSecond: number): Promise<RateDecision> {
    checkTake(cost, limitPerSecond);
    const now = this.now();
    this.sweep(now);
    let log = this.logs.get(key);
    if (!log) {
      log = { entries: [], head: 0, total: 0 };
      this.logs.set(key, log);
    }
    expire(log, now);
    if (log.total + cost <= limitPerSecond) {
      const last = log.entries[log.entries.length - 1];
      // (A clock that stepped back files the take at the newest entry, keeping the log in order.)
      if (last && last.at >= now) last.units += cost;
      else log.entries.push({ at: now, units: cost });
      log.total += cost;
      return { allowed: true, retryAfterMs: 0, remaining: limitPerSecond - log.total };
    }
    // Refused: wait until enough of the oldest units have left the window.
    const excess = log.total + cost - limitPerSecond;
    let freed = 0;
    let retryAfterMs: number = RATE_WINDOW_MS;
    for (let i = log.head; i < log.entries.length; i++) {
      const e = log.entries[i]!;
      freed += e.units;
      if (freed >= excess) {
        retryAfterMs = e.at + RATE_WINDOW_MS - now;
        break;
      }
    }
    return { allowed: false, retryAfterMs, remaining: Math.max(0, limitPerSecond - log.total) };
  }

  async close(): Promise<void> {
    this.logs.clear();
  }

  private sweep(now: number): void {
    if (now - this.lastSweep < SWEEP_MS) return;
    this.lastSweep = now;
    for (const [key, log] of this.logs) {
      expire(log, now);
      if (log.total === 0) this.logs.delete(key);
    }
  }
}

/** Drops the entries that left the window (an entry at `at` counts for [at, at + window)). */
function expire(log: Log, now: number): void {
  const cutoff = now - RATE_WINDOW_MS;
  while (log.head < log.entries.length && log.entries[log.head]!.at <= cutoff) {
    log.total -= log.entries[log.head]!.units;
    log.head++;
  }
  if (log.head > 32 && log.head * 2 > log.entries.length) {
    log.entries = log.entries.slice(log.head);
    log.head = 0;
  }
}
