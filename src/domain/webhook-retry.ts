/**
 * When a webhook delivery is retried, and for how long. Pure.
 *
 * A 2xx answer delivers it. No answer (a time-out, a refused or reset connection), `408`, `429`, any `5xx` (and a
 * `3xx`: redirects are not followed) is a temporary failure, retried with exponential back-off and jitter: half of
 * each step fixed, half random, so retries spread out yet never come early; a receiver's `Retry-After` is honoured
 * (up to the longest step). Every other `4xx` is final: the receiver refused the event itself.
 * Retries go on for `retryForMs` after the delivery was created (about three days); the last one is made at that
 * mark, and a failure after it is final.
 */

export interface WebhookRetryPolicy {
  /** Delay after the first failed attempt; it doubles with each further one. */
  baseDelayMs: number;
  /** Longest delay between two attempts. */
  maxDelayMs: number;
  /** How long after its creation a delivery is still retried. */
  retryForMs: number;
}

/** 5 s, 10 s, 20 s, … up to 10 h between attempts, for three days: about 17 attempts in all. */
export const DEFAULT_WEBHOOK_RETRY: WebhookRetryPolicy = {
  baseDelayMs: 5_000,
  maxDelayMs: 10 * 3_600_000,
  retryForMs: 3 * 86_400_000,
};

export type AttemptVerdict = 'delivered' | 'retry' | 'final';

/** What an answer means: `statusCode` null when there was none (time-out, connection error, refused address). */
export function classifyAttempt(statusCode: number | null): AttemptVerdict {
  if (statusCode === null) return 'retry';
  if (statusCode >= 200 && statusCode < 300) return 'delivered';
  if (statusCode === 408 || statusCode === 429) return 'retry';
  if (statusCode >= 400 && statusCode < 500) return 'final';
  return 'retry';
}

/** A `Retry-After` header (delay in seconds, or an HTTP date) as milliseconds from `now`; undefined when unusable. */
export function parseRetryAfter(value: string | null | undefined, now: number): number | undefined {
  if (value === null || value === undefined) return undefined;
  const v = value.trim();
  if (/^\d{1,10}$/.test(v)) return Number(v) * 1000;
  // An HTTP date (`Wed, 21 Oct 2015 07:28:00 GMT`); Date.parse alone would read '1.5' or '-5' as dates too.
  if (!/GMT$/.test(v)) return undefined;
  const at = Date.parse(v);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, at - now);
}

/**
 * When to try again after attempt number `attempt` (1-based) failed temporarily at `now`, for a delivery created
 * at `createdAt`; null when it is given up (final).
 */
export function nextAttemptAt(
  policy: WebhookRetryPolicy,
  opts: { attempt: number; createdAt: number; now: number; retryAfterMs?: number | undefined },
  random: () => number = Math.random,
): number | null {
  const deadline = opts.createdAt + policy.retryForMs;
  if (opts.now >= deadline) return null;
  const step = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** Math.min(40, Math.max(0, opts.attempt - 1)));
  const jittered = Math.round(step / 2 + random() * (step / 2));
  const delay = Math.max(jittered, Math.min(policy.maxDelayMs, opts.retryAfterMs ?? 0));
  return Math.min(opts.now + delay, deadline);
}
