/**
 * Contacts: the people messages go to. Identifiers per channel (phone numbers, emails, WhatsApp ids, push
 * subscriptions) and an external id, each unique in the organization; attributes (JSON), tags, persona, time zone
 * (derived from the first phone number unless given) and language.
 *
 * - `create` refuses an identifier or external id another contact holds (409).
 * - `upsert` finds the one contact holding the external id or any given identifier and updates it (identifiers
 *   are added to its own, attributes merged), or creates one; identifiers of two different contacts are a 409
 *   `contact_ambiguous` (merge them first).
 * - `merge` folds another contact into a target: identifiers, attributes (the target's win), consents (the most
 *   restrictive wins), events and consent history follow; the other stays as a pointer (reads of it answer the
 *   target).
 * - `erase` removes personal data and keeps an anonymous tombstone (see the store).
 * Writes are optimistic (versioned) and retried when a concurrent write got there first.
 */
import { ADDRESS_KIND, type Channel, isValidE164, validateRecipient } from '../domain/channels.ts';
import { mergeConsents } from '../domain/compliance.ts';
import { isValidTimeZone, timeZoneForPhone } from '../domain/contact-timezone.ts';
import { ConflictError, NotFoundError, ValidationError } from '../domain/errors.ts';
import { newId } from '../domain/ids.ts';
import type { Clock } from '../ports/clock.ts';
import type {
  BusinessEvent,
  ConsentAuditEntry,
  ContactIdentifier,
  ContactRecord,
  ContactStore,
  ContactWriteResult,
  IdentifierKind,
  StoredConsent,
} from '../ports/contact-store.ts';

// newId's ULID under the contact prefix (ids.ts lists the prefixes of the core entities).
export const newContactId = (): string => `ctc_${newId('evt').slice(4)}`;

export interface PushSubscriptionInput {
  endpoint: string;
  keys: { p256dh: string; auth: string };
}

export interface ContactInput {
  externalId?: string | null;
  phones?: string[];
  emails?: string[];
  whatsappIds?: string[];
  pushSubscriptions?: PushSubscriptionInput[];
  attributes?: Record<string, unknown>;
  tags?: string[];
  persona?: string | null;
  timeZone?: string | null;
  language?: string | null;
}

/** Told after a contact changed (segments re-evaluate it; journeys react to entries). */
export type ContactChanged = (orgId: string, contactId: string) => Promise<void>;

export interface ContactsOptions {
  onChanged?: ContactChanged;
  /** Told after an erasure with the addresses removed, so other records holding them can be redacted. */
  onErased?: (orgId: string, contactId: string, addresses: string[]) => Promise<void>;
  /** More of what is held on a person, for exports (e.g. their messages). */
  exportExtras?: (orgId: string, contactId: string) => Promise<Record<string, unknown>>;
}

export interface ContactExport {
  contact: ContactRecord;
  consents: StoredConsent[];
  consentHistory: ConsentAuditEntry[];
  events: BusinessEvent[];
  segments: string[];
  extras: Record<string, unknown>;
  exportedAt: number;
}

/** Where a message goes: the address, and the contact when one holds it. */
export interface ResolvedRecipient {
  contactId: string | null;
  to: string;
  /** A push subscription's keys, when the address is one. */
  data: Record<string, unknown> | null;
}

const MAX_ATTEMPTS = 5;
const MAX_ATTRIBUTES_BYTES = 64 * 1024;
const MAX_EXPORT_EVENTS = 100_000;

const FIELD_OF_KIND: Record<IdentifierKind, string> = {
  phone: 'phones',
  email: 'emails',
  whatsapp: 'whatsappIds',
  push: 'pushSubscriptions',
};

/** The identifier kinds that can address a channel, in order of preference. */
export function kindsForChannel(channel: Channel): IdentifierKind[] {
  if (channel === 'whatsapp') return ['whatsapp', 'phone'];
  switch (ADDRESS_KIND[channel]) {
    case 'phone':
      return ['phone'];
    case 'email':
      return ['email'];
    case 'push':
      return ['push'];
    default:
      return [];
  }
}

/** An inbound or outbound address as carriers may write it (`whatsapp:+1…`, digits only) in our canonical form. */
export function canonicalAddress(channel: Channel, address: string): string {
  let a = address.trim().replace(/^(whatsapp|sms|tel):/i, '');
  if (ADDRESS_KIND[channel] === 'phone' && /^\d{7,15}$/.test(a)) a = `+${a}`;
  if (ADDRESS_KIND[channel] === 'email') a = a.toLowerCase();
  return a;
}

function normalizeWhatsappId(value: string, field: string): string {
  const v = value.trim();
  if (/^\+?\d{7,15}$/.test(v)) {
    const e164 = v.startsWith('+') ? v : `+${v}`;
    if (!isValidE164(e164)) throw new ValidationError('invalid_whatsapp_id', `'${v}' is not a valid number`, { field });
    return e164;
  }
  if (!/^[A-Za-z0-9._:-]{1,128}$/.test(v))
    throw new ValidationError('invalid_whatsapp_id', 'a WhatsApp id is a phone number or a business-scoped user id', {
      field,
    });
  return v;
}

/** The identifiers an input gives, per kind (undefined: that kind not given), validated and normalized. */
function identifiersOf(input: ContactInput): Partial<Record<IdentifierKind, ContactIdentifier[]>> {
  const out: Partial<Record<IdentifierKind, ContactIdentifier[]>> = {};
  const add = (kind: IdentifierKind, list: ContactIdentifier[]) => {
    const seen = new Set<string>();
    out[kind] = list.filter((i) => !seen.has(i.value) && seen.add(i.value));
  };
  if (input.phones)
    add(
      'phone',
      input.phones.map((p, i) => ({ kind: 'phone', value: validateRecipient('sms', p, `phones[${i}]`), data: null })),
    );
  if (input.emails)
    add(
      'email',
      input.emails.map((e, i) => ({
        kind: 'email',
        value: validateRecipient('email', e.trim(), `emails[${i}]`).toLowerCase(),
        data: null,
      })),
    );
  if (input.whatsappIds)
    add(
      'whatsapp',
      input.whatsappIds.map((w, i) => ({
        kind: 'whatsapp',
        value: normalizeWhatsappId(w, `whatsappIds[${i}]`),
        data: null,
      })),
    );
  if (input.pushSubscriptions)
    add(
      'push',
      input.pushSubscriptions.map((s, i) => ({
        kind: 'push',
        value: validateRecipient('push', s.endpoint, `pushSubscriptions[${i}].endpoint`),
        data: { keys: { p256dh: s.keys.p256dh, auth: s.keys.auth } },
      })),
    );
  return out;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** RFC 7386 JSON merge patch: objects merge key by key, `null` deletes, anything else replaces. */
export function mergePatch(target: Record<string, unknown>, patch: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...target };
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else if (isObject(v)) out[k] = mergePatch(isObject(out[k]) ? out[k] : {}, v);
    else out[k] = v;
  }
  return out;
}

function checkAttributes(attributes: Record<string, unknown>): Record<string, unknown> {
  if (JSON.stringify(attributes).length > MAX_ATTRIBUTES_BYTES)
    throw new ValidationError(
      'attributes_too_large',
      `attributes must be at most ${MAX_ATTRIBUTES_BYTES} bytes of JSON`,
      {
        field: 'attributes',
      },
    );
  return attributes;
}

function canonicalLanguage(language: string): string {
  try {
    const [canonical] = Intl.getCanonicalLocales(language);
    if (canonical) return canonical;
  } catch {
    // fall through to the error below
  }
  throw new ValidationError('invalid_language', `'${language}' is not a BCP 47 language tag (e.g. en-US)`, {
    field: 'language',
  });
}

/** The contact's zone: the given one, else the one of its first phone number (or WhatsApp number). */
function withTimeZone(c: ContactRecord, given: string | null | undefined): ContactRecord {
  if (given !== undefined && given !== null) {
    if (!isValidTimeZone(given))
      throw new ValidationError('invalid_time_zone', `'${given}' is not an IANA time zone (e.g. Europe/Paris)`, {
        field: 'timeZone',
      });
    return { ...c, timeZone: given, timeZoneSource: 'given' };
  }
  if (given === undefined && c.timeZoneSource === 'given') return c;
  const number = c.identifiers.find((i) => i.kind === 'phone' || (i.kind === 'whatsapp' && i.value.startsWith('+')));
  const derived = number ? timeZoneForPhone(number.value) : null;
  return { ...c, timeZone: derived, timeZoneSource: derived ? 'phone' : null };
}

/** Applies an input to a contact: given identifier kinds replace (or, with `addIdentifiers`, join) the stored. */
function applyInput(
  c: ContactRecord,
  input: ContactInput,
  opts: { addIdentifiers: boolean; attributes: 'replace' | 'merge' },
): ContactRecord {
  const given = identifiersOf(input);
  let identifiers = c.identifiers;
  for (const kind of Object.keys(given) as IdentifierKind[]) {
    const fresh = given[kind] ?? [];
    const kept = identifiers.filter((i) => i.kind !== kind);
    const old = identifiers.filter((i) => i.kind === kind);
    const merged = opts.addIdentifiers
      ? [...old, ...fresh.filter((f) => !old.some((o) => o.value === f.value))]
      : fresh;
    identifiers = [...kept, ...merged];
  }
  const next: ContactRecord = { ...c, identifiers };
  if (input.externalId !== undefined) next.externalId = input.externalId;
  if (input.attributes !== undefined)
    next.attributes = checkAttributes(
      opts.attributes === 'merge' ? mergePatch(c.attributes, input.attributes) : mergePatch({}, input.attributes),
    );
  if (input.tags !== undefined) next.tags = [...new Set(input.tags)];
  if (input.persona !== undefined) next.persona = input.persona;
  if (input.language !== undefined) next.language = input.language === null ? null : canonicalLanguage(input.language);
  return withTimeZone(next, input.timeZone);
}

/** The input field naming an identifier (`phones[1]`), for a conflict's error. */
function fieldOf(input: ContactInput, kind: IdentifierKind | 'externalId', value: string): string {
  if (kind === 'externalId') return 'externalId';
  const list = identifiersOf(input)[kind] ?? [];
  const i = list.findIndex((x) => x.value === value);
  const base = FIELD_OF_KIND[kind];
  if (i < 0) return base;
  return kind === 'push' ? `${base}[${i}].endpoint` : `${base}[${i}]`;
}

function conflictError(input: ContactInput, r: Extract<ContactWriteResult, { reason: 'conflict' }>): ConflictError {
  const field = fieldOf(input, r.kind, r.value);
  if (r.kind === 'externalId')
    return new ConflictError('external_id_taken', `contact '${r.contactId}' already has this external id`, {
      field,
      details: { contactId: r.contactId },
    });
  return new ConflictError('identifier_taken', `contact '${r.contactId}' already has ${r.kind} '${r.value}'`, {
    field,
    details: { contactId: r.contactId },
  });
}

export class Contacts {
  constructor(
    private readonly store: ContactStore,
    private readonly clock: Clock,
    private readonly opts: ContactsOptions = {},
  ) {}

  private async changed(orgId: string, contactId: string): Promise<void> {
    await this.opts.onChanged?.(orgId, contactId);
  }

  private blank(orgId: string, now: number): ContactRecord {
    return {
      id: newContactId(),
      orgId,
      externalId: null,
      identifiers: [],
      attributes: {},
      tags: [],
      persona: null,
      timeZone: null,
      timeZoneSource: null,
      language: null,
      version: 1,
      mergedInto: null,
      erasedAt: null,
      createdAt: now,
      updatedAt: now,
    };
  }

  async create(orgId: string, input: ContactInput): Promise<ContactRecord> {
    const now = this.clock.now();
    const c = applyInput(this.blank(orgId, now), input, { addIdentifiers: false, attributes: 'replace' });
    const r = await this.store.insertContact(c);
    if (!r.ok) throw r.reason === 'conflict' ? conflictError(input, r) : new Error('a new contact cannot be stale');
    await this.changed(orgId, c.id);
    return c;
  }

  /** The one active contact holding the input's external id or any of its identifiers (409 when several do). */
  async match(orgId: string, input: ContactInput): Promise<ContactRecord | undefined> {
    const keys = Object.values(identifiersOf(input)).flat();
    const found = await this.store.findContacts(orgId, { externalId: input.externalId ?? null, identifiers: keys });
    if (found.length > 1) {
      throw new ConflictError(
        'contact_ambiguous',
        `the external id and identifiers given belong to ${found.length} different contacts; merge them first`,
        { details: { contactIds: found.map((c) => c.id) } },
      );
    }
    return found[0];
  }

  /** Finds the contact the input's keys name and updates it, or creates one (see the module header). */
  async upsert(orgId: string, input: ContactInput): Promise<{ contact: ContactRecord; created: boolean }> {
    for (let attempt = 1; ; attempt++) {
      const existing = await this.match(orgId, input);
      const now = this.clock.now();
      let result: ContactWriteResult;
      let contact: ContactRecord;
      if (!existing) {
        contact = applyInput(this.blank(orgId, now), input, { addIdentifiers: false, attributes: 'replace' });
        result = await this.store.insertContact(contact);
      } else {
        if (input.externalId && existing.externalId && existing.externalId !== input.externalId) {
          throw new ConflictError(
            'external_id_mismatch',
            `the identifiers given belong to contact '${existing.id}', whose external id is '${existing.externalId}'`,
            { field: 'externalId', details: { contactId: existing.id } },
          );
        }
        contact = {
          ...applyInput(existing, input, { addIdentifiers: true, attributes: 'merge' }),
          version: existing.version + 1,
          updatedAt: now,
        };
        result = await this.store.updateContact(contact, existing.version);
      }
      if (result.ok) {
        await this.changed(orgId, contact.id);
        return { contact, created: !existing };
      }
      // A concurrent writer created or changed the contact since we looked: look again.
      if (attempt >= MAX_ATTEMPTS) {
        if (result.reason === 'conflict') throw conflictError(input, result);
        throw new ConflictError('contact_busy', 'the contact kept changing while it was being saved; retry');
      }
    }
  }

  /** A contact by id; a merged contact answers with the contact it was merged into. */
  async get(orgId: string, id: string, field = 'id'): Promise<ContactRecord> {
    let c = await this.store.getContact(orgId, id);
    for (let hops = 0; c?.mergedInto && hops < 4; hops++) c = await this.store.getContact(orgId, c.mergedInto);
    if (!c || c.mergedInto) throw new NotFoundError('contact_not_found', `contact '${id}' does not exist`, { field });
    return c;
  }

  async list(
    orgId: string,
    f: { limit: number; cursor?: string; tag?: string; externalId?: string; phone?: string; email?: string },
  ): Promise<{ items: ContactRecord[]; nextCursor: string | null }> {
    let identifier: { kind: IdentifierKind; value: string } | undefined;
    if (f.phone !== undefined) identifier = { kind: 'phone', value: canonicalAddress('sms', f.phone) };
    if (f.email !== undefined) identifier = { kind: 'email', value: canonicalAddress('email', f.email) };
    const items = await this.store.listContacts(orgId, {
      limit: f.limit + 1,
      ...(f.cursor ? { before: f.cursor } : {}),
      ...(f.tag !== undefined ? { tag: f.tag } : {}),
      ...(f.externalId !== undefined ? { externalId: f.externalId } : {}),
      ...(identifier ? { identifier } : {}),
    });
    const more = items.length > f.limit;
    if (more) items.pop();
    return { items, nextCursor: more ? (items.at(-1)?.id ?? null) : null };
  }

  /**
   * Changes the fields given: an identifier list replaces that kind's, attributes are merge-patched (`null`
   * deletes a key), `timeZone: null` goes back to the zone of the phone number.
   */
  async update(orgId: string, id: string, input: ContactInput): Promise<ContactRecord> {
    return this.rewrite(orgId, id, input, (c) => applyInput(c, input, { addIdentifiers: false, attributes: 'merge' }));
  }

  /**
   * Attributes merge-patched (`null` deletes) and tags added or removed, against the contact as it is when written
   * (a journey's "update contact" step: concurrent changes to other tags are kept).
   */
  async modify(
    orgId: string,
    id: string,
    change: { attributes?: Record<string, unknown>; addTags?: string[]; removeTags?: string[] },
  ): Promise<ContactRecord> {
    const input: ContactInput = change.attributes ? { attributes: change.attributes } : {};
    return this.rewrite(orgId, id, input, (c) => {
      const next = applyInput(c, input, { addIdentifiers: false, attributes: 'merge' });
      const removed = new Set(change.removeTags ?? []);
      return { ...next, tags: [...new Set([...next.tags, ...(change.addTags ?? [])])].filter((t) => !removed.has(t)) };
    });
  }

  /** Writes `change(current)` over the current contact, reading again when a concurrent write got there first. */
  private async rewrite(
    orgId: string,
    id: string,
    input: ContactInput,
    change: (c: ContactRecord) => ContactRecord,
  ): Promise<ContactRecord> {
    for (let attempt = 1; ; attempt++) {
      const current = await this.get(orgId, id);
      if (current.erasedAt !== null)
        throw new ConflictError('contact_erased', `contact '${id}' was erased`, { field: 'id' });
      const next = { ...change(current), version: current.version + 1, updatedAt: this.clock.now() };
      const r = await this.store.updateContact(next, current.version);
      if (r.ok) {
        await this.changed(orgId, next.id);
        return next;
      }
      if (r.reason === 'conflict') throw conflictError(input, r);
      if (attempt >= MAX_ATTEMPTS) throw new ConflictError('contact_busy', 'the contact kept changing; retry');
    }
  }

  /** Folds `otherId` into `targetId` (see the module header); returns the target as it is now. */
  async merge(orgId: string, targetId: string, otherId: string): Promise<ContactRecord> {
    for (let attempt = 1; ; attempt++) {
      const target = await this.get(orgId, targetId);
      const other = await this.get(orgId, otherId, 'otherId');
      if (target.id === other.id)
        throw new ValidationError('merge_same_contact', 'a contact cannot be merged into itself', { field: 'otherId' });
      for (const [c, field] of [
        [target, 'id'],
        [other, 'otherId'],
      ] as const) {
        if (c.erasedAt !== null)
          throw new ConflictError('contact_erased', `contact '${c.id}' was erased and cannot be merged`, { field });
      }
      const consents = await this.store.getConsents(orgId, [target.id, other.id]);
      const strip = ({ contactId: _, ...r }: StoredConsent) => r;
      const merged: ContactRecord = withTimeZone(
        {
          ...target,
          externalId: target.externalId ?? other.externalId,
          identifiers: [
            ...target.identifiers,
            ...other.identifiers.filter(
              (o) => !target.identifiers.some((t) => t.kind === o.kind && t.value === o.value),
            ),
          ],
          // The target's attributes win, key by key (nested objects merge the same way).
          attributes: mergePatch(other.attributes, target.attributes),
          tags: [...new Set([...target.tags, ...other.tags])],
          persona: target.persona ?? other.persona,
          language: target.language ?? other.language,
          timeZone:
            target.timeZoneSource === 'given'
              ? target.timeZone
              : other.timeZoneSource === 'given'
                ? other.timeZone
                : null,
          timeZoneSource: target.timeZoneSource === 'given' || other.timeZoneSource === 'given' ? 'given' : null,
          version: target.version + 1,
          updatedAt: this.clock.now(),
        },
        undefined,
      );
      const r = await this.store.mergeContacts({
        orgId,
        target: merged,
        targetVersion: target.version,
        otherId: other.id,
        otherVersion: other.version,
        consents: mergeConsents(
          consents.filter((c) => c.contactId === target.id).map(strip),
          consents.filter((c) => c.contactId === other.id).map(strip),
        ),
        at: merged.updatedAt,
      });
      if (r.ok) {
        await this.changed(orgId, other.id);
        await this.changed(orgId, merged.id);
        return merged;
      }
      // A conflict cannot happen (both contacts' identifiers were already unique); a stale read is retried.
      if (attempt >= MAX_ATTEMPTS || r.reason === 'conflict')
        throw new ConflictError('contact_busy', 'the contacts kept changing while being merged; retry');
    }
  }

  /** GDPR erasure; idempotent. */
  async erase(orgId: string, id: string): Promise<void> {
    const c = await this.get(orgId, id);
    const r = await this.store.eraseContact(orgId, c.id, this.clock.now());
    if (!r) throw new NotFoundError('contact_not_found', `contact '${id}' does not exist`, { field: 'id' });
    if (r.identifiers.length > 0)
      await this.opts.onErased?.(
        orgId,
        c.id,
        r.identifiers.map((i) => i.value),
      );
    await this.changed(orgId, c.id);
  }

  /** Everything held on a person (GDPR access request). */
  async export(orgId: string, id: string): Promise<ContactExport> {
    const contact = await this.get(orgId, id);
    const events: BusinessEvent[] = [];
    let before: string | undefined;
    while (events.length < MAX_EXPORT_EVENTS) {
      const page = await this.store.listEvents(orgId, contact.id, { limit: 1000, ...(before ? { before } : {}) });
      events.push(...page);
      if (page.length < 1000) break;
      before = page.at(-1)?.id;
    }
    return {
      contact,
      consents: await this.store.getConsents(orgId, [contact.id]),
      consentHistory: await this.store.listConsentAudit(orgId, contact.id, 100_000),
      events,
      segments: await this.store.getMemberships(orgId, contact.id),
      extras: (await this.opts.exportExtras?.(orgId, contact.id)) ?? {},
      exportedAt: this.clock.now(),
    };
  }

  /** The active contact holding an address on a channel, if any. */
  async findByAddress(orgId: string, channel: Channel, address: string): Promise<ContactRecord | undefined> {
    const value = canonicalAddress(channel, address);
    const kinds = kindsForChannel(channel);
    if (kinds.length === 0) return undefined;
    const found = await this.store.findContacts(orgId, { identifiers: kinds.map((kind) => ({ kind, value })) });
    // Prefer the holder of the channel's own kind (a WhatsApp id over a phone number).
    for (const kind of kinds) {
      const c = found.find((f) => f.identifiers.some((i) => i.kind === kind && i.value === value));
      if (c) return c;
    }
    return undefined;
  }

  /**
   * Drops a push subscription the push service said is gone (404/410: unsubscribed or expired) from the contact
   * holding it, so no later message is addressed to it. Nothing happens when no contact holds it any more.
   */
  async forgetPushSubscription(orgId: string, endpoint: string): Promise<boolean> {
    const holder = await this.findByAddress(orgId, 'push', endpoint);
    if (!holder || holder.erasedAt !== null) return false;
    const value = canonicalAddress('push', endpoint);
    await this.rewrite(orgId, holder.id, {}, (c) => ({
      ...c,
      identifiers: c.identifiers.filter((i) => !(i.kind === 'push' && i.value === value)),
    }));
    return true;
  }

  /** The contact holding an address, created (with just that address) when there is none: the inbound path. */
  async findOrCreateByAddress(orgId: string, channel: Channel, address: string): Promise<ContactRecord> {
    const existing = await this.findByAddress(orgId, channel, address);
    if (existing) return existing;
    const value = canonicalAddress(channel, address);
    const kind = kindsForChannel(channel)[0];
    if (!kind)
      throw new ValidationError('channel_not_addressable', `contacts have no address for channel '${channel}'`, {
        field: 'channel',
      });
    const input: ContactInput =
      kind === 'phone'
        ? { phones: [value] }
        : kind === 'email'
          ? { emails: [value] }
          : kind === 'whatsapp'
            ? { whatsappIds: [value] }
            : {};
    return (await this.upsert(orgId, input)).contact;
  }

  /**
   * Where a message goes. By contact: the contact's first address of a kind the channel takes (for WhatsApp a
   * WhatsApp id, else a phone number). By address: that address, with the contact holding it when there is one.
   */
  async resolveRecipient(
    orgId: string,
    channel: Channel,
    target: { contactId: string } | { to: string },
    field = 'contactId',
  ): Promise<ResolvedRecipient> {
    if ('to' in target) {
      const c = await this.findByAddress(orgId, channel, target.to);
      const to = canonicalAddress(channel, target.to);
      const data = c?.identifiers.find((i) => i.value === to)?.data ?? null;
      return { contactId: c?.id ?? null, to, data };
    }
    const c = await this.get(orgId, target.contactId, field);
    if (c.erasedAt !== null)
      throw new ValidationError('contact_erased', `contact '${target.contactId}' was erased`, { field });
    for (const kind of kindsForChannel(channel)) {
      const i = c.identifiers.find((x) => x.kind === kind);
      if (i) return { contactId: c.id, to: i.value, data: i.data };
    }
    throw new ValidationError(
      'contact_has_no_address',
      `contact '${target.contactId}' has no address for channel '${channel}'`,
      { field },
    );
  }

  /**
   * The accept pipeline's resolver (`RecipientResolver` in accept-messages.ts): the contact's address for the
   * channel; a `to` given as well must be one of the contact's addresses.
   */
  async resolve(orgId: string, contactId: string, channel: Channel, to: string | null, field: string): Promise<string> {
    if (to === null) return (await this.resolveRecipient(orgId, channel, { contactId }, field)).to;
    const c = await this.get(orgId, contactId, field);
    const value = canonicalAddress(channel, to);
    const kinds = kindsForChannel(channel);
    if (!c.identifiers.some((i) => kinds.includes(i.kind) && i.value === value)) {
      throw new ValidationError('recipient_not_of_contact', `'to' is not an address of contact '${contactId}'`, {
        field: field.replace(/contactId$/, 'to'),
      });
    }
    return value;
  }
}
