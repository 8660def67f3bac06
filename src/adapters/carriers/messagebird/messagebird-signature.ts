/**
 * Verification of MessageBird's signed webhook requests, both schemes MessageBird has used:
 *
 * - `MessageBird-Signature-JWT` (current): a JWT signed HS256/HS384/HS512 with the account's signing key, claims
 *   `iss: "MessageBird"`, `nbf`, `exp`, `jti`, `url_hash` (hex SHA-256 of the full request URL, query included)
 *   and `payload_hash` (hex SHA-256 of the raw body; absent when the body is empty). The rules follow MessageBird's
 *   SDKs: messagebird-nodejs `lib/webhook-signature-jwt.js` (5 s clock tolerance) and go-rest-api
 *   `signature_jwt/claims.go` (payload_hash present ⇔ body present).
 * - `MessageBird-Signature` + `MessageBird-Request-Timestamp` (legacy): base64 HMAC-SHA256 under the signing key of
 *   `timestamp + "\n" + sortedQuery + "\n" + SHA-256(body)` (the body digest as raw bytes), where `sortedQuery` is
 *   the request's query parameters sorted by name and form-encoded; requests older than 100 s are refused
 *   (messagebird-nodejs `lib/signature.js`, php-rest-api `RequestValidator`).
 *
 * Pure functions of their inputs (the caller passes the clock); every failure is a reason string, never a throw.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';

export const MESSAGEBIRD_JWT_HEADER = 'messagebird-signature-jwt';
export const MESSAGEBIRD_SIGNATURE_HEADER = 'messagebird-signature';
export const MESSAGEBIRD_TIMESTAMP_HEADER = 'messagebird-request-timestamp';

/** Clock tolerance for `nbf`/`exp`, as in MessageBird's Node SDK. */
const JWT_CLOCK_TOLERANCE_SEC = 5;
/** The legacy scheme's replay window (MessageBird SDKs: a request is recent for 100 seconds). */
const LEGACY_MAX_AGE_SEC = 100;

const JWT_ALGORITHMS: Readonly<Record<string, string>> = { HS256: 'sha256', HS384: 'sha384', HS512: 'sha512' };

export type SignatureCheck = { ok: true; claims?: Record<string, unknown> } | { ok: false; reason: string };

function sha256Hex(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

function decodeSegment(segment: string): Record<string, unknown> | null {
  if (!/^[A-Za-z0-9_-]*$/.test(segment)) return null;
  try {
    const value = JSON.parse(Buffer.from(segment, 'base64url').toString('utf8')) as unknown;
    return typeof value === 'object' && value !== null && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : null;
  } catch {
    return null;
  }
}

function sameBytes(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

function sameHex(claim: unknown, actualHex: string): boolean {
  if (typeof claim !== 'string' || !/^[0-9a-fA-F]{64}$/.test(claim)) return false;
  return sameBytes(Buffer.from(claim, 'hex'), Buffer.from(actualHex, 'hex'));
}

/**
 * Verifies a `MessageBird-Signature-JWT` header value for a request to `url` (the full public URL, query
 * included, exactly as MessageBird requested it) carrying `body`.
 */
export function verifyMessageBirdJwt(input: {
  token: string;
  signingKey: string;
  url: string;
  body: Buffer;
  nowMs: number;
}): SignatureCheck {
  const parts = input.token.trim().split('.');
  if (parts.length !== 3) return { ok: false, reason: 'the token is not a JWS compact serialization' };
  const [headerPart, claimsPart, signaturePart] = parts as [string, string, string];
  const header = decodeSegment(headerPart);
  if (!header) return { ok: false, reason: 'the token header is not JSON' };
  const hash = typeof header.alg === 'string' ? JWT_ALGORITHMS[header.alg] : undefined;
  if (!hash) return { ok: false, reason: `signing method ${String(header.alg)} is not accepted` };
  if (!/^[A-Za-z0-9_-]+$/.test(signaturePart)) return { ok: false, reason: 'the token signature is malformed' };
  const expected = createHmac(hash, Buffer.from(input.signingKey, 'utf8'))
    .update(`${headerPart}.${claimsPart}`)
    .digest();
  if (!sameBytes(Buffer.from(signaturePart, 'base64url'), expected)) {
    return { ok: false, reason: 'the token signature is invalid' };
  }
  const claims = decodeSegment(claimsPart);
  if (!claims) return { ok: false, reason: 'the token claims are not JSON' };
  if (claims.iss !== 'MessageBird') return { ok: false, reason: 'claim iss is not MessageBird' };
  const now = input.nowMs / 1000;
  if (typeof claims.nbf === 'number' && claims.nbf > now + JWT_CLOCK_TOLERANCE_SEC) {
    return { ok: false, reason: 'claim nbf is in the future' };
  }
  if (typeof claims.exp !== 'number') return { ok: false, reason: 'claim exp is missing' };
  if (claims.exp <= now - JWT_CLOCK_TOLERANCE_SEC) return { ok: false, reason: 'claim exp is in the past' };
  if (typeof claims.jti !== 'string' || claims.jti.length === 0) return { ok: false, reason: 'claim jti is missing' };
  if (!sameHex(claims.url_hash, sha256Hex(input.url))) return { ok: false, reason: 'claim url_hash is invalid' };
  const hasBody = input.body.length > 0;
  if (claims.payload_hash === undefined || claims.payload_hash === null) {
    if (hasBody) return { ok: false, reason: 'claim payload_hash is not set but a payload is present' };
  } else {
    if (!hasBody) return { ok: false, reason: 'claim payload_hash is set but the payload is missing' };
    if (!sameHex(claims.payload_hash, sha256Hex(input.body))) {
      return { ok: false, reason: 'claim payload_hash is invalid' };
    }
  }
  return { ok: true, claims };
}

/**
 * The query parameters as the legacy scheme signs them: sorted by name, form-encoded. A `+` in `statusDatetime`
 * that a form decoder turned into a space is restored first, as MessageBird's SDKs do.
 */
export function legacySignedQuery(params: URLSearchParams): string {
  const entries = [...params.entries()].map(([k, v]): [string, string] => [
    k,
    k === 'statusDatetime' ? v.split(' ').join('+') : v,
  ]);
  entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return entries.map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join('&');
}

/** The legacy signature (raw HMAC bytes) of a request. */
export function legacySignature(signingKey: string, timestamp: string, query: URLSearchParams, body: Buffer): Buffer {
  const bodyDigest = createHash('sha256').update(body).digest();
  return createHmac('sha256', signingKey)
    .update(`${timestamp}\n${legacySignedQuery(query)}\n`)
    .update(bodyDigest)
    .digest();
}

/** Verifies the legacy `MessageBird-Signature` (base64) and `MessageBird-Request-Timestamp` (unix seconds). */
export function verifyMessageBirdLegacySignature(input: {
  signature: string;
  timestamp: string;
  signingKey: string;
  query: URLSearchParams;
  body: Buffer;
  nowMs: number;
}): SignatureCheck {
  if (!/^\d{1,12}$/.test(input.timestamp)) return { ok: false, reason: 'the request timestamp is not a number' };
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(input.signature.trim())) {
    return { ok: false, reason: 'the signature is not base64' };
  }
  const expected = legacySignature(input.signingKey, input.timestamp, input.query, input.body);
  if (!sameBytes(Buffer.from(input.signature.trim(), 'base64'), expected)) {
    return { ok: false, reason: 'the signature does not match' };
  }
  const age = input.nowMs / 1000 - Number(input.timestamp);
  if (Math.abs(age) >= LEGACY_MAX_AGE_SEC) return { ok: false, reason: 'the request timestamp is not recent' };
  return { ok: true };
}
