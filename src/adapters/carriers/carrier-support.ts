/**
 * Small pieces every carrier adapter needs: send results in the error taxonomy, one HTTP request to a carrier's API
 * and the generic classes of its answer, `Retry-After`, header lookup, JSON bodies, sender config fields,
 * constant-time comparison of signatures, and running per-message requests with bounded concurrency.
 */
import { timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import type { Dispatcher } from 'undici';
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

/** The message of a thrown value (an Error's message, anything else as a string). */
export function errorReason(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** One request to a carrier's HTTP API. */
export interface CarrierHttpRequest {
  method: Dispatcher.HttpMethod;
  path: string;
  headers: Record<string, string>;
  body: string | Buffer;
}

/** A carrier's answer: its status, headers and body text. */
export interface CarrierHttpResponse {
  ok: true;
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
}

/** What came of a request: the answer, or why there was none. */
export type CarrierHttpAnswer = CarrierHttpResponse | { ok: false; reason: string; error: unknown };

/**
 * Sends one request through `pool`, waiting at most `timeoutMs` for the headers, for the body and overall, and reads
 * the answer's body as text (or as `readBody` reads it). Never throws: a connection failure, a timeout or a body that
 * cannot be read is `{ ok: false, reason }`, for the adapter to report as the carrier being unreachable.
 */
export async function requestText(
  pool: Dispatcher,
  request: CarrierHttpRequest,
  timeoutMs: number,
  readBody: (res: Dispatcher.ResponseData) => Promise<string> = (res) => res.body.text(),
): Promise<CarrierHttpAnswer> {
  try {
    const res = await pool.request({
      ...request,
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
      signal: AbortSignal.timeout(timeoutMs),
    });
    const text = await readBody(res);
    return { ok: true, status: res.statusCode, headers: res.headers, text };
  } catch (err) {
    return { ok: false, reason: errorReason(err), error: err };
  }
}

/**
 * A non-2xx answer by its generic HTTP class: 429 rate limited and 5xx unavailable (retryable, waiting for the
 * answer's `Retry-After` when it has one), 401/403 refused credentials, any other status a rejected request
 * (permanent). `provider` opens the message (e.g. `Bandwidth`), `detail` ends it (e.g. `: <the carrier's text>`).
 */
export function httpStatusFailure(
  provider: string,
  status: number,
  retryAfterHeader: string | string[] | undefined,
  nowMs: number,
  detail = '',
): SendResult {
  if (status === 429) {
    return retryableFailure(
      'carrier_rate_limited',
      `${provider} rate limit exceeded (HTTP 429)${detail}`,
      parseRetryAfter(retryAfterHeader, nowMs),
    );
  }
  if (status >= 500) {
    return retryableFailure(
      'carrier_unavailable',
      `${provider} answered HTTP ${status}${detail}`,
      parseRetryAfter(retryAfterHeader, nowMs),
    );
  }
  if (status === 401 || status === 403) {
    return permanentFailure('carrier_auth_failed', `${provider} refused the credentials (HTTP ${status})${detail}`);
  }
  return permanentFailure('carrier_request_rejected', `${provider} rejected the request (HTTP ${status})${detail}`);
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

/** A carrier's answer parsed as JSON, or undefined when it is not JSON. */
export function tryParseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

/** A webhook's JSON body; a body that is not JSON throws `invalidPayload('body is not valid JSON')`. */
export function parseJsonBody(rawBody: Buffer | string, invalidPayload: (message: string) => Error): unknown {
  try {
    return JSON.parse(typeof rawBody === 'string' ? rawBody : rawBody.toString('utf8')) as unknown;
  } catch {
    throw invalidPayload('body is not valid JSON');
  }
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

/** Refuses a sender config field the provider does not know: `config.<field> <message>`. */
export function rejectUnknownConfigFields(
  provider: string,
  config: Record<string, unknown>,
  known: ReadonlySet<string>,
  message: string,
): void {
  for (const key of Object.keys(config)) {
    if (!known.has(key)) throw invalidConfig(provider, key, message);
  }
}

/** Checks a sender config's optional `rateLimitPerSecond` (a positive integer; null counts as absent). */
export function checkRateLimitConfig(provider: string, config: Record<string, unknown>): void {
  const rate = config.rateLimitPerSecond;
  if (rate !== undefined && rate !== null && (typeof rate !== 'number' || !Number.isInteger(rate) || rate < 1)) {
    throw invalidConfig(provider, 'rateLimitPerSecond', 'must be a positive integer');
  }
}

/** Reads a sender config's optional `costPerMessage` (a finite number ≥ 0; null counts as absent). */
export function optionalCostConfig(provider: string, config: Record<string, unknown>): number | undefined {
  const cost = config.costPerMessage;
  if (cost === undefined || cost === null) return undefined;
  if (typeof cost !== 'number' || !Number.isFinite(cost) || cost < 0) {
    throw invalidConfig(provider, 'costPerMessage', 'must be a non-negative number');
  }
  return cost;
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
        results[i] = retryableFailure('carrier_error', errorReason(err));
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, requests.length) }, lane));
  return results;
}
