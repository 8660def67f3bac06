/**
 * SMS encoding and segmentation (3GPP TS 23.038 alphabets, TS 23.040 concatenation): a text that fits the GSM 7-bit
 * default alphabet (plus its extension table, whose characters take two septets) is sent as GSM-7, anything else as
 * UCS-2. One segment carries 160 septets or 70 UCS-2 units; a concatenated message loses room to its user-data
 * header: 153 septets or 67 units per segment. An escaped GSM character and a UTF-16 surrogate pair are never split.
 */

export type SmsEncoding = 'GSM-7' | 'UCS-2';

export interface SmsSegmentation {
  encoding: SmsEncoding;
  segments: number;
  /** Septets (GSM-7) or UTF-16 code units (UCS-2) the text takes. */
  units: number;
  /** Units per segment for this text: 160/153 or 70/67. */
  perSegment: number;
}

// The GSM 03.38 default alphabet (basic character set), in table order.
const GSM_BASIC =
  '@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\u001bÆæßÉ !"#¤%&\'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà';
// The extension table: each is sent as ESC + character (two septets).
const GSM_EXTENSION = '\f^{}\\[~]|€';

const BASIC = new Set(GSM_BASIC.replace('\u001b', ''));
const EXTENDED = new Set(GSM_EXTENSION);

/** The septets a character takes in GSM-7, or 0 when it has no GSM-7 form. */
function gsmSeptets(ch: string): number {
  if (BASIC.has(ch)) return 1;
  if (EXTENDED.has(ch)) return 2;
  return 0;
}

export function isGsm7(text: string): boolean {
  for (const ch of text) if (gsmSeptets(ch) === 0) return false;
  return true;
}

export function segmentSms(text: string): SmsSegmentation {
  if (isGsm7(text)) {
    let units = 0;
    for (const ch of text) units += gsmSeptets(ch);
    if (units <= 160) return { encoding: 'GSM-7', segments: 1, units, perSegment: 160 };
    // Fill segments of 153 septets without splitting an escape sequence.
    let segments = 1;
    let used = 0;
    for (const ch of text) {
      const n = gsmSeptets(ch);
      if (used + n > 153) {
        segments++;
        used = 0;
      }
      used += n;
    }
    return { encoding: 'GSM-7', segments, units, perSegment: 153 };
  }
  const units = text.length;
  if (units <= 70) return { encoding: 'UCS-2', segments: 1, units, perSegment: 70 };
  let segments = 1;
  let used = 0;
  for (const ch of text) {
    const n = ch.length; // 2 for a surrogate pair, kept in one segment
    if (used + n > 67) {
      segments++;
      used = 0;
    }
    used += n;
  }
  return { encoding: 'UCS-2', segments, units, perSegment: 67 };
}

/** Channels billed per SMS segment. */
export function isSegmentedChannel(channel: string): boolean {
  return channel === 'sms';
}

/** Cost of a message on a sender that charges `ratePerSegment`, rounded to 1/10,000 of the currency unit. */
export function smsCost(segments: number, ratePerSegment: number): number {
  return Math.round(segments * ratePerSegment * 10_000) / 10_000;
}
