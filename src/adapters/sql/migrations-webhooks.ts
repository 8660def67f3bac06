/**
 * Schema of outbound webhooks (endpoints, the event outbox, deliveries and their attempts).
 *
 * Message events are written by a trigger on `message_history`, so every way a history row is written (the
 * INSERT … SELECT of accepted messages, the per-row and multi-row inserts of sends, carrier events, commands) records
 * its event in the same transaction. An applied history entry becomes an event when its organization has an enabled,
 * not deleted endpoint: `queued` (the first one only: a retry's re-queue carries a detail) → `message.queued`;
 * `sent`, `delivered`, `read`, `failed`, `undelivered`, `suppressed`, `canceled` → `message.<status>`; `received` →
 * `message.inbound`; `scheduled` and `sending` are not events. Without any enabled endpoint in the database, the
 * trigger stops at one probe of an empty partial index, so the message path pays (almost) nothing.
 *
 * SQLite: a row trigger whose `WHEN` is the probe. PostgreSQL: a statement trigger over the transition table, one
 * function call per statement however many rows it inserted (a row trigger's `WHEN` cannot hold the probe there);
 * the rows are taken in `seq` order, so event ids follow the order of the history.
 *
 * The rows of these tables and their mapping to the port's records, shared by both adapters, follow the migration.
 */
import { type Kysely, type Migration, sql } from 'kysely';
import type {
  AttemptRecord,
  ClaimedDelivery,
  DeliveryLogEntry,
  DeliveryStatus,
  WebhookEndpointRecord,
  WebhookEventRecord,
  WebhookFilter,
} from '../../ports/webhook-store.ts';
import { dialectOf, typesFor } from './dialect.ts';

const EVENT_STATUSES =
  "'queued', 'sent', 'delivered', 'read', 'failed', 'undelivered', 'suppressed', 'canceled', 'received'";
const EVENT_TYPE = (status: string) =>
  `CASE ${status} WHEN 'received' THEN 'message.inbound' ELSE 'message.' || ${status} END`;
const ACTIVE_ENDPOINT = 'enabled = 1 AND deleted_at IS NULL';
const ACTIVE_ENDPOINT_E = 'e.enabled = 1 AND e.deleted_at IS NULL';

// The WHEN clause holds the probe alone: one that reads NEW's columns costs ~3 µs per history row even when it is
// false (measured on 1,000-message accepts: 10.5 ms bare, 13.5 ms so, 11 ms this way); the row's own conditions go
// in the body, which runs only while some endpoint is enabled.
const sqliteTrigger = `
CREATE TRIGGER webhook_events_from_history AFTER INSERT ON message_history
WHEN EXISTS (SELECT 1 FROM webhook_endpoints WHERE ${ACTIVE_ENDPOINT})
BEGIN
  INSERT INTO webhook_events (org_id, type, message_id, at)
  SELECT m.org_id, ${EVENT_TYPE('NEW.status')}, NEW.message_id, NEW.at
  FROM messages m
  WHERE NEW.applied = 1
    AND NEW.status IN (${EVENT_STATUSES})
    AND (NEW.status <> 'queued' OR NEW.detail IS NULL)
    AND m.id = NEW.message_id
    AND EXISTS (SELECT 1 FROM webhook_endpoints e WHERE e.org_id = m.org_id AND ${ACTIVE_ENDPOINT_E});
END`;

const pgFunction = `
CREATE FUNCTION webhook_events_from_history() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM webhook_endpoints WHERE ${ACTIVE_ENDPOINT}) THEN
    INSERT INTO webhook_events (org_id, type, message_id, at)
    SELECT m.org_id, ${EVENT_TYPE('h.status')}, h.message_id, h.at
    FROM inserted_history h
    JOIN messages m ON m.id = h.message_id
    WHERE h.applied = 1
      AND h.status IN (${EVENT_STATUSES})
      AND (h.status <> 'queued' OR h.detail IS NULL)
      AND EXISTS (SELECT 1 FROM webhook_endpoints e WHERE e.org_id = m.org_id AND ${ACTIVE_ENDPOINT_E})
    ORDER BY h.seq;
  END IF;
  RETURN NULL;
END
$$`;

const pgTrigger = `
CREATE TRIGGER webhook_events_from_history AFTER INSERT ON message_history
REFERENCING NEW TABLE AS inserted_history
FOR EACH STATEMENT EXECUTE FUNCTION webhook_events_from_history()`;

/**
 * The payload of a `contact.consent_changed` event, built in SQL from a `consent_audit` row: `*` (every channel,
 * purpose or sender) is null, so a channel filter lets a change for every channel through. The evidence stays out
 * (erasing a contact clears it from the audit trail, not from events already sent).
 */
const consentPayload = (a: string, json: 'json_object' | 'json_build_object', at: string) =>
  `${json}('contactId', ${a}.contact_id, 'channel', NULLIF(${a}.channel, '*'), 'purpose', NULLIF(${a}.purpose, '*'),
    'sender', NULLIF(${a}.sender, '*'), 'status', ${a}.status, 'source', ${a}.source, 'at', ${at})`;

const sqliteConsentTrigger = `
CREATE TRIGGER webhook_events_from_consent AFTER INSERT ON consent_audit
WHEN NEW.source <> 'inbound_keyword'
  AND EXISTS (SELECT 1 FROM webhook_endpoints e WHERE e.org_id = NEW.org_id AND ${ACTIVE_ENDPOINT_E})
BEGIN
  INSERT INTO webhook_events (org_id, type, message_id, payload, at)
  VALUES (NEW.org_id, 'contact.consent_changed', NULL,
    ${consentPayload('NEW', 'json_object', "strftime('%Y-%m-%dT%H:%M:%fZ', NEW.at / 1000.0, 'unixepoch')")}, NEW.at);
END`;

const pgConsentFunction = `
CREATE FUNCTION webhook_events_from_consent() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM webhook_endpoints WHERE ${ACTIVE_ENDPOINT}) THEN
    INSERT INTO webhook_events (org_id, type, message_id, payload, at)
    SELECT a.org_id, 'contact.consent_changed', NULL,
      ${consentPayload('a', 'json_build_object', `to_char(to_timestamp(a.at / 1000.0) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`)}::text,
      a.at
    FROM inserted_consents a
    WHERE a.source <> 'inbound_keyword'
      AND EXISTS (SELECT 1 FROM webhook_endpoints e WHERE e.org_id = a.org_id AND ${ACTIVE_ENDPOINT_E})
    ORDER BY a.at, a.id;
  END IF;
  RETURN NULL;
END
$$`;

const pgConsentTrigger = `
CREATE TRIGGER webhook_events_from_consent AFTER INSERT ON consent_audit
REFERENCING NEW TABLE AS inserted_consents
FOR EACH STATEMENT EXECUTE FUNCTION webhook_events_from_consent()`;

export const webhookMigrations: Record<string, Migration> = {
  '0005_webhooks': {
    async up(db: Kysely<unknown>) {
      const dialect = dialectOf(db);
      const pg = dialect === 'postgres';
      const t = typesFor(dialect);
      await db.schema
        .createTable('webhook_endpoints')
        .addColumn('id', t.id, (c) => c.primaryKey())
        .addColumn('org_id', t.id, (c) => c.notNull())
        .addColumn('url', 'text', (c) => c.notNull())
        .addColumn('description', 'text')
        .addColumn('event_types', 'text', (c) => c.notNull())
        .addColumn('filter', 'text')
        .addColumn('enabled', 'integer', (c) => c.notNull().defaultTo(1))
        .addColumn('secret', 'text', (c) => c.notNull())
        .addColumn('previous_secret', 'text')
        .addColumn('previous_secret_expires_at', 'bigint')
        .addColumn('disabled_reason', 'text')
        .addColumn('disabled_at', 'bigint')
        .addColumn('failing_since', 'bigint')
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .addColumn('deleted_at', 'bigint')
        .execute();
      await db.schema.createIndex('webhook_endpoints_org').on('webhook_endpoints').columns(['org_id', 'id']).execute();
      // What the trigger probes: enabled endpoints at all, and of one organization.
      await db.schema
        .createIndex('webhook_endpoints_active')
        .on('webhook_endpoints')
        .columns(['org_id'])
        .where(sql<boolean>`enabled = 1 and deleted_at is null`)
        .execute();

      await db.schema
        .createTable('webhook_events')
        .$call((b) =>
          pg
            ? b.addColumn('id', 'bigint', (c) => c.primaryKey().generatedByDefaultAsIdentity())
            : b.addColumn('id', 'integer', (c) => c.primaryKey().autoIncrement()),
        )
        .addColumn('org_id', t.id, (c) => c.notNull())
        .addColumn('type', 'text', (c) => c.notNull())
        .addColumn('message_id', t.id)
        .addColumn('payload', 'text')
        .addColumn('at', 'bigint', (c) => c.notNull())
        .addColumn('dispatched_at', 'bigint')
        .execute();
      await db.schema
        .createIndex('webhook_events_undispatched')
        .on('webhook_events')
        .columns(['id'])
        .where(sql.ref('dispatched_at'), 'is', null)
        .execute();
      await db.schema.createIndex('webhook_events_org_at').on('webhook_events').columns(['org_id', 'at']).execute();

      await db.schema
        .createTable('webhook_deliveries')
        .$call((b) =>
          pg
            ? b.addColumn('id', 'bigint', (c) => c.primaryKey().generatedByDefaultAsIdentity())
            : b.addColumn('id', 'integer', (c) => c.primaryKey().autoIncrement()),
        )
        .addColumn('endpoint_id', t.id, (c) => c.notNull())
        .addColumn('org_id', t.id, (c) => c.notNull())
        .addColumn('event_id', 'bigint', (c) => c.notNull())
        .addColumn('message_id', t.id)
        .addColumn('status', 'text', (c) => c.notNull())
        .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
        // When it is due (its back-off), and until when a worker holds it (the lease, which lapses with a crashed
        // worker; PostgreSQL only: the embedded store, one process, keeps its leases in memory).
        .addColumn('next_attempt_at', 'bigint', (c) => c.notNull())
        .addColumn('leased_until', 'bigint')
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .execute();
      // Claims: an endpoint's due deliveries. Per-message order: of one message's deliveries to one endpoint, only the
      // earliest unfinished is `pending`, the others `waiting` (promoted in turn).
      await db.schema
        .createIndex('webhook_deliveries_due')
        .on('webhook_deliveries')
        .columns(['endpoint_id', 'next_attempt_at', 'id'])
        .where(sql.ref('status'), '=', 'pending')
        .execute();
      await db.schema
        .createIndex('webhook_deliveries_message')
        .on('webhook_deliveries')
        .columns(['endpoint_id', 'message_id', 'event_id', 'id'])
        .where(sql<boolean>`status in ('pending', 'waiting')`)
        .execute();
      await db.schema
        .createIndex('webhook_deliveries_log')
        .on('webhook_deliveries')
        .columns(['endpoint_id', 'id'])
        .execute();

      await db.schema
        .createTable('webhook_attempts')
        .$call((b) =>
          pg
            ? b.addColumn('id', 'bigint', (c) => c.primaryKey().generatedByDefaultAsIdentity())
            : b.addColumn('id', 'integer', (c) => c.primaryKey().autoIncrement()),
        )
        .addColumn('delivery_id', 'bigint', (c) => c.notNull())
        .addColumn('at', 'bigint', (c) => c.notNull())
        .addColumn('status_code', 'integer')
        .addColumn('latency_ms', 'integer', (c) => c.notNull())
        .addColumn('response', 'text')
        .addColumn('error', 'text')
        .execute();
      await db.schema
        .createIndex('webhook_attempts_delivery')
        .on('webhook_attempts')
        .columns(['delivery_id', 'id'])
        .execute();

      if (pg) {
        await sql.raw(pgFunction).execute(db);
        await sql.raw(pgTrigger).execute(db);
      } else {
        await sql.raw(sqliteTrigger).execute(db);
      }
    },
  },
  // Consent stated through the API, an import or a journey becomes a `contact.consent_changed` event in the
  // transaction that records it (keywords already give `contact.opted_out` / `contact.opted_in`). Runs after the
  // contacts migration (names sort).
  '0012_consent_events': {
    async up(db: Kysely<unknown>) {
      if (dialectOf(db) === 'postgres') {
        await sql.raw(pgConsentFunction).execute(db);
        await sql.raw(pgConsentTrigger).execute(db);
      } else {
        await sql.raw(sqliteConsentTrigger).execute(db);
      }
    },
  },
};

// --- Rows of these tables and their mapping to the port's records, shared by the SQLite and PostgreSQL adapters ---

export interface EndpointRow {
  id: string;
  org_id: string;
  url: string;
  description: string | null;
  event_types: string;
  filter: string | null;
  enabled: number;
  secret: string;
  previous_secret: string | null;
  previous_secret_expires_at: number | null;
  disabled_reason: string | null;
  disabled_at: number | null;
  failing_since: number | null;
  created_at: number;
  updated_at: number;
  deleted_at: number | null;
}

/** Endpoint columns in the order of `endpointValues`. */
export const ENDPOINT_COLS = [
  'id',
  'org_id',
  'url',
  'description',
  'event_types',
  'filter',
  'enabled',
  'secret',
  'previous_secret',
  'previous_secret_expires_at',
  'disabled_reason',
  'disabled_at',
  'failing_since',
  'created_at',
  'updated_at',
  'deleted_at',
] as const;

export function endpointValues(e: WebhookEndpointRecord): unknown[] {
  return [
    e.id,
    e.orgId,
    e.url,
    e.description,
    JSON.stringify(e.eventTypes),
    e.filter === null ? null : JSON.stringify(e.filter),
    e.enabled ? 1 : 0,
    e.sealedSecret,
    e.sealedPreviousSecret,
    e.previousSecretExpiresAt,
    e.disabledReason,
    e.disabledAt,
    e.failingSince,
    e.createdAt,
    e.updatedAt,
    e.deletedAt,
  ];
}

export function toEndpoint(r: EndpointRow): WebhookEndpointRecord {
  return {
    id: r.id,
    orgId: r.org_id,
    url: r.url,
    description: r.description,
    eventTypes: JSON.parse(r.event_types) as string[],
    filter: r.filter === null ? null : (JSON.parse(r.filter) as WebhookFilter),
    enabled: r.enabled === 1,
    sealedSecret: r.secret,
    sealedPreviousSecret: r.previous_secret,
    previousSecretExpiresAt: r.previous_secret_expires_at,
    disabledReason: r.disabled_reason,
    disabledAt: r.disabled_at,
    failingSince: r.failing_since,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    deletedAt: r.deleted_at,
  };
}

export interface EventRow {
  id: number;
  org_id: string;
  type: string;
  message_id: string | null;
  payload: string | null;
  at: number;
}

export function toEvent(r: EventRow): WebhookEventRecord {
  return { id: r.id, orgId: r.org_id, type: r.type, messageId: r.message_id, payload: r.payload, at: r.at };
}

/** A claimed delivery joined with its event and endpoint. */
export interface ClaimedRow {
  id: number;
  endpoint_id: string;
  org_id: string;
  event_id: number;
  message_id: string | null;
  attempts: number;
  created_at: number;
  type: string;
  payload: string | null;
  event_at: number;
  url: string;
  secret: string;
  previous_secret: string | null;
  previous_secret_expires_at: number | null;
}

export function toClaimed(r: ClaimedRow): ClaimedDelivery {
  return {
    id: r.id,
    endpointId: r.endpoint_id,
    orgId: r.org_id,
    eventId: r.event_id,
    messageId: r.message_id,
    attempts: r.attempts,
    createdAt: r.created_at,
    event: { type: r.type, payload: r.payload ?? 'null', at: r.event_at },
    endpoint: {
      url: r.url,
      sealedSecret: r.secret,
      sealedPreviousSecret: r.previous_secret,
      previousSecretExpiresAt: r.previous_secret_expires_at,
    },
  };
}

export interface DeliveryRow {
  id: number;
  endpoint_id: string;
  event_id: number;
  type: string;
  message_id: string | null;
  status: DeliveryStatus;
  attempts: number;
  next_attempt_at: number;
  created_at: number;
  updated_at: number;
}

export interface AttemptRow {
  delivery_id: number;
  at: number;
  status_code: number | null;
  latency_ms: number;
  response: string | null;
  error: string | null;
}

export function toAttempt(r: AttemptRow): AttemptRecord {
  return { at: r.at, statusCode: r.status_code, latencyMs: r.latency_ms, response: r.response, error: r.error };
}

export function toLogEntry(r: DeliveryRow, attempts: AttemptRecord[]): DeliveryLogEntry {
  return {
    id: r.id,
    endpointId: r.endpoint_id,
    eventId: r.event_id,
    eventType: r.type,
    messageId: r.message_id,
    status: r.status,
    attempts: r.attempts,
    nextAttemptAt: r.status === 'pending' ? r.next_attempt_at : null,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    attemptLog: attempts,
  };
}
