/**
 * Email over SMTP (RFC 5321) through any relay or email service's SMTP endpoint, with bounces recorded.
 *
 * Sending: a pooled nodemailer transport (connections kept open and reused), authenticated with AUTH
 * (RFC 4954), implicit TLS (`secure`, port 465) or STARTTLS (RFC 3207, required unless `ignoreTLS`). Each
 * message gets a Message-ID we make, `<our message id@domain of the From address>`, which is the
 * providerMessageId, plus an `X-Omni-Message-Id` header; the envelope asks for failure DSNs with our message
 * id as ENVID and the headers returned (RFC 3461 §4: NOTIFY=FAILURE, ENVID, RET=HDRS) where the server
 * supports DSN. SMTP has no delivery receipts: an accepted message stays `sent` unless a bounce arrives.
 *
 * Bounces and replies: the operator's MTA or inbound-mail service POSTs each message addressed to the bounce
 * / reply address to the sender's webhook URL as raw RFC 5322 bytes (`Content-Type: message/rfc822`) with
 * `Authorization: Bearer <webhookSecret>` (or HTTP Basic with the secret as password, for services that only
 * take credentials in the URL). A DSN (RFC 3464) becomes one status event per recipient: `failed` →
 * `undelivered` with error code `smtp_<status>`, `delivered`/`relayed`/`expanded` → `delivered`, `delayed`
 * → nothing. Any other message becomes an inbound message; auto-replies (RFC 3834) and other reports
 * (read receipts, abuse feedback) are dropped.
 */
import { createHash } from 'node:crypto';
import { isIP } from 'node:net';
import { domainToASCII } from 'node:url';
import type { Attachment, SendMailOptions, SMTPPoolOptions } from 'nodemailer';
import nodemailer from 'nodemailer';
import { AuthenticationError, ValidationError } from '../../../domain/errors.ts';
import type {
  Carrier,
  CarrierContext,
  CarrierEvent,
  ProviderDefinition,
  SenderRecord,
  SendRequest,
  SendResult,
  WebhookRequest,
} from '../../../ports/carrier.ts';
import type { Clock } from '../../../ports/clock.ts';
import { systemClock } from '../../clock/system-clock.ts';
import {
  headerValue,
  invalidConfig,
  optionalCostConfig,
  permanentFailure,
  rejectUnknownConfigFields,
  safeEqual,
  sendEach,
} from '../carrier-support.ts';
import {
  addresses,
  type DeliveryStatusNotification,
  DsnFormatError,
  isOtherReport,
  type ReceivedEmail,
  readDeliveryReport,
  readEmail,
} from './dsn.ts';
import { parseContentType, parseMessage } from './mime.ts';
import { AttachmentFetcher, type AttachmentResult } from './smtp-attachments.ts';
import { classifySendError, describeEnhancedStatus, isEnhancedStatusRetryable } from './smtp-errors.ts';

export const SMTP_PROVIDER = 'smtp';
/** The header carrying our message id on every message we send (and back in returned headers). */
export const OMNI_MESSAGE_ID_HEADER = 'X-Omni-Message-Id';

const DEFAULTS = {
  connectionTimeoutMs: 10_000,
  greetingTimeoutMs: 10_000,
  socketTimeoutMs: 60_000,
  sendTimeoutMs: 120_000,
  maxConnections: 5,
};
const WEBHOOK_CONTENT_TYPES: ReadonlySet<string> = new Set([
  'message/rfc822',
  'text/plain',
  'application/octet-stream',
]);

export interface SmtpConfig {
  host: string;
  port: number;
  secure: boolean;
  requireTLS: boolean;
  ignoreTLS: boolean;
  user: string | null;
  pass: string | null;
  from: string | null;
  returnPath: string | null;
  heloName: string | null;
  webhookSecret: string;
  connectionTimeoutMs: number;
  greetingTimeoutMs: number;
  socketTimeoutMs: number;
  sendTimeoutMs: number;
  maxConnections: number;
  costPerMessage: number | null;
}

const timeoutProperty = (description: string, fallback: number) => ({
  type: 'integer',
  minimum: 100,
  maximum: 600_000,
  default: fallback,
  description,
});

/** JSON Schema (draft-07) of an SMTP sender's config. */
export const SMTP_CONFIG_SCHEMA: Record<string, unknown> = {
  type: 'object',
  additionalProperties: false,
  required: ['host', 'webhookSecret'],
  properties: {
    host: {
      type: 'string',
      minLength: 1,
      maxLength: 253,
      description: 'SMTP server host name or IP address (e.g. smtp.example.com, email-smtp.eu-west-1.amazonaws.com)',
    },
    port: {
      type: 'integer',
      minimum: 1,
      maximum: 65535,
      description: 'SMTP port; default 465 when `secure`, otherwise 587 (submission with STARTTLS)',
    },
    secure: {
      type: 'boolean',
      default: false,
      description: 'Implicit TLS from the first byte (port 465, RFC 8314); false uses STARTTLS when offered',
    },
    requireTLS: {
      type: 'boolean',
      description:
        'Refuse to send (or authenticate) unless the connection is upgraded with STARTTLS; default true unless `secure` or `ignoreTLS`',
    },
    ignoreTLS: {
      type: 'boolean',
      default: false,
      description: 'Never use STARTTLS, even when offered (only for a trusted local relay)',
    },
    user: {
      type: 'string',
      minLength: 1,
      maxLength: 512,
      description: 'AUTH user name (omit for a relay without AUTH)',
    },
    pass: { type: 'string', minLength: 1, maxLength: 1024, description: 'AUTH password or API key (secret)' },
    from: {
      type: 'string',
      minLength: 3,
      maxLength: 512,
      description: 'Default From address (`noreply@example.com` or `Example <noreply@example.com>`)',
    },
    returnPath: {
      type: 'string',
      minLength: 3,
      maxLength: 320,
      description:
        'Envelope sender (MAIL FROM) that receives bounces, e.g. an address your inbound-mail service posts to the webhook; default: the From address',
    },
    heloName: {
      type: 'string',
      minLength: 1,
      maxLength: 253,
      description: 'Host name announced in EHLO (default: this machine’s host name)',
    },
    webhookSecret: {
      type: 'string',
      minLength: 16,
      maxLength: 512,
      description:
        'Shared secret the MTA or inbound-mail service sends as `Authorization: Bearer <secret>` when posting bounces and replies (secret)',
    },
    connectionTimeoutMs: timeoutProperty('Time allowed to open the TCP/TLS connection', DEFAULTS.connectionTimeoutMs),
    greetingTimeoutMs: timeoutProperty('Time allowed for the server greeting', DEFAULTS.greetingTimeoutMs),
    socketTimeoutMs: timeoutProperty('Idle time allowed on an open connection', DEFAULTS.socketTimeoutMs),
    sendTimeoutMs: timeoutProperty('Time allowed for one message, attachments included', DEFAULTS.sendTimeoutMs),
    maxConnections: {
      type: 'integer',
      minimum: 1,
      maximum: 50,
      default: DEFAULTS.maxConnections,
      description: 'Pooled connections kept open to the server',
    },
    rateLimitPerSecond: { type: 'integer', minimum: 1, description: 'Messages per second this sender may send' },
    costPerMessage: { type: 'number', minimum: 0, description: 'Cost of one email, reported with each send' },
  },
};

const CONFIG_FIELDS: ReadonlySet<string> = new Set(
  Object.keys(SMTP_CONFIG_SCHEMA.properties as Record<string, unknown>),
);

function fail(field: string, message: string): ValidationError {
  return invalidConfig(SMTP_PROVIDER, field, message);
}

function optionalString(config: Record<string, unknown>, field: string, max: number): string | null {
  const v = config[field];
  if (v === undefined || v === null) return null;
  if (typeof v !== 'string' || v.trim().length === 0 || v.length > max) {
    throw fail(field, `must be a non-empty string of at most ${max} characters`);
  }
  return v;
}

function optionalBoolean(config: Record<string, unknown>, field: string): boolean | null {
  const v = config[field];
  if (v === undefined || v === null) return null;
  if (typeof v !== 'boolean') throw fail(field, 'must be true or false');
  return v;
}

function optionalInteger(config: Record<string, unknown>, field: string, min: number, max: number): number | null {
  const v = config[field];
  if (v === undefined || v === null) return null;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw fail(field, `must be an integer from ${min} to ${max}`);
  }
  return v;
}

/** A single mailbox (`a@b.c` or `Name <a@b.c>`), or undefined. */
function mailboxOf(value: string): string | undefined {
  const list = addresses([value]);
  const address = list.length === 1 ? list[0]?.address : undefined;
  return address && /^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(address) ? address : undefined;
}

/** Validates a sender config (ValidationError on `config.<field>`) and fills in the defaults. */
export function parseSmtpConfig(config: Record<string, unknown>): SmtpConfig {
  rejectUnknownConfigFields(SMTP_PROVIDER, config, CONFIG_FIELDS, 'is not an SMTP sender setting');
  const host = config.host;
  const hostName = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,62})(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}))*\.?$/;
  if (
    typeof host !== 'string' ||
    host.length > 253 ||
    !(hostName.test(host) || isIP(host.replace(/^\[(.*)\]$/, '$1')) !== 0)
  ) {
    throw fail('host', 'must be a host name or IP address (no scheme, no port)');
  }
  const secure = optionalBoolean(config, 'secure') ?? false;
  const ignoreTLS = optionalBoolean(config, 'ignoreTLS') ?? false;
  const requireTLS = optionalBoolean(config, 'requireTLS') ?? (!secure && !ignoreTLS);
  if (requireTLS && ignoreTLS) throw fail('requireTLS', 'cannot be true together with ignoreTLS');
  const port = optionalInteger(config, 'port', 1, 65535) ?? (secure ? 465 : 587);
  const user = optionalString(config, 'user', 512);
  const pass = optionalString(config, 'pass', 1024);
  if (user !== null && pass === null) throw fail('pass', 'is required when user is set');
  if (pass !== null && user === null) throw fail('user', 'is required when pass is set');
  const from = optionalString(config, 'from', 512);
  if (from !== null && mailboxOf(from) === undefined) throw fail('from', 'must be one email address');
  const returnPath = optionalString(config, 'returnPath', 320);
  if (returnPath !== null && mailboxOf(returnPath) === undefined) {
    throw fail('returnPath', 'must be one email address');
  }
  const heloName = optionalString(config, 'heloName', 253);
  if (heloName !== null && !/^[A-Za-z0-9.[\]:-]+$/.test(heloName)) throw fail('heloName', 'must be a host name');
  const webhookSecret = config.webhookSecret;
  if (typeof webhookSecret !== 'string' || webhookSecret.length < 16 || webhookSecret.length > 512) {
    throw fail('webhookSecret', 'must be a string of 16 to 512 characters');
  }
  if (/\s/.test(webhookSecret)) throw fail('webhookSecret', 'must not contain white space');
  optionalInteger(config, 'rateLimitPerSecond', 1, Number.MAX_SAFE_INTEGER);
  const cost = optionalCostConfig(SMTP_PROVIDER, config);
  return {
    host: host.replace(/^\[(.*)\]$/, '$1'),
    port,
    secure,
    requireTLS,
    ignoreTLS,
    user,
    pass,
    from,
    returnPath,
    heloName,
    webhookSecret,
    connectionTimeoutMs: optionalInteger(config, 'connectionTimeoutMs', 100, 600_000) ?? DEFAULTS.connectionTimeoutMs,
    greetingTimeoutMs: optionalInteger(config, 'greetingTimeoutMs', 100, 600_000) ?? DEFAULTS.greetingTimeoutMs,
    socketTimeoutMs: optionalInteger(config, 'socketTimeoutMs', 100, 600_000) ?? DEFAULTS.socketTimeoutMs,
    sendTimeoutMs: optionalInteger(config, 'sendTimeoutMs', 100, 600_000) ?? DEFAULTS.sendTimeoutMs,
    maxConnections: optionalInteger(config, 'maxConnections', 1, 50) ?? DEFAULTS.maxConnections,
    costPerMessage: cost ?? null,
  };
}

const ATEXT_DOT_ATOM = /^[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+(?:\.[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+)*$/;

/**
 * The Message-ID we give a message: `<id@domain>` (RFC 5322 §3.6.4), id-left our message id when it is a
 * dot-atom, else its base64url form.
 */
export function smtpMessageId(messageId: string, fromAddress: string): string {
  const left = ATEXT_DOT_ATOM.test(messageId) ? messageId : `b64.${Buffer.from(messageId).toString('base64url')}`;
  const domain = domainToASCII(fromAddress.slice(fromAddress.lastIndexOf('@') + 1)).toLowerCase();
  return `<${left}@${domain || 'localhost'}>`;
}

function sha256(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

function invalidPayload(message: string): ValidationError {
  return new ValidationError('invalid_webhook_payload', `smtp webhook: ${message}`);
}

/** Checks the shared secret: `Bearer <secret>`, or `Basic` with the secret as password. */
function authenticate(request: WebhookRequest, secret: string): void {
  const header = headerValue(request.headers, 'authorization')?.trim();
  if (!header) {
    throw new AuthenticationError('webhook_signature_missing', 'missing Authorization header (Bearer <webhookSecret>)');
  }
  const space = header.indexOf(' ');
  const scheme = (space < 0 ? header : header.slice(0, space)).toLowerCase();
  const credentials = space < 0 ? '' : header.slice(space + 1).trim();
  let presented: string | undefined;
  if (scheme === 'bearer') presented = credentials;
  else if (scheme === 'basic') {
    const decoded = Buffer.from(credentials, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    presented = colon < 0 ? undefined : decoded.slice(colon + 1);
  }
  if (presented === undefined || presented.length === 0) {
    throw new AuthenticationError('webhook_signature_missing', 'Authorization header carries no webhook secret');
  }
  if (!safeEqual(presented, secret)) {
    throw new AuthenticationError('webhook_signature_invalid', 'webhook secret does not match');
  }
}

function dsnEvents(dsn: DeliveryStatusNotification, rawBody: Buffer, now: number): CarrierEvent[] {
  const providerMessageId = dsn.original?.messageId ?? dsn.originalMessageIdField;
  const reference = dsn.original?.omniMessageId ?? dsn.originalEnvelopeId;
  // Nothing ties this report to a message we sent: no event could ever be matched.
  if (!providerMessageId && !reference) return [];
  const digest = sha256(dsn.messageId ?? rawBody).slice(0, 32);
  // The message's recipient is its To; a report about a Cc/Bcc copy does not change the message's status.
  const to = new Set((dsn.original?.to ?? []).map((a) => a.toLowerCase()));
  const events: CarrierEvent[] = [];
  for (const r of dsn.recipients) {
    const recipient = (r.finalRecipient ?? r.originalRecipient ?? '').toLowerCase();
    const original = r.originalRecipient?.toLowerCase();
    if (to.size > 0 && !to.has(recipient) && !(original && to.has(original))) continue;
    let status: 'undelivered' | 'delivered';
    if (r.action === 'failed') status = 'undelivered';
    else if (r.action === 'delivered' || r.action === 'relayed' || r.action === 'expanded') status = 'delivered';
    // `delayed` (and anything unknown): the MTA is still trying; no outcome to record.
    else continue;
    const detail: Record<string, unknown> = { recipient, action: r.action };
    if (r.status) detail.status = r.status;
    if (r.diagnosticCode) detail.diagnosticCode = r.diagnosticCode;
    if (r.remoteMta) detail.remoteMta = r.remoteMta;
    if (dsn.reportingMta) detail.reportingMta = dsn.reportingMta;
    const event: CarrierEvent = {
      kind: 'status',
      eventKey: `smtp:dsn:${digest}:${recipient}:${r.action}`,
      providerMessageId: providerMessageId ?? null,
      reference: reference ?? null,
      status,
      occurredAt: r.lastAttemptDate ?? dsn.arrivalDate ?? dsn.date ?? now,
      detail,
    };
    if (status === 'undelivered') {
      const code = r.status ? `smtp_${r.status}` : 'smtp_bounce';
      const retryable = r.status ? isEnhancedStatusRetryable(r.status) : false;
      event.error = {
        code,
        class: retryable ? 'ResourceError' : 'PermanentError',
        message: r.diagnosticCode ?? (r.status ? describeEnhancedStatus(r.status) : 'delivery failed'),
      };
    }
    events.push(event);
  }
  return events;
}

function inboundEvent(email: ReceivedEmail, rawBody: Buffer, now: number): CarrierEvent[] {
  // RFC 3834 §5: auto-replies (vacation notices...) are not someone answering.
  if (email.autoSubmitted && email.autoSubmitted !== 'no') return [];
  if (!email.from) throw invalidPayload('the message has no From address');
  // An old-style bounce (no RFC 3464 report) from the mail system is not a reply either.
  if (/^(mailer-daemon|mail-daemon)@/i.test(email.from.address)) return [];
  const id = email.messageId ?? `<${sha256(rawBody).slice(0, 32)}@smtp.omni.invalid>`;
  const detail: Record<string, unknown> = {};
  if (email.subject !== null) detail.subject = email.subject;
  if (email.from.name) detail.fromName = email.from.name;
  if (email.cc.length > 0) detail.cc = email.cc.map((a) => a.address);
  if (email.inReplyTo) detail.inReplyTo = email.inReplyTo;
  if (email.references.length > 0) detail.references = email.references;
  if (email.attachments.length > 0) detail.attachments = email.attachments;
  return [
    {
      kind: 'inbound',
      eventKey: `smtp:in:${email.messageId ?? sha256(rawBody)}`,
      providerMessageId: id,
      channel: 'email',
      from: email.from.address,
      to: email.to[0]?.address ?? '',
      body: email.text.trim(),
      occurredAt: email.date ?? now,
      detail,
    },
  ];
}

export function createSmtpCarrier(sender: SenderRecord, ctx: CarrierContext, clock: Clock = systemClock): Carrier {
  const config = parseSmtpConfig(sender.config);
  const options: SMTPPoolOptions & { pool: true } = {
    pool: true,
    host: config.host,
    port: config.port,
    secure: config.secure,
    requireTLS: config.requireTLS,
    ignoreTLS: config.ignoreTLS,
    ...(config.user !== null && config.pass !== null ? { auth: { user: config.user, pass: config.pass } } : {}),
    ...(config.heloName !== null ? { name: config.heloName } : {}),
    maxConnections: config.maxConnections,
    maxMessages: 100,
    // One retry on a fresh connection when a pooled one drops mid-send; further retries are the pipeline's.
    maxRequeues: 1,
    connectionTimeout: config.connectionTimeoutMs,
    greetingTimeout: config.greetingTimeoutMs,
    socketTimeout: config.socketTimeoutMs,
    // Attachments come from URLs only; a path must never read this machine's files.
    disableFileAccess: true,
    logger: false,
  };
  const transport = nodemailer.createTransport(options);
  const fetcher = new AttachmentFetcher({
    allowPrivate: ctx.allowPrivateUrls ?? false,
    timeoutMs: config.sendTimeoutMs,
  });
  const costOf = config.costPerMessage === null ? {} : { cost: config.costPerMessage };

  async function sendOne(r: SendRequest, fetched: Map<string, Promise<AttachmentResult>>): Promise<SendResult> {
    if (r.channel !== 'email') {
      return permanentFailure('smtp_unsupported_channel', `the SMTP carrier sends email, not ${r.channel}`);
    }
    const from = r.from ?? sender.from ?? config.from;
    if (!from) return permanentFailure('smtp_missing_from', 'no From address: set one on the message or sender');
    const fromAddress = mailboxOf(from);
    if (!fromAddress) return permanentFailure('smtp_invalid_from', `'${from}' is not one email address`);
    const email = r.options?.email;
    const urls = r.options?.mediaUrls ?? [];
    for (const url of urls) {
      if (!URL.canParse(url) || !/^https?:$/.test(new URL(url).protocol)) {
        return permanentFailure('smtp_invalid_attachment', `attachment '${url}' is not an http(s) URL`);
      }
    }
    const got = await fetcher.fetchAll(urls, fetched);
    if (!got.ok) return got.failure;
    const attachments: Attachment[] = got.attachments.map((a) => ({
      filename: a.filename,
      content: a.content,
      ...(a.contentType ? { contentType: a.contentType } : {}),
    }));
    const messageId = smtpMessageId(r.messageId, fromAddress);
    const mail: SendMailOptions = {
      from,
      to: r.to,
      subject: r.subject ?? '',
      text: r.body ?? '',
      ...(email?.html ? { html: email.html } : {}),
      ...(email?.replyTo ? { replyTo: email.replyTo } : {}),
      ...(email?.cc?.length ? { cc: email.cc } : {}),
      ...(email?.bcc?.length ? { bcc: email.bcc } : {}),
      ...(attachments.length > 0 ? { attachments } : {}),
      messageId,
      headers: { [OMNI_MESSAGE_ID_HEADER]: r.messageId },
      ...(config.returnPath !== null
        ? {
            envelope: {
              from: config.returnPath,
              to: r.to,
              ...(email?.cc?.length ? { cc: email.cc } : {}),
              ...(email?.bcc?.length ? { bcc: email.bcc } : {}),
            },
          }
        : {}),
      // RFC 3461: a failure DSN that names our message (ENVID) and returns only the headers.
      dsn: { id: r.messageId, return: 'headers', notify: ['FAILURE'] },
      signal: AbortSignal.timeout(config.sendTimeoutMs),
    };
    try {
      const info = await transport.sendMail(mail);
      const to = r.to.toLowerCase();
      if (info.rejected.some((a) => a.toLowerCase() === to)) {
        const err = info.rejectedErrors?.find((e) => e.recipient?.toLowerCase() === to);
        return err ? classifySendError(err) : permanentFailure('smtp_recipient_rejected', `${r.to} was refused`);
      }
      return { ok: true, providerMessageId: messageId, ...costOf };
    } catch (err) {
      return classifySendError(err);
    }
  }

  return {
    provider: SMTP_PROVIDER,

    async send(requests) {
      if (requests.length === 0) return [];
      const fetched = new Map<string, Promise<AttachmentResult>>();
      return sendEach(requests, config.maxConnections * 2, (r) => sendOne(r, fetched));
    },

    parseWebhook(request) {
      authenticate(request, config.webhookSecret);
      const contentType = headerValue(request.headers, 'content-type');
      if (contentType !== undefined && !WEBHOOK_CONTENT_TYPES.has(parseContentType(contentType, '').type)) {
        throw invalidPayload(`expected the raw message as message/rfc822, got '${contentType}'`);
      }
      if (request.rawBody.length === 0) throw invalidPayload('the body is empty (expected a raw email message)');
      const root = parseMessage(request.rawBody);
      if (root.headers.fields.length === 0) throw invalidPayload('the body is not an email message (no header)');
      const now = clock.now();
      let dsn: DeliveryStatusNotification | null;
      try {
        dsn = readDeliveryReport(root);
      } catch (err) {
        if (err instanceof DsnFormatError) throw invalidPayload(`unreadable delivery status report: ${err.message}`);
        throw err;
      }
      if (dsn) return dsnEvents(dsn, request.rawBody, now);
      if (isOtherReport(root)) return [];
      return inboundEvent(readEmail(root), request.rawBody, now);
    },

    async close() {
      transport.close();
      await fetcher.close();
    },
  };
}

export const smtpProvider: ProviderDefinition = {
  id: SMTP_PROVIDER,
  displayName: 'Email over SMTP (any relay or email service; bounces and replies by webhook)',
  channels: ['email'],
  configSchema: SMTP_CONFIG_SCHEMA,
  secretFields: ['pass', 'webhookSecret'],
  create: (sender, ctx) => createSmtpCarrier(sender, ctx),
};
