/**
 * Reading what comes back by email: delivery status notifications (RFC 3464 `multipart/report;
 * report-type=delivery-status`, RFC 6533 `global-delivery-status`) and ordinary messages (replies).
 *
 * A DSN (RFC 3464 §2) is a `multipart/report` (RFC 6522) of a human-readable part, a `message/delivery-status`
 * part and, optionally, the returned message (`message/rfc822`) or its header (`text/rfc822-headers`). The
 * delivery-status part holds header-style groups separated by empty lines: the per-message fields first
 * (§2.2: Reporting-MTA, Original-Envelope-Id, Arrival-Date...), then one group per recipient (§2.3:
 * Original-Recipient, Final-Recipient, Action, Status, Remote-MTA, Diagnostic-Code, Last-Attempt-Date...).
 */
import addressparser from 'nodemailer/lib/addressparser';
import {
  decodeEncodedWords,
  findPart,
  isAttachment,
  leafParts,
  type MimeHeaders,
  type MimePart,
  parseHeaderBlock,
  partFilename,
  partText,
  splitHeaderBody,
} from './mime.ts';

const DELIVERY_STATUS_TYPES = ['message/delivery-status', 'message/global-delivery-status'] as const;
const RETURNED_MESSAGE_TYPES = [
  'message/rfc822',
  'message/global',
  'text/rfc822-headers',
  'message/global-headers',
] as const;

export interface DsnRecipient {
  /** Original-Recipient (§2.3.1), the address part after `rfc822;`. */
  originalRecipient: string | null;
  /** Final-Recipient (§2.3.2). */
  finalRecipient: string | null;
  /** Action (§2.3.3), lower-cased: failed, delayed, delivered, relayed, expanded. */
  action: string;
  /** Status (§2.3.4), the RFC 3463 code alone (`5.1.1`), comments dropped. */
  status: string | null;
  /** Diagnostic-Code type (§2.3.6), e.g. `smtp`. */
  diagnosticType: string | null;
  /** Diagnostic-Code text, unfolded, e.g. `550 5.1.1 user unknown`. */
  diagnosticCode: string | null;
  /** Remote-MTA (§2.3.5) name. */
  remoteMta: string | null;
  /** Last-Attempt-Date (§2.3.7), epoch ms. */
  lastAttemptDate: number | null;
}

export interface DeliveryStatusNotification {
  /** The DSN's own Message-ID. */
  messageId: string | null;
  date: number | null;
  reportingMta: string | null;
  /** Original-Envelope-Id (§2.2.1): the ENVID we gave at MAIL FROM (RFC 3461 §4.4), already xtext-decoded. */
  originalEnvelopeId: string | null;
  arrivalDate: number | null;
  recipients: DsnRecipient[];
  /** Header fields of the returned message, when the DSN carries them. */
  original: {
    messageId: string | null;
    omniMessageId: string | null;
    subject: string | null;
    to: string[];
  } | null;
  /** An `Original-Message-ID` given outside the returned message (some MTAs add it to the report). */
  originalMessageIdField: string | null;
}

/** The `multipart/report` of delivery-status type in a message, if it is a DSN. */
export function deliveryReportPart(root: MimePart): MimePart | undefined {
  const report = findPart(root, ['multipart/report']);
  if (!report) return undefined;
  const reportType = (report.params['report-type'] ?? '').toLowerCase();
  if (reportType === 'delivery-status' || reportType === 'global-delivery-status') return report;
  // A report whose report-type is missing but which carries a delivery-status part is read as one too.
  return reportType === '' && findPart(report, DELIVERY_STATUS_TYPES) ? report : undefined;
}

/** Whether a message is a report of another kind (read receipts, abuse feedback): not a DSN, not a reply. */
export function isOtherReport(root: MimePart): boolean {
  return findPart(root, ['multipart/report']) !== undefined && deliveryReportPart(root) === undefined;
}

export class DsnFormatError extends Error {}

/** Splits a delivery-status body into its per-message group and its per-recipient groups (RFC 3464 §2.1). */
export function parseDeliveryStatusFields(text: string): { perMessage: MimeHeaders; perRecipient: MimeHeaders[] } {
  const groups = text
    .replace(/^(?:[ \t]*\r?\n)+/, '')
    .split(/\r?\n[ \t]*\r?\n/)
    .filter((g) => g.trim().length > 0)
    .map(parseHeaderBlock);
  const [perMessage, ...perRecipient] = groups;
  if (!perMessage) throw new DsnFormatError('the delivery-status part is empty');
  return { perMessage, perRecipient };
}

/** Reads a DSN; null when the message is not one. Throws DsnFormatError when it is one but unreadable. */
export function readDeliveryReport(root: MimePart): DeliveryStatusNotification | null {
  const report = deliveryReportPart(root);
  if (!report) return null;
  const statusPart = findPart(report, DELIVERY_STATUS_TYPES);
  if (!statusPart) throw new DsnFormatError('multipart/report has no message/delivery-status part');
  const { perMessage, perRecipient } = parseDeliveryStatusFields(partText(statusPart));
  const recipients = perRecipient.map(readRecipient);
  if (recipients.length === 0) throw new DsnFormatError('the delivery-status part has no per-recipient fields');

  const returned = findPart(report, RETURNED_MESSAGE_TYPES);
  let original: DeliveryStatusNotification['original'] = null;
  if (returned) {
    const headers = parseHeaderBlock(splitHeaderBody(returned.body).header);
    if (headers.fields.length > 0) {
      original = {
        messageId: normalizeMessageId(headers.get('message-id')),
        omniMessageId: nonEmpty(headers.get('x-omni-message-id')),
        subject: nonEmpty(headers.get('subject')) === null ? null : decodeEncodedWords(headers.get('subject') ?? ''),
        to: addresses(headers.all('to')).map((a) => a.address),
      };
    }
  }
  return {
    messageId: normalizeMessageId(root.headers.get('message-id')),
    date: parseDate(root.headers.get('date')),
    reportingMta: typedValue(perMessage.get('reporting-mta'))?.value ?? null,
    originalEnvelopeId: nonEmpty(perMessage.get('original-envelope-id')),
    arrivalDate: parseDate(perMessage.get('arrival-date')),
    recipients,
    original,
    originalMessageIdField: normalizeMessageId(
      perMessage.get('original-message-id') ??
        root.headers.get('original-message-id') ??
        root.headers.get('x-original-message-id'),
    ),
  };
}

function readRecipient(fields: MimeHeaders): DsnRecipient {
  const action = stripComments(fields.get('action') ?? '').toLowerCase();
  if (action.length === 0) throw new DsnFormatError('a per-recipient group has no Action field');
  const status = /^\s*([245]\.\d{1,3}\.\d{1,3})/.exec(fields.get('status') ?? '')?.[1] ?? null;
  const diagnostic = typedValue(fields.get('diagnostic-code'));
  return {
    originalRecipient: typedValue(fields.get('original-recipient'))?.value ?? null,
    finalRecipient: typedValue(fields.get('final-recipient'))?.value ?? null,
    action,
    status,
    diagnosticType: diagnostic?.type ?? null,
    diagnosticCode: diagnostic ? diagnostic.value.replace(/\s+/g, ' ') : null,
    remoteMta: typedValue(fields.get('remote-mta'))?.value ?? null,
    lastAttemptDate: parseDate(fields.get('last-attempt-date')),
  };
}

/** `type; value` fields (address-type, mta-name-type, diagnostic-type). */
function typedValue(value: string | undefined): { type: string; value: string } | null {
  if (value === undefined) return null;
  const semi = value.indexOf(';');
  if (semi < 0) return value.trim() ? { type: '', value: value.trim() } : null;
  const v = value.slice(semi + 1).trim();
  return v ? { type: value.slice(0, semi).trim().toLowerCase(), value: v } : null;
}

function stripComments(value: string): string {
  return value.replace(/\([^)]*\)/g, ' ').trim();
}

function nonEmpty(value: string | undefined): string | null {
  const v = value?.trim();
  return v ? v : null;
}

/** A date field as epoch ms (RFC 5322 §3.3), comments removed; null when absent or unreadable. */
export function parseDate(value: string | undefined): number | null {
  if (value === undefined) return null;
  const at = Date.parse(stripComments(value));
  return Number.isNaN(at) ? null : at;
}

/** A Message-ID field's `<id-left@id-right>`, or null. */
export function normalizeMessageId(value: string | undefined | null): string | null {
  if (!value) return null;
  const bracketed = /<([^<>\s]+)>/.exec(value);
  if (bracketed) return `<${bracketed[1]}>`;
  const bare = value.trim();
  return /^[^\s<>]+@[^\s<>]+$/.test(bare) ? `<${bare}>` : null;
}

export interface MailAddress {
  name: string;
  address: string;
}

/** The mailboxes of address fields (groups flattened), display names decoded (RFC 2047). */
export function addresses(values: readonly string[]): MailAddress[] {
  const out: MailAddress[] = [];
  for (const value of values) {
    for (const a of addressparser(value, { flatten: true })) {
      if (a.address) out.push({ name: decodeEncodedWords(a.name ?? ''), address: a.address });
    }
  }
  return out;
}

export interface ReceivedEmail {
  messageId: string | null;
  from: MailAddress | null;
  to: MailAddress[];
  cc: MailAddress[];
  subject: string | null;
  date: number | null;
  /** The text/plain body, else the text of the HTML body. */
  text: string;
  html: string | null;
  inReplyTo: string | null;
  references: string[];
  /** RFC 3834 §5 Auto-Submitted, lower-cased (`no` for a person's message, `auto-replied`...). */
  autoSubmitted: string | null;
  attachments: { filename: string | null; contentType: string; size: number }[];
}

/** Reads an ordinary email (a reply). */
export function readEmail(root: MimePart): ReceivedEmail {
  const h = root.headers;
  const leaves = leafParts(root);
  const inline = leaves.filter((p) => !isAttachment(p));
  const textPart = inline.find((p) => p.type === 'text/plain');
  const htmlPart = inline.find((p) => p.type === 'text/html');
  const html = htmlPart ? partText(htmlPart) : null;
  const text = textPart ? partText(textPart) : html !== null ? htmlToText(html) : '';
  const subject = h.get('subject');
  return {
    messageId: normalizeMessageId(h.get('message-id')),
    from: addresses(h.all('from'))[0] ?? null,
    to: addresses(h.all('to')),
    cc: addresses(h.all('cc')),
    subject: subject === undefined ? null : decodeEncodedWords(subject),
    date: parseDate(h.get('date')),
    text,
    html,
    inReplyTo: normalizeMessageId(h.get('in-reply-to')),
    references: (h.get('references') ?? '').match(/<[^<>\s]+>/g) ?? [],
    autoSubmitted: nonEmpty(stripComments(h.get('auto-submitted') ?? '').toLowerCase()),
    attachments: leaves
      .filter((p) => p !== textPart && p !== htmlPart && (isAttachment(p) || !p.type.startsWith('text/')))
      .map((p) => ({ filename: partFilename(p) ?? null, contentType: p.type, size: p.body.length })),
  };
}

const ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", nbsp: ' ' };

/** A plain-text reading of an HTML body: blocks become lines, tags go, entities are decoded. */
export function htmlToText(html: string): string {
  return html
    .replace(/<(script|style|head)\b[^>]*>[\s\S]*?<\/\1\s*>/gi, '')
    .replace(/<br\s*\/?>/gi, '\n')
    .replace(/<\/(p|div|li|tr|h[1-6]|blockquote)\s*>/gi, '\n')
    .replace(/<[^>]*>/g, '')
    .replace(/&(#x[0-9a-f]+|#\d+|[a-z]+);/gi, (whole, ref: string) => {
      if (ref[0] === '#') {
        const n = ref[1] === 'x' || ref[1] === 'X' ? parseInt(ref.slice(2), 16) : parseInt(ref.slice(1), 10);
        return Number.isFinite(n) && n > 0 && n <= 0x10ffff ? String.fromCodePoint(n) : whole;
      }
      return ENTITIES[ref.toLowerCase()] ?? whole;
    })
    .replace(/[ \t]+\n/g, '\n')
    .replace(/\n{3,}/g, '\n\n')
    .trim();
}
