/**
 * The contact store port: contacts and their identifiers, consent (current statements and their audit trail),
 * compliance settings and the send counts frequency caps need, business events, and segments with their recorded
 * memberships. Each method is one transaction. Adapters: SQLite (embedded) and PostgreSQL, behind one contract
 * suite (test/contracts/contact-store-contract.ts).
 */
import type {
  ComplianceSettings,
  ConsentRecord,
  ConsentSource,
  ConsentStatus,
  PastSend,
} from '../domain/compliance.ts';
import type { EventQuery, SegmentRule } from '../domain/segment-rules.ts';

export type IdentifierKind = 'phone' | 'email' | 'whatsapp' | 'push';
export const IDENTIFIER_KINDS: readonly IdentifierKind[] = ['phone', 'email', 'whatsapp', 'push'];

/** One way to reach a contact; unique per organization. `data` holds a push subscription's keys. */
export interface ContactIdentifier {
  kind: IdentifierKind;
  value: string;
  data: Record<string, unknown> | null;
}

export interface ContactRecord {
  id: string;
  orgId: string;
  externalId: string | null;
  /** In order within each kind: the first of a kind is the one messages go to. */
  identifiers: ContactIdentifier[];
  attributes: Record<string, unknown>;
  tags: string[];
  persona: string | null;
  timeZone: string | null;
  /** `given` by the client, or derived from the `phone` number. */
  timeZoneSource: 'given' | 'phone' | null;
  language: string | null;
  /** Bumped by every write: an update states the version it read (optimistic concurrency). */
  version: number;
  /** Set when this contact was merged into another (this row stays as a pointer). */
  mergedInto: string | null;
  /** Set when erased (GDPR): the row stays, anonymous, so counts do not change. */
  erasedAt: number | null;
  createdAt: number;
  updatedAt: number;
}

/** What stopped a write: an identifier or external id held by another contact, or a stale version. */
export type ContactWriteResult =
  | { ok: true }
  | { ok: false; reason: 'conflict'; kind: IdentifierKind | 'externalId'; value: string; contactId: string }
  | { ok: false; reason: 'stale' };

export interface ContactListFilter {
  /** Newest first: contacts with ids lower than this. */
  before?: string;
  limit: number;
  tag?: string;
  externalId?: string;
  identifier?: { kind: IdentifierKind; value: string };
}

export interface StoredConsent extends ConsentRecord {
  contactId: string;
}

export interface ConsentChange {
  orgId: string;
  contactId: string;
  channel: ConsentRecord['channel'];
  purpose: ConsentRecord['purpose'];
  /** `*` for every sender. */
  sender: string;
  status: ConsentStatus;
  source: ConsentSource;
  evidence: Record<string, unknown> | null;
  at: number;
}

export interface ConsentAuditEntry {
  id: string;
  contactId: string;
  channel: string;
  purpose: string;
  sender: string;
  status: ConsentStatus;
  source: ConsentSource;
  /** Null after the contact was erased. */
  evidence: Record<string, unknown> | null;
  at: number;
}

/** A send counted for frequency caps; `recipientKey` is the contact id, or `channel:address` without a contact. */
export interface SendCount extends PastSend {
  orgId: string;
  recipientKey: string;
}

export interface BusinessEvent {
  id: string;
  orgId: string;
  contactId: string;
  name: string;
  /** Null once the contact was erased. */
  properties: Record<string, unknown> | null;
  occurredAt: number;
  receivedAt: number;
  idempotencyKey: string | null;
  /** When the `onEvent` consumer took it; null until then (set by `markEventsDispatched`, not on insert). */
  dispatchedAt: number | null;
}

export interface Segment {
  id: string;
  orgId: string;
  name: string;
  description: string | null;
  rules: SegmentRule;
  createdAt: number;
  updatedAt: number;
}

export interface ContactStore {
  /** Inserts a contact with its identifiers; a conflict when one of them (or the external id) is taken. */
  insertContact(contact: ContactRecord): Promise<ContactWriteResult>;
  /**
   * Replaces a contact's fields and identifiers when its stored version is `expectedVersion` (the record carries
   * the new version). Stale or conflicting writes change nothing.
   */
  updateContact(contact: ContactRecord, expectedVersion: number): Promise<ContactWriteResult>;
  /** A contact by id, merged and erased ones included. */
  getContact(orgId: string, id: string): Promise<ContactRecord | undefined>;
  /** Contacts by id (merged and erased ones included), in no particular order; unknown ids are left out. */
  getContacts(orgId: string, ids: readonly string[]): Promise<ContactRecord[]>;
  /** Active contacts (not merged, not erased) holding the external id or any of the identifiers. */
  findContacts(
    orgId: string,
    keys: { externalId?: string | null; identifiers?: readonly Pick<ContactIdentifier, 'kind' | 'value'>[] },
  ): Promise<ContactRecord[]>;
  /** Active contacts, newest first. */
  listContacts(orgId: string, filter: ContactListFilter): Promise<ContactRecord[]>;
  /**
   * Merges `otherId` into `targetId` in one transaction: `target` (already combined by the caller, identifiers of
   * both included) replaces the target's row; the other's events, consent audit and identifiers move to the target;
   * the target's consent records become `consents`; the other becomes a pointer to the target (and so do contacts
   * that pointed to the other). Segment memberships are left for the segments' re-evaluation (which records the
   * exits, so they can be reported). Stale when either version moved.
   */
  mergeContacts(merge: {
    orgId: string;
    target: ContactRecord;
    targetVersion: number;
    otherId: string;
    otherVersion: number;
    consents: readonly ConsentRecord[];
    at: number;
  }): Promise<ContactWriteResult>;
  /**
   * Erases a contact's personal data: identifiers, external id, attributes, tags, persona, zone, language, its
   * consent records, the evidence of its consent audit and its events' properties. The row, the audit entries and
   * the events (name and time) stay, anonymous; its segment memberships are left for the segments' re-evaluation
   * (which records and reports the exits). Returns the identifiers removed (so the caller can redact what else
   * holds them); undefined when there is no such contact.
   */
  eraseContact(orgId: string, id: string, at: number): Promise<{ identifiers: ContactIdentifier[] } | undefined>;

  getConsents(orgId: string, contactIds: readonly string[]): Promise<StoredConsent[]>;
  /** Applies consent changes (one current record per contact and scope) and appends them to the audit trail. */
  recordConsents(changes: readonly ConsentChange[], newAuditId: () => string): Promise<void>;
  /** The audit trail of a contact, oldest first. */
  listConsentAudit(orgId: string, contactId: string, limit: number): Promise<ConsentAuditEntry[]>;

  getComplianceSettings(orgId: string): Promise<ComplianceSettings | undefined>;
  saveComplianceSettings(orgId: string, settings: ComplianceSettings, at: number): Promise<void>;
  recordSends(sends: readonly SendCount[]): Promise<void>;
  /** Counted sends of these recipients at or after `since`. */
  recentSends(orgId: string, recipientKeys: readonly string[], since: number): Promise<SendCount[]>;
  /** Forgets counted sends older than `before`; returns how many. */
  pruneSends(before: number): Promise<number>;

  /** Stores an event; with an idempotency key already used in the organization, returns that event instead. */
  insertEvent(event: BusinessEvent): Promise<{ inserted: true } | { inserted: false; existing: BusinessEvent }>;
  getEvent(orgId: string, id: string): Promise<BusinessEvent | undefined>;
  /** A contact's events, newest first (by id). */
  listEvents(
    orgId: string,
    contactId: string,
    filter: { before?: string; limit: number; name?: string },
  ): Promise<BusinessEvent[]>;
  /** For each contact, how many events match each query (by name, occurred at or after `since`), in query order. */
  countEvents(
    orgId: string,
    contactIds: readonly string[],
    queries: readonly EventQuery[],
  ): Promise<Map<string, number[]>>;
  /** Marks events handed to the `onEvent` consumer. */
  markEventsDispatched(ids: readonly string[], at: number): Promise<void>;
  /** Events not handed over yet, received before `receivedBefore`, oldest first. */
  listUndispatchedEvents(receivedBefore: number, limit: number): Promise<BusinessEvent[]>;

  insertSegment(segment: Segment): Promise<void>;
  /** Replaces a segment's name, description and rules; its recorded members are cleared. False when missing. */
  updateSegment(segment: Segment): Promise<boolean>;
  getSegment(orgId: string, id: string): Promise<Segment | undefined>;
  listSegments(orgId: string): Promise<Segment[]>;
  /** Deletes a segment and its recorded members; false when missing. */
  deleteSegment(orgId: string, id: string): Promise<boolean>;
  /** The segments a contact is recorded in. */
  getMemberships(orgId: string, contactId: string): Promise<string[]>;
  /** Records a contact entering and leaving segments. */
  setMemberships(
    orgId: string,
    contactId: string,
    entered: readonly string[],
    left: readonly string[],
    at: number,
  ): Promise<void>;
  /** Records contacts as members of a segment (a baseline after the segment is saved). */
  addSegmentMembers(orgId: string, segmentId: string, contactIds: readonly string[], at: number): Promise<void>;
  countSegmentMembers(orgId: string, segmentId: string): Promise<number>;
}
