/**
 * What SMTP answers mean, and which of them a later attempt may get past.
 *
 * Sources: RFC 5321 §4.2 (reply codes; §4.2.1 "4yz Transient Negative Completion", "5yz Permanent Negative
 * Completion"; §4.2.2/§4.2.3 the codes), RFC 4954 §4/§6 (AUTH replies), RFC 7504 (521/556), RFC 3207 §4
 * (STARTTLS 454), RFC 1870 §6 (SIZE 552/452), RFC 3463 §3 (enhanced status codes `class.subject.detail`:
 * class 4 persistent transient failure, 5 permanent failure) and the nodemailer error codes for failures that
 * carry no SMTP reply (connection, DNS, TLS, timeouts, attachments).
 */
import type { SendResult } from '../../../ports/carrier.ts';
import { permanentFailure, retryableFailure } from '../carrier-support.ts';

export interface ReplyCodeInfo {
  meaning: string;
  retryable: boolean;
  /** The reply refuses our credentials (or their transport), not the message. */
  auth?: boolean;
  source: string;
}

/** Every negative SMTP reply code the RFCs define. */
export const SMTP_REPLY_CODES: Readonly<Record<number, ReplyCodeInfo>> = {
  421: { meaning: 'Service not available, closing transmission channel', retryable: true, source: 'RFC 5321 §4.2.3' },
  432: {
    meaning: 'A password transition is needed',
    retryable: true,
    auth: true,
    source: 'RFC 4954 §4',
  },
  450: {
    meaning: 'Requested mail action not taken: mailbox unavailable (busy or temporarily blocked)',
    retryable: true,
    source: 'RFC 5321 §4.2.3',
  },
  451: {
    meaning: 'Requested action aborted: local error in processing',
    retryable: true,
    source: 'RFC 5321 §4.2.3',
  },
  452: {
    meaning: 'Requested action not taken: insufficient system storage',
    retryable: true,
    source: 'RFC 5321 §4.2.3, RFC 1870 §6',
  },
  454: {
    meaning: 'Temporary authentication failure, or TLS not available due to temporary reason',
    retryable: true,
    source: 'RFC 4954 §6, RFC 3207 §4',
  },
  455: { meaning: 'Server unable to accommodate parameters', retryable: true, source: 'RFC 5321 §4.2.3' },
  500: {
    meaning: 'Syntax error, command unrecognized (or authentication exchange line too long)',
    retryable: false,
    source: 'RFC 5321 §4.2.3, RFC 4954 §4',
  },
  501: { meaning: 'Syntax error in parameters or arguments', retryable: false, source: 'RFC 5321 §4.2.3' },
  502: { meaning: 'Command not implemented', retryable: false, source: 'RFC 5321 §4.2.3' },
  // A 5yz reply, but it says the session was in the wrong state for the command, not that the message was
  // refused: the same message can pass on a fresh connection (nodemailer's `permanent` flag reads it so too).
  503: { meaning: 'Bad sequence of commands', retryable: true, source: 'RFC 5321 §4.2.3' },
  504: { meaning: 'Command parameter not implemented', retryable: false, source: 'RFC 5321 §4.2.3' },
  521: { meaning: 'Host does not accept mail', retryable: false, source: 'RFC 7504 §3' },
  530: { meaning: 'Authentication required', retryable: false, auth: true, source: 'RFC 4954 §6' },
  534: { meaning: 'Authentication mechanism is too weak', retryable: false, auth: true, source: 'RFC 4954 §6' },
  535: { meaning: 'Authentication credentials invalid', retryable: false, auth: true, source: 'RFC 4954 §6' },
  538: {
    meaning: 'Encryption required for requested authentication mechanism',
    retryable: false,
    auth: true,
    source: 'RFC 4954 §6',
  },
  550: {
    meaning: 'Requested action not taken: mailbox unavailable (not found, no access, or refused by policy)',
    retryable: false,
    source: 'RFC 5321 §4.2.3',
  },
  551: { meaning: 'User not local; please try <forward-path>', retryable: false, source: 'RFC 5321 §4.2.3' },
  552: {
    meaning: 'Requested mail action aborted: exceeded storage allocation (message size exceeds fixed limit)',
    retryable: false,
    source: 'RFC 5321 §4.2.3, RFC 1870 §6',
  },
  553: {
    meaning: 'Requested action not taken: mailbox name not allowed (mailbox syntax incorrect)',
    retryable: false,
    source: 'RFC 5321 §4.2.3',
  },
  554: {
    meaning: 'Transaction failed (or, at the greeting, no SMTP service here)',
    retryable: false,
    source: 'RFC 5321 §4.2.3',
  },
  555: {
    meaning: 'MAIL FROM/RCPT TO parameters not recognized or not implemented',
    retryable: false,
    source: 'RFC 5321 §4.2.3',
  },
  556: { meaning: 'Domain does not accept mail', retryable: false, source: 'RFC 7504 §3' },
};

/** RFC 3463 §3 subject.detail meanings (and the RFC 4954 §6 additions), independent of the class digit. */
export const ENHANCED_STATUS_DETAILS: Readonly<Record<string, string>> = {
  '0.0': 'Other undefined status',
  '1.0': 'Other address status',
  '1.1': 'Bad destination mailbox address',
  '1.2': 'Bad destination system address',
  '1.3': 'Bad destination mailbox address syntax',
  '1.4': 'Destination mailbox address ambiguous',
  '1.5': 'Destination address valid',
  '1.6': 'Destination mailbox has moved, no forwarding address',
  '1.7': "Bad sender's mailbox address syntax",
  '1.8': "Bad sender's system address",
  '2.0': 'Other or undefined mailbox status',
  '2.1': 'Mailbox disabled, not accepting messages',
  '2.2': 'Mailbox full',
  '2.3': 'Message length exceeds administrative limit',
  '2.4': 'Mailing list expansion problem',
  '3.0': 'Other or undefined mail system status',
  '3.1': 'Mail system full',
  '3.2': 'System not accepting network messages',
  '3.3': 'System not capable of selected features',
  '3.4': 'Message too big for system',
  '3.5': 'System incorrectly configured',
  '4.0': 'Other or undefined network or routing status',
  '4.1': 'No answer from host',
  '4.2': 'Bad connection',
  '4.3': 'Directory server failure',
  '4.4': 'Unable to route',
  '4.5': 'Mail system congestion',
  '4.6': 'Routing loop detected',
  '4.7': 'Delivery time expired',
  '5.0': 'Other or undefined protocol status',
  '5.1': 'Invalid command',
  '5.2': 'Syntax error',
  '5.3': 'Too many recipients',
  '5.4': 'Invalid command arguments',
  '5.5': 'Wrong protocol version',
  '5.6': 'Authentication exchange line is too long',
  '6.0': 'Other or undefined media error',
  '6.1': 'Media not supported',
  '6.2': 'Conversion required and prohibited',
  '6.3': 'Conversion required but not supported',
  '6.4': 'Conversion with loss performed',
  '6.5': 'Conversion failed',
  '7.0': 'Other or undefined security status',
  '7.1': 'Delivery not authorized, message refused',
  '7.2': 'Mailing list expansion prohibited',
  '7.3': 'Security conversion required but not possible',
  '7.4': 'Security features not supported',
  '7.5': 'Cryptographic failure',
  '7.6': 'Cryptographic algorithm not supported',
  '7.7': 'Message integrity failure',
  '7.8': 'Authentication credentials invalid',
  '7.9': 'Authentication mechanism is too weak',
  '7.11': 'Encryption required for requested authentication mechanism',
  '7.12': 'A password transition is needed',
};

/** RFC 3463 §3.1: what the class digit says about retrying. */
export const ENHANCED_STATUS_CLASSES: Readonly<Record<string, { meaning: string; retryable: boolean }>> = {
  '2': { meaning: 'Success', retryable: false },
  '4': { meaning: 'Persistent transient failure', retryable: true },
  '5': { meaning: 'Permanent failure', retryable: false },
};

export interface LocalErrorInfo {
  /** Our error code (the SendResult's `error.code`). */
  code: string;
  meaning: string;
  retryable: boolean;
}

/** nodemailer's error codes for failures without an SMTP reply (`ERROR_CODES` of nodemailer/lib/errors). */
export const NODEMAILER_ERROR_CODES: Readonly<Record<string, LocalErrorInfo>> = {
  ECONNECTION: { code: 'smtp_connection_failed', meaning: 'Connection closed unexpectedly', retryable: true },
  ETIMEDOUT: { code: 'smtp_timeout', meaning: 'Connection or operation timed out', retryable: true },
  ESOCKET: { code: 'smtp_connection_failed', meaning: 'Socket-level error', retryable: true },
  EDNS: { code: 'smtp_dns_failed', meaning: 'DNS resolution of the SMTP host failed', retryable: true },
  ETLS: { code: 'smtp_tls_failed', meaning: 'TLS handshake or STARTTLS failed', retryable: true },
  EREQUIRETLS: {
    code: 'smtp_requiretls_unsupported',
    meaning: 'REQUIRETLS not supported by the server (RFC 8689)',
    retryable: false,
  },
  EPROTOCOL: { code: 'smtp_protocol_error', meaning: 'Invalid SMTP server response', retryable: true },
  EENVELOPE: { code: 'smtp_invalid_envelope', meaning: 'Invalid sender or recipient address', retryable: false },
  EMESSAGE: { code: 'smtp_message_failed', meaning: 'Message delivery error', retryable: true },
  EOTP: { code: 'smtp_invalid_message', meaning: 'Invalid one-time passcode data', retryable: false },
  ESTREAM: { code: 'smtp_stream_failed', meaning: 'Message stream processing error', retryable: true },
  EABORT: { code: 'smtp_timeout', meaning: 'Sending took too long and was aborted', retryable: true },
  EAUTH: { code: 'smtp_auth_failed', meaning: 'Authentication failed', retryable: false },
  ENOAUTH: { code: 'smtp_auth_failed', meaning: 'Authentication credentials not provided', retryable: false },
  EOAUTH2: { code: 'smtp_auth_failed', meaning: 'OAuth2 token error', retryable: false },
  EMAXLIMIT: {
    code: 'smtp_connection_limit',
    meaning: 'Pool connection reached its message limit',
    retryable: true,
  },
  EMAXRECIPIENTS: { code: 'smtp_too_many_recipients', meaning: 'Too many recipients', retryable: false },
  ESENDMAIL: { code: 'smtp_error', meaning: 'Sendmail command error', retryable: true },
  ESES: { code: 'smtp_error', meaning: 'AWS SES transport error', retryable: true },
  ECONFIG: { code: 'smtp_invalid_config', meaning: 'Invalid transport configuration', retryable: false },
  EPROXY: { code: 'smtp_connection_failed', meaning: 'Proxy connection error', retryable: true },
  EFILEACCESS: {
    code: 'smtp_invalid_attachment',
    meaning: 'Attachment refers to a local file, which is not allowed',
    retryable: false,
  },
  EURLACCESS: { code: 'smtp_invalid_attachment', meaning: 'Attachment URL access refused', retryable: false },
  EFETCH: { code: 'smtp_attachment_fetch_failed', meaning: 'Fetching an attachment URL failed', retryable: true },
};

/** An enhanced status code (`5.1.1`) at the start of reply text (RFC 2034 §4), if any. */
export function enhancedStatusOf(text: string): string | undefined {
  const m = /^\s*([245]\.\d{1,3}\.\d{1,3})(?=\s|$|[^\d.])/.exec(text);
  return m ? m[1] : undefined;
}

/** The meaning of an enhanced status code: its detail, else its subject's `.0`, else its class. */
export function describeEnhancedStatus(status: string): string {
  const [cls, subject, detail] = status.split('.');
  return (
    ENHANCED_STATUS_DETAILS[`${subject}.${detail}`] ??
    ENHANCED_STATUS_DETAILS[`${subject}.0`] ??
    ENHANCED_STATUS_CLASSES[cls ?? '']?.meaning ??
    'Unknown status'
  );
}

/** Whether a failure with this enhanced status may pass on a later attempt (class 4), per RFC 3463 §3.1. */
export function isEnhancedStatusRetryable(status: string): boolean {
  return status.startsWith('4.');
}

/** Whether a reply code's failure may pass on a later attempt: the table, else the class digit (RFC 5321 §4.2.1). */
export function isReplyRetryable(replyCode: number): boolean {
  const known = SMTP_REPLY_CODES[replyCode];
  if (known) return known.retryable;
  return replyCode < 500 || replyCode >= 600;
}

export interface SmtpReplyFailure {
  replyCode: number;
  enhancedStatus?: string;
  /** The server's reply text (first line), e.g. `550 5.1.1 <x@y>: Recipient address rejected`. */
  response: string;
  /** The command the reply answered (`RCPT TO`, `DATA`, `AUTH PLAIN`...). */
  command?: string;
}

/** Our code for an SMTP reply: `smtp_<reply>` or `smtp_<reply>_<enhanced status>`. */
export function replyErrorCode(replyCode: number, enhancedStatus?: string): string {
  return enhancedStatus ? `smtp_${replyCode}_${enhancedStatus}` : `smtp_${replyCode}`;
}

/** A failed SendResult for a negative SMTP reply. */
export function classifyReply(failure: SmtpReplyFailure): SendResult {
  const { replyCode } = failure;
  const enhanced = failure.enhancedStatus ?? enhancedStatusOf(failure.response.replace(/^\d{3}[ -]?/, ''));
  const code = replyErrorCode(replyCode, enhanced);
  const known = SMTP_REPLY_CODES[replyCode];
  const what = known?.auth ? 'SMTP server refused the credentials' : 'SMTP server refused the message';
  const at = failure.command ? ` at ${failure.command}` : '';
  const message = `${what}${at}: ${failure.response}`;
  return isReplyRetryable(replyCode) ? retryableFailure(code, message) : permanentFailure(code, message);
}

interface ErrorLike {
  code?: unknown;
  responseCode?: unknown;
  response?: unknown;
  command?: unknown;
  message?: unknown;
  originalCode?: unknown;
}

/** A failed SendResult for anything nodemailer rejects a message with. */
export function classifySendError(err: unknown): SendResult {
  const e = (typeof err === 'object' && err !== null ? err : {}) as ErrorLike;
  const message = typeof e.message === 'string' ? e.message : String(err);
  const response = typeof e.response === 'string' ? (e.response.split(/\r?\n/)[0] ?? '').trim() : '';
  // nodemailer names the step: a command, or API/CONN for its own checks and the connection itself.
  const command = typeof e.command === 'string' && !['API', 'CONN'].includes(e.command) ? e.command : undefined;
  if (typeof e.responseCode === 'number' && e.responseCode >= 400 && e.responseCode < 600) {
    return classifyReply({
      replyCode: e.responseCode,
      response: response || `${e.responseCode} ${message}`,
      ...(command ? { command } : {}),
    });
  }
  // A failed attachment fetch surfaces as ESTREAM (mid-DATA) with the fetch's code kept as originalCode.
  const code = e.originalCode === 'EFETCH' ? 'EFETCH' : typeof e.code === 'string' ? e.code : '';
  const known = NODEMAILER_ERROR_CODES[code];
  if (code === 'EFETCH') {
    // An attachment URL the web server refuses for good (404, 410, 403...) will be refused again.
    const status = /status code:?\s*(\d{3})/i.exec(message)?.[1];
    const n = status === undefined ? 0 : Number(status);
    if (n >= 400 && n < 500 && n !== 408 && n !== 429) {
      return permanentFailure('smtp_attachment_fetch_failed', `attachment could not be fetched: ${message}`);
    }
  }
  if (known) {
    const detail = typeof e.originalCode === 'string' && e.originalCode !== code ? ` (${e.originalCode})` : '';
    const text = `${known.meaning}${detail}: ${message}`;
    return known.retryable ? retryableFailure(known.code, text) : permanentFailure(known.code, text);
  }
  return retryableFailure('smtp_error', `SMTP send failed: ${message}`);
}
