/**
 * Twilio's error codes (https://www.twilio.com/docs/api/errors, dictionary `twilio-error-codes.json`, the messaging
 * subset kept in ../shared/fixtures/carriers/twilio/error-codes.messaging.json) classified into the product's error
 * taxonomy. Every documented code is listed in exactly one group, by what a later attempt of the same message can
 * achieve:
 * - ResourceError (retryable): rate limits and queue overflow, carrier congestion, Twilio or channel-provider
 *   internal failures and timeouts, transient unreachability, "try again later" states.
 * - AuthenticationError: credentials, tokens or signatures refused (fix the sender's credentials).
 * - ForbiddenError: the credentials are valid but not allowed to do this.
 * - ValidationError: the request itself is malformed or exceeds a documented limit (fix the request).
 * - PermanentError: the destination, content, sender or account cannot be used for this message (bad or unreachable
 *   number, opt-out, filtering, unregistered sender, suspended account...).
 * Codes Twilio adds later fall back to the HTTP status of the answer (see classifyTwilioError).
 */
import type { MessageError } from '../../../domain/message-status.ts';

export type TwilioErrorClass =
  | 'ResourceError'
  | 'AuthenticationError'
  | 'ForbiddenError'
  | 'ValidationError'
  | 'PermanentError';

/** The documented codes, grouped by class. Exported so a test can check each code is in exactly one group. */
export const TWILIO_ERROR_GROUPS: Readonly<Record<TwilioErrorClass, readonly number[]>> = {
  ResourceError: [
    // Twilio could not fetch a URL (media, TwiML) because the other end was unreachable or slow.
    11200, 11201, 11202, 11203, 11205, 11220, 11770,
    // Rate limits and queues.
    14107, 20429, 21611, 30001, 30017, 30022, 30023, 30025, 30026, 30027, 35125, 63017, 63018, 63038,
    // Twilio / provider internal failures and "try again later" states.
    20162, 20500, 20503, 21501, 21723, 21726, 21730, 30020, 30021, 30035, 30103, 30410, 63009, 63010, 63012, 63029,
    63036, 63037,
  ],
  AuthenticationError: [
    20003, 20008, 20101, 20102, 20103, 20104, 20105, 20106, 20107, 20151, 20152, 20153, 20154, 20155, 20156, 20157,
    20159, 20160, 21471, 57012, 57019, 57020, 63001,
  ],
  ForbiddenError: [20006, 20010, 20403],
  ValidationError: [
    // URLs and URL templates given to Twilio.
    11100, 11206, 11210, 11215, 11243, 11251, 11300, 11310, 11320, 21205, 21402, 21455, 21456, 21502, 21609, 21620,
    30109, 30121, 30122, 30123,
    // Request parameters and limits.
    11751, 20001, 20002, 20004, 20007, 20009, 20020, 20023, 20413, 20422, 20423, 21201, 21206, 21207, 21208, 21209,
    21213, 21218, 21221, 21222, 21223, 21224, 21225, 21227, 21228, 21229, 21230, 21231, 21232, 21233, 21235, 21236,
    21237, 21238, 21239, 21240, 21241, 21242, 21243, 21255, 21401, 21403, 21405, 21406, 21407, 21409, 21420, 21421,
    21450, 21451, 21452, 21454, 21457, 21458, 21470, 21473, 21474, 21475, 21477, 21481, 21503, 21504, 21602, 21603,
    21604, 21605, 21613, 21616, 21617, 21619, 21623, 21624, 21626, 21627, 21652, 21653, 21654, 21655, 21656, 21658,
    21705, 21708, 21710, 21711, 21712, 21713, 21714, 21715, 21717, 21719, 21720, 21721, 21722, 21724, 21725, 21727,
    21728, 21902, 21910, 23001, 23002, 23003, 23004, 23005, 23006, 30012, 30013, 30014, 30015, 30016, 30019, 30028,
    30029, 30030, 30031, 30100, 30101, 30102, 30104, 30105, 30106, 30107, 30108, 30110, 30111, 30113, 30114, 30115,
    30116, 30117, 30118, 30119, 30120, 30124, 30127, 30128, 30129, 30130, 30131, 30132, 30133, 30400, 30436, 35111,
    35114, 35118, 35126, 57001, 57002, 57003, 57004, 57005, 57006, 57007, 57008, 57009, 57010, 57011, 57013, 57014,
    57016, 57017, 57018, 63006, 63011, 63019, 63021, 63025, 63027, 63028, 63030, 63031, 63034, 63043, 63044, 63045,
    63046, 63047, 90001, 90006, 90007, 90014, 92001, 92002, 92003, 92004, 92005, 92006, 92007, 92008,
  ],
  PermanentError: [
    // TLS/certificate problems of a URL Twilio must fetch, and connection settings.
    11235, 11236, 11237, 11240, 11241, 11242,
    // Account, sender and platform state.
    14109, 20005, 20011, 20012, 20021, 20404, 20409, 20410, 20426, 21200, 21204, 21210, 21212, 21219, 21220, 21226,
    21404, 21422, 21453, 21472, 21476, 21478, 21479, 21480, 21601, 21606, 21607, 21608, 21621, 21622, 21657, 21701,
    21702, 21703, 21704, 21709, 21729, 30002, 30018, 30024, 30032, 30033, 30034, 30125, 30404, 30409, 30440, 30441,
    30442, 30443, 30444, 30445, 30446, 30447, 30448, 30449, 30880, 30881, 30882, 30883, 30884, 30885, 30886, 30887,
    30888, 30889, 30890, 30891, 30892, 30893, 30894, 30895, 30896, 30897, 30898, 63002, 63007, 63008, 63020, 63022,
    63035, 63039, 63040, 63041, 63042, 63051, 90009,
    // The destination cannot receive this message (invalid, unreachable, opted out, blocked, filtered).
    21202, 21203, 21211, 21214, 21215, 21217, 21408, 21610, 21612, 21614, 21618, 30003, 30004, 30005, 30006, 30007,
    30008, 30009, 30010, 30011, 30450, 63003, 63005, 63013, 63014, 63015, 63016, 63023, 63024, 63026, 63032, 63033,
  ],
};

/** Code → class, for every code Twilio documents. */
export const TWILIO_ERROR_CLASSES: ReadonlyMap<number, TwilioErrorClass> = (() => {
  const map = new Map<number, TwilioErrorClass>();
  for (const [cls, codes] of Object.entries(TWILIO_ERROR_GROUPS) as [TwilioErrorClass, readonly number[]][]) {
    for (const code of codes) map.set(code, cls);
  }
  return map;
})();

export interface TwilioErrorClassification {
  class: TwilioErrorClass;
  retryable: boolean;
  /** Whether the code is in the documented table (false: classified by HTTP status or as a permanent failure). */
  known: boolean;
}

/**
 * Classifies a Twilio error code. Unknown codes fall back to the HTTP status of the answer when there is one
 * (429 and 5xx retryable, 401 authentication, 403 forbidden, other 4xx permanent); without a status (a code in a
 * status callback) an unknown code is a permanent failure of that message.
 */
export function classifyTwilioError(
  code: number | string | null | undefined,
  httpStatus?: number,
): TwilioErrorClassification {
  const n = typeof code === 'number' ? code : typeof code === 'string' && /^\d+$/.test(code) ? Number(code) : NaN;
  const cls = TWILIO_ERROR_CLASSES.get(n);
  if (cls !== undefined) return { class: cls, retryable: cls === 'ResourceError', known: true };
  if (httpStatus !== undefined) {
    if (httpStatus === 429 || httpStatus >= 500 || httpStatus === 408) {
      return { class: 'ResourceError', retryable: true, known: false };
    }
    if (httpStatus === 401) return { class: 'AuthenticationError', retryable: false, known: false };
    if (httpStatus === 403) return { class: 'ForbiddenError', retryable: false, known: false };
  }
  return { class: 'PermanentError', retryable: false, known: false };
}

/** A MessageError carrying a Twilio code, with Twilio's text when it gave one. */
export function twilioMessageError(
  code: number | string,
  message: string | undefined,
  httpStatus?: number,
): { error: MessageError; retryable: boolean } {
  const c = classifyTwilioError(code, httpStatus);
  const text =
    message !== undefined && message.trim().length > 0
      ? message
      : `Twilio error ${code} (https://www.twilio.com/docs/errors/${code})`;
  return { error: { code: String(code), class: c.class, message: text }, retryable: c.retryable };
}
