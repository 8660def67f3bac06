/**
 * An SMTP relay for carrier tests: a real `smtp-server` on 127.0.0.1 (ephemeral port, no TLS) that takes mail
 * only as the RFCs allow, answers as a relay does, and posts bounces (RFC 3464 DSNs) and replies to the
 * webhook URL the way an operator's MTA / inbound-mail service would: the raw message as
 * `Content-Type: message/rfc822` with `Authorization: Bearer <webhookSecret>`.
 *
 * Destination rules (by recipient domain, applied at RCPT TO):
 * | recipient            | answer                                                                          |
 * |----------------------|---------------------------------------------------------------------------------|
 * | `*@reject.test`      | `550 5.1.1` unknown user: permanent refusal at send                              |
 * | `*@busy.test`        | `451 4.3.0` local error in processing: retryable                                 |
 * | `*@throttle.test`    | `421 4.4.2` too many messages, connection closed: retryable (throttling)         |
 * | `*@ratelimit.test`   | `450 4.2.1` receiving mail too fast, try later: retryable (throttling)           |
 * | `*@full.test`        | `452 4.2.2` mailbox full / insufficient storage: retryable                       |
 * | `*@bounce.test`      | `250` accepted; ~10 ms later a DSN `Action: failed`, `Status: 5.1.1` is posted   |
 * |                      | (unless NOTIFY excludes FAILURE, RFC 3461 §4.1)                                  |
 * | `*@delay.test`       | `250` accepted; a DSN `Action: delayed`, `Status: 4.4.1` if NOTIFY asks for DELAY |
 * | anything else        | `250` accepted; nothing more (SMTP has no delivery receipts)                     |
 * Wrong AUTH credentials get `535 5.7.8` (RFC 4954 §6); messages over `sizeLimit` get `552 5.2.2`
 * (RFC 1870 §6).
 *
 * Rules checked (each breach is recorded in `violations` and refused):
 * - RFC 4954 §4: AUTH (PLAIN or LOGIN) before MAIL; smtp-server refuses MAIL with 530 otherwise.
 * - RFC 5321 §4.1.1.2/§4.1.2/§4.5.3.1: MAIL FROM / RCPT TO syntax and lengths (local part ≤ 64 octets, domain
 *   ≤ 255, path ≤ 256); RFC 5321 §4.1.4 command order; RFC 3461 §4 DSN parameters (NOTIFY, RET, ENVID, ORCPT)
 *   — smtp-server answers 5xx to each breach, and every error reply no destination rule asked for is recorded.
 * - RFC 5321 §2.3.8: lines end in CRLF (no bare CR or LF); RFC 5322 §2.1.1: lines ≤ 998 characters.
 * - RFC 6152 §3: 8-bit octets only with BODY=8BITMIME; RFC 6531 §3.2: UTF-8 headers only with SMTPUTF8.
 * - RFC 5322 §3.6: exactly one Date and one From; To, Subject and Message-ID present (§3.6.4 msg-id syntax),
 *   at most one of each; RFC 2045 §4: MIME-Version when the message has a Content-Type.
 * Every accepted message is parsed with mailparser and kept in `messages`.
 */
import { type ParsedMail, simpleParser } from 'mailparser';
import MailComposer from 'nodemailer/lib/mail-composer';
import {
  SMTPServer,
  type SMTPServerAddress,
  type SMTPServerDataStream,
  type SMTPServerError,
  type SMTPServerSession,
} from 'smtp-server';
import { request } from 'undici';
import type { CarrierEmulator } from '../carrier-contract.ts';

export const SMTP_EMULATOR_HOST = 'mx.emulator.test';
export const SMTP_EMULATOR_USER = 'relay-user@omni.test';
export const SMTP_EMULATOR_PASS = 'relay-password-4f9a';
export const SMTP_EMULATOR_WEBHOOK_SECRET = 'whsec-smtp-emulator-0123456789';

export interface SmtpEmulatorOptions {
  /** Where DSNs and replies are posted. */
  webhookUrl: string;
  webhookSecret?: string;
  /** SIZE limit (RFC 1870) in octets; default 10 MiB. */
  sizeLimit?: number;
  /** Delay before a DSN is posted; default 10 ms. */
  callbackDelayMs?: number;
}

export interface ReceivedMail {
  /** The authenticated AUTH user. */
  user: string;
  mailFrom: string;
  /** MAIL FROM parameters (SIZE, BODY, RET, ENVID...), upper-case keys. */
  mailArgs: Record<string, string | true>;
  rcptTo: string[];
  /** RCPT TO parameters per recipient (NOTIFY, ORCPT...). */
  rcptArgs: Record<string, string | true>[];
  raw: Buffer;
  parsed: ParsedMail;
}

export interface PostedWebhook {
  kind: 'dsn' | 'inbound';
  status: number;
  body: Buffer;
}

type Rule = { kind: 'refuse'; code: number; message: string } | { kind: 'accept'; dsn?: 'failed' | 'delayed' };

/** Reply texts our own rules send; any other error reply means the client broke a rule. */
const RULE_REPLIES: Record<string, { code: number; message: string }> = {
  'reject.test': { code: 550, message: 'Recipient address rejected: User unknown in virtual mailbox table' },
  'busy.test': { code: 451, message: 'Requested action aborted: local error in processing, try again later' },
  'throttle.test': { code: 421, message: 'Too many messages from your account, closing connection; try later' },
  'ratelimit.test': { code: 450, message: 'The user is receiving mail at a rate that prevents delivery; try later' },
  'full.test': { code: 452, message: 'Mailbox full: insufficient system storage, try again later' },
};
const AUTH_FAILED = 'Authentication credentials invalid';
const TOO_BIG = 'Message size exceeds fixed maximum message size';
const REFUSED_MESSAGE = 'Message refused: it breaks';
/**
 * Replies smtp-server sends on its own that are not the client's fault: idle and shutdown closes, and the 503
 * to a pipelined DATA whose recipients were all refused (RFC 2920 §3.1 lets the client send DATA unanswered).
 */
const BENIGN_REPLIES = [
  /^421 .*Timeout - closing connection/,
  /^421 .*Server shutting down/,
  /^503 .*need RCPT command/,
];

function ruleFor(address: string): Rule {
  const domain = address.slice(address.lastIndexOf('@') + 1).toLowerCase();
  const refusal = RULE_REPLIES[domain];
  if (refusal) return { kind: 'refuse', ...refusal };
  if (domain === 'bounce.test') return { kind: 'accept', dsn: 'failed' };
  if (domain === 'delay.test') return { kind: 'accept', dsn: 'delayed' };
  return { kind: 'accept' };
}

function smtpError(code: number, message: string): SMTPServerError {
  const err: SMTPServerError = new Error(message);
  err.responseCode = code;
  return err;
}

/** RFC 3461 §4: xtext decoding (`+2B` → `+`), as a DSN carries ENVID and ORCPT decoded (§6.3). */
function decodeXtext(value: string): string {
  return value.replace(/\+([0-9A-F]{2})/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)));
}

/** RFC 5321 §4.1.2 Mailbox, §4.5.3.1.1-3 sizes. Returns the breach, or undefined. */
function mailboxBreach(address: string): string | undefined {
  if (address.length > 254) return 'path longer than 256 octets (RFC 5321 §4.5.3.1.3)';
  const at = address.lastIndexOf('@');
  if (at <= 0) return 'mailbox without local-part@domain (RFC 5321 §4.1.2)';
  const local = address.slice(0, at);
  const domain = address.slice(at + 1);
  if (Buffer.byteLength(local) > 64) return 'local-part longer than 64 octets (RFC 5321 §4.5.3.1.1)';
  if (domain.length > 255) return 'domain longer than 255 octets (RFC 5321 §4.5.3.1.2)';
  const dotString = /^[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~\u0080-\uffff]+(\.[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~\u0080-\uffff]+)*$/;
  if (!dotString.test(local) && !/^"(?:[\x20-\x21\x23-\x5b\x5d-\x7e]|\\[\x20-\x7e])*"$/.test(local)) {
    return 'local-part is neither a Dot-string nor a Quoted-string (RFC 5321 §4.1.2)';
  }
  if (
    !/^(?:[A-Za-z0-9\u0080-\uffff](?:[A-Za-z0-9\u0080-\uffff-]*[A-Za-z0-9\u0080-\uffff])?\.)*[A-Za-z0-9\u0080-\uffff](?:[A-Za-z0-9\u0080-\uffff-]*[A-Za-z0-9\u0080-\uffff])?$|^\[[^\]]+\]$/.test(
      domain,
    )
  ) {
    return 'domain is not a valid Domain or address-literal (RFC 5321 §4.1.2)';
  }
  return undefined;
}

/** The header block of a raw message (up to the first empty line), as latin1 text. */
function headerBlock(raw: Buffer): string {
  const s = raw.toString('latin1');
  const end = s.indexOf('\r\n\r\n');
  return end < 0 ? s : s.slice(0, end);
}

/** The RFC 5321/5322/6152 breaches of a message. */
function messageBreaches(raw: Buffer, session: SMTPServerSession, parsed: ParsedMail): string[] {
  const out: string[] = [];
  const text = raw.toString('latin1');
  if (/\r(?!\n)|(?<!\r)\n/.test(text)) out.push('bare CR or LF in the message (RFC 5321 §2.3.8)');
  if (text.split('\r\n').some((line) => line.length > 998))
    out.push('line longer than 998 characters (RFC 5322 §2.1.1)');
  const envelope = session.envelope as { bodyType?: string; smtpUtf8?: boolean };
  // biome-ignore lint/suspicious/noControlCharactersInRegex: looking for octets outside 7-bit ASCII
  const eightBit = /[^\x00-\x7f]/;
  if (eightBit.test(text) && envelope.bodyType !== '8bitmime') {
    out.push('8-bit octets without BODY=8BITMIME (RFC 6152 §3)');
  }
  if (eightBit.test(headerBlock(raw)) && !envelope.smtpUtf8) {
    out.push('non-ASCII header without SMTPUTF8 (RFC 6531 §3.2)');
  }
  const count = (name: string) => parsed.headerLines.filter((h) => h.key === name).length;
  for (const name of ['date', 'from']) {
    if (count(name) !== 1) out.push(`${count(name)} ${name} fields, exactly one required (RFC 5322 §3.6)`);
  }
  for (const name of ['to', 'subject', 'message-id']) {
    if (count(name) === 0) out.push(`no ${name} field`);
    if (count(name) > 1) out.push(`${count(name)} ${name} fields, at most one allowed (RFC 5322 §3.6)`);
  }
  if (!/^<[^<>@\s]+@[^<>@\s]+>$/.test(parsed.messageId ?? '')) {
    out.push(`Message-ID '${parsed.messageId}' is not <id-left@id-right> (RFC 5322 §3.6.4)`);
  }
  if (count('content-type') > 0 && count('mime-version') !== 1) {
    out.push('Content-Type without MIME-Version (RFC 2045 §4)');
  }
  if (!parsed.from?.value[0]?.address) out.push('From has no address (RFC 5322 §3.6.2)');
  if (parsed.date === undefined || Number.isNaN(parsed.date.getTime())) {
    out.push('Date is not a date-time (RFC 5322 §3.3)');
  }
  return out;
}

export class SmtpEmulator implements CarrierEmulator {
  readonly violations: string[] = [];
  readonly messages: ReceivedMail[] = [];
  readonly webhooks: PostedWebhook[] = [];
  senderConfig: Record<string, unknown> = {};
  private readonly server: SMTPServer;
  private readonly pending = new Set<Promise<void>>();
  private readonly secret: string;
  private readonly delayMs: number;
  private dsnSeq = 0;
  private inboundSeq = 0;

  constructor(private readonly options: SmtpEmulatorOptions) {
    this.secret = options.webhookSecret ?? SMTP_EMULATOR_WEBHOOK_SECRET;
    this.delayMs = options.callbackDelayMs ?? 10;
    const sizeLimit = options.sizeLimit ?? 10 * 1024 * 1024;
    const record = (line: string) => this.checkReply(line);
    this.server = new SMTPServer({
      name: SMTP_EMULATOR_HOST,
      banner: 'Omnichannel SMTP emulator',
      authMethods: ['PLAIN', 'LOGIN'],
      allowInsecureAuth: true,
      authOptional: false,
      // No TLS in tests: STARTTLS is not offered.
      disabledCommands: ['STARTTLS'],
      hideENHANCEDSTATUSCODES: false,
      hideDSN: false,
      size: sizeLimit,
      disableReverseLookup: true,
      logger: {
        debug: (_meta: unknown, ...args: unknown[]) => {
          if (args[0] === 'S:' && typeof args[1] === 'string') record(args[1]);
        },
        info: () => {},
        error: () => {},
      },
      onAuth: (auth, _session, callback) => {
        if (auth.username === SMTP_EMULATOR_USER && auth.password === SMTP_EMULATOR_PASS) {
          return callback(null, { user: auth.username });
        }
        callback(smtpError(535, AUTH_FAILED));
      },
      onMailFrom: (address, _session, callback) => this.onMailFrom(address, callback),
      onRcptTo: (address, _session, callback) => this.onRcptTo(address, callback),
      onData: (stream, session, callback) => this.onData(stream, session, callback),
    });
  }

  async start(): Promise<this> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(0, '127.0.0.1', () => resolve());
    });
    const address = this.server.server.address();
    const port = typeof address === 'object' && address ? address.port : 0;
    this.senderConfig = {
      host: '127.0.0.1',
      port,
      secure: false,
      ignoreTLS: true,
      user: SMTP_EMULATOR_USER,
      pass: SMTP_EMULATOR_PASS,
      webhookSecret: this.secret,
      connectionTimeoutMs: 2000,
      greetingTimeoutMs: 2000,
      socketTimeoutMs: 5000,
    };
    return this;
  }

  acceptedCount(): number {
    return this.messages.length;
  }

  /** Resolves once every DSN and reply the emulator decided to post has been posted. */
  async settle(): Promise<void> {
    while (this.pending.size > 0) await Promise.all([...this.pending]);
  }

  private checkReply(line: string): void {
    const code = Number(line.slice(0, 3));
    if (!(code >= 400)) return;
    if (BENIGN_REPLIES.some((re) => re.test(line))) return;
    const intended = [
      ...Object.values(RULE_REPLIES).map((r) => r.message),
      AUTH_FAILED,
      TOO_BIG,
      'maximum message size',
      REFUSED_MESSAGE,
    ];
    if (intended.some((text) => line.includes(text))) return;
    this.violations.push(`server refused a command: ${line}`);
  }

  private onMailFrom(address: SMTPServerAddress, callback: (err?: Error | null) => void): void {
    // RFC 5321 §4.5.5: the null reverse-path <> is allowed (we never send it, but a relay accepts it).
    const breach = address.address === '' ? undefined : mailboxBreach(address.address);
    if (breach) {
      this.violations.push(`MAIL FROM:<${address.address}>: ${breach}`);
      callback(smtpError(553, `${REFUSED_MESSAGE} RFC 5321 (${breach})`));
      return;
    }
    callback();
  }

  private onRcptTo(address: SMTPServerAddress, callback: (err?: Error | null) => void): void {
    const breach = mailboxBreach(address.address);
    if (breach) {
      this.violations.push(`RCPT TO:<${address.address}>: ${breach}`);
      callback(smtpError(553, `${REFUSED_MESSAGE} RFC 5321 (${breach})`));
      return;
    }
    const rule = ruleFor(address.address);
    callback(rule.kind === 'refuse' ? smtpError(rule.code, rule.message) : null);
  }

  private onData(
    stream: SMTPServerDataStream,
    session: SMTPServerSession,
    callback: (err?: Error | null, message?: string) => void,
  ): void {
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => {
      const raw = Buffer.concat(chunks);
      if (stream.sizeExceeded) return callback(smtpError(552, TOO_BIG));
      simpleParser(raw).then(
        (parsed) => {
          const breaches = messageBreaches(raw, session, parsed);
          if (breaches.length > 0) {
            for (const b of breaches) this.violations.push(`message ${parsed.messageId ?? '?'}: ${b}`);
            return callback(smtpError(554, `${REFUSED_MESSAGE} ${breaches.join('; ')}`));
          }
          const mail: ReceivedMail = {
            user: String(session.user ?? ''),
            mailFrom: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
            mailArgs: (session.envelope.mailFrom ? session.envelope.mailFrom.args : false) || {},
            rcptTo: session.envelope.rcptTo.map((r) => r.address),
            rcptArgs: session.envelope.rcptTo.map((r) => r.args || {}),
            raw,
            parsed,
          };
          this.messages.push(mail);
          this.scheduleDsns(mail);
          callback(null, `Ok: queued as ${parsed.messageId ?? 'message'}`);
        },
        (err: unknown) => {
          this.violations.push(`message could not be parsed: ${String(err)}`);
          callback(smtpError(554, `${REFUSED_MESSAGE} RFC 5322 (unparseable message)`));
        },
      );
    });
  }

  private scheduleDsns(mail: ReceivedMail): void {
    for (const [i, rcpt] of mail.rcptTo.entries()) {
      const rule = ruleFor(rcpt);
      if (rule.kind !== 'accept' || !rule.dsn) continue;
      const notify = String(mail.rcptArgs[i]?.NOTIFY ?? 'FAILURE,DELAY')
        .toUpperCase()
        .split(',');
      // RFC 3461 §4.1: without NOTIFY the MTA reports failures (and may report delays); NEVER asks for nothing.
      if (rule.dsn === 'failed' && !notify.includes('FAILURE')) continue;
      if (rule.dsn === 'delayed' && !notify.includes('DELAY')) continue;
      const action = rule.dsn;
      this.track(
        new Promise<void>((resolve) => setTimeout(resolve, this.delayMs)).then(() =>
          this.post('dsn', this.buildDsn(mail, rcpt, action, mail.rcptArgs[i] ?? {})),
        ),
      );
    }
  }

  /** A DSN as an MTA writes it: RFC 3464 §2 inside RFC 6522 multipart/report, original per RET (RFC 3461 §4.3). */
  buildDsn(
    mail: ReceivedMail,
    rcpt: string,
    action: 'failed' | 'delayed',
    rcptArgs: Record<string, string | true>,
  ): Buffer {
    this.dsnSeq++;
    const boundary = `dsn-${this.dsnSeq}-${Date.now().toString(36)}/${SMTP_EMULATOR_HOST}`;
    const now = new Date().toUTCString().replace('GMT', '+0000');
    const envid = typeof mail.mailArgs.ENVID === 'string' ? decodeXtext(mail.mailArgs.ENVID) : undefined;
    const ret = typeof mail.mailArgs.RET === 'string' ? mail.mailArgs.RET.toUpperCase() : 'FULL';
    const orcpt = typeof rcptArgs.ORCPT === 'string' ? decodeXtext(rcptArgs.ORCPT) : undefined;
    const failed = action === 'failed';
    const status = failed ? '5.1.1' : '4.4.1';
    const diagnostic = failed
      ? `smtp; 550 5.1.1 <${rcpt}>: Recipient address rejected: User unknown in local recipient table`
      : 'smtp; 421 4.4.1 Connection timed out, will keep trying';
    const headers = headerBlock(mail.raw);
    const lines = [
      `From: Mail Delivery System <MAILER-DAEMON@${SMTP_EMULATOR_HOST}>`,
      `To: <${mail.mailFrom}>`,
      `Subject: ${failed ? 'Undelivered Mail Returned to Sender' : 'Delayed Mail (still being retried)'}`,
      `Date: ${now}`,
      `Message-ID: <dsn.${this.dsnSeq}.${Date.now()}@${SMTP_EMULATOR_HOST}>`,
      'Auto-Submitted: auto-replied',
      'MIME-Version: 1.0',
      `Content-Type: multipart/report; report-type=delivery-status;`,
      `\tboundary="${boundary}"`,
      '',
      'This is a MIME-encapsulated message.',
      '',
      `--${boundary}`,
      'Content-Type: text/plain; charset=us-ascii',
      '',
      failed
        ? `Your message could not be delivered to <${rcpt}>: the mailbox does not exist.`
        : `Your message to <${rcpt}> has not been delivered yet; the system will keep trying.`,
      '',
      `--${boundary}`,
      'Content-Type: message/delivery-status',
      '',
      `Reporting-MTA: dns; ${SMTP_EMULATOR_HOST}`,
      ...(envid ? [`Original-Envelope-Id: ${envid}`] : []),
      `Arrival-Date: ${now}`,
      '',
      ...(orcpt ? [`Original-Recipient: ${orcpt}`] : []),
      `Final-Recipient: rfc822; ${rcpt}`,
      `Action: ${action}`,
      `Status: ${status}`,
      `Remote-MTA: dns; ${rcpt.slice(rcpt.lastIndexOf('@') + 1)}`,
      `Diagnostic-Code: ${diagnostic}`,
      `Last-Attempt-Date: ${now}`,
      ...(failed ? [] : [`Will-Retry-Until: ${new Date(Date.now() + 86_400_000).toUTCString()}`]),
      '',
      `--${boundary}`,
      ret === 'HDRS' ? 'Content-Type: text/rfc822-headers' : 'Content-Type: message/rfc822',
      '',
    ];
    const original = ret === 'HDRS' ? `${headers}\r\n` : mail.raw.toString('latin1');
    return Buffer.from(`${lines.join('\r\n')}\r\n${original}\r\n--${boundary}--\r\n`, 'latin1');
  }

  /** Posts a reply from a recipient to our address, as the inbound-mail service forwards it. */
  async sendInbound(input: {
    from: string;
    to: string;
    body: string;
    subject?: string;
    html?: string;
    inReplyTo?: string;
  }): Promise<void> {
    this.inboundSeq++;
    const domain = input.from.slice(input.from.lastIndexOf('@') + 1) || 'handset.test';
    const raw = await new MailComposer({
      from: input.from,
      to: input.to,
      subject: input.subject ?? 'Re: your message',
      text: input.body,
      ...(input.html ? { html: input.html } : {}),
      ...(input.inReplyTo ? { inReplyTo: input.inReplyTo, references: [input.inReplyTo] } : {}),
      messageId: `<reply.${this.inboundSeq}.${Date.now()}@${domain}>`,
      date: new Date(),
    })
      .compile()
      .build();
    await this.post('inbound', raw);
  }

  /** Posts any raw message (a fixture, a hand-made bounce) to the webhook, signed. */
  postRaw(raw: Buffer): Promise<number> {
    return this.post('dsn', raw);
  }

  private async post(kind: PostedWebhook['kind'], body: Buffer): Promise<number> {
    const res = await request(this.options.webhookUrl, {
      method: 'POST',
      headers: { 'content-type': 'message/rfc822', authorization: `Bearer ${this.secret}` },
      body,
    });
    await res.body.dump();
    this.webhooks.push({ kind, status: res.statusCode, body });
    return res.statusCode;
  }

  private track(p: Promise<unknown>): void {
    const done = p.then(
      () => undefined,
      (err: unknown) => {
        this.violations.push(`emulator could not post a callback: ${String(err)}`);
      },
    );
    this.pending.add(done);
    void done.finally(() => this.pending.delete(done));
  }

  async close(): Promise<void> {
    await this.settle();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

export async function startSmtpEmulator(options: SmtpEmulatorOptions): Promise<SmtpEmulator> {
  return new SmtpEmulator(options).start();
}
