/**
 * Schema of contacts, consent, business events and segments (journeys have their own module).
 *
 * - `contacts` keeps one row per person ever known: merged contacts stay as pointers (`merged_into`), erased ones
 *   as anonymous tombstones (`erased_at`), so counts do not change. Attributes and tags are JSON text.
 * - `contact_identifiers`: one row per address, unique per organization and kind, so an address belongs to one
 *   contact; `position` orders a contact's addresses of a kind (the first is where messages go).
 * - `consents`: the current statement per contact and scope (channel, purpose, sender; `*` = any);
 *   `consent_audit` is the append-only trail (source, time, evidence).
 * - `contact_sends`: sends counted for frequency caps, pruned past the longest window.
 * - `business_events`: idempotent per organization by key; `dispatched_at` is set once the consumer (journeys)
 *   took the event, so an undispatched one can be handed over again.
 * - `segments` and `segment_members`: the rules, and who was last seen in each segment.
 * The row shapes and their mapping to records, shared by both adapters, follow the migration.
 */
import { type Kysely, type Migration, sql } from 'kysely';
import {
  type ComplianceSettings,
  type ConsentSource,
  type ConsentStatus,
  DEFAULT_COMPLIANCE_SETTINGS,
} from '../../domain/compliance.ts';
import type { SegmentRule } from '../../domain/segment-rules.ts';
import type {
  BusinessEvent,
  ConsentAuditEntry,
  ContactRecord,
  IdentifierKind,
  Segment,
  StoredConsent,
} from '../../ports/contact-store.ts';
import { dialectOf, typesFor } from './dialect.ts';

export const contactMigrations: Record<string, Migration> = {
  '0006_contacts': {
    async up(db: Kysely<unknown>) {
      const t = typesFor(dialectOf(db));
      await db.schema
        .createTable('contacts')
        .addColumn('id', t.id, (c) => c.primaryKey())
        .addColumn('org_id', t.id, (c) => c.notNull())
        .addColumn('external_id', 'text')
        .addColumn('attributes', 'text', (c) => c.notNull())
        .addColumn('tags', 'text', (c) => c.notNull())
        .addColumn('persona', 'text')
        .addColumn('time_zone', 'text')
        .addColumn('time_zone_source', 'text')
        .addColumn('language', 'text')
        .addColumn('version', 'integer', (c) => c.notNull())
        .addColumn('merged_into', t.id)
        .addColumn('erased_at', 'bigint')
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('contacts_org').on('contacts').columns(['org_id', 'id']).execute();
      await db.schema
        .createIndex('contacts_external_id')
        .on('contacts')
        .columns(['org_id', 'external_id'])
        .unique()
        .where(sql.ref('external_id'), 'is not', null)
        .execute();
      await db.schema
        .createIndex('contacts_merged_into')
        .on('contacts')
        .columns(['merged_into'])
        .where(sql.ref('merged_into'), 'is not', null)
        .execute();

      await db.schema
        .createTable('contact_identifiers')
        .addColumn('org_id', t.id, (c) => c.notNull())
        .addColumn('kind', 'text', (c) => c.notNull())
        .addColumn('value', 'text', (c) => c.notNull())
        .addColumn('contact_id', t.id, (c) => c.notNull())
        .addColumn('position', 'integer', (c) => c.notNull())
        .addColumn('data', 'text')
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addPrimaryKeyConstraint('contact_identifiers_pk', ['org_id', 'kind', 'value'])
        .execute();
      await db.schema
        .createIndex('contact_identifiers_contact')
        .on('contact_identifiers')
        .columns(['contact_id', 'kind', 'position'])
        .execute();

      await db.schema
        .createTable('consents')
        .addColumn('contact_id', t.id, (c) => c.notNull())
        .addColumn('org_id', t.id, (c) => c.notNull())
        .addColumn('channel', 'text', (c) => c.notNull())
        .addColumn('purpose', 'text', (c) => c.notNull())
        .addColumn('sender', 'text', (c) => c.notNull())
        .addColumn('status', 'text', (c) => c.notNull())
        .addColumn('source', 'text', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .addPrimaryKeyConstraint('consents_pk', ['contact_id', 'channel', 'purpose', 'sender'])
        .execute();
      await db.schema
        .createTable('consent_audit')
        .addColumn('id', t.id, (c) => c.primaryKey())
        .addColumn('org_id', t.id, (c) => c.notNull())
        .addColumn('contact_id', t.id, (c) => c.notNull())
        .addColumn('channel', 'text', (c) => c.notNull())
        .addColumn('purpose', 'text', (c) => c.notNull())
        .addColumn('sender', 'text', (c) => c.notNull())
        .addColumn('status', 'text', (c) => c.notNull())
        .addColumn('source', 'text', (c) => c.notNull())
        .addColumn('evidence', 'text')
        .addColumn('at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('consent_audit_contact').on('consent_audit').columns(['contact_id', 'id']).execute();

      await db.schema
        .createTable('compliance_settings')
        .addColumn('org_id', t.id, (c) => c.primaryKey())
        .addColumn('settings', 'text', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('contact_sends')
        .addColumn('org_id', t.id, (c) => c.notNull())
        .addColumn('recipient_key', 'text', (c) => c.notNull())
        .addColumn('channel', 'text', (c) => c.notNull())
        .addColumn('purpose', 'text', (c) => c.notNull())
        .addColumn('at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema
        .createIndex('contact_sends_recipient')
        .on('contact_sends')
        .columns(['org_id', 'recipient_key', 'at'])
        .execute();
      await db.schema.createIndex('contact_sends_at').on('contact_sends').columns(['at']).execute();

      await db.schema
        .createTable('business_events')
        .addColumn('id', t.id, (c) => c.primaryKey())
        .addColumn('org_id', t.id, (c) => c.notNull())
        .addColumn('contact_id', t.id, (c) => c.notNull())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('properties', 'text')
        .addColumn('occurred_at', 'bigint', (c) => c.notNull())
        .addColumn('received_at', 'bigint', (c) => c.notNull())
        .addColumn('idempotency_key', 'text')
        .addColumn('dispatched_at', 'bigint')
        .execute();
      await db.schema
        .createIndex('business_events_idempotency')
        .on('business_events')
        .columns(['org_id', 'idempotency_key'])
        .unique()
        .where(sql.ref('idempotency_key'), 'is not', null)
        .execute();
      await db.schema
        .createIndex('business_events_contact')
        .on('business_events')
        .columns(['contact_id', 'name', 'occurred_at'])
        .execute();
      await db.schema.createIndex('business_events_list').on('business_events').columns(['contact_id', 'id']).execute();
      await db.schema
        .createIndex('business_events_undispatched')
        .on('business_events')
        .columns(['received_at'])
        .where(sql.ref('dispatched_at'), 'is', null)
        .execute();

      await db.schema
        .createTable('segments')
        .addColumn('id', t.id, (c) => c.primaryKey())
        .addColumn('org_id', t.id, (c) => c.notNull())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('description', 'text')
        .addColumn('rules', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('segments_org').on('segments').columns(['org_id', 'id']).execute();
      await db.schema
        .createTable('segment_members')
        .addColumn('segment_id', t.id, (c) => c.notNull())
        .addColumn('contact_id', t.id, (c) => c.notNull())
        .addColumn('org_id', t.id, (c) => c.notNull())
        .addColumn('entered_at', 'bigint', (c) => c.notNull())
        .addPrimaryKeyConstraint('segment_members_pk', ['segment_id', 'contact_id'])
        .execute();
      await db.schema.createIndex('segment_members_contact').on('segment_members').columns(['contact_id']).execute();
    },
  },
};

// ---------------------------------------------------------------------------------------------------------------
// Row shapes of these tables and their mapping to the port's records, shared by the SQLite and PostgreSQL adapters.

export interface ContactRow {
  id: string;
  org_id: string;
  external_id: string | null;
  attributes: string;
  tags: string;
  persona: string | null;
  time_zone: string | null;
  time_zone_source: string | null;
  language: string | null;
  version: number;
  merged_into: string | null;
  erased_at: number | null;
  created_at: number;
  updated_at: number;
}

export interface IdentifierRow {
  contact_id: string;
  kind: string;
  value: string;
  data: string | null;
  position: number;
}

export const CONTACT_COLS = [
  'id',
  'org_id',
  'external_id',
  'attributes',
  'tags',
  'persona',
  'time_zone',
  'time_zone_source',
  'language',
  'version',
  'merged_into',
  'erased_at',
  'created_at',
  'updated_at',
] as const;

export function contactRow(c: ContactRecord): unknown[] {
  return [
    c.id,
    c.orgId,
    c.externalId,
    JSON.stringify(c.attributes),
    JSON.stringify(c.tags),
    c.persona,
    c.timeZone,
    c.timeZoneSource,
    c.language,
    c.version,
    c.mergedInto,
    c.erasedAt,
    c.createdAt,
    c.updatedAt,
  ];
}

export const IDENTIFIER_COLS = ['org_id', 'kind', 'value', 'contact_id', 'position', 'data', 'created_at'] as const;

/** The identifier rows of a contact, positions counted per kind in the record's order. */
export function identifierRows(c: ContactRecord, at: number): unknown[][] {
  const positions = new Map<string, number>();
  return c.identifiers.map((i) => {
    const p = positions.get(i.kind) ?? 0;
    positions.set(i.kind, p + 1);
    return [c.orgId, i.kind, i.value, c.id, p, i.data === null ? null : JSON.stringify(i.data), at];
  });
}

export function toContact(r: ContactRow, identifiers: readonly IdentifierRow[]): ContactRecord {
  return {
    id: r.id,
    orgId: r.org_id,
    externalId: r.external_id,
    identifiers: identifiers
      .filter((i) => i.contact_id === r.id)
      .sort((a, b) => (a.kind === b.kind ? a.position - b.position : a.kind < b.kind ? -1 : 1))
      .map((i) => ({
        kind: i.kind as IdentifierKind,
        value: i.value,
        data: i.data === null ? null : (JSON.parse(i.data) as Record<string, unknown>),
      })),
    attributes: JSON.parse(r.attributes) as Record<string, unknown>,
    tags: JSON.parse(r.tags) as string[],
    persona: r.persona,
    timeZone: r.time_zone,
    timeZoneSource: r.time_zone_source as ContactRecord['timeZoneSource'],
    language: r.language,
    version: Number(r.version),
    mergedInto: r.merged_into,
    erasedAt: r.erased_at,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

export interface ConsentRow {
  contact_id: string;
  channel: string;
  purpose: string;
  sender: string;
  status: string;
  source: string;
  updated_at: number;
}

export const toConsent = (r: ConsentRow): StoredConsent => ({
  contactId: r.contact_id,
  channel: r.channel as StoredConsent['channel'],
  purpose: r.purpose as StoredConsent['purpose'],
  sender: r.sender,
  status: r.status as ConsentStatus,
  source: r.source as ConsentSource,
  updatedAt: r.updated_at,
});

export interface AuditRow {
  id: string;
  contact_id: string;
  channel: string;
  purpose: string;
  sender: string;
  status: string;
  source: string;
  evidence: string | null;
  at: number;
}

export const toAudit = (r: AuditRow): ConsentAuditEntry => ({
  id: r.id,
  contactId: r.contact_id,
  channel: r.channel,
  purpose: r.purpose,
  sender: r.sender,
  status: r.status as ConsentStatus,
  source: r.source as ConsentSource,
  evidence: r.evidence === null ? null : (JSON.parse(r.evidence) as Record<string, unknown>),
  at: r.at,
});

export const AUDIT_COLS = [
  'id',
  'org_id',
  'contact_id',
  'channel',
  'purpose',
  'sender',
  'status',
  'source',
  'evidence',
  'at',
] as const;

export interface EventRow {
  id: string;
  org_id: string;
  contact_id: string;
  name: string;
  properties: string | null;
  occurred_at: number;
  received_at: number;
  idempotency_key: string | null;
  dispatched_at: number | null;
}

export const EVENT_COLS = [
  'id',
  'org_id',
  'contact_id',
  'name',
  'properties',
  'occurred_at',
  'received_at',
  'idempotency_key',
] as const;

export const eventRow = (e: BusinessEvent): unknown[] => [
  e.id,
  e.orgId,
  e.contactId,
  e.name,
  e.properties === null ? null : JSON.stringify(e.properties),
  e.occurredAt,
  e.receivedAt,
  e.idempotencyKey,
];

export const toEvent = (r: EventRow): BusinessEvent => ({
  id: r.id,
  orgId: r.org_id,
  contactId: r.contact_id,
  name: r.name,
  properties: r.properties === null ? null : (JSON.parse(r.properties) as Record<string, unknown>),
  occurredAt: r.occurred_at,
  receivedAt: r.received_at,
  idempotencyKey: r.idempotency_key,
  dispatchedAt: r.dispatched_at,
});

export interface SegmentRow {
  id: string;
  org_id: string;
  name: string;
  description: string | null;
  rules: string;
  created_at: number;
  updated_at: number;
}

export const toSegment = (r: SegmentRow): Segment => ({
  id: r.id,
  orgId: r.org_id,
  name: r.name,
  description: r.description,
  rules: JSON.parse(r.rules) as SegmentRule,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});

/** Compliance settings as stored: defaults fill what an older stored document lacks. */
export function toSettings(text: string): ComplianceSettings {
  return { ...DEFAULT_COMPLIANCE_SETTINGS, ...(JSON.parse(text) as Partial<ComplianceSettings>) };
}
