/**
 * Signing of sandbox callbacks: `X-Omni-Sandbox-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(token, t + "." + body)>`.
 * The account token is the HMAC key. Pure; shared by the sandbox server (signs) and the sandbox adapter (verifies).
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

export const SANDBOX_SIGNATURE_HEADER = 'x-omni-sandbox-signature';

/** Default tolerance between the signed timestamp and now, in seconds (replay window). */
export const DEFAULT_SIGNATURE_TOLERANCE_SEC = 300;

function hmacHex(token: string, rawBody: string | Buffer, unixSeconds: number): string {
  return createHmac('sha256', token).update(`${unixSeconds}.`).update(rawBody).digest('hex');
}

/** The header value signing `rawBody` with `token` at `unixSeconds`. */
export function signSandboxPayload(token: string, rawBody: string | Buffer, unixSeconds: number): string {
  const t = Math.floor(unixSeconds);
  return `t=${t},v1=${hmacHex(token, rawBody, t)}`;
}

const HEX_SHA256 = /^[0-9a-f]{64}$/i;

/**
 * True when `header` carries a valid signature of `rawBody` under `token` whose timestamp lies within
 * `toleranceSec` of `nowMs`. Several `v1=` entries are allowed (any may match, for key rotation).
 */
export function verifySandboxSignature(
  token: string,
  rawBody: string | Buffer,
  header: string | null | undefined,
  nowMs: number,
  toleranceSec: number = DEFAULT_SIGNATURE_TOLERANCE_SEC,
): boolean {
  if (!header || token.length === 0) return false;
  let t: number | undefined;
  const candidates: string[] = [];
  for (const part of header.split(',')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    const key = part.slice(0, eq).trim();
    const value = part.slice(eq + 1).trim();
    if (key === 't') {
      if (!/^\d{1,15}$/.test(value) || t !== undefined) return false;
      t = Number(value);
    } else if (key === 'v1' && HEX_SHA256.test(value)) {
      candidates.push(value);
    }
  }
  if (t === undefined || candidates.length === 0) return false;
  if (Math.abs(nowMs / 1000 - t) > toleranceSec) return false;
  const expected = Buffer.from(hmacHex(token, rawBody, t), 'hex');
  let ok = false;
  for (const candidate of candidates) {
    const given = Buffer.from(candidate, 'hex');
    // Both are 32 bytes (checked by HEX_SHA256), so timingSafeEqual never throws here.
    if (given.length === expected.length && timingSafeEqual(given, expected)) ok = true;
  }
  return ok;
}
