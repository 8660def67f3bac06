/**
 * Small pieces every carrier adapter needs: send results in the error taxonomy, `Retry-After`, header lookup,
 * constant-time comparison of signatures, and running per-message requests with bounded concurrency.
 */
import { timingSafeEqual } from 'node:crypto';
import { ValidationError } from '../../domain/errors.ts';
import type { SendRequest, SendResult, WebhookRequest } from '../../ports/carrier.ts';

export function retryableFailure(code: string, message: string, retryAfterMs?: number): SendResult {
  return {
    ok: false,
    retryable: true,
    error: { code, class: 'ResourceError', message },
    ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
  };
}

export function permanentFailure(code: string, message: string): SendResult {
  return { ok: false, retryable: false, error: { code, class: 'PermanentError', message } };
}

/** `Retry-After` as milliseconds (delta-seconds or an HTTP date), or undefined when absent or unreadable. */
export function parseRetryAfter(value: string | string[] | undefined, nowMs: number): number | undefined {
  const raw = Array.isArray(value) ? value[0] : value;
  if (raw === undefined) return undefined;
  const trimmed = raw.trim();
  if (/^\d+(\.\d+)?$/.test(trimmed)) return Math.round(Number(trimmed) * 1000);
  const at = Date.parse(trimmed);
  return Number.isNaN(at) ? undefined : Math.max(0, at - nowMs);
}

/** A request header by case-insensitive name (first value when repeated). */
export function headerValue(headers: WebhookRequest['headers'], name: string): string | undefined {
  const lower = name.toLowerCase();
  let value = headers[lower];
  if (value === undefined) {
    for (const key of Object.keys(headers)) {
      if (key.toLowerCase() === lower) {
        value = headers[key];
        break;
      }
    }
  }
  return Array.isArray(value) ? value[0] : value;
}

/** Compares two strings in time independent of where they differ (signatures, tokens). */
export function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A ValidationError for a sender config field (`config.<field>`). */
export function invalidConfig(provider: string, field: string, message: string): ValidationError {
  return new ValidationError('invalid_sender_config', `${provider} sender config.${field} ${message}`, {
    field: `config.${field}`,
  });
}

/** Reads a required non-empty string field of a sender config. */
export function requireConfigString(provider: string, config: Record<string, unknown>, field: string): string {
  const v = config[field];
  if (typeof v !== 'string' || v.trim().length === 0)
    throw invalidConfig(provider, field, 'must be a non-empty string');
  return v;
}

/** Reads an optional http(s) base URL of a sender config, falling back to the provider's real one. */
export function configBaseUrl(provider: string, config: Record<string, unknown>, field: string, fallback: string): URL {
  const v = config[field] ?? fallback;
  if (typeof v !== 'string' || !URL.canParse(v) || !/^https?:$/.test(new URL(v).protocol)) {
    throw invalidConfig(provider, field, 'must be an http(s) URL');
  }
  return new URL(v);
}

/**
 * Sends per-message requests with at most `concurrency` in flight; results keep the order of `requests`.
 * `sendOne` must not throw; if it does, that message gets a retryable failure.
 */
export async function sendEach(
  requests: readonly SendRequest[],
  concurrency: number,
  sendOne: (request: SendRequest) => Promise<SendResult>,
): Promise<SendResult[]> {
  const results: SendResult[] = new Array(requests.length);
  let next = 0;
  async function lane(): Promise<void> {
    while (next < requests.length) {
      const i = next++;
      const request = requests[i] as SendRequest;
      try {
        results[i] = await sendOne(request);
      } catch (err) {
        results[i] = retryableFailure('carrier_error', err instanceof Error ? err.message : String(err));
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, requests.length) }, lane));
  return results;
}
