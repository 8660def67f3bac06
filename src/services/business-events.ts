/**
 * Business events (`POST /v1/events`): `{name, contact: {id | externalId | phone | email | whatsappId},
 * properties, occurredAt, idempotencyKey?, createContact?}`. Each is matched to a contact (created from the
 * identifiers given when `createContact` is true, else a 404 `contact_not_found`), stored, and handed to the
 * `onEvent` consumer (journeys).
 *
 * Idempotency: an event with an idempotency key already used in the organization is not stored again; the first
 * event is answered (`duplicate: true`). Hand-over: an event is marked dispatched once `onEvent` resolved. When it
 * threw (the consumer was down), the event stays undispatched: a retry of the request with the same key hands it
 * over again, and `redispatch` (run periodically) does so for the ones nobody retried.
 */
import { type Static, Type } from '@sinclair/typebox';
import { ConflictError, NotFoundError, ValidationError } from '../domain/errors.ts';
import { newId } from '../domain/ids.ts';
import type { Clock } from '../ports/clock.ts';
import type { BusinessEvent, ContactRecord, ContactStore } from '../ports/contact-store.ts';
import type { ContactChanged, ContactInput, Contacts } from './contacts.ts';
import { compileChecker, MAX_DEPTH_KEYWORD } from './validation.ts';

export const MAX_EVENT_BATCH = 1000;
const MAX_PROPERTIES_BYTES = 64 * 1024;
/** How far ahead of our clock `occurredAt` may be (clock skew of the caller). */
const MAX_FUTURE_MS = 5 * 60_000;

export const EventContactSchema = Type.Object(
  {
    id: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
    externalId: Type.Optional(Type.String({ minLength: 1, maxLength: 256 })),
    phone: Type.Optional(Type.String({ minLength: 1, maxLength: 32 })),
    email: Type.Optional(Type.String({ minLength: 1, maxLength: 320 })),
    whatsappId: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })),
  },
  { additionalProperties: false, description: 'Who did it: one or more of these identify the contact' },
);

export const EventInputSchema = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 200 }),
    contact: EventContactSchema,
    properties: Type.Optional(Type.Record(Type.String(), Type.Unknown(), { [MAX_DEPTH_KEYWORD]: 16 })),
    occurredAt: Type.Optional(Type.String({ maxLength: 64, description: 'ISO-8601; default: when received' })),
    idempotencyKey: Type.Optional(Type.String({ minLength: 1, maxLength: 255 })),
    createContact: Type.Optional(
      Type.Boolean({ description: 'Create the contact from the identifiers given when none matches' }),
    ),
  },
  { additionalProperties: false },
);
export type EventInput = Static<typeof EventInputSchema>;

const itemChecker = compileChecker<EventInput>(EventInputSchema);

export interface IngestResult {
  event: BusinessEvent;
  duplicate: boolean;
  contactCreated: boolean;
}

export type BatchItemResult =
  | { id: string; contactId: string; duplicate: boolean }
  | { error: { code: string; message: string; field?: string } };

export interface BusinessEventsOptions {
  /** The consumer of stored events (journeys); must be idempotent per event id (it may see one twice). */
  onEvent?: (event: BusinessEvent) => Promise<void>;
  onContactChanged?: ContactChanged;
}

const at = (prefix: string, f: string) => (prefix ? `${prefix}.${f}` : f);

export class BusinessEvents {
  constructor(
    private readonly store: ContactStore,
    private readonly contacts: Contacts,
    private readonly clock: Clock,
    private readonly opts: BusinessEventsOptions = {},
  ) {}

  /** One event (already schema-checked); `headerKey` is the request's Idempotency-Key, used when the body has none. */
  async ingest(orgId: string, input: EventInput, headerKey?: string, prefix = ''): Promise<IngestResult> {
    const now = this.clock.now();
    const occurredAt = this.occurredAt(input.occurredAt, now, prefix);
    if (input.properties && JSON.stringify(input.properties).length > MAX_PROPERTIES_BYTES)
      throw new ValidationError('properties_too_large', `properties must be at most ${MAX_PROPERTIES_BYTES} bytes`, {
        field: at(prefix, 'properties'),
      });
    const { contact, created } = await this.contactOf(orgId, input, prefix);
    const event: BusinessEvent = {
      id: newId('evt'),
      orgId,
      contactId: contact.id,
      name: input.name,
      properties: input.properties ?? {},
      occurredAt,
      receivedAt: now,
      idempotencyKey: input.idempotencyKey ?? headerKey ?? null,
      dispatchedAt: null,
    };
    const stored = await this.store.insertEvent(event);
    if (!stored.inserted) {
      // The first one may not have been handed over (its consumer failed): hand it over now.
      if (stored.existing.dispatchedAt === null) await this.dispatch([stored.existing], false);
      return { event: stored.existing, duplicate: true, contactCreated: false };
    }
    await this.opts.onContactChanged?.(orgId, contact.id);
    await this.dispatch([event], false);
    return { event, duplicate: false, contactCreated: created };
  }

  /** Up to MAX_EVENT_BATCH events; each is validated and stored on its own, with its own answer. */
  async ingestBatch(orgId: string, items: readonly unknown[]): Promise<BatchItemResult[]> {
    const out: BatchItemResult[] = [];
    for (let i = 0; i < items.length; i++) {
      const prefix = `events[${i}]`;
      try {
        const input = itemChecker.check(items[i], prefix);
        const r = await this.ingest(orgId, input, undefined, prefix);
        out.push({ id: r.event.id, contactId: r.event.contactId, duplicate: r.duplicate });
      } catch (err) {
        const e = err as { isUser?: boolean; code?: string; message?: string; field?: string };
        if (!e.isUser) throw err;
        out.push({
          error: { code: e.code ?? 'invalid_value', message: e.message ?? '', ...(e.field ? { field: e.field } : {}) },
        });
      }
    }
    return out;
  }

  async get(orgId: string, id: string): Promise<BusinessEvent> {
    const e = await this.store.getEvent(orgId, id);
    if (!e) throw new NotFoundError('event_not_found', `event '${id}' does not exist`, { field: 'id' });
    return e;
  }

  /** A contact's events, newest first. */
  async list(
    orgId: string,
    contactId: string,
    f: { limit: number; cursor?: string; name?: string },
  ): Promise<{ items: BusinessEvent[]; nextCursor: string | null }> {
    const contact = await this.contacts.get(orgId, contactId);
    const items = await this.store.listEvents(orgId, contact.id, {
      limit: f.limit + 1,
      ...(f.cursor ? { before: f.cursor } : {}),
      ...(f.name !== undefined ? { name: f.name } : {}),
    });
    const more = items.length > f.limit;
    if (more) items.pop();
    return { items, nextCursor: more ? (items.at(-1)?.id ?? null) : null };
  }

  /** Hands over events received more than `olderThanMs` ago that were never handed over; returns how many. */
  async redispatch(olderThanMs: number, limit = 100): Promise<number> {
    if (!this.opts.onEvent) return 0;
    const events = await this.store.listUndispatchedEvents(this.clock.now() - olderThanMs, limit);
    await this.dispatch(events, true);
    return events.length;
  }

  private async dispatch(events: readonly BusinessEvent[], tolerant: boolean): Promise<void> {
    const onEvent = this.opts.onEvent;
    if (!onEvent || events.length === 0) return;
    const done: string[] = [];
    for (const e of events) {
      try {
        await onEvent(e);
        done.push(e.id);
      } catch (err) {
        // A fresh event's request fails (the caller retries with its key); a re-dispatch moves on to the next.
        if (!tolerant) throw err;
      }
    }
    await this.store.markEventsDispatched(done, this.clock.now());
  }

  private occurredAt(value: string | undefined, now: number, prefix: string): number {
    if (value === undefined) return now;
    const t = /^\d{4}-\d{2}-\d{2}T/.test(value) ? Date.parse(value) : Number.NaN;
    if (Number.isNaN(t))
      throw new ValidationError('invalid_date', "'occurredAt' must be an ISO-8601 date-time", {
        field: at(prefix, 'occurredAt'),
      });
    if (t > now + MAX_FUTURE_MS)
      throw new ValidationError('occurred_in_future', "'occurredAt' is in the future", {
        field: at(prefix, 'occurredAt'),
      });
    return t;
  }

  private async contactOf(
    orgId: string,
    input: EventInput,
    prefix: string,
  ): Promise<{ contact: ContactRecord; created: boolean }> {
    const c = input.contact;
    const field = at(prefix, 'contact');
    if (c.id !== undefined) {
      const contact = await this.contacts.get(orgId, c.id, `${field}.id`);
      if (contact.erasedAt !== null)
        throw new ConflictError('contact_erased', `contact '${c.id}' was erased`, { field: `${field}.id` });
      return { contact, created: false };
    }
    const keys: ContactInput = {
      ...(c.externalId !== undefined ? { externalId: c.externalId } : {}),
      ...(c.phone !== undefined ? { phones: [c.phone] } : {}),
      ...(c.email !== undefined ? { emails: [c.email] } : {}),
      ...(c.whatsappId !== undefined ? { whatsappIds: [c.whatsappId] } : {}),
    };
    if (Object.keys(keys).length === 0)
      throw new ValidationError('missing_field', "'contact' needs one of: id, externalId, phone, email, whatsappId", {
        field,
      });
    try {
      if (input.createContact) {
        const r = await this.contacts.upsert(orgId, keys);
        return { contact: r.contact, created: r.created };
      }
      const found = await this.contacts.match(orgId, keys);
      if (!found)
        throw new NotFoundError('contact_not_found', 'no contact matches; send createContact: true to create it', {
          field,
        });
      return { contact: found, created: false };
    } catch (err) {
      // Field names of the contact input (`phones[0]`) read as this event's (`contact.phone`).
      if (err instanceof ValidationError || err instanceof ConflictError) {
        const f = err.field
          ?.replace(/^phones\[0\]/, 'phone')
          .replace(/^emails\[0\]/, 'email')
          .replace(/^whatsappIds\[0\]/, 'whatsappId');
        const Kind = err instanceof ValidationError ? ValidationError : ConflictError;
        throw new Kind(err.code, err.message, {
          field: f ? `${field}.${f}` : field,
          ...(err.details ? { details: err.details } : {}),
        });
      }
      throw err;
    }
  }
}
