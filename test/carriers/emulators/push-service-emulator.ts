/**
 * A Web Push push service (the server side of RFC 8030) for carrier tests. It accepts a push message only as
 * the specifications allow it, decrypts it with the subscription's private key like a user agent would, and
 * records every request that breaks a rule in `violations`. There is no OpenAPI description of Web Push; the
 * rules are checked by hand, each with the section it comes from:
 *
 * - RFC 8030 §5: a push message is `POST` to the push resource (here `/push/<subscription id>`); the answer is
 *   `201 Created` with a `Location` naming the push message resource.
 * - RFC 8030 §5.2: the `TTL` header is required (delta-seconds); without it the push service answers 400.
 * - RFC 8030 §5.3: `Urgency`, when present, is one of very-low, low, normal, high.
 * - RFC 8030 §5.4: `Topic`, when present, is at most 32 characters of the URL-safe base64 alphabet.
 * - RFC 8292 §3: `Authorization: vapid t=<JWT>, k=<public key>`; §3.2: `k` is the base64url uncompressed P-256
 *   point; §2: the JWT is signed with ES256 by that key, `aud` is the origin of the push resource, `exp` is in
 *   the future and no more than 24 hours ahead; §2.1: `sub` is a mailto: or https: URI. Failures answer 401.
 * - RFC 8292 §4.2: a subscription restricted to an application-server key answers 403 to any other key.
 * - RFC 8291 §4 / RFC 8188 §2: a body is sent with `Content-Encoding: aes128gcm`, as one record whose header
 *   carries the 16-octet salt, the record size, and the 65-octet sender public key as key id; it decrypts with
 *   ECDH(P-256) + HKDF-SHA-256 + AES-128-GCM (RFC 8291 §3.3-§3.4) and ends in the last-record delimiter 0x02
 *   followed only by zero padding. Bodies over 4096 octets are refused with 413 (RFC 8291 §4, RFC 8030 §7.2).
 *
 * RFC 8030 defines no error body; answers carry a small JSON `{code, error, message}`.
 *
 * Destination rules, by the first word of the subscription id in the endpoint path (`/push/<id>`):
 * - `gone...`        → 410 Gone (the user agent unsubscribed)
 * - `notfound...`    → 404 Not Found (expired subscription)
 * - `throttled...`   → 429 Too Many Requests with `Retry-After: <retryAfterSeconds>` (default 2)
 * - `unavailable...` → 503 Service Unavailable with `Retry-After: 1`
 * - `toolarge...`    → 413 Payload Too Large (a push service with a lower size limit)
 * - `nolocation...`  → 201 Created without a `Location` header
 * - any other id     → 201 Created with `Location: <origin>/m/<push message id>` when the id is a subscription
 *                      created or registered on this emulator; 404 for an unknown id.
 * Requests to rule ids are still checked (and decrypted when a subscription with that id exists).
 *
 * Web Push has no callbacks and no inbound messages, so the emulator never posts anything back.
 */
import {
  createCipheriv,
  createDecipheriv,
  createECDH,
  createPublicKey,
  hkdfSync,
  randomBytes,
  verify,
} from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { CarrierEmulator } from '../carrier-contract.ts';

/** RFC 8291 §4: push services must accept (and need not accept more than) 4096 octets of body. */
export const MAX_PUSH_BODY = 4096;
/** RFC 8292 §2: `exp` no more than 24 hours from the request. */
const MAX_EXP_AHEAD_S = 24 * 60 * 60;
const URGENCIES = new Set(['very-low', 'low', 'normal', 'high']);
const BASE64URL = /^[A-Za-z0-9_-]+$/;

export interface UaKeys {
  /** The subscription's (user agent's) ECDH private key, 32 octets. */
  privateKey: Buffer;
  /** Its public key: uncompressed P-256 point, 65 octets (`p256dh`). */
  publicKey: Buffer;
  /** The 16-octet auth secret (`auth`). */
  authSecret: Buffer;
}

export interface EmulatedSubscription {
  id: string;
  endpoint: string;
  /** As `PushSubscription.toJSON().keys` gives them (base64url). */
  keys: { p256dh: string; auth: string };
  ua: UaKeys;
  /** RFC 8292 §4: the only application-server key (base64url) allowed to push to it, when restricted. */
  applicationServerKey?: string;
}

export interface VapidClaims {
  aud: string;
  exp: number;
  sub: string;
  [claim: string]: unknown;
}

export type VapidCheck =
  | { ok: true; token: string; publicKey: string; claims: VapidClaims }
  | { ok: false; reason: string };

export interface ReceivedPush {
  subscriptionId: string;
  pushMessageId: string;
  ttl: number;
  urgency: string | null;
  topic: string | null;
  contentType: string | null;
  authorization: string;
  vapid: { publicKey: string; claims: VapidClaims };
  /** The decrypted plaintext (empty for a push message without payload). */
  plaintext: Buffer;
  /** The plaintext parsed as JSON, or undefined when it is not JSON. */
  json: unknown;
}

export type Aes128gcmResult =
  | { ok: true; plaintext: Buffer; salt: Buffer; recordSize: number; keyId: Buffer }
  | { ok: false; reason: string };

/**
 * Checks an `Authorization` header as RFC 8292 defines it: scheme `vapid` with `t` (an ES256 JWT) and `k` (the
 * key that signed it), `aud` equal to `audience`, `exp` in (now, now + 24 h], `sub` a mailto: or https: URI.
 */
export function verifyVapidAuthorization(
  header: string | undefined,
  opts: { audience: string; nowSeconds: number },
): VapidCheck {
  if (header === undefined || header.length === 0) return { ok: false, reason: 'Authorization header missing' };
  const m = /^vapid\s+(.+)$/i.exec(header.trim());
  if (!m) return { ok: false, reason: `Authorization scheme must be 'vapid' (RFC 8292 §3), got '${header}'` };
  const params = new Map<string, string>();
  for (const part of (m[1] as string).split(',')) {
    const eq = part.indexOf('=');
    if (eq <= 0) return { ok: false, reason: `malformed vapid auth-param '${part.trim()}'` };
    const name = part.slice(0, eq).trim().toLowerCase();
    let value = part.slice(eq + 1).trim();
    if (value.startsWith('"') && value.endsWith('"') && value.length >= 2) value = value.slice(1, -1);
    params.set(name, value);
  }
  const token = params.get('t');
  const k = params.get('k');
  if (!token) return { ok: false, reason: "vapid 't' parameter (the JWT) missing (RFC 8292 §3.1)" };
  if (!k) return { ok: false, reason: "vapid 'k' parameter (the public key) missing (RFC 8292 §3.2)" };
  if (!BASE64URL.test(k)) return { ok: false, reason: "vapid 'k' must be base64url without padding (RFC 8292 §3.2)" };
  const raw = Buffer.from(k, 'base64url');
  if (raw.length !== 65 || raw[0] !== 0x04) {
    return { ok: false, reason: "vapid 'k' must be an uncompressed P-256 point (RFC 8292 §3.2)" };
  }
  let key: ReturnType<typeof createPublicKey>;
  try {
    key = createPublicKey({
      key: {
        kty: 'EC',
        crv: 'P-256',
        x: raw.subarray(1, 33).toString('base64url'),
        y: raw.subarray(33, 65).toString('base64url'),
      },
      format: 'jwk',
    });
  } catch {
    return { ok: false, reason: "vapid 'k' is not a point on P-256" };
  }
  const parts = token.split('.');
  if (parts.length !== 3 || !parts.every((p) => BASE64URL.test(p))) {
    return { ok: false, reason: 'vapid t is not a compact JWS (three base64url parts)' };
  }
  const [h, c, s] = parts as [string, string, string];
  let header0: unknown;
  let claims: unknown;
  try {
    header0 = JSON.parse(Buffer.from(h, 'base64url').toString('utf8'));
    claims = JSON.parse(Buffer.from(c, 'base64url').toString('utf8'));
  } catch {
    return { ok: false, reason: 'vapid JWT header or claims are not JSON' };
  }
  if (!isObject(header0) || header0.alg !== 'ES256') {
    return { ok: false, reason: 'vapid JWT must be signed with ES256 (RFC 8292 §2)' };
  }
  if (header0.typ !== undefined && header0.typ !== 'JWT') return { ok: false, reason: "vapid JWT typ must be 'JWT'" };
  const signature = Buffer.from(s, 'base64url');
  if (signature.length !== 64) return { ok: false, reason: 'ES256 signature must be 64 octets (r || s)' };
  const valid = verify('sha256', Buffer.from(`${h}.${c}`), { key, dsaEncoding: 'ieee-p1363' }, signature);
  if (!valid) return { ok: false, reason: "vapid JWT signature does not verify with 'k' (RFC 8292 §2)" };
  if (!isObject(claims)) return { ok: false, reason: 'vapid JWT claims must be an object' };
  if (claims.aud !== opts.audience) {
    return {
      ok: false,
      reason: `vapid aud '${String(claims.aud)}' is not the push resource origin '${opts.audience}' (RFC 8292 §2)`,
    };
  }
  const exp = claims.exp;
  if (typeof exp !== 'number' || !Number.isInteger(exp)) {
    return { ok: false, reason: 'vapid exp must be an integer NumericDate (RFC 8292 §2)' };
  }
  if (exp <= opts.nowSeconds) return { ok: false, reason: 'vapid JWT has expired (exp in the past)' };
  if (exp > opts.nowSeconds + MAX_EXP_AHEAD_S) {
    return { ok: false, reason: 'vapid exp is more than 24 hours ahead (RFC 8292 §2)' };
  }
  const sub = claims.sub;
  if (typeof sub !== 'string' || !/^(mailto:\S+@\S+|https:\/\/\S+)$/.test(sub)) {
    return { ok: false, reason: 'vapid sub must be a mailto: or https: URI (RFC 8292 §2.1)' };
  }
  return { ok: true, token, publicKey: k, claims: claims as VapidClaims };
}

/**
 * Decrypts an `aes128gcm` Web Push body (RFC 8291 §3.4 key schedule over the RFC 8188 §2 record format), as a
 * user agent does with its subscription keys. The body must be a single record (RFC 8291 §4).
 */
export function decryptAes128gcm(body: Buffer, ua: UaKeys): Aes128gcmResult {
  // RFC 8188 §2.1: salt (16) | rs (uint32) | idlen (1) | keyid (idlen)
  if (body.length < 21) return { ok: false, reason: 'body shorter than the aes128gcm header' };
  const salt = body.subarray(0, 16);
  const recordSize = body.readUInt32BE(16);
  const idlen = body[20] as number;
  if (idlen !== 65)
    return { ok: false, reason: `keyid must be the 65-octet sender public key (RFC 8291 §4), got ${idlen}` };
  if (body.length < 21 + idlen + 17) return { ok: false, reason: 'body too short for one record' };
  const keyId = body.subarray(21, 21 + idlen);
  if (recordSize < 18) return { ok: false, reason: `record size ${recordSize} below the minimum 18 (RFC 8188 §2)` };
  const record = body.subarray(21 + idlen);
  if (record.length > recordSize) {
    return { ok: false, reason: 'payload spans more than one record (RFC 8291 §4 requires a single record)' };
  }
  let ecdhSecret: Buffer;
  try {
    const ecdh = createECDH('prime256v1');
    ecdh.setPrivateKey(ua.privateKey);
    ecdhSecret = ecdh.computeSecret(keyId);
  } catch {
    return { ok: false, reason: 'keyid is not a valid P-256 public key' };
  }
  // RFC 8291 §3.4: IKM = HKDF(auth_secret, ecdh_secret, "WebPush: info" || 0x00 || ua_public || as_public, 32)
  const keyInfo = Buffer.concat([Buffer.from('WebPush: info\0', 'latin1'), ua.publicKey, keyId]);
  const ikm = Buffer.from(hkdfSync('sha256', ecdhSecret, ua.authSecret, keyInfo, 32));
  // RFC 8188 §2.2-§2.3: CEK and NONCE from PRK = HKDF-Extract(salt, IKM); the first record's counter is 0.
  const cek = Buffer.from(hkdfSync('sha256', ikm, salt, Buffer.from('Content-Encoding: aes128gcm\0', 'latin1'), 16));
  const nonce = Buffer.from(hkdfSync('sha256', ikm, salt, Buffer.from('Content-Encoding: nonce\0', 'latin1'), 12));
  let padded: Buffer;
  try {
    const decipher = createDecipheriv('aes-128-gcm', cek, nonce);
    decipher.setAuthTag(record.subarray(record.length - 16));
    padded = Buffer.concat([decipher.update(record.subarray(0, record.length - 16)), decipher.final()]);
  } catch {
    return { ok: false, reason: 'record does not decrypt (AES-128-GCM tag mismatch: wrong keys or salt)' };
  }
  // RFC 8188 §2: plaintext || delimiter (0x02 for the last record) || zero octets
  let end = padded.length - 1;
  while (end >= 0 && padded[end] === 0) end--;
  if (end < 0 || padded[end] !== 0x02) {
    return { ok: false, reason: 'record lacks the last-record padding delimiter 0x02 (RFC 8188 §2)' };
  }
  return { ok: true, plaintext: padded.subarray(0, end), salt, recordSize, keyId };
}

/**
 * Encrypts as an application server would (RFC 8291 §3.4), with a caller's sender key and salt: the other half
 * of `decryptAes128gcm`, for tests that need a body with chosen bytes.
 */
export function encryptAes128gcm(
  plaintext: Buffer,
  to: { publicKey: Buffer; authSecret: Buffer },
  sender: { privateKey: Buffer; salt: Buffer; recordSize?: number },
): Buffer {
  const ecdh = createECDH('prime256v1');
  ecdh.setPrivateKey(sender.privateKey);
  const asPublic = ecdh.getPublicKey();
  const secret = ecdh.computeSecret(to.publicKey);
  const keyInfo = Buffer.concat([Buffer.from('WebPush: info\0', 'latin1'), to.publicKey, asPublic]);
  const ikm = Buffer.from(hkdfSync('sha256', secret, to.authSecret, keyInfo, 32));
  const cek = Buffer.from(
    hkdfSync('sha256', ikm, sender.salt, Buffer.from('Content-Encoding: aes128gcm\0', 'latin1'), 16),
  );
  const nonce = Buffer.from(
    hkdfSync('sha256', ikm, sender.salt, Buffer.from('Content-Encoding: nonce\0', 'latin1'), 12),
  );
  const cipher = createCipheriv('aes-128-gcm', cek, nonce);
  const sealed = Buffer.concat([cipher.update(Buffer.concat([plaintext, Buffer.from([2])])), cipher.final()]);
  const header = Buffer.alloc(21);
  sender.salt.copy(header, 0);
  header.writeUInt32BE(sender.recordSize ?? 4096, 16);
  header[20] = asPublic.length;
  return Buffer.concat([header, asPublic, sealed, cipher.getAuthTag()]);
}

/** UA keys from base64url strings (private key, auth secret), deriving the public key. */
export function uaKeysFrom(privateKey: string, auth: string): UaKeys {
  const ecdh = createECDH('prime256v1');
  const priv = Buffer.from(privateKey, 'base64url');
  ecdh.setPrivateKey(priv);
  return { privateKey: priv, publicKey: ecdh.getPublicKey(), authSecret: Buffer.from(auth, 'base64url') };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

export interface PushServiceEmulatorOptions {
  /** Seconds in the `Retry-After` of throttled answers (default 2). */
  retryAfterSeconds?: number;
  /** Clock for VAPID `exp` checks, in milliseconds (default Date.now). */
  now?: () => number;
  /** The VAPID subject put in `senderConfig` (default a mailto: address). */
  subject?: string;
}

export class PushServiceEmulator implements CarrierEmulator {
  readonly violations: string[] = [];
  readonly received: ReceivedPush[] = [];
  /** Every request, as received. */
  readonly requests: { method: string; url: string; headers: IncomingMessage['headers']; body: Buffer }[] = [];
  /** Status of every answer, in order. */
  readonly answers: number[] = [];
  origin = '';
  senderConfig: Record<string, unknown> = {};
  /** The application-server key pair of `senderConfig` (base64url). */
  vapid = { publicKey: '', privateKey: '' };
  private readonly subscriptions = new Map<string, EmulatedSubscription>();
  private server: Server | undefined;
  private readonly retryAfterSeconds: number;
  private readonly now: () => number;
  private readonly subject: string;

  private constructor(opts: PushServiceEmulatorOptions) {
    this.retryAfterSeconds = opts.retryAfterSeconds ?? 2;
    this.now = opts.now ?? Date.now;
    this.subject = opts.subject ?? 'mailto:push-ops@omni.example';
  }

  static async start(opts: PushServiceEmulatorOptions = {}): Promise<PushServiceEmulator> {
    const emulator = new PushServiceEmulator(opts);
    await emulator.listen();
    return emulator;
  }

  private async listen(): Promise<void> {
    const server = createServer((req, res) => {
      this.handle(req, res).catch((err: unknown) => {
        this.violations.push(`emulator error: ${err instanceof Error ? err.message : String(err)}`);
        if (!res.headersSent) res.writeHead(500).end();
      });
    });
    this.server = server;
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    this.origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const keys = generateVapidKeys();
    this.vapid = keys;
    this.senderConfig = {
      vapidPublicKey: keys.publicKey,
      vapidPrivateKey: keys.privateKey,
      subject: this.subject,
      allowInsecureEndpoints: true,
    };
  }

  endpoint(id: string): string {
    return `${this.origin}/push/${id}`;
  }

  /** A new subscription with fresh keys, as a browser's `pushManager.subscribe()` would create. */
  createSubscription(id: string, opts: { applicationServerKey?: string } = {}): EmulatedSubscription {
    const ecdh = createECDH('prime256v1');
    ecdh.generateKeys();
    const priv = ecdh.getPrivateKey();
    const ua: UaKeys = {
      privateKey: Buffer.concat([Buffer.alloc(32 - priv.length), priv]),
      publicKey: ecdh.getPublicKey(),
      authSecret: randomBytes(16),
    };
    return this.registerSubscription(id, ua, opts);
  }

  /** A subscription with given UA keys (e.g. the RFC 8291 Appendix A keys). */
  registerSubscription(id: string, ua: UaKeys, opts: { applicationServerKey?: string } = {}): EmulatedSubscription {
    if (!BASE64URL.test(id)) throw new Error(`subscription id '${id}' must be URL-safe`);
    const sub: EmulatedSubscription = {
      id,
      endpoint: this.endpoint(id),
      keys: { p256dh: ua.publicKey.toString('base64url'), auth: ua.authSecret.toString('base64url') },
      ua,
      ...(opts.applicationServerKey === undefined ? {} : { applicationServerKey: opts.applicationServerKey }),
    };
    this.subscriptions.set(id, sub);
    return sub;
  }

  acceptedCount(): number {
    return this.received.length;
  }

  async close(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private answer(res: ServerResponse, status: number, message: string, extra: Record<string, string> = {}): void {
    this.answers.push(status);
    const body = JSON.stringify({ code: status, error: STATUS_TEXT[status] ?? 'Error', message });
    res.writeHead(status, { 'content-type': 'application/json', ...extra }).end(body);
  }

  private refuse(res: ServerResponse, status: number, violation: string): void {
    this.violations.push(violation);
    this.answer(res, status, violation);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req) {
      size += (chunk as Buffer).length;
      if (size <= 64 * 1024) chunks.push(chunk as Buffer);
    }
    const body = Buffer.concat(chunks);
    const method = req.method ?? 'GET';
    const path = new URL(req.url ?? '/', this.origin).pathname;
    this.requests.push({ method, url: req.url ?? '/', headers: req.headers, body });

    // RFC 8030 §5: push messages are POSTed to the push resource.
    const match = /^\/push\/([A-Za-z0-9_-]+)$/.exec(path);
    if (!match) return this.refuse(res, 404, `${method} ${path}: no push resource here (RFC 8030 §5)`);
    if (method !== 'POST') {
      return this.refuse(res, 405, `${method} ${path}: push messages must be sent with POST (RFC 8030 §5)`);
    }
    const id = match[1] as string;

    // RFC 8292 §3 (and §4.2): VAPID authorization.
    const authorization = header(req, 'authorization');
    const vapid = verifyVapidAuthorization(authorization, {
      audience: this.origin,
      nowSeconds: Math.floor(this.now() / 1000),
    });
    if (!vapid.ok) return this.refuse(res, 401, `POST ${path}: ${vapid.reason}`);

    // RFC 8030 §5.2: TTL is required.
    const ttlHeader = header(req, 'ttl');
    if (ttlHeader === undefined) return this.refuse(res, 400, `POST ${path}: TTL header missing (RFC 8030 §5.2)`);
    if (!/^\d+$/.test(ttlHeader.trim())) {
      return this.refuse(res, 400, `POST ${path}: TTL '${ttlHeader}' is not delta-seconds (RFC 8030 §5.2)`);
    }
    const ttl = Number(ttlHeader.trim());
    // RFC 8030 §5.3, §5.4
    const urgency = header(req, 'urgency') ?? null;
    if (urgency !== null && !URGENCIES.has(urgency)) {
      return this.refuse(
        res,
        400,
        `POST ${path}: Urgency '${urgency}' is not one of ${[...URGENCIES].join(', ')} (RFC 8030 §5.3)`,
      );
    }
    const topic = header(req, 'topic') ?? null;
    if (topic !== null && (topic.length > 32 || !BASE64URL.test(topic))) {
      return this.refuse(
        res,
        400,
        `POST ${path}: Topic '${topic}' must be ≤ 32 URL-safe base64 characters (RFC 8030 §5.4)`,
      );
    }
    // RFC 8291 §4: encrypted bodies use the aes128gcm content coding.
    const encoding = header(req, 'content-encoding') ?? null;
    if (body.length > 0 && encoding !== 'aes128gcm') {
      return this.refuse(res, 400, `POST ${path}: Content-Encoding must be aes128gcm, got '${encoding}' (RFC 8291 §4)`);
    }
    if (size > MAX_PUSH_BODY) {
      return this.answer(res, 413, `payload of ${size} octets exceeds ${MAX_PUSH_BODY} (RFC 8291 §4)`);
    }

    const subscription = this.subscriptions.get(id);
    let plaintext: Buffer = Buffer.alloc(0);
    if (subscription && body.length > 0) {
      const decrypted = decryptAes128gcm(body, subscription.ua);
      if (!decrypted.ok) return this.refuse(res, 400, `POST ${path}: ${decrypted.reason}`);
      plaintext = decrypted.plaintext;
    }

    if (id.startsWith('gone')) return this.answer(res, 410, 'push subscription has unsubscribed or expired');
    if (id.startsWith('notfound')) return this.answer(res, 404, 'push subscription not found');
    if (id.startsWith('throttled')) {
      return this.answer(res, 429, 'too many requests', { 'retry-after': String(this.retryAfterSeconds) });
    }
    if (id.startsWith('unavailable')) return this.answer(res, 503, 'service unavailable', { 'retry-after': '1' });
    if (id.startsWith('toolarge')) return this.answer(res, 413, 'payload too large for this push service');
    if (!subscription) return this.answer(res, 404, 'push subscription not found');
    // RFC 8292 §4.2: a restricted subscription accepts only its application server's key.
    if (subscription.applicationServerKey !== undefined && subscription.applicationServerKey !== vapid.publicKey) {
      return this.answer(res, 403, 'VAPID key does not match the key the subscription was created with');
    }

    const pushMessageId = randomBytes(16).toString('base64url');
    let json: unknown;
    try {
      json = JSON.parse(plaintext.toString('utf8'));
    } catch {
      json = undefined;
    }
    this.received.push({
      subscriptionId: id,
      pushMessageId,
      ttl,
      urgency,
      topic,
      contentType: header(req, 'content-type') ?? null,
      authorization: authorization as string,
      vapid: { publicKey: vapid.publicKey, claims: vapid.claims },
      plaintext,
      json,
    });
    this.answers.push(201);
    // RFC 8030 §5: 201 with the push message resource in Location; §5.2: TTL echoes the retention granted.
    const headers: Record<string, string> = { ttl: String(Math.min(ttl, 2_419_200)) };
    if (!id.startsWith('nolocation')) headers.location = `${this.origin}/m/${pushMessageId}`;
    res.writeHead(201, headers).end();
  }
}

const STATUS_TEXT: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  410: 'Gone',
  413: 'Payload Too Large',
  429: 'Too Many Requests',
  503: 'Service Unavailable',
};

/** A VAPID key pair (base64url: 65-octet public point, 32-octet private scalar). */
export function generateVapidKeys(): { publicKey: string; privateKey: string } {
  const ecdh = createECDH('prime256v1');
  ecdh.generateKeys();
  const priv = ecdh.getPrivateKey();
  return {
    publicKey: ecdh.getPublicKey().toString('base64url'),
    privateKey: Buffer.concat([Buffer.alloc(32 - priv.length), priv]).toString('base64url'),
  };
}
