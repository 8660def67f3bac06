/**
 * WhatsApp Cloud API error codes, classified for the pipeline. Source: Meta's "Error codes" page
 * (https://developers.facebook.com/documentation/business-messaging/whatsapp/support/error-codes), which advises
 * keying on the Graph error `code` (and `error_data.details`), not on HTTP status, titles or subcodes.
 *
 * `retryable` is true where the page's suggested handling is to try again later (throttling, temporary downtime,
 * maintenance, template still syncing), and for the throttling codes 131048 (spam rate limit) and 1 (possible
 * server error). Everything that needs a change of request, account, credentials or consent is permanent: a later
 * attempt of the same message cannot succeed. 131049 (per-user marketing limit) is permanent because Meta asks
 * to wait at least 24 h, beyond any retry schedule of ours.
 */

export type WhatsAppErrorKind =
  | 'credentials'
  | 'integrity'
  | 'throttling'
  | 'service'
  | 'request'
  | 'template'
  | 'account'
  | 'recipient'
  | 'inbound';

export interface WhatsAppErrorInfo {
  retryable: boolean;
  kind: WhatsAppErrorKind;
}

const retry = (kind: WhatsAppErrorKind): WhatsAppErrorInfo => ({ retryable: true, kind });
const permanent = (kind: WhatsAppErrorKind): WhatsAppErrorInfo => ({ retryable: false, kind });

/** Every code Meta documents for messaging. Codes 200–299 (permission errors) are covered by a range below. */
export const WHATSAPP_ERROR_CODES: Readonly<Record<number, WhatsAppErrorInfo>> = {
  // Authorization
  0: permanent('credentials'),
  3: permanent('credentials'),
  10: permanent('credentials'),
  190: permanent('credentials'),
  200: permanent('credentials'),
  131005: permanent('credentials'),
  // Integrity
  368: permanent('integrity'),
  130497: permanent('integrity'),
  131031: permanent('integrity'),
  // Throttling
  4: retry('throttling'),
  80007: retry('throttling'),
  130429: retry('throttling'),
  131048: retry('throttling'),
  131056: retry('throttling'),
  133016: retry('throttling'),
  131064: permanent('throttling'),
  132069: retry('throttling'),
  133008: retry('throttling'),
  133009: retry('throttling'),
  // Temporary service conditions
  1: retry('service'),
  2: retry('service'),
  131000: retry('service'),
  131016: retry('service'),
  131057: retry('service'),
  133004: retry('service'),
  133015: retry('service'),
  134101: retry('service'),
  // Requests that must change
  100: permanent('request'),
  131008: permanent('request'),
  131009: permanent('request'),
  131021: permanent('request'),
  131047: permanent('request'),
  131051: permanent('request'),
  131053: permanent('request'),
  131055: permanent('request'),
  133005: permanent('request'),
  134100: permanent('request'),
  135000: permanent('request'),
  132068: permanent('request'),
  // Templates
  132000: permanent('template'),
  132001: permanent('template'),
  132005: permanent('template'),
  132007: permanent('template'),
  132012: permanent('template'),
  132015: permanent('template'),
  132016: permanent('template'),
  132018: permanent('template'),
  // Account, number and billing set-up
  33: permanent('account'),
  131037: permanent('account'),
  131042: permanent('account'),
  131045: permanent('account'),
  131063: permanent('account'),
  133000: permanent('account'),
  133006: permanent('account'),
  133010: permanent('account'),
  134011: permanent('account'),
  134102: permanent('account'),
  // The recipient cannot or may not get this message
  130403: permanent('recipient'),
  130472: permanent('recipient'),
  131026: permanent('recipient'),
  131049: permanent('recipient'),
  131050: permanent('recipient'),
  // Only ever reported on inbound messages (media the user sent could not be downloaded)
  131052: permanent('inbound'),
};

/** Throttling codes whose answer may carry a `Retry-After` worth passing on. */
export const WHATSAPP_THROTTLING_CODES: ReadonlySet<number> = new Set(
  Object.entries(WHATSAPP_ERROR_CODES)
    .filter(([, info]) => info.kind === 'throttling' && info.retryable)
    .map(([code]) => Number(code)),
);

/** The documented classification of `code`, or undefined for a code Meta does not document. */
export function whatsAppErrorInfo(code: number): WhatsAppErrorInfo | undefined {
  const known = WHATSAPP_ERROR_CODES[code];
  if (known) return known;
  // "200-299: permission is either not granted or has been removed" (Authorization section).
  if (Number.isInteger(code) && code >= 200 && code <= 299) return permanent('credentials');
  return undefined;
}

/**
 * Classifies a Graph API failure: by its error code when Meta documents it, otherwise by HTTP status
 * (401/403 credentials, 429 throttling and 5xx temporary, anything else a permanent rejection).
 */
export function classifyWhatsAppError(code: number | undefined, httpStatus: number): WhatsAppErrorInfo {
  if (httpStatus === 401) return permanent('credentials');
  const known = code === undefined ? undefined : whatsAppErrorInfo(code);
  if (known) return known;
  if (httpStatus === 403) return permanent('credentials');
  if (httpStatus === 429) return retry('throttling');
  if (httpStatus >= 500 || httpStatus === 0) return retry('service');
  return permanent('request');
}
