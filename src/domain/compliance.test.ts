import fc from 'fast-check';
import { DateTime } from 'luxon';
import { describe, expect, it } from 'vitest';
import {
  ANY,
  type ComplianceSettings,
  type ConsentRecord,
  capReleaseTime,
  classifyKeyword,
  DEFAULT_COMPLIANCE_SETTINGS,
  decideSend,
  effectiveConsent,
  type FrequencyCap,
  keywordChannels,
  mergeConsents,
  nextAllowedTime,
  type PastSend,
  parseClockTime,
  type SendFacts,
} from './compliance.ts';

const HOUR = 3_600_000;
const NY = 'America/New_York';
const iso = (t: number) => new Date(t).toISOString();
const local = (s: string, zone: string) => DateTime.fromISO(s, { zone }).toMillis();

describe('classifyKeyword', () => {
  it.each([
    ['STOP', 'opt_out'],
    ['stop', 'opt_out'],
    ['  Stop \n', 'opt_out'],
    ['\tUNSUBSCRIBE', 'opt_out'],
    ['cancel', 'opt_out'],
    ['End', 'opt_out'],
    ['quit', 'opt_out'],
    ['STOPALL', 'opt_out'],
    ['stop all', 'opt_out'],
    ['START', 'opt_in'],
    ['unstop', 'opt_in'],
    ['Un Stop', 'opt_in'],
    ['HELP', 'help'],
    [' info ', 'help'],
    ['Stop.', 'opt_out'],
    ['STOP!', 'opt_out'],
    ['ＳＴＯＰ', 'opt_out'], // full-width letters
    ['\u200BSTOP', 'opt_out'], // zero-width space
  ])('%j is %s', (text, kind) => {
    expect(classifyKeyword(text)?.kind).toBe(kind);
  });

  it.each([
    'stop sending me these',
    'please stop',
    'STOPP',
    'YES',
    '',
    '   ',
    'HELP ME',
    'information',
    'start now',
    'S.T.O.P',
    'STOP?',
  ])('%j is not a keyword (only the whole message counts)', (text) => {
    expect(classifyKeyword(text)).toBeNull();
  });

  it('tells STOPALL (every sender and channel) from STOP (this sender)', () => {
    expect(classifyKeyword('STOPALL')).toEqual({ kind: 'opt_out', scope: 'all', keyword: 'STOPALL' });
    expect(classifyKeyword('stop')).toEqual({ kind: 'opt_out', scope: 'sender', keyword: 'STOP' });
  });

  it('ignores case and whitespace anywhere, for any mix', () => {
    fc.assert(
      fc.property(
        fc.constantFrom('STOP', 'START', 'HELP', 'UNSUBSCRIBE', 'STOPALL'),
        fc.array(fc.boolean(), { minLength: 12, maxLength: 12 }),
        fc.array(fc.constantFrom('', ' ', '\t', '\n', '\u00A0'), { minLength: 13, maxLength: 13 }),
        (word, upper, spaces) => {
          let text = spaces[0] as string;
          [...word].forEach((ch, i) => {
            text += (upper[i] ? ch : ch.toLowerCase()) + (spaces[i + 1] as string);
          });
          expect(classifyKeyword(text)?.keyword).toBe(word);
        },
      ),
    );
  });

  it('treats SMS and MMS as one channel for keywords', () => {
    expect(keywordChannels('sms')).toEqual(['sms', 'mms']);
    expect(keywordChannels('mms')).toEqual(['sms', 'mms']);
    expect(keywordChannels('whatsapp')).toEqual(['whatsapp']);
  });
});

function rec(over: Partial<ConsentRecord>): ConsentRecord {
  return { channel: 'sms', purpose: ANY, sender: ANY, status: 'opted_out', source: 'api', updatedAt: 1000, ...over };
}

describe('effectiveConsent', () => {
  const N = '+12025550100';
  const M = '+12025550111';

  it('is none without records, and the latest covering record wins', () => {
    expect(effectiveConsent([], { channel: 'sms', purpose: 'marketing', sender: N }).status).toBe('none');
    const records = [
      rec({ purpose: 'marketing', status: 'opted_in', updatedAt: 1 }),
      rec({ purpose: 'marketing', status: 'opted_out', updatedAt: 2 }),
    ];
    expect(effectiveConsent(records, { channel: 'sms', purpose: 'marketing', sender: N }).status).toBe('opted_out');
    expect(effectiveConsent(records, { channel: 'sms', purpose: 'transactional', sender: N }).status).toBe('none');
    expect(effectiveConsent(records, { channel: 'email', purpose: 'marketing', sender: null }).status).toBe('none');
  });

  it('scopes a STOP to its sender: other numbers may still send', () => {
    const stop = [rec({ sender: N, source: 'inbound_keyword' })];
    expect(effectiveConsent(stop, { channel: 'sms', purpose: 'transactional', sender: N }).status).toBe('opted_out');
    expect(effectiveConsent(stop, { channel: 'sms', purpose: 'marketing', sender: N }).status).toBe('opted_out');
    expect(effectiveConsent(stop, { channel: 'sms', purpose: 'marketing', sender: M }).status).toBe('none');
    // An unknown sender could be N: suppressed.
    expect(effectiveConsent(stop, { channel: 'sms', purpose: 'marketing', sender: null }).status).toBe('opted_out');
  });

  it('lets a later START on one number reopen that number only after a STOPALL', () => {
    const records = [
      rec({ channel: ANY, sender: ANY, updatedAt: 1 }),
      rec({ channel: 'sms', sender: N, status: 'opted_in', updatedAt: 2 }),
    ];
    expect(effectiveConsent(records, { channel: 'sms', purpose: 'marketing', sender: N }).status).toBe('opted_in');
    expect(effectiveConsent(records, { channel: 'sms', purpose: 'marketing', sender: M }).status).toBe('opted_out');
    expect(effectiveConsent(records, { channel: 'email', purpose: 'transactional', sender: null }).status).toBe(
      'opted_out',
    );
  });

  it('prefers the opt-out on a tie', () => {
    const records = [rec({ status: 'opted_in', updatedAt: 5 }), rec({ status: 'opted_out', updatedAt: 5 })];
    expect(effectiveConsent(records, { channel: 'sms', purpose: 'marketing', sender: null }).status).toBe('opted_out');
    expect(effectiveConsent([...records].reverse(), { channel: 'sms', purpose: 'marketing', sender: N }).status).toBe(
      'opted_out',
    );
  });
});

describe('mergeConsents', () => {
  it('keeps every scope and the most restrictive status where both have one', () => {
    const a = [
      rec({ purpose: 'marketing', status: 'opted_in', updatedAt: 9 }),
      rec({ channel: 'email', status: 'opted_in' }),
    ];
    const b = [rec({ purpose: 'marketing', status: 'opted_out', updatedAt: 1 }), rec({ channel: 'push' })];
    const merged = mergeConsents(a, b);
    expect(merged).toHaveLength(3);
    expect(merged.find((r) => r.channel === 'sms')?.status).toBe('opted_out');
    expect(merged.find((r) => r.channel === 'email')?.status).toBe('opted_in');
    expect(merged.find((r) => r.channel === 'push')?.status).toBe('opted_out');
  });
});

describe('parseClockTime', () => {
  it('reads HH:MM and refuses anything else', () => {
    expect(parseClockTime('08:00')).toBe(480);
    expect(parseClockTime('23:59')).toBe(1439);
    expect(parseClockTime('24:00')).toBeNull();
    expect(parseClockTime('24:00', true)).toBe(1440);
    expect(parseClockTime('8:00')).toBeNull();
    expect(parseClockTime('08:60')).toBeNull();
  });
});

describe('nextAllowedTime', () => {
  const day = { start: '08:00', end: '21:00' };

  it('allows inside the window and defers before it to today, after it to tomorrow', () => {
    const inside = local('2026-06-10T12:00', NY);
    expect(nextAllowedTime(inside, NY, day)).toBe(inside);
    expect(nextAllowedTime(local('2026-06-10T08:00', NY), NY, day)).toBe(local('2026-06-10T08:00', NY));
    expect(iso(nextAllowedTime(local('2026-06-10T06:15', NY), NY, day))).toBe(iso(local('2026-06-10T08:00', NY)));
    // 21:00 is already quiet (end is exclusive).
    expect(iso(nextAllowedTime(local('2026-06-10T21:00', NY), NY, day))).toBe(iso(local('2026-06-11T08:00', NY)));
    expect(iso(nextAllowedTime(local('2026-06-10T23:30', NY), NY, day))).toBe(iso(local('2026-06-11T08:00', NY)));
  });

  it("uses the recipient's zone: the same instant is quiet in one place and allowed in another", () => {
    const t = Date.UTC(2026, 5, 10, 3, 0); // 23:00 in New York, 05:00 in Paris, 12:00 in Tokyo
    expect(nextAllowedTime(t, 'Asia/Tokyo', day)).toBe(t);
    expect(iso(nextAllowedTime(t, 'Europe/Paris', day))).toBe('2026-06-10T06:00:00.000Z');
    expect(iso(nextAllowedTime(t, NY, day))).toBe('2026-06-10T12:00:00.000Z');
  });

  it('handles a window crossing midnight', () => {
    const night = { start: '22:00', end: '06:00' };
    expect(nextAllowedTime(local('2026-06-10T23:00', NY), NY, night)).toBe(local('2026-06-10T23:00', NY));
    expect(nextAllowedTime(local('2026-06-11T05:59', NY), NY, night)).toBe(local('2026-06-11T05:59', NY));
    expect(iso(nextAllowedTime(local('2026-06-11T06:00', NY), NY, night))).toBe(iso(local('2026-06-11T22:00', NY)));
    expect(iso(nextAllowedTime(local('2026-06-11T12:00', NY), NY, night))).toBe(iso(local('2026-06-11T22:00', NY)));
  });

  it('lands on the local start time across a DST change, not 24 hours later', () => {
    // The night clocks go forward in New York (2026-03-08 02:00 → 03:00): 22:00 EST → 08:00 EDT is 9 hours.
    const evening = local('2026-03-07T22:00', NY);
    const next = nextAllowedTime(evening, NY, day);
    expect(DateTime.fromMillis(next, { zone: NY }).toFormat('yyyy-MM-dd HH:mm ZZ')).toBe('2026-03-08 08:00 -04:00');
    expect(next - evening).toBe(9 * HOUR);
    // Clocks going back (2026-11-01 02:00 → 01:00): 22:00 EDT → 08:00 EST is 11 hours.
    const autumn = local('2026-10-31T22:00', NY);
    expect(nextAllowedTime(autumn, NY, day) - autumn).toBe(11 * HOUR);
    // Europe changes on another date: the last Sunday of March.
    const paris = local('2026-03-28T23:00', 'Europe/Paris');
    expect(iso(nextAllowedTime(paris, 'Europe/Paris', day))).toBe('2026-03-29T06:00:00.000Z');
  });

  it('starts at the jump when the start time does not exist that day', () => {
    const w = { start: '02:30', end: '05:00' };
    // 2026-03-08 02:30 does not exist in New York; the first instant at or after it is 03:00 EDT.
    expect(iso(nextAllowedTime(local('2026-03-08T00:00', NY), NY, w))).toBe('2026-03-08T07:00:00.000Z');
  });

  it('takes the first of a wall time that happens twice', () => {
    const w = { start: '01:30', end: '05:00' };
    // 2026-11-01 01:30 happens at 05:30Z (EDT) and at 06:30Z (EST).
    expect(iso(nextAllowedTime(local('2026-11-01T00:00', NY), NY, w))).toBe('2026-11-01T05:30:00.000Z');
  });

  it('never answers a moment outside the window or before the input (property)', () => {
    const zones = [NY, 'Europe/London', 'Australia/Lord_Howe', 'Asia/Kolkata', 'America/Santiago', 'Pacific/Apia'];
    const hhmm = fc
      .tuple(fc.integer({ min: 0, max: 23 }), fc.integer({ min: 0, max: 59 }))
      .map(([h, m]) => `${String(h).padStart(2, '0')}:${String(m).padStart(2, '0')}`);
    fc.assert(
      fc.property(
        fc.integer({ min: Date.UTC(2025, 0, 1), max: Date.UTC(2028, 0, 1) }),
        fc.constantFrom(...zones),
        hhmm,
        hhmm,
        (at, zone, start, end) => {
          fc.pre(start !== end);
          const next = nextAllowedTime(at, zone, { start, end });
          expect(next).toBeGreaterThanOrEqual(at);
          expect(next - at).toBeLessThanOrEqual(26 * HOUR);
          const dt = DateTime.fromMillis(next, { zone });
          const m = dt.hour * 60 + dt.minute;
          const s = parseClockTime(start) as number;
          const e = parseClockTime(end) as number;
          const inside = s < e ? m >= s && m < e : m >= s || m < e;
          expect(inside).toBe(true);
          // Nothing earlier (a minute before) was allowed, unless `at` itself was.
          if (next > at) {
            const before = DateTime.fromMillis(next - 60_000, { zone });
            const mb = before.hour * 60 + before.minute;
            const insideBefore = s < e ? mb >= s && mb < e : mb >= s || mb < e;
            expect(insideBefore && next - 60_000 >= at).toBe(false);
          }
        },
      ),
      { numRuns: 500 },
    );
  });
});

describe('capReleaseTime', () => {
  const cap: FrequencyCap = { channel: 'sms', purpose: 'marketing', max: 2, windowHours: 24, action: 'defer' };
  const send = (at: number, over: Partial<PastSend> = {}): PastSend => ({
    channel: 'sms',
    purpose: 'marketing',
    at,
    ...over,
  });
  const t = Date.UTC(2026, 5, 10, 12);

  it('lets a send through under the cap', () => {
    expect(capReleaseTime(cap, [], t)).toBe(t);
    expect(capReleaseTime(cap, [send(t - HOUR)], t)).toBe(t);
  });

  it('answers when the rolling window frees a slot once the cap is reached', () => {
    const sends = [send(t - 20 * HOUR), send(t - 5 * HOUR), send(t - HOUR)];
    // Three in the window, two allowed: the slot frees when the second oldest ages out.
    expect(capReleaseTime(cap, sends, t)).toBe(t - 5 * HOUR + 24 * HOUR);
    expect(capReleaseTime(cap, [send(t - 20 * HOUR), send(t - HOUR)], t)).toBe(t + 4 * HOUR);
  });

  it('counts only the sends the cap is about', () => {
    const other = [
      send(t - HOUR, { channel: 'email' }),
      send(t - HOUR, { purpose: 'transactional' }),
      send(t - 25 * HOUR),
    ];
    expect(capReleaseTime(cap, other, t)).toBe(t);
    const all: FrequencyCap = { ...cap, channel: ANY };
    expect(capReleaseTime(all, [send(t - HOUR, { channel: 'email' }), send(t - 2 * HOUR)], t)).toBe(t + 22 * HOUR);
  });
});

describe('decideSend', () => {
  const settings: ComplianceSettings = { ...DEFAULT_COMPLIANCE_SETTINGS };
  const noon = local('2026-06-10T12:00', NY);
  const facts = (over: Partial<SendFacts> = {}): SendFacts => ({
    channel: 'sms',
    purpose: 'marketing',
    sender: '+12025550100',
    consents: [],
    settings,
    timeZone: NY,
    sends: [],
    at: noon,
    ...over,
  });

  it('allows a marketing send in the window with no opt-out', () => {
    expect(decideSend(facts())).toEqual({ kind: 'allow' });
  });

  it('suppresses an opted-out recipient with the reason, transactional or not, at any hour', () => {
    const consents = [rec({ sender: '+12025550100', source: 'inbound_keyword', updatedAt: Date.UTC(2026, 0, 2) })];
    const d = decideSend(facts({ consents, purpose: 'transactional', at: local('2026-06-10T03:00', NY) }));
    expect(d).toEqual({
      kind: 'suppress',
      code: 'opted_out',
      reason: 'the recipient opted out of sms from +12025550100 (inbound_keyword, 2026-01-02T00:00:00.000Z)',
    });
  });

  it('needs an opt-in for marketing only when the tenant says so', () => {
    const strict = { ...settings, marketingRequiresOptIn: true };
    expect(decideSend(facts({ settings: strict }))).toMatchObject({ kind: 'suppress', code: 'consent_missing' });
    expect(decideSend(facts({ settings: strict, purpose: 'transactional' }))).toEqual({ kind: 'allow' });
    const optedIn = [rec({ purpose: 'marketing', status: 'opted_in' })];
    expect(decideSend(facts({ settings: strict, consents: optedIn }))).toEqual({ kind: 'allow' });
  });

  it('defers marketing in quiet hours to the window start, and lets transactional through', () => {
    const night = local('2026-06-10T22:30', NY);
    expect(decideSend(facts({ at: night }))).toEqual({
      kind: 'defer',
      until: local('2026-06-11T08:00', NY),
      reason: 'quiet_hours',
    });
    expect(decideSend(facts({ at: night, purpose: 'transactional' }))).toEqual({ kind: 'allow' });
    expect(decideSend(facts({ at: night, settings: { ...settings, quietHours: null } }))).toEqual({ kind: 'allow' });
  });

  it('defers to when a cap frees a slot, or suppresses, as the cap says', () => {
    const cap: FrequencyCap = { channel: 'sms', purpose: 'marketing', max: 1, windowHours: 2, action: 'defer' };
    const sends: PastSend[] = [{ channel: 'sms', purpose: 'marketing', at: noon - HOUR }];
    expect(decideSend(facts({ settings: { ...settings, frequencyCaps: [cap] }, sends }))).toEqual({
      kind: 'defer',
      until: noon + HOUR,
      reason: 'frequency_cap',
    });
    const suppressing = { ...cap, action: 'suppress' as const };
    expect(decideSend(facts({ settings: { ...settings, frequencyCaps: [suppressing] }, sends }))).toMatchObject({
      kind: 'suppress',
      code: 'frequency_cap',
    });
    expect(decideSend(facts({ settings: { ...settings, frequencyCaps: [cap] }, sends, channel: 'email' }))).toEqual({
      kind: 'allow',
    });
  });

  it('defers to a moment that satisfies both the window and the caps', () => {
    // A slot frees at 21:30, which is quiet: the answer is 08:00 the next day.
    const cap: FrequencyCap = { channel: ANY, purpose: 'marketing', max: 1, windowHours: 24, action: 'defer' };
    const at = local('2026-06-10T20:00', NY);
    const sends: PastSend[] = [{ channel: 'email', purpose: 'marketing', at: local('2026-06-09T21:30', NY) }];
    expect(decideSend(facts({ at, sends, settings: { ...settings, frequencyCaps: [cap] } }))).toEqual({
      kind: 'defer',
      until: local('2026-06-11T08:00', NY),
      reason: 'frequency_cap,quiet_hours',
    });
  });
});
