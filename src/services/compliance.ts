/**
 * Compliance over the store: the tenant's settings (help text, quiet hours, frequency caps, ...), inbound keywords
 * (STOP/START/HELP: the consent change is recorded with its evidence and the reply to send is returned), and the
 * decision for each outbound send (suppress an opted-out recipient, defer marketing out of quiet hours or over a
 * cap, never drop). It is also the pipeline's `SendPolicy`: `decide` judges a claimed batch at once (one query
 * per kind of fact, not per message), `sent` counts sends for the caps.
 *
 * Caps count sends per contact (messages to an address no contact holds count per channel and address). They
 * count what was handed to a carrier; a batch accounts for its own messages as it decides them, but workers
 * deciding at the same moment for the same recipient may each let one through (at most one over per worker).
 */
import { ADDRESS_KIND, type Channel } from '../domain/channels.ts';
import {
  ANY,
  type ComplianceSettings,
  type ConsentPurpose,
  classifyKeyword,
  DEFAULT_COMPLIANCE_SETTINGS,
  decideSend,
  type FrequencyCap,
  keywordChannels,
  type PastSend,
  parseClockTime,
  type SendCheck,
} from '../domain/compliance.ts';
import { isValidTimeZone, timeZoneForPhone } from '../domain/contact-timezone.ts';
import { ValidationError } from '../domain/errors.ts';
import type { Clock } from '../ports/clock.ts';
import type { ConsentChange, ContactRecord, ContactStore, SendCount } from '../ports/contact-store.ts';
import type { MessageRecord } from '../ports/store.ts';
import type { ConsentService } from './consent.ts';
import { type Contacts, canonicalAddress, kindsForChannel } from './contacts.ts';
import type { SendDecision, SendPolicy } from './send-policy.ts';

/** Caps may look back at most this far; counted sends older than that are pruned. */
export const MAX_CAP_WINDOW_HOURS = 31 * 24;
const HOUR = 3_600_000;

export interface InboundMessage {
  orgId: string;
  channel: Channel;
  /** The person's address. */
  from: string;
  /** Our sender identity the message was sent to. */
  to: string;
  body: string;
  at: number;
}

export type InboundOutcome =
  | { action: 'none' }
  | { action: 'help'; keyword: string; replyBody: string }
  | {
      action: 'opt_out' | 'opt_in';
      keyword: string;
      /** `sender`: that channel and number; `all`: every channel and sender (STOPALL). */
      scope: 'sender' | 'all';
      contactId: string;
      replyBody: string;
    };

export interface SendRequest {
  orgId: string;
  contactId?: string | null;
  channel: Channel;
  to: string;
  /** Our sender identity, when already chosen. */
  from: string | null;
  purpose: ConsentPurpose;
  at: number;
}

export type SettingsInput = Partial<ComplianceSettings>;

function checkSettings(s: ComplianceSettings): ComplianceSettings {
  if (s.quietHours) {
    if (parseClockTime(s.quietHours.start) === null)
      throw new ValidationError('invalid_time', "'quietHours.start' must be HH:MM (00:00 to 23:59)", {
        field: 'quietHours.start',
      });
    if (parseClockTime(s.quietHours.end, true) === null)
      throw new ValidationError('invalid_time', "'quietHours.end' must be HH:MM (00:00 to 24:00)", {
        field: 'quietHours.end',
      });
    if (s.quietHours.start === s.quietHours.end)
      throw new ValidationError(
        'invalid_value',
        "'quietHours' start and end must differ (use null for no quiet hours)",
        {
          field: 'quietHours.end',
        },
      );
  }
  if (!isValidTimeZone(s.defaultTimeZone))
    throw new ValidationError('invalid_time_zone', `'${s.defaultTimeZone}' is not an IANA time zone`, {
      field: 'defaultTimeZone',
    });
  const seen = new Set<string>();
  s.frequencyCaps.forEach((cap, i) => {
    if (cap.windowHours > MAX_CAP_WINDOW_HOURS)
      throw new ValidationError('invalid_value', `a cap window is at most ${MAX_CAP_WINDOW_HOURS} hours`, {
        field: `frequencyCaps[${i}].windowHours`,
      });
    const key = `${cap.channel}\u0000${cap.purpose}\u0000${cap.windowHours}`;
    if (seen.has(key))
      throw new ValidationError('duplicate_cap', 'two caps for the same channel, purpose and window', {
        field: `frequencyCaps[${i}]`,
      });
    seen.add(key);
  });
  return s;
}

const capKey = (c: Pick<FrequencyCap, 'channel' | 'purpose'>) => `${c.channel}\u0000${c.purpose}`;

/** Our own identity as carriers may write it (`whatsapp:+1…`). */
function senderIdentity(s: string): string {
  return s.trim().replace(/^(whatsapp|sms|tel):/i, '');
}

export class Compliance implements SendPolicy {
  /** Recipient keys worked out by `decide`, used by `sent` for the same messages. */
  private readonly keys = new Map<string, string>();

  constructor(
    private readonly store: ContactStore,
    private readonly contacts: Contacts,
    private readonly consent: ConsentService,
    private readonly clock: Clock,
  ) {}

  async getSettings(orgId: string): Promise<ComplianceSettings> {
    return (await this.store.getComplianceSettings(orgId)) ?? DEFAULT_COMPLIANCE_SETTINGS;
  }

  /** Changes the settings given; the others keep their value. */
  async saveSettings(orgId: string, input: SettingsInput): Promise<ComplianceSettings> {
    const current = await this.getSettings(orgId);
    const next = checkSettings({ ...current, ...input });
    await this.store.saveComplianceSettings(orgId, next, this.clock.now());
    return next;
  }

  /**
   * An inbound message: when it is a keyword, records the consent change (on that channel and our number; STOPALL
   * everywhere) with the message as evidence, and returns the reply to send. The reply is a compliance message:
   * send it even to a recipient who just opted out (it confirms the opt-out), outside `checkSend`.
   */
  async handleInbound(m: InboundMessage): Promise<InboundOutcome> {
    const keyword = classifyKeyword(m.body);
    if (!keyword) return { action: 'none' };
    const settings = await this.getSettings(m.orgId);
    if (keyword.kind === 'help') return { action: 'help', keyword: keyword.keyword, replyBody: settings.helpText };
    let contact: ContactRecord;
    try {
      contact = await this.contacts.findOrCreateByAddress(m.orgId, m.channel, m.from);
    } catch (err) {
      // An address no contact can hold (not a valid number) is one no message can be sent to either: nothing to do.
      if (err instanceof ValidationError) return { action: 'none' };
      throw err;
    }
    const sender = senderIdentity(m.to);
    const all = keyword.kind === 'opt_out' && keyword.scope === 'all';
    const status = keyword.kind === 'opt_out' ? 'opted_out' : 'opted_in';
    const evidence = { keyword: keyword.keyword, body: m.body, channel: m.channel, from: m.from, to: m.to };
    const scopes: { channel: Channel | typeof ANY; sender: string }[] = all
      ? [{ channel: ANY, sender: ANY }]
      : keywordChannels(m.channel).map((channel) => ({ channel, sender }));
    const changes: ConsentChange[] = scopes.map((s) => ({
      orgId: m.orgId,
      contactId: contact.id,
      channel: s.channel,
      purpose: ANY,
      sender: s.sender,
      status,
      source: 'inbound_keyword',
      evidence,
      at: m.at,
    }));
    // Whether the keyword changes anything: a STOP from someone already opted out is recorded but not answered,
    // so an automated handset answering STOP to every message cannot start an endless exchange of confirmations.
    const before = await this.checkSend({
      orgId: m.orgId,
      contactId: contact.id,
      channel: m.channel,
      to: m.from,
      from: m.to,
      purpose: 'transactional',
      at: m.at,
    });
    const wasOptedOut = before.kind === 'suppress' && before.code === 'opted_out';
    const changed = keyword.kind === 'opt_out' ? !wasOptedOut : wasOptedOut;
    await this.consent.recordChanges(changes);
    return {
      action: keyword.kind,
      keyword: keyword.keyword,
      scope: all ? 'all' : 'sender',
      contactId: contact.id,
      replyBody: changed ? (keyword.kind === 'opt_out' ? settings.optOutText : settings.optInText) : '',
    };
  }

  async checkSend(r: SendRequest): Promise<SendCheck> {
    const [d] = await this.checkSends([r]);
    return d as SendCheck;
  }

  /** Decisions for several sends, in order; sends allowed earlier in the list count against later ones' caps. */
  async checkSends(requests: readonly SendRequest[]): Promise<SendCheck[]> {
    const out: SendCheck[] = new Array(requests.length);
    const byOrg = new Map<string, number[]>();
    requests.forEach((r, i) => {
      const list = byOrg.get(r.orgId) ?? [];
      list.push(i);
      byOrg.set(r.orgId, list);
    });
    for (const [orgId, indexes] of byOrg) {
      const reqs = indexes.map((i) => requests[i] as SendRequest);
      const decisions = await this.decideForOrg(orgId, reqs);
      indexes.forEach((i, k) => {
        out[i] = decisions[k] as SendCheck;
      });
    }
    return out;
  }

  /** Counts sends for the caps configured for their channel and purpose. */
  async recordSends(requests: readonly SendRequest[]): Promise<void> {
    const counts: SendCount[] = [];
    const byOrg = new Map<string, SendRequest[]>();
    for (const r of requests) {
      const list = byOrg.get(r.orgId) ?? [];
      list.push(r);
      byOrg.set(r.orgId, list);
    }
    for (const [orgId, reqs] of byOrg) {
      const settings = await this.getSettings(orgId);
      const capped = reqs.filter((r) => settings.frequencyCaps.some((c) => capMatches(c, r)));
      if (capped.length === 0) continue;
      const keys = await this.recipientKeys(orgId, capped);
      capped.forEach((r, i) => {
        counts.push({ orgId, recipientKey: keys[i] as string, channel: r.channel, purpose: r.purpose, at: r.at });
      });
    }
    await this.store.recordSends(counts);
  }

  async recordSend(r: SendRequest): Promise<void> {
    await this.recordSends([r]);
  }

  /** Forgets counted sends no cap can look at any more; returns how many. */
  async pruneSends(): Promise<number> {
    return this.store.pruneSends(this.clock.now() - MAX_CAP_WINDOW_HOURS * HOUR);
  }

  // SendPolicy -------------------------------------------------------------------------------------------------

  async decide(messages: readonly MessageRecord[], now: number): Promise<Map<string, SendDecision>> {
    const judged = messages.filter(isJudged);
    const out = new Map<string, SendDecision>();
    if (judged.length === 0) return out;
    const checks = await this.checkSends(judged.map((m) => requestOf(m, now)));
    checks.forEach((c, i) => {
      if (c.kind !== 'allow') out.set((judged[i] as MessageRecord).id, c);
    });
    return out;
  }

  async sent(messages: readonly MessageRecord[], at: number): Promise<void> {
    const counted = messages.filter(isJudged);
    if (counted.length > 0) await this.recordSends(counted.map((m) => ({ ...requestOf(m, at), messageId: m.id })));
  }

  // -------------------------------------------------------------------------------------------------------------

  /** The contact (when any) of each request: by id (following merges), else by address. */
  private async contactsOf(orgId: string, reqs: readonly SendRequest[]): Promise<(ContactRecord | null)[]> {
    const byId = new Map<string, ContactRecord>();
    const ids = [...new Set(reqs.map((r) => r.contactId).filter((id): id is string => !!id))];
    let found = await this.store.getContacts(orgId, ids);
    for (let hop = 0; hop < 4 && found.length > 0; hop++) {
      for (const c of found) byId.set(c.id, c);
      const next = found.map((c) => c.mergedInto).filter((id): id is string => !!id && !byId.has(id));
      found = await this.store.getContacts(orgId, next);
    }
    const follow = (id: string): ContactRecord | null => {
      let c = byId.get(id);
      for (let hop = 0; c?.mergedInto && hop < 4; hop++) c = byId.get(c.mergedInto);
      return c && !c.mergedInto ? c : null;
    };
    const lookups = reqs
      .filter((r) => !r.contactId)
      .flatMap((r) => kindsForChannel(r.channel).map((kind) => ({ kind, value: canonicalAddress(r.channel, r.to) })));
    const byAddress = await this.store.findContacts(orgId, { identifiers: lookups });
    return reqs.map((r) => {
      if (r.contactId) return follow(r.contactId);
      const value = canonicalAddress(r.channel, r.to);
      for (const kind of kindsForChannel(r.channel)) {
        const c = byAddress.find((x) => x.identifiers.some((i) => i.kind === kind && i.value === value));
        if (c) return c;
      }
      return null;
    });
  }

  private async recipientKeys(
    orgId: string,
    reqs: readonly (SendRequest & { messageId?: string })[],
  ): Promise<string[]> {
    const missing = reqs.filter((r) => !(r.messageId && this.keys.has(r.messageId)));
    const contacts = missing.length > 0 ? await this.contactsOf(orgId, missing) : [];
    const resolved = new Map(missing.map((r, i) => [r, keyFor(r, contacts[i] ?? null)]));
    return reqs.map((r) => {
      const key = resolved.get(r) ?? (this.keys.get(r.messageId as string) as string);
      if (r.messageId) this.keys.delete(r.messageId);
      return key;
    });
  }

  private async decideForOrg(
    orgId: string,
    reqs: readonly (SendRequest & { messageId?: string })[],
  ): Promise<SendCheck[]> {
    const settings = await this.getSettings(orgId);
    const contacts = await this.contactsOf(orgId, reqs);
    const contactIds = [...new Set(contacts.filter((c): c is ContactRecord => !!c).map((c) => c.id))];
    const consents = await this.store.getConsents(orgId, contactIds);
    const keys = reqs.map((r, i) => keyFor(r, contacts[i] ?? null));
    const longest = Math.max(0, ...settings.frequencyCaps.map((c) => c.windowHours));
    const sends = new Map<string, PastSend[]>();
    if (longest > 0) {
      const earliest = Math.min(...reqs.map((r) => r.at)) - longest * HOUR;
      for (const s of await this.store.recentSends(orgId, [...new Set(keys)], earliest)) {
        sends.set(s.recipientKey, [...(sends.get(s.recipientKey) ?? []), s]);
      }
    }
    const capped = new Set(settings.frequencyCaps.map(capKey));
    if (this.keys.size > 100_000) this.keys.clear();
    return reqs.map((r, i) => {
      const contact = contacts[i] ?? null;
      const key = keys[i] as string;
      const decision = decideSend({
        channel: r.channel,
        purpose: r.purpose,
        sender: r.from === null ? null : senderIdentity(r.from),
        consents: contact ? consents.filter((c) => c.contactId === contact.id) : [],
        settings,
        // Only marketing meets the send window: a transactional message needs no zone (deriving one costs).
        timeZone:
          r.purpose === 'marketing' && settings.quietHours ? zoneOf(r, contact, settings) : settings.defaultTimeZone,
        sends: sends.get(key) ?? [],
        at: r.at,
      });
      // An allowed send counts against the caps of the ones after it in this batch; `sent` will count it for good.
      if (
        decision.kind === 'allow' &&
        (capped.has(capKey(r)) || capped.has(capKey({ channel: ANY, purpose: r.purpose })))
      ) {
        sends.set(key, [...(sends.get(key) ?? []), { channel: r.channel, purpose: r.purpose, at: r.at }]);
        if (r.messageId) this.keys.set(r.messageId, key);
      }
      return decision;
    });
  }
}

function capMatches(cap: FrequencyCap, r: Pick<SendRequest, 'channel' | 'purpose'>): boolean {
  return cap.purpose === r.purpose && (cap.channel === ANY || cap.channel === r.channel);
}

function keyFor(r: SendRequest, contact: ContactRecord | null): string {
  return contact ? contact.id : `${r.channel}:${canonicalAddress(r.channel, r.to)}`;
}

function zoneOf(r: SendRequest, contact: ContactRecord | null, settings: ComplianceSettings): string {
  if (contact?.timeZone) return contact.timeZone;
  if (ADDRESS_KIND[r.channel] === 'phone') {
    const z = timeZoneForPhone(canonicalAddress(r.channel, r.to));
    if (z) return z;
  }
  return settings.defaultTimeZone;
}

/** The product's own keyword answers (purpose `compliance`: a STOP is confirmed) are neither held back nor counted. */
function isJudged(m: MessageRecord): boolean {
  return m.purpose !== 'compliance';
}

function requestOf(m: MessageRecord, at: number): SendRequest & { messageId: string } {
  return {
    messageId: m.id,
    orgId: m.orgId,
    contactId: m.contactId,
    channel: m.channel,
    to: m.to,
    from: m.from,
    purpose: m.purpose === 'marketing' ? 'marketing' : 'transactional',
    at,
  };
}
