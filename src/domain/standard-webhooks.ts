/**
 * Signing outbound webhooks per the Standard Webhooks specification (https://www.standardwebhooks.com): each request
 * carries `webhook-id` (the event's stable id: the same on every retry and redelivery, so receivers can deduplicate),
 * `webhook-timestamp` (Unix seconds of this attempt) and `webhook-signature`: `v1,<base64 HMAC-SHA256>` over
 * `id.timestamp.body`, keyed with the secret's bytes. Secrets are `whsec_<base64 of the key>`. While a rotated-out
 * secret is still honoured, the request carries one signature per secret, space-separated, and a verifier accepts
 * any of them. Pure: no clock, no randomness (the caller hands in the time and the key bytes).
 */
import { createHmac } from 'node:crypto';

export const SECRET_PREFIX = 'whsec_';
/** Key length of the secrets we generate (the specification asks for 24 to 64 bytes). */
export const SECRET_BYTES = 32;

/** `whsec_<base64>` for a key. */
export function formatWebhookSecret(key: Uint8Array): string {
  return SECRET_PREFIX + Buffer.from(key).toString('base64');
}

/** The key bytes of a `whsec_` secret; throws on anything else. */
export function secretKey(secret: string): Buffer {
  if (!secret.startsWith(SECRET_PREFIX)) throw new Error(`a webhook secret starts with '${SECRET_PREFIX}'`);
  const key = Buffer.from(secret.slice(SECRET_PREFIX.length), 'base64');
  if (key.length === 0) throw new Error('a webhook secret cannot be empty');
  return key;
}

/** One `v1,<base64>` signature of `body` sent as event `id` at `timestampSeconds`. */
export function signWebhook(secret: string, id: string, timestampSeconds: number, body: string): string {
  const mac = createHmac('sha256', secretKey(secret)).update(`${id}.${timestampSeconds}.${body}`).digest('base64');
  return `v1,${mac}`;
}

export interface StandardWebhookHeaders {
  'webhook-id': string;
  'webhook-timestamp': string;
  'webhook-signature': string;
}

/** The three headers of one attempt, signed with every secret given (current first). */
export function standardWebhookHeaders(
  secrets: readonly string[],
  id: string,
  timestampMs: number,
  body: string,
): StandardWebhookHeaders {
  if (secrets.length === 0) throw new Error('at least one secret is needed to sign a webhook');
  const ts = Math.floor(timestampMs / 1000);
  return {
    'webhook-id': id,
    'webhook-timestamp': String(ts),
    'webhook-signature': secrets.map((s) => signWebhook(s, id, ts, body)).join(' '),
  };
}

const EVENT_ID_PREFIX = 'whe_';

/** The public id of stored event `n` (its `webhook-id`). */
export function webhookEventId(n: number): string {
  return `${EVENT_ID_PREFIX}${n}`;
}

/** The stored event number of a public event id, or undefined when it is not one. */
export function parseWebhookEventId(id: string): number | undefined {
  if (!id.startsWith(EVENT_ID_PREFIX)) return undefined;
  const digits = id.slice(EVENT_ID_PREFIX.length);
  if (!/^[1-9][0-9]{0,15}$/.test(digits)) return undefined;
  const n = Number(digits);
  return Number.isSafeInteger(n) ? n : undefined;
}

/**
 * The request body: `{"type", "timestamp", "data"}`, with `data` already serialized (events store their data as
 * JSON text), so the bytes are the same on every attempt without parsing and re-serializing.
 */
export function webhookBody(type: string, atMs: number, dataJson: string): string {
  return `{"type":${JSON.stringify(type)},"timestamp":"${new Date(atMs).toISOString()}","data":${dataJson}}`;
}
