/**
 * The rate-limiter port: how many units (messages, requests) a key (a sender, a carrier account, an API key)
 * may use per second, shared by every process of a deployment when the adapter is.
 *
 * Semantics: a sliding one-second window. A take is allowed when the units allowed for its key during the last
 * second (up to and including this take) stay within `limitPerSecond`; so in no one-second interval does a key
 * get more than its limit, while the whole limit is usable at once (a burst) and every second. A refused take
 * uses nothing. This is stricter than a token bucket or a fixed window of the same rate, both of which let up to
 * twice the limit through within one second (a full bucket plus its refill; the end of one window plus the start
 * of the next), which a carrier that enforces N per second would refuse.
 */
export interface RateDecision {
  allowed: boolean;
  /**
   * 0 when allowed. Otherwise how long until this same take would be allowed if nothing else is taken in the
   * meantime (the time until enough earlier units leave the window): at most 1000.
   */
  retryAfterMs: number;
  /** Units still available in the window after this decision. */
  remaining: number;
}

export interface RateLimiter {
  /**
   * Takes `cost` units of `key`'s budget of `limitPerSecond` if they fit. `cost` and `limitPerSecond` are
   * positive integers and `cost <= limitPerSecond` (a RangeError otherwise: such a take could never be allowed).
   * The limit is whatever the call says; a key's earlier takes count against a changed limit as they are.
   */
  take(key: string, cost: number, limitPerSecond: number): Promise<RateDecision>;
  /** Releases the connection, if any. */
  close(): Promise<void>;
}

/** One second: the window of `limitPerSecond`. */
export const RATE_WINDOW_MS = 1000;

/** The argument rules of `take`, shared by the adapters. */
export function checkTake(cost: number, limitPerSecond: number): void {
  if (!Number.isSafeInteger(limitPerSecond) || limitPerSecond < 1)
    throw new RangeError(`limitPerSecond must be a positive integer, got ${limitPerSecond}`);
  if (!Number.isSafeInteger(cost) || cost < 1) throw new RangeError(`cost must be a positive integer, got ${cost}`);
  if (cost > limitPerSecond) throw new RangeError(`cost ${cost} exceeds the limit of ${limitPerSecond} per second`);
}
