/**
 * Twilio's webhook signature, `X-Twilio-Signature` (https://www.twilio.com/docs/usage/webhooks/webhooks-security):
 * base64 of HMAC-SHA1, keyed with the account's auth token, over the full URL Twilio requested followed by every
 * POST parameter as name+value with no delimiters, sorted by name (values of a repeated name sorted too, each
 * distinct value once, as Twilio's helper libraries do). For a JSON body Twilio adds `bodySHA256` (hex SHA-256 of the
 * raw body) to the URL's query and signs the URL alone. Twilio's back end is inconsistent about default ports, so a
 * signature is accepted for the URL as given, without its port, and with the scheme's default port.
 */
import { createHash, createHmac } from 'node:crypto';
import { safeEqual } from '../carrier-support.ts';

export const TWILIO_SIGNATURE_HEADER = 'x-twilio-signature';

/** Request parameters by name; a repeated parameter has several values. */
export type TwilioParams = Readonly<Record<string, string | readonly string[]>>;

/** The string Twilio signs: the URL, then name+value of each parameter in name order. */
export function twilioSignatureBase(url: string, params: TwilioParams): string {
  let data = url;
  for (const name of Object.keys(params).sort()) {
    const value = params[name];
    if (value === undefined) continue;
    const values = typeof value === 'string' ? [value] : [...new Set(value)].sort();
    for (const v of values) data += name + v;
  }
  return data;
}

export function computeTwilioSignature(authToken: string, url: string, params: TwilioParams = {}): string {
  return createHmac('sha1', authToken).update(twilioSignatureBase(url, params), 'utf8').digest('base64');
}

/** Hex SHA-256 of a raw body, as Twilio puts it in the `bodySHA256` query parameter. */
export function twilioBodySha256(body: Buffer | string): string {
  return createHash('sha256').update(body).digest('hex');
}

/** The URL as given, without its port, and with the scheme's default port (when it has none). */
export function twilioUrlVariants(url: string): string[] {
  const m = /^([a-zA-Z][a-zA-Z0-9+.-]*:\/\/)([^/?#]*)(.*)$/s.exec(url);
  if (!m) return [url];
  const [, scheme = '', authority = '', rest = ''] = m;
  const at = authority.lastIndexOf('@');
  const userinfo = at >= 0 ? authority.slice(0, at + 1) : '';
  const hostPort = authority.slice(at + 1);
  const portMatch = /^(.*?)(:\d*)?$/.exec(hostPort);
  const host = portMatch?.[1] ?? hostPort;
  const hasPort = portMatch?.[2] !== undefined;
  const variants = [url];
  if (hasPort) variants.push(`${scheme}${userinfo}${host}${rest}`);
  else {
    const lower = scheme.toLowerCase();
    const port = lower === 'https://' ? ':443' : lower === 'http://' ? ':80' : '';
    if (port) variants.push(`${scheme}${userinfo}${host}${port}${rest}`);
  }
  return [...new Set(variants)];
}

/** Verifies a signature over a URL and its POST parameters (none for GET requests and JSON bodies). */
export function verifyTwilioSignature(
  authToken: string,
  signature: string,
  url: string,
  params: TwilioParams = {},
): boolean {
  if (signature.length === 0) return false;
  let ok = false;
  // Every variant is computed and compared, so the time taken does not depend on which one matches.
  for (const candidate of twilioUrlVariants(url)) {
    if (safeEqual(computeTwilioSignature(authToken, candidate, params), signature)) ok = true;
  }
  return ok;
}

/** Verifies a JSON-body webhook: the URL's `bodySHA256` must match the body, and the signature the URL. */
export function verifyTwilioBodySignature(
  authToken: string,
  signature: string,
  url: string,
  rawBody: Buffer | string,
): boolean {
  const query = url.includes('?') ? url.slice(url.indexOf('?') + 1).split('#')[0] : '';
  const claimed = new URLSearchParams(query).get('bodySHA256');
  if (claimed === null) return false;
  const urlOk = verifyTwilioSignature(authToken, signature, url);
  const bodyOk = safeEqual(claimed.toLowerCase(), twilioBodySha256(rawBody));
  return urlOk && bodyOk;
}
