/**
 * The contact store on PostgreSQL, for several processes sharing one database. Each command is one transaction
 * (READ COMMITTED, retried on deadlock). Writes that could race are settled by the database: a contact update
 * states the version it read (`WHERE version = $n`), and an identifier or external id taken by a concurrent
 * writer between our check and our insert fails the unique index (23505), which is answered as the conflict it is.
 * Lists travel as one array parameter (`= any($1::text[])`).
 */
import { type RawBuilder, sql } from 'kysely';
import type { ComplianceSettings, ConsentRecord } from '../../domain/compliance.ts';
import type { EventQuery } from '../../domain/segment-rules.ts';
import type {
  BusinessEvent,
  ConsentAuditEntry,
  ConsentChange,
  ContactIdentifier,
  ContactListFilter,
  ContactRecord,
  ContactStore,
  ContactWriteResult,
  Segment,
  SendCount,
  StoredConsent,
} from '../../ports/contact-store.ts';
import {
  type AuditRow,
  type ConsentRow,
  type ContactRow,
  contactRow,
  type EventRow,
  eventRow,
  type IdentifierRow,
  identifierRows,
  type SegmentRow,
  toAudit,
  toConsent,
  toContact,
  toEvent,
  toSegment,
  toSettings,
} from '../sql/migrations-contacts.ts';
import { inTransaction, type PgHandle, type Trx } from './database.ts';
import { unnestRows } from './pg-store.ts';

type Executor = PgHandle['kysely'] | Trx;

/** Thrown inside a transaction to roll it back with an answer. */
class Rollback {
  constructor(readonly result: ContactWriteResult) {}
}

const UNIQUE_VIOLATION = '23505';
const isUniqueViolation = (err: unknown) => (err as { code?: unknown }).code === UNIQUE_VIOLATION;

const IDENTIFIER_TYPES = [
  ['org_id', 'text'],
  ['kind', 'text'],
  ['value', 'text'],
  ['contact_id', 'text'],
  ['position', 'integer'],
  ['data', 'text'],
  ['created_at', 'bigint'],
] as const;

const CONSENT_TYPES = [
  ['contact_id', 'text'],
  ['org_id', 'text'],
  ['channel', 'text'],
  ['purpose', 'text'],
  ['sender', 'text'],
  ['status', 'text'],
  ['source', 'text'],
  ['updated_at', 'bigint'],
] as const;

const AUDIT_TYPES = [
  ['id', 'text'],
  ['org_id', 'text'],
  ['contact_id', 'text'],
  ['channel', 'text'],
  ['purpose', 'text'],
  ['sender', 'text'],
  ['status', 'text'],
  ['source', 'text'],
  ['evidence', 'text'],
  ['at', 'bigint'],
] as const;

const SEND_TYPES = [
  ['org_id', 'text'],
  ['recipient_key', 'text'],
  ['channel', 'text'],
  ['purpose', 'text'],
  ['at', 'bigint'],
] as const;

const MEMBER_TYPES = [
  ['segment_id', 'text'],
  ['contact_id', 'text'],
  ['org_id', 'text'],
  ['entered_at', 'bigint'],
] as const;

async function rows<T>(db: Executor, query: RawBuilder<unknown>): Promise<T[]> {
  return (await query.execute(db)).rows as T[];
}

export class PgContactStore implements ContactStore {
  constructor(private readonly h: PgHandle) {}

  private async tx<T>(fn: (trx: Trx) => Promise<T>): Promise<T | ContactWriteResult> {
    try {
      return await inTransaction(this.h, fn);
    } catch (err) {
      if (err instanceof Rollback) return err.result;
      throw err;
    }
  }

  /** Another contact holding the record's external id or one of its identifiers. */
  private async conflictOf(db: Executor, c: ContactRecord): Promise<ContactWriteResult | null> {
    if (c.externalId !== null) {
      const [other] = await rows<{ id: string }>(
        db,
        sql`select id from contacts where org_id = ${c.orgId} and external_id = ${c.externalId} and id <> ${c.id}`,
      );
      if (other) return { ok: false, reason: 'conflict', kind: 'externalId', value: c.externalId, contactId: other.id };
    }
    if (c.identifiers.length === 0) return null;
    const found = await rows<{ kind: string; value: string; contact_id: string }>(
      db,
      sql`select i.kind, i.value, i.contact_id from contact_identifiers i
          join unnest(${c.identifiers.map((i) => i.kind)}::text[], ${c.identifiers.map((i) => i.value)}::text[])
            as k(kind, value) on i.kind = k.kind and i.value = k.value
          where i.org_id = ${c.orgId} and i.contact_id <> ${c.id}`,
    );
    for (const i of c.identifiers) {
      const hit = found.find((f) => f.kind === i.kind && f.value === i.value);
      if (hit) return { ok: false, reason: 'conflict', kind: i.kind, value: i.value, contactId: hit.contact_id };
    }
    return null;
  }

  /** Runs a contact write; a unique violation (a concurrent writer took an address) becomes the conflict. */
  private async write(c: ContactRecord, fn: (trx: Trx) => Promise<ContactWriteResult>): Promise<ContactWriteResult> {
    try {
      return (await this.tx(fn)) as ContactWriteResult;
    } catch (err) {
      if (!isUniqueViolation(err)) throw err;
      const conflict = await this.conflictOf(this.h.kysely, c);
      if (conflict) return conflict;
      throw err;
    }
  }

  private async writeIdentifiers(trx: Trx, c: ContactRecord): Promise<void> {
    await sql`delete from contact_identifiers where contact_id = ${c.id}`.execute(trx);
    if (c.identifiers.length === 0) return;
    await sql`insert into contact_identifiers (org_id, kind, value, contact_id, position, data, created_at)
      ${unnestRows(IDENTIFIER_TYPES, identifierRows(c, c.updatedAt))}`.execute(trx);
  }

  private async updateRow(trx: Trx, c: ContactRecord, expectedVersion: number): Promise<boolean> {
    const r = await sql`update contacts set external_id = ${c.externalId}, attributes = ${JSON.stringify(c.attributes)},
        tags = ${JSON.stringify(c.tags)}, persona = ${c.persona}, time_zone = ${c.timeZone},
        time_zone_source = ${c.timeZoneSource}, language = ${c.language}, version = ${c.version},
        updated_at = ${c.updatedAt}
      where id = ${c.id} and org_id = ${c.orgId} and version = ${expectedVersion}`.execute(trx);
    return Number(r.numAffectedRows ?? 0) === 1;
  }

  private async load(db: Executor, contactRows: ContactRow[]): Promise<ContactRecord[]> {
    if (contactRows.length === 0) return [];
    const identifiers = await rows<IdentifierRow>(
      db,
      sql`select contact_id, kind, value, data, position from contact_identifiers
          where contact_id = any(${contactRows.map((r) => r.id)}::text[])`,
    );
    return contactRows.map((r) => toContact(r, identifiers));
  }

  async insertContact(c: ContactRecord): Promise<ContactWriteResult> {
    return this.write(c, async (trx) => {
      const conflict = await this.conflictOf(trx, c);
      if (conflict) return conflict;
      const values = contactRow(c);
      await sql`insert into contacts (id, org_id, external_id, attributes, tags, persona, time_zone, time_zone_source,
          language, version, merged_into, erased_at, created_at, updated_at)
        values (${sql.join(values)})`.execute(trx);
      await this.writeIdentifiers(trx, c);
      return { ok: true };
    });
  }

  async updateContact(c: ContactRecord, expectedVersion: number): Promise<ContactWriteResult> {
    return this.write(c, async (trx) => {
      const conflict = await this.conflictOf(trx, c);
      if (conflict) return conflict;
      if (!(await this.updateRow(trx, c, expectedVersion))) return { ok: false, reason: 'stale' };
      await this.writeIdentifiers(trx, c);
      return { ok: true };
    });
  }

  async getContact(orgId: string, id: string): Promise<ContactRecord | undefined> {
    const db = this.h.kysely;
    const found = await rows<ContactRow>(db, sql`select * from contacts where id = ${id} and org_id = ${orgId}`);
    return (await this.load(db, found))[0];
  }

  async getContacts(orgId: string, ids: readonly string[]): Promise<ContactRecord[]> {
    if (ids.length === 0) return [];
    const db = this.h.kysely;
    const found = await rows<ContactRow>(
      db,
      sql`select * from contacts where org_id = ${orgId} and id = any(${[...ids]}::text[])`,
    );
    return this.load(db, found);
  }

  async findContacts(
    orgId: string,
    keys: { externalId?: string | null; identifiers?: readonly Pick<ContactIdentifier, 'kind' | 'value'>[] },
  ): Promise<ContactRecord[]> {
    const db = this.h.kysely;
    const ids = keys.identifiers ?? [];
    const found = await rows<ContactRow>(
      db,
      sql`select * from contacts c where c.org_id = ${orgId} and c.merged_into is null and c.erased_at is null and (
            c.external_id = ${keys.externalId ?? null}
            or c.id in (select i.contact_id from contact_identifiers i
              join unnest(${ids.map((i) => i.kind)}::text[], ${ids.map((i) => i.value)}::text[]) as k(kind, value)
                on i.kind = k.kind and i.value = k.value
              where i.org_id = ${orgId}))
          order by c.id`,
    );
    return this.load(db, found);
  }

  async listContacts(orgId: string, f: ContactListFilter): Promise<ContactRecord[]> {
    const db = this.h.kysely;
    const where = [sql`org_id = ${orgId}`, sql`merged_into is null`, sql`erased_at is null`];
    if (f.before) where.push(sql`id < ${f.before}`);
    if (f.externalId !== undefined) where.push(sql`external_id = ${f.externalId}`);
    if (f.tag !== undefined)
      where.push(sql`exists (select 1 from jsonb_array_elements_text(tags::jsonb) t where t = ${f.tag})`);
    if (f.identifier) {
      where.push(
        sql`id in (select contact_id from contact_identifiers
                   where org_id = ${orgId} and kind = ${f.identifier.kind} and value = ${f.identifier.value})`,
      );
    }
    const found = await rows<ContactRow>(
      db,
      sql`select * from contacts where ${sql.join(where, sql` and `)} order by id desc limit ${f.limit}`,
    );
    return this.load(db, found);
  }

  async mergeContacts(m: {
    orgId: string;
    target: ContactRecord;
    targetVersion: number;
    otherId: string;
    otherVersion: number;
    consents: readonly ConsentRecord[];
    at: number;
  }): Promise<ContactWriteResult> {
    const { orgId, target, otherId, at } = m;
    return this.write(target, async (trx) => {
      // Both rows locked in id order, so two merges of the same pair cannot deadlock.
      const locked = await rows<{ id: string; version: number; active: boolean }>(
        trx,
        sql`select id, version, (merged_into is null and erased_at is null) as active from contacts
            where id = any(${[target.id, otherId]}::text[]) and org_id = ${orgId} order by id for update`,
      );
      const other = locked.find((r) => r.id === otherId);
      if (!other?.active || other.version !== m.otherVersion) return { ok: false, reason: 'stale' };
      await sql`delete from contact_identifiers where contact_id = ${otherId}`.execute(trx);
      await sql`update contacts set merged_into = ${target.id}, external_id = null, attributes = '{}', tags = '[]',
          persona = null, time_zone = null, time_zone_source = null, language = null, version = version + 1,
          updated_at = ${at}
        where id = ${otherId}`.execute(trx);
      const conflict = await this.conflictOf(trx, target);
      if (conflict) throw new Rollback(conflict);
      if (!(await this.updateRow(trx, target, m.targetVersion))) throw new Rollback({ ok: false, reason: 'stale' });
      await this.writeIdentifiers(trx, target);
      await sql`update contacts set merged_into = ${target.id} where org_id = ${orgId} and merged_into = ${otherId}`.execute(
        trx,
      );
      await sql`update business_events set contact_id = ${target.id} where org_id = ${orgId} and contact_id = ${otherId}`.execute(
        trx,
      );
      await sql`update consent_audit set contact_id = ${target.id} where org_id = ${orgId} and contact_id = ${otherId}`.execute(
        trx,
      );
      await sql`update contact_sends set recipient_key = ${target.id}
        where org_id = ${orgId} and recipient_key = ${otherId}`.execute(trx);
      await sql`delete from consents where contact_id = any(${[target.id, otherId]}::text[])`.execute(trx);
      if (m.consents.length > 0) {
        await sql`insert into consents (contact_id, org_id, channel, purpose, sender, status, source, updated_at)
          ${unnestRows(
            CONSENT_TYPES,
            m.consents.map((c) => [target.id, orgId, c.channel, c.purpose, c.sender, c.status, c.source, c.updatedAt]),
          )}`.execute(trx);
      }
      return { ok: true };
    });
  }

  async eraseContact(orgId: string, id: string, at: number): Promise<{ identifiers: ContactIdentifier[] } | undefined> {
    const result = await inTransaction(this.h, async (trx) => {
      const found = await rows<ContactRow>(
        trx,
        sql`select * from contacts where id = ${id} and org_id = ${orgId} for update`,
      );
      if (found.length === 0) return undefined;
      const [contact] = await this.load(trx, found);
      await sql`delete from contact_identifiers where contact_id = ${id}`.execute(trx);
      await sql`update contacts set external_id = null, attributes = '{}', tags = '[]', persona = null,
          time_zone = null, time_zone_source = null, language = null, erased_at = coalesce(erased_at, ${at}::bigint),
          version = version + 1, updated_at = ${at}
        where id = ${id}`.execute(trx);
      await sql`delete from consents where contact_id = ${id}`.execute(trx);
      await sql`update consent_audit set evidence = null where contact_id = ${id}`.execute(trx);
      await sql`update business_events set properties = null where contact_id = ${id}`.execute(trx);
      await sql`delete from contact_sends where org_id = ${orgId} and recipient_key = ${id}`.execute(trx);
      return { identifiers: contact?.identifiers ?? [] };
    });
    return result;
  }

  async getConsents(orgId: string, contactIds: readonly string[]): Promise<StoredConsent[]> {
    if (contactIds.length === 0) return [];
    const found = await rows<ConsentRow>(
      this.h.kysely,
      sql`select * from consents where org_id = ${orgId} and contact_id = any(${[...contactIds]}::text[])`,
    );
    return found.map(toConsent);
  }

  async recordConsents(changes: readonly ConsentChange[], newAuditId: () => string): Promise<void> {
    if (changes.length === 0) return;
    const audit = changes.map((c) => [
      newAuditId(),
      c.orgId,
      c.contactId,
      c.channel,
      c.purpose,
      c.sender,
      c.status,
      c.source,
      c.evidence === null ? null : JSON.stringify(c.evidence),
      c.at,
    ]);
    await inTransaction(this.h, async (trx) => {
      // One change per scope per statement: ON CONFLICT cannot touch a row twice in one command.
      for (const c of changes) {
        await sql`insert into consents (contact_id, org_id, channel, purpose, sender, status, source, updated_at)
          values (${c.contactId}, ${c.orgId}, ${c.channel}, ${c.purpose}, ${c.sender}, ${c.status}, ${c.source}, ${c.at})
          on conflict (contact_id, channel, purpose, sender) do update set
            status = excluded.status, source = excluded.source, updated_at = excluded.updated_at
          where excluded.updated_at >= consents.updated_at`.execute(trx);
      }
      await sql`insert into consent_audit (id, org_id, contact_id, channel, purpose, sender, status, source, evidence, at)
        ${unnestRows(AUDIT_TYPES, audit)}`.execute(trx);
    });
  }

  async listConsentAudit(orgId: string, contactId: string, limit: number): Promise<ConsentAuditEntry[]> {
    const found = await rows<AuditRow>(
      this.h.kysely,
      sql`select * from consent_audit where org_id = ${orgId} and contact_id = ${contactId}
          order by at, id limit ${limit}`,
    );
    return found.map(toAudit);
  }

  async getComplianceSettings(orgId: string): Promise<ComplianceSettings | undefined> {
    const [r] = await rows<{ settings: string }>(
      this.h.kysely,
      sql`select settings from compliance_settings where org_id = ${orgId}`,
    );
    return r ? toSettings(r.settings) : undefined;
  }

  async saveComplianceSettings(orgId: string, settings: ComplianceSettings, at: number): Promise<void> {
    await sql`insert into compliance_settings (org_id, settings, updated_at)
      values (${orgId}, ${JSON.stringify(settings)}, ${at})
      on conflict (org_id) do update set settings = excluded.settings, updated_at = excluded.updated_at`.execute(
      this.h.kysely,
    );
  }

  async recordSends(sends: readonly SendCount[]): Promise<void> {
    if (sends.length === 0) return;
    await sql`insert into contact_sends (org_id, recipient_key, channel, purpose, at)
      ${unnestRows(
        SEND_TYPES,
        sends.map((s) => [s.orgId, s.recipientKey, s.channel, s.purpose, s.at]),
      )}`.execute(this.h.kysely);
  }

  async recentSends(orgId: string, recipientKeys: readonly string[], since: number): Promise<SendCount[]> {
    if (recipientKeys.length === 0) return [];
    const found = await rows<{
      org_id: string;
      recipient_key: string;
      channel: SendCount['channel'];
      purpose: SendCount['purpose'];
      at: number;
    }>(
      this.h.kysely,
      sql`select org_id, recipient_key, channel, purpose, at from contact_sends
          where org_id = ${orgId} and recipient_key = any(${[...recipientKeys]}::text[]) and at >= ${since}`,
    );
    return found.map((r) => ({
      orgId: r.org_id,
      recipientKey: r.recipient_key,
      channel: r.channel,
      purpose: r.purpose,
      at: r.at,
    }));
  }

  async pruneSends(before: number): Promise<number> {
    const r = await sql`delete from contact_sends where at < ${before}`.execute(this.h.kysely);
    return Number(r.numAffectedRows ?? 0);
  }

  async insertEvent(e: BusinessEvent): Promise<{ inserted: true } | { inserted: false; existing: BusinessEvent }> {
    const db = this.h.kysely;
    const r = await sql`insert into business_events
        (id, org_id, contact_id, name, properties, occurred_at, received_at, idempotency_key)
      values (${sql.join(eventRow(e))}) on conflict do nothing`.execute(db);
    if (Number(r.numAffectedRows ?? 0) === 1) return { inserted: true };
    const [existing] = await rows<EventRow>(
      db,
      sql`select * from business_events where org_id = ${e.orgId} and idempotency_key = ${e.idempotencyKey}`,
    );
    if (!existing) throw new Error(`event ${e.id} was not stored and has no idempotent twin`);
    return { inserted: false, existing: toEvent(existing) };
  }

  async getEvent(orgId: string, id: string): Promise<BusinessEvent | undefined> {
    const [r] = await rows<EventRow>(
      this.h.kysely,
      sql`select * from business_events where id = ${id} and org_id = ${orgId}`,
    );
    return r ? toEvent(r) : undefined;
  }

  async listEvents(
    orgId: string,
    contactId: string,
    f: { before?: string; limit: number; name?: string },
  ): Promise<BusinessEvent[]> {
    const where = [sql`org_id = ${orgId}`, sql`contact_id = ${contactId}`];
    if (f.before) where.push(sql`id < ${f.before}`);
    if (f.name !== undefined) where.push(sql`name = ${f.name}`);
    const found = await rows<EventRow>(
      this.h.kysely,
      sql`select * from business_events where ${sql.join(where, sql` and `)} order by id desc limit ${f.limit}`,
    );
    return found.map(toEvent);
  }

  async countEvents(
    orgId: string,
    contactIds: readonly string[],
    queries: readonly EventQuery[],
  ): Promise<Map<string, number[]>> {
    const out = new Map<string, number[]>(contactIds.map((id) => [id, queries.map(() => 0)]));
    if (contactIds.length === 0 || queries.length === 0) return out;
    const sums = queries.map(
      (q, i) =>
        sql`count(*) filter (where name = ${q.name} and occurred_at >= ${q.since}::bigint) as ${sql.ref(`q${i}`)}`,
    );
    const names = [...new Set(queries.map((q) => q.name))];
    const found = await rows<Record<string, unknown>>(
      this.h.kysely,
      sql`select contact_id, ${sql.join(sums)} from business_events
          where org_id = ${orgId} and contact_id = any(${[...contactIds]}::text[]) and name = any(${names}::text[])
          group by contact_id`,
    );
    for (const r of found)
      out.set(
        r.contact_id as string,
        queries.map((_, i) => Number(r[`q${i}`] ?? 0)),
      );
    return out;
  }

  async markEventsDispatched(ids: readonly string[], at: number): Promise<void> {
    if (ids.length === 0) return;
    await sql`update business_events set dispatched_at = ${at} where id = any(${[...ids]}::text[])`.execute(
      this.h.kysely,
    );
  }

  async listUndispatchedEvents(receivedBefore: number, limit: number): Promise<BusinessEvent[]> {
    const found = await rows<EventRow>(
      this.h.kysely,
      sql`select * from business_events where dispatched_at is null and received_at < ${receivedBefore}
          order by received_at limit ${limit}`,
    );
    return found.map(toEvent);
  }

  async insertSegment(s: Segment): Promise<void> {
    await sql`insert into segments (id, org_id, name, description, rules, created_at, updated_at)
      values (${s.id}, ${s.orgId}, ${s.name}, ${s.description}, ${JSON.stringify(s.rules)}, ${s.createdAt}, ${s.updatedAt})`.execute(
      this.h.kysely,
    );
  }

  async updateSegment(s: Segment): Promise<boolean> {
    return inTransaction(this.h, async (trx) => {
      const r = await sql`update segments set name = ${s.name}, description = ${s.description},
          rules = ${JSON.stringify(s.rules)}, updated_at = ${s.updatedAt}
        where id = ${s.id} and org_id = ${s.orgId}`.execute(trx);
      if (Number(r.numAffectedRows ?? 0) === 0) return false;
      await sql`delete from segment_members where segment_id = ${s.id}`.execute(trx);
      return true;
    });
  }

  async getSegment(orgId: string, id: string): Promise<Segment | undefined> {
    const [r] = await rows<SegmentRow>(
      this.h.kysely,
      sql`select * from segments where id = ${id} and org_id = ${orgId}`,
    );
    return r ? toSegment(r) : undefined;
  }

  async listSegments(orgId: string): Promise<Segment[]> {
    const found = await rows<SegmentRow>(
      this.h.kysely,
      sql`select * from segments where org_id = ${orgId} order by id`,
    );
    return found.map(toSegment);
  }

  async deleteSegment(orgId: string, id: string): Promise<boolean> {
    return inTransaction(this.h, async (trx) => {
      const r = await sql`delete from segments where id = ${id} and org_id = ${orgId}`.execute(trx);
      if (Number(r.numAffectedRows ?? 0) === 0) return false;
      await sql`delete from segment_members where segment_id = ${id}`.execute(trx);
      return true;
    });
  }

  async getMemberships(orgId: string, contactId: string): Promise<string[]> {
    const found = await rows<{ segment_id: string }>(
      this.h.kysely,
      sql`select segment_id from segment_members where org_id = ${orgId} and contact_id = ${contactId}
          order by segment_id`,
    );
    return found.map((r) => r.segment_id);
  }

  async setMemberships(
    orgId: string,
    contactId: string,
    entered: readonly string[],
    left: readonly string[],
    at: number,
  ): Promise<void> {
    await inTransaction(this.h, async (trx) => {
      if (entered.length > 0) {
        await sql`insert into segment_members (segment_id, contact_id, org_id, entered_at)
          ${unnestRows(
            MEMBER_TYPES,
            entered.map((s) => [s, contactId, orgId, at]),
          )} on conflict do nothing`.execute(trx);
      }
      if (left.length > 0) {
        await sql`delete from segment_members
          where contact_id = ${contactId} and segment_id = any(${[...left]}::text[])`.execute(trx);
      }
    });
  }

  async addSegmentMembers(orgId: string, segmentId: string, contactIds: readonly string[], at: number): Promise<void> {
    if (contactIds.length === 0) return;
    await sql`insert into segment_members (segment_id, contact_id, org_id, entered_at)
      ${unnestRows(
        MEMBER_TYPES,
        contactIds.map((c) => [segmentId, c, orgId, at]),
      )} on conflict do nothing`.execute(this.h.kysely);
  }

  async countSegmentMembers(orgId: string, segmentId: string): Promise<number> {
    const [r] = await rows<{ n: number }>(
      this.h.kysely,
      sql`select count(*) as n from segment_members where org_id = ${orgId} and segment_id = ${segmentId}`,
    );
    return Number(r?.n ?? 0);
  }
}
