/**
 * Sending under rate limits: requests go out in chunks of at most the smallest limit, each chunk after taking its
 * units from every limit (the sender's, then its provider account's) of the possibly shared limiter. A chunk the
 * first limit cannot take whole takes what that limit has left in its window, so a window another worker (or the
 * tail of an earlier batch) has partly used is filled, not skipped. A full window is waited out. What cannot go
 * out before `deadline` comes back as a `rate_limited` result due when the window frees, so a lease never runs out
 * while we wait and no attempt is spent.
 */
import type { SendRequest, SendResult } from '../ports/carrier.ts';
import type { RateLimiter } from '../ports/rate-limiter.ts';

/** The error code of a message our own limiter held back (not the carrier's fault: no failover, no circuit). */
export const RATE_LIMITED = 'rate_limited';

/** Extra wait after a full window, so that windows as the carrier measures them are never overfilled. */
export const RATE_MARGIN_MS = 25;

export interface RateLimit {
  key: string;
  limit: number;
}

export interface SendWithinLimitDeps {
  limiter: RateLimiter;
  /** In order of taking; every chunk takes from each. */
  limits: readonly RateLimit[];
  now: () => number;
  /** No chunk starts waiting for a window that frees after this. */
  deadline: number;
  send: (requests: SendRequest[]) => Promise<SendResult[]>;
  sleep?: (ms: number) => Promise<void>;
}

export async function sendWithinLimit(
  deps: SendWithinLimitDeps,
  requests: readonly SendRequest[],
): Promise<SendResult[]> {
  const { limiter, limits, now, deadline, send } = deps;
  const sleep = deps.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const chunkSize = Math.min(...limits.map((l) => l.limit));
  const results: SendResult[] = [];
  let i = 0;
  let size = chunkSize;
  // When the rest is held back: at once if the deadline passed while sending, else when the window frees.
  let retryAfterMs = 0;
  outer: while (i < requests.length && now() < deadline) {
    const chunk = requests.slice(i, i + size);
    for (let k = 0; k < limits.length; k++) {
      const l = limits[k] as RateLimit;
      const decision = await limiter.take(l.key, chunk.length, l.limit);
      if (decision.allowed) continue;
      if (k === 0 && decision.remaining > 0) {
        // Nothing was taken yet: take what the window has left.
        size = decision.remaining;
        continue outer;
      }
      // The margin absorbs jitter in the time requests take to reach the carrier, which counts arrivals.
      const wait = decision.retryAfterMs + RATE_MARGIN_MS;
      if (now() + wait > deadline) {
        retryAfterMs = wait;
        break outer;
      }
      await sleep(wait);
      size = chunkSize;
      continue outer;
    }
    results.push(...(await send(chunk)));
    i += chunk.length;
    size = chunkSize;
  }
  const error = {
    code: RATE_LIMITED,
    class: 'ResourceError',
    message: `sender is limited to ${chunkSize} messages/s`,
  };
  for (; i < requests.length; i++) results.push({ ok: false, retryable: true, error, retryAfterMs });
  return results;
}
