/**
 * Compliance decisions, pure: inbound keywords (STOP, START, HELP and their synonyms), the consent a contact has
 * given for a send, quiet hours in the recipient's local time and frequency caps over a rolling window. The
 * services feed them stored facts and act on the answers; nothing here does I/O or reads the clock.
 *
 * Consent model. A consent record is a statement "for sends on `channel`, of `purpose`, from `sender`, the answer
 * is `status`", each of the three being a value or `*` (any). For a send, the records whose scope covers it are
 * found and the latest one wins (on a tie, the opt-out): a newer, narrower START after a STOPALL re-opens that one
 * sender; a newer opt-in to SMS marketing given through the API overrides an older STOP on one number for
 * marketing (the person said so later), but not for the transactional messages that STOP also covered.
 * - `STOP` (and synonyms) received on a number opts the contact out of every purpose on that channel, from that
 *   sender number only (SMS and MMS count as one channel: they share the number).
 * - `STOPALL` opts the contact out of every channel, every purpose and every sender.
 * - `START`/`UNSTOP` opts back in on that channel, from that sender.
 * When the sender of a send is not known yet (`sender: null`), an opt-out from any one sender suppresses it: the
 * carrier may well pick that number.
 */
import { DateTime } from 'luxon';
import type { Channel } from './channels.ts';

export type ConsentPurpose = 'transactional' | 'marketing';
export const CONSENT_PURPOSES: readonly ConsentPurpose[] = ['transactional', 'marketing'];
export type ConsentStatus = 'opted_in' | 'opted_out';
export type ConsentSource = 'api' | 'inbound_keyword' | 'import' | 'journey';
export const CONSENT_SOURCES: readonly ConsentSource[] = ['api', 'inbound_keyword', 'import', 'journey'];
/** `*` in a scope: any channel, purpose or sender. */
export const ANY = '*';

export interface ConsentRecord {
  channel: Channel | typeof ANY;
  purpose: ConsentPurpose | typeof ANY;
  sender: string;
  status: ConsentStatus;
  source: ConsentSource;
  updatedAt: number;
}

// ---------------------------------------------------------------------------------------------------------------
// Keywords

export type KeywordAction =
  | { kind: 'opt_out'; scope: 'sender' | 'all'; keyword: string }
  | { kind: 'opt_in'; keyword: string }
  | { kind: 'help'; keyword: string };

const KEYWORDS: Record<string, KeywordAction> = {
  STOP: { kind: 'opt_out', scope: 'sender', keyword: 'STOP' },
  UNSUBSCRIBE: { kind: 'opt_out', scope: 'sender', keyword: 'UNSUBSCRIBE' },
  CANCEL: { kind: 'opt_out', scope: 'sender', keyword: 'CANCEL' },
  END: { kind: 'opt_out', scope: 'sender', keyword: 'END' },
  QUIT: { kind: 'opt_out', scope: 'sender', keyword: 'QUIT' },
  STOPALL: { kind: 'opt_out', scope: 'all', keyword: 'STOPALL' },
  START: { kind: 'opt_in', keyword: 'START' },
  UNSTOP: { kind: 'opt_in', keyword: 'UNSTOP' },
  HELP: { kind: 'help', keyword: 'HELP' },
  INFO: { kind: 'help', keyword: 'INFO' },
};

/**
 * The keyword a message is, or null. Only the whole message counts ("stop sending me these" is not a STOP);
 * letter case, whitespace anywhere (so "stop all" is STOPALL), Unicode compatibility forms (full-width letters)
 * and trailing full stops or exclamation marks are ignored.
 */
export function classifyKeyword(text: string): KeywordAction | null {
  if (text.length > 64) return null;
  const word = text
    .normalize('NFKC')
    .replace(/[\s\u200B-\u200D\u2060\uFEFF]+/gu, '')
    .replace(/[.!]+$/u, '')
    .toUpperCase();
  return Object.hasOwn(KEYWORDS, word) ? (KEYWORDS[word] as KeywordAction) : null;
}

/** The channels a keyword received on `channel` speaks for: SMS and MMS share the number, so one covers both. */
export function keywordChannels(channel: Channel): Channel[] {
  return channel === 'sms' || channel === 'mms' ? ['sms', 'mms'] : [channel];
}

// ---------------------------------------------------------------------------------------------------------------
// Consent

export interface SendScope {
  channel: Channel;
  purpose: ConsentPurpose;
  /** The sender identity (our number or address); null when not chosen yet. */
  sender: string | null;
}

export interface EffectiveConsent {
  /** `none`: no statement covers this send. */
  status: ConsentStatus | 'none';
  /** The record that decided. */
  record: ConsentRecord | null;
}

function covers(r: ConsentRecord, s: { channel: Channel; purpose: ConsentPurpose }): boolean {
  return (r.channel === ANY || r.channel === s.channel) && (r.purpose === ANY || r.purpose === s.purpose);
}

function latest(records: readonly ConsentRecord[]): ConsentRecord | null {
  let best: ConsentRecord | null = null;
  for (const r of records) {
    if (
      !best ||
      r.updatedAt > best.updatedAt ||
      (r.updatedAt === best.updatedAt && r.status === 'opted_out' && best.status !== 'opted_out')
    ) {
      best = r;
    }
  }
  return best;
}

/** What the contact's consent records say about a send (see the module header). */
export function effectiveConsent(records: readonly ConsentRecord[], scope: SendScope): EffectiveConsent {
  const matching = records.filter((r) => covers(r, scope));
  if (scope.sender !== null) {
    const sender = scope.sender;
    const r = latest(matching.filter((m) => m.sender === ANY || m.sender === sender));
    return { status: r?.status ?? 'none', record: r };
  }
  const general = latest(matching.filter((m) => m.sender === ANY));
  const senders = new Set(matching.filter((m) => m.sender !== ANY).map((m) => m.sender));
  for (const s of senders) {
    const r = latest(matching.filter((m) => m.sender === ANY || m.sender === s));
    if (r?.status === 'opted_out') return { status: 'opted_out', record: r };
  }
  return { status: general?.status ?? 'none', record: general };
}

const keyOf = (r: Pick<ConsentRecord, 'channel' | 'purpose' | 'sender'>) =>
  `${r.channel}\u0000${r.purpose}\u0000${r.sender}`;

/**
 * The consent records of two contacts being merged into one: every scope either has; where both have one, the
 * most restrictive wins (an opt-out over an opt-in), else the later.
 */
export function mergeConsents(target: readonly ConsentRecord[], other: readonly ConsentRecord[]): ConsentRecord[] {
  const out = new Map<string, ConsentRecord>();
  for (const r of [...target, ...other]) {
    const k = keyOf(r);
    const had = out.get(k);
    if (!had) out.set(k, r);
    else if (had.status !== r.status) out.set(k, had.status === 'opted_out' ? had : r);
    else if (r.updatedAt > had.updatedAt) out.set(k, r);
  }
  return [...out.values()];
}

// ---------------------------------------------------------------------------------------------------------------
// Settings

export interface FrequencyCap {
  /** A channel, or `*`: the sends of every channel count together. */
  channel: Channel | typeof ANY;
  purpose: ConsentPurpose;
  max: number;
  windowHours: number;
  /** `defer`: hold the message until the window frees a slot; `suppress`: do not send it. */
  action: 'defer' | 'suppress';
}

/** The hours marketing may be sent in, in the recipient's local time (`end` exclusive; may cross midnight). */
export interface SendWindow {
  start: string;
  end: string;
}

export interface ComplianceSettings {
  /** The answer to HELP/INFO. */
  helpText: string;
  /** The confirmation sent after an opt-out keyword. */
  optOutText: string;
  /** The confirmation sent after an opt-in keyword. */
  optInText: string;
  /** When marketing may be sent (outside it is quiet); null: any time. */
  quietHours: SendWindow | null;
  /** The zone of a recipient whose own is not known (no contact zone, no phone number). */
  defaultTimeZone: string;
  /** Whether marketing needs an explicit opt-in (GDPR style) or only the absence of an opt-out (default). */
  marketingRequiresOptIn: boolean;
  frequencyCaps: FrequencyCap[];
}

export const DEFAULT_COMPLIANCE_SETTINGS: ComplianceSettings = {
  helpText: 'Reply STOP to unsubscribe, START to subscribe again. Msg&data rates may apply.',
  optOutText: 'You are unsubscribed and will receive no further messages from this number. Reply START to resubscribe.',
  optInText: 'You are subscribed again. Reply STOP to unsubscribe, HELP for help.',
  quietHours: { start: '08:00', end: '21:00' },
  defaultTimeZone: 'UTC',
  marketingRequiresOptIn: false,
  frequencyCaps: [],
};

const CLOCK_TIME = /^([01]\d|2[0-3]):([0-5]\d)$/;

/** Minutes after midnight of `HH:MM` (`24:00` allowed when `allowEndOfDay`), or null when malformed. */
export function parseClockTime(value: string, allowEndOfDay = false): number | null {
  if (allowEndOfDay && value === '24:00') return 24 * 60;
  const m = CLOCK_TIME.exec(value);
  return m ? Number(m[1]) * 60 + Number(m[2]) : null;
}

// ---------------------------------------------------------------------------------------------------------------
// Quiet hours

function localMinutes(dt: DateTime): number {
  return dt.hour * 60 + dt.minute;
}

/**
 * The first instant, at or after the start of local day `day`, whose local time is at least `minutes`. Usually
 * that wall time on that day; when the wall time does not exist (the hour skipped when clocks go forward) it is
 * the moment the clocks jump, the first instant whose local time is past it.
 */
function atLocalTime(day: DateTime, minutes: number): DateTime {
  const wanted = day.set({ hour: Math.floor(minutes / 60), minute: minutes % 60, second: 0, millisecond: 0 });
  if (localMinutes(wanted) === minutes && wanted.hasSame(day, 'day')) {
    // A wall time that happens twice (clocks going back): luxon may pick the second; the first comes earlier.
    for (const shift of [60, 30]) {
      const earlier = wanted.minus({ minutes: shift });
      if (localMinutes(earlier) === minutes && earlier.hasSame(day, 'day')) return earlier;
    }
    return wanted;
  }
  // In a gap luxon moves the time forward by the gap's length: step back to the jump, a minute at a time.
  let t = wanted;
  for (let i = 0; i < 24 * 60; i++) {
    const before = t.minus({ minutes: 1 });
    if (!before.hasSame(day, 'day') || localMinutes(before) < minutes) break;
    t = before;
  }
  return t.set({ second: 0, millisecond: 0 });
}

/**
 * The first moment at or after `at` inside the send window, in `zone`: `at` itself when inside. The window is
 * `[start, end)` in local wall time and may cross midnight (`22:00`–`06:00`). Days are local calendar days, so a
 * deferral across a DST change lands on the window's local start time, not 24 hours later.
 */
export function nextAllowedTime(at: number, zone: string, window: SendWindow): number {
  const start = parseClockTime(window.start);
  const end = parseClockTime(window.end, true);
  if (start === null || end === null) throw new Error(`invalid send window ${window.start}-${window.end}`);
  if (start === end) return at;
  const now = DateTime.fromMillis(at, { zone });
  const m = localMinutes(now);
  const day = now.startOf('day');
  if (start < end) {
    if (m >= start && m < end) return at;
    const next = m < start ? atLocalTime(day, start) : atLocalTime(day.plus({ days: 1 }), start);
    return Math.max(at, next.toMillis());
  }
  // Crossing midnight: allowed from `start` to midnight and from midnight to `end`.
  if (m >= start || m < end) return at;
  return Math.max(at, atLocalTime(day, start).toMillis());
}

// ---------------------------------------------------------------------------------------------------------------
// Frequency caps

export interface PastSend {
  channel: Channel;
  purpose: ConsentPurpose;
  at: number;
}

function capApplies(cap: FrequencyCap, s: { channel: Channel; purpose: ConsentPurpose }): boolean {
  return cap.purpose === s.purpose && (cap.channel === ANY || cap.channel === s.channel);
}

/**
 * When a cap lets one more send through at or after `at`: `at` when the rolling window `(t - window, t]` holds
 * fewer than `max` counted sends, else the moment enough of them have aged out of it.
 */
export function capReleaseTime(cap: FrequencyCap, sends: readonly PastSend[], at: number): number {
  const windowMs = cap.windowHours * 3_600_000;
  const times = sends
    .filter((s) => capApplies(cap, s) && s.at > at - windowMs && s.at <= at)
    .map((s) => s.at)
    .sort((a, b) => a - b);
  if (times.length < cap.max) return at;
  return (times[times.length - cap.max] as number) + windowMs;
}

// ---------------------------------------------------------------------------------------------------------------
// The decision

export type SendCheck =
  | { kind: 'allow' }
  | { kind: 'suppress'; reason: string; code: string }
  | { kind: 'defer'; until: number; reason: string };

export interface SendFacts extends SendScope {
  consents: readonly ConsentRecord[];
  settings: ComplianceSettings;
  /** The recipient's zone (the contact's, the phone number's, else the settings' default). */
  timeZone: string;
  /** The recipient's recent sends (at least those inside the longest cap window). */
  sends: readonly PastSend[];
  at: number;
}

function describeConsent(r: ConsentRecord): string {
  const what = r.channel === ANY ? 'every channel' : r.channel;
  const from = r.sender === ANY ? '' : ` from ${r.sender}`;
  const purpose = r.purpose === ANY ? '' : ` ${r.purpose}`;
  return `the recipient opted out of${purpose} ${what}${from} (${r.source}, ${new Date(r.updatedAt).toISOString()})`;
}

/**
 * Whether a send may go now: opted out → suppress; marketing without the opt-in the tenant requires → suppress;
 * a `suppress` cap reached → suppress; else the first moment that is both inside marketing's send window and
 * under every `defer` cap (deferral, never a drop) — `allow` when that is now.
 */
export function decideSend(f: SendFacts): SendCheck {
  const consent = effectiveConsent(f.consents, f);
  if (consent.status === 'opted_out' && consent.record) {
    return { kind: 'suppress', code: 'opted_out', reason: describeConsent(consent.record) };
  }
  if (f.purpose === 'marketing' && f.settings.marketingRequiresOptIn && consent.status !== 'opted_in') {
    return {
      kind: 'suppress',
      code: 'consent_missing',
      reason: `marketing on ${f.channel} needs the recipient's opt-in, and there is none`,
    };
  }
  const caps = f.settings.frequencyCaps.filter((c) => capApplies(c, f));
  for (const cap of caps) {
    if (cap.action === 'suppress' && capReleaseTime(cap, f.sends, f.at) > f.at) {
      return {
        kind: 'suppress',
        code: 'frequency_cap',
        reason: `at most ${cap.max} ${cap.purpose} messages per ${cap.windowHours} h on ${cap.channel === ANY ? 'all channels' : cap.channel}`,
      };
    }
  }
  const deferring = caps.filter((c) => c.action === 'defer');
  const window = f.purpose === 'marketing' ? f.settings.quietHours : null;
  let t = f.at;
  const reasons = new Set<string>();
  // Each constraint only ever moves `t` later, so this settles quickly; the bound guards against a cycle.
  for (let i = 0; i < 16; i++) {
    let next = t;
    if (window) {
      const w = nextAllowedTime(next, f.timeZone, window);
      if (w > next) reasons.add('quiet_hours');
      next = w;
    }
    for (const cap of deferring) {
      const c = capReleaseTime(cap, f.sends, next);
      if (c > next) reasons.add('frequency_cap');
      next = c;
    }
    if (next === t) break;
    t = next;
  }
  if (t === f.at) return { kind: 'allow' };
  return { kind: 'defer', until: t, reason: [...reasons].join(',') };
}
