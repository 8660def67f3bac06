/** Exponential back-off with full jitter ("decorrelated" enough for a fleet of workers). Pure. */

export interface RetryPolicy {
  /** Attempts in all, the first included. */
  maxAttempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
}

export const DEFAULT_RETRY_POLICY: RetryPolicy = { maxAttempts: 5, baseDelayMs: 2_000, maxDelayMs: 15 * 60_000 };

/**
 * Delay before attempt `attempt + 1`, given that attempt number `attempt` (1-based) just failed.
 * Half of the exponential step is fixed and half is random, so retries spread out yet never come early.
 * A carrier's own `retryAfterMs` is honoured as a floor.
 */
export function backoffDelay(
  policy: RetryPolicy,
  attempt: number,
  random: () => number = Math.random,
  retryAfterMs?: number,
): number {
  const exp = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** Math.max(0, attempt - 1));
  const delay = Math.round(exp / 2 + random() * (exp / 2));
  return Math.max(delay, retryAfterMs ?? 0);
}

export function hasAttemptsLeft(policy: RetryPolicy, attempt: number): boolean {
  return attempt < policy.maxAttempts;
}
