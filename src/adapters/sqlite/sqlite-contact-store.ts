/**
 * The contact store on embedded SQLite: every command is one synchronous better-sqlite3 transaction over cached
 * prepared statements (the connection is shared with the message store, so nothing here awaits inside a
 * transaction). One process writes, so checking for a taken identifier and then writing cannot race.
 */
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
  AUDIT_COLS,
  type AuditRow,
  CONTACT_COLS,
  type ConsentRow,
  type ContactRow,
  contactRow,
  EVENT_COLS,
  type EventRow,
  eventRow,
  IDENTIFIER_COLS,
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
import { insertRows, type SqliteHandle } from './database.ts';

/** Thrown inside a transaction to roll it back with an answer. */
class Rollback {
  constructor(readonly result: ContactWriteResult) {}
}

const marks = (n: number) => Array.from({ length: n }, () => '?').join(',');

const CONTACT_UPDATE = `UPDATE contacts SET external_id = ?, attributes = ?, tags = ?, persona = ?, time_zone = ?,
  time_zone_source = ?, language = ?, version = ?, updated_at = ? WHERE id = ? AND org_id = ? AND version = ?`;

export class SqliteContactStore implements ContactStore {
  constructor(private readonly h: SqliteHandle) {}

  private tx<T>(fn: () => T): T {
    try {
      return this.h.db.transaction(fn)();
    } catch (err) {
      if (err instanceof Rollback) return err.result as T;
      throw err;
    }
  }

  /** Another contact holding the record's external id or one of its identifiers. */
  private conflictOf(c: ContactRecord): ContactWriteResult | null {
    if (c.externalId !== null) {
      const other = this.h
        .stmt('SELECT id FROM contacts WHERE org_id = ? AND external_id = ? AND id <> ?')
        .pluck()
        .get(c.orgId, c.externalId, c.id) as string | undefined;
      if (other) return { ok: false, reason: 'conflict', kind: 'externalId', value: c.externalId, contactId: other };
    }
    const owner = this.h.stmt(
      'SELECT contact_id FROM contact_identifiers WHERE org_id = ? AND kind = ? AND value = ? AND contact_id <> ?',
    );
    for (const i of c.identifiers) {
      const other = owner.pluck().get(c.orgId, i.kind, i.value, c.id) as string | undefined;
      if (other) return { ok: false, reason: 'conflict', kind: i.kind, value: i.value, contactId: other };
    }
    return null;
  }

  private writeIdentifiers(c: ContactRecord): void {
    this.h.stmt('DELETE FROM contact_identifiers WHERE contact_id = ?').run(c.id);
    insertRows(this.h, 'contact_identifiers', IDENTIFIER_COLS, identifierRows(c, c.updatedAt));
  }

  private updateRow(c: ContactRecord, expectedVersion: number): boolean {
    const r = this.h
      .stmt(CONTACT_UPDATE)
      .run(
        c.externalId,
        JSON.stringify(c.attributes),
        JSON.stringify(c.tags),
        c.persona,
        c.timeZone,
        c.timeZoneSource,
        c.language,
        c.version,
        c.updatedAt,
        c.id,
        c.orgId,
        expectedVersion,
      );
    return r.changes === 1;
  }

  private load(rows: ContactRow[]): ContactRecord[] {
    if (rows.length === 0) return [];
    const ids = rows.map((r) => r.id);
    const identifiers = this.h
      .stmt(
        'SELECT contact_id, kind, value, data, position FROM contact_identifiers WHERE contact_id IN (SELECT value FROM json_each(?))',
      )
      .all(JSON.stringify(ids)) as IdentifierRow[];
    return rows.map((r) => toContact(r, identifiers));
  }

  async insertContact(c: ContactRecord): Promise<ContactWriteResult> {
    return this.tx(() => {
      const conflict = this.conflictOf(c);
      if (conflict) return conflict;
      insertRows(this.h, 'contacts', CONTACT_COLS, [contactRow(c)]);
      this.writeIdentifiers(c);
      return { ok: true };
    });
  }

  async updateContact(c: ContactRecord, expectedVersion: number): Promise<ContactWriteResult> {
    return this.tx(() => {
      const conflict = this.conflictOf(c);
      if (conflict) return conflict;
      if (!this.updateRow(c, expectedVersion)) return { ok: false, reason: 'stale' };
      this.writeIdentifiers(c);
      return { ok: true };
    });
  }

  async getContact(orgId: string, id: string): Promise<ContactRecord | undefined> {
    const row = this.h.stmt('SELECT * FROM contacts WHERE id = ? AND org_id = ?').get(id, orgId) as
      | ContactRow
      | undefined;
    return row ? this.load([row])[0] : undefined;
  }

  async getContacts(orgId: string, ids: readonly string[]): Promise<ContactRecord[]> {
    if (ids.length === 0) return [];
    const rows = this.h
      .stmt('SELECT * FROM contacts WHERE org_id = ? AND id IN (SELECT value FROM json_each(?))')
      .all(orgId, JSON.stringify(ids)) as ContactRow[];
    return this.load(rows);
  }

  async findContacts(
    orgId: string,
    keys: { externalId?: string | null; identifiers?: readonly Pick<ContactIdentifier, 'kind' | 'value'>[] },
  ): Promise<ContactRecord[]> {
    const ids = new Set<string>();
    if (keys.externalId) {
      const id = this.h
        .stmt('SELECT id FROM contacts WHERE org_id = ? AND external_id = ?')
        .pluck()
        .get(orgId, keys.externalId) as string | undefined;
      if (id) ids.add(id);
    }
    const owner = this.h
      .stmt('SELECT contact_id FROM contact_identifiers WHERE org_id = ? AND kind = ? AND value = ?')
      .pluck();
    for (const i of keys.identifiers ?? []) {
      const id = owner.get(orgId, i.kind, i.value) as string | undefined;
      if (id) ids.add(id);
    }
    if (ids.size === 0) return [];
    const rows = this.h
      .stmt(
        `SELECT * FROM contacts WHERE org_id = ? AND id IN (SELECT value FROM json_each(?))
         AND merged_into IS NULL AND erased_at IS NULL ORDER BY id`,
      )
      .all(orgId, JSON.stringify([...ids])) as ContactRow[];
    return this.load(rows);
  }

  async listContacts(orgId: string, f: ContactListFilter): Promise<ContactRecord[]> {
    const where = ['org_id = ?', 'merged_into IS NULL', 'erased_at IS NULL'];
    const params: unknown[] = [orgId];
    if (f.before) {
      where.push('id < ?');
      params.push(f.before);
    }
    if (f.externalId !== undefined) {
      where.push('external_id = ?');
      params.push(f.externalId);
    }
    if (f.tag !== undefined) {
      where.push('EXISTS (SELECT 1 FROM json_each(contacts.tags) WHERE json_each.value = ?)');
      params.push(f.tag);
    }
    if (f.identifier) {
      where.push('id IN (SELECT contact_id FROM contact_identifiers WHERE org_id = ? AND kind = ? AND value = ?)');
      params.push(orgId, f.identifier.kind, f.identifier.value);
    }
    const rows = this.h
      .stmt(`SELECT * FROM contacts WHERE ${where.join(' AND ')} ORDER BY id DESC LIMIT ?`)
      .all(...params, f.limit) as ContactRow[];
    return this.load(rows);
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
    const h = this.h;
    const { orgId, target, otherId, at } = m;
    return this.tx(() => {
      const other = h
        .stmt('SELECT version FROM contacts WHERE id = ? AND org_id = ? AND merged_into IS NULL AND erased_at IS NULL')
        .pluck()
        .get(otherId, orgId) as number | undefined;
      if (other !== m.otherVersion) return { ok: false, reason: 'stale' };
      // The other's addresses and external id move to the target: free them first.
      h.stmt('DELETE FROM contact_identifiers WHERE contact_id = ?').run(otherId);
      h.stmt(
        `UPDATE contacts SET merged_into = ?, external_id = NULL, attributes = '{}', tags = '[]', persona = NULL,
         time_zone = NULL, time_zone_source = NULL, language = NULL, version = version + 1, updated_at = ? WHERE id = ?`,
      ).run(target.id, at, otherId);
      const conflict = this.conflictOf(target);
      if (conflict) throw new Rollback(conflict);
      if (!this.updateRow(target, m.targetVersion)) throw new Rollback({ ok: false, reason: 'stale' });
      this.writeIdentifiers(target);
      h.stmt('UPDATE contacts SET merged_into = ? WHERE org_id = ? AND merged_into = ?').run(target.id, orgId, otherId);
      h.stmt('UPDATE business_events SET contact_id = ? WHERE org_id = ? AND contact_id = ?').run(
        target.id,
        orgId,
        otherId,
      );
      h.stmt('UPDATE consent_audit SET contact_id = ? WHERE org_id = ? AND contact_id = ?').run(
        target.id,
        orgId,
        otherId,
      );
      h.stmt('UPDATE contact_sends SET recipient_key = ? WHERE org_id = ? AND recipient_key = ?').run(
        target.id,
        orgId,
        otherId,
      );
      h.stmt('DELETE FROM consents WHERE contact_id IN (?, ?)').run(target.id, otherId);
      insertRows(
        h,
        'consents',
        ['contact_id', 'org_id', 'channel', 'purpose', 'sender', 'status', 'source', 'updated_at'],
        m.consents.map((c) => [target.id, orgId, c.channel, c.purpose, c.sender, c.status, c.source, c.updatedAt]),
      );
      return { ok: true };
    });
  }

  async eraseContact(orgId: string, id: string, at: number): Promise<{ identifiers: ContactIdentifier[] } | undefined> {
    const h = this.h;
    return this.tx(() => {
      const row = h.stmt('SELECT * FROM contacts WHERE id = ? AND org_id = ?').get(id, orgId) as ContactRow | undefined;
      if (!row) return undefined;
      const [contact] = this.load([row]);
      h.stmt('DELETE FROM contact_identifiers WHERE contact_id = ?').run(id);
      h.stmt(
        `UPDATE contacts SET external_id = NULL, attributes = '{}', tags = '[]', persona = NULL, time_zone = NULL,
         time_zone_source = NULL, language = NULL, erased_at = coalesce(erased_at, ?), version = version + 1,
         updated_at = ? WHERE id = ?`,
      ).run(at, at, id);
      h.stmt('DELETE FROM consents WHERE contact_id = ?').run(id);
      h.stmt('UPDATE consent_audit SET evidence = NULL WHERE contact_id = ?').run(id);
      h.stmt('UPDATE business_events SET properties = NULL WHERE contact_id = ?').run(id);
      h.stmt('DELETE FROM contact_sends WHERE org_id = ? AND recipient_key = ?').run(orgId, id);
      return { identifiers: contact?.identifiers ?? [] };
    });
  }

  async getConsents(orgId: string, contactIds: readonly string[]): Promise<StoredConsent[]> {
    if (contactIds.length === 0) return [];
    const rows = this.h
      .stmt('SELECT * FROM consents WHERE org_id = ? AND contact_id IN (SELECT value FROM json_each(?))')
      .all(orgId, JSON.stringify(contactIds)) as ConsentRow[];
    return rows.map(toConsent);
  }

  async recordConsents(changes: readonly ConsentChange[], newAuditId: () => string): Promise<void> {
    if (changes.length === 0) return;
    const h = this.h;
    this.tx(() => {
      const upsert = h.stmt(
        `INSERT INTO consents (contact_id, org_id, channel, purpose, sender, status, source, updated_at)
         VALUES (?,?,?,?,?,?,?,?)
         ON CONFLICT (contact_id, channel, purpose, sender) DO UPDATE SET
           status = excluded.status, source = excluded.source, updated_at = excluded.updated_at
         WHERE excluded.updated_at >= consents.updated_at`,
      );
      for (const c of changes) {
        upsert.run(c.contactId, c.orgId, c.channel, c.purpose, c.sender, c.status, c.source, c.at);
      }
      insertRows(
        h,
        'consent_audit',
        AUDIT_COLS,
        changes.map((c) => [
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
        ]),
      );
    });
  }

  async listConsentAudit(orgId: string, contactId: string, limit: number): Promise<ConsentAuditEntry[]> {
    const rows = this.h
      .stmt('SELECT * FROM consent_audit WHERE org_id = ? AND contact_id = ? ORDER BY at, id LIMIT ?')
      .all(orgId, contactId, limit) as AuditRow[];
    return rows.map(toAudit);
  }

  async getComplianceSettings(orgId: string): Promise<ComplianceSettings | undefined> {
    const text = this.h.stmt('SELECT settings FROM compliance_settings WHERE org_id = ?').pluck().get(orgId) as
      | string
      | undefined;
    return text === undefined ? undefined : toSettings(text);
  }

  async saveComplianceSettings(orgId: string, settings: ComplianceSettings, at: number): Promise<void> {
    this.h
      .stmt(
        `INSERT INTO compliance_settings (org_id, settings, updated_at) VALUES (?,?,?)
         ON CONFLICT (org_id) DO UPDATE SET settings = excluded.settings, updated_at = excluded.updated_at`,
      )
      .run(orgId, JSON.stringify(settings), at);
  }

  async recordSends(sends: readonly SendCount[]): Promise<void> {
    if (sends.length === 0) return;
    this.tx(() =>
      insertRows(
        this.h,
        'contact_sends',
        ['org_id', 'recipient_key', 'channel', 'purpose', 'at'],
        sends.map((s) => [s.orgId, s.recipientKey, s.channel, s.purpose, s.at]),
      ),
    );
  }

  async recentSends(orgId: string, recipientKeys: readonly string[], since: number): Promise<SendCount[]> {
    if (recipientKeys.length === 0) return [];
    const rows = this.h
      .stmt(
        `SELECT org_id, recipient_key, channel, purpose, at FROM contact_sends
         WHERE org_id = ? AND recipient_key IN (SELECT value FROM json_each(?)) AND at >= ?`,
      )
      .all(orgId, JSON.stringify(recipientKeys), since) as {
      org_id: string;
      recipient_key: string;
      channel: SendCount['channel'];
      purpose: SendCount['purpose'];
      at: number;
    }[];
    return rows.map((r) => ({
      orgId: r.org_id,
      recipientKey: r.recipient_key,
      channel: r.channel,
      purpose: r.purpose,
      at: r.at,
    }));
  }

  async pruneSends(before: number): Promise<number> {
    return this.h.stmt('DELETE FROM contact_sends WHERE at < ?').run(before).changes;
  }

  async insertEvent(e: BusinessEvent): Promise<{ inserted: true } | { inserted: false; existing: BusinessEvent }> {
    const h = this.h;
    return this.tx(() => {
      const r = h
        .stmt(
          `INSERT INTO business_events (${EVENT_COLS.join(',')}) VALUES (${marks(EVENT_COLS.length)}) ON CONFLICT DO NOTHING`,
        )
        .run(...eventRow(e));
      if (r.changes === 1) return { inserted: true as const };
      const existing = h
        .stmt('SELECT * FROM business_events WHERE org_id = ? AND idempotency_key = ?')
        .get(e.orgId, e.idempotencyKey) as EventRow | undefined;
      if (!existing) throw new Error(`event ${e.id} was not stored and has no idempotent twin`);
      return { inserted: false as const, existing: toEvent(existing) };
    });
  }

  async getEvent(orgId: string, id: string): Promise<BusinessEvent | undefined> {
    const r = this.h.stmt('SELECT * FROM business_events WHERE id = ? AND org_id = ?').get(id, orgId) as
      | EventRow
      | undefined;
    return r ? toEvent(r) : undefined;
  }

  async listEvents(
    orgId: string,
    contactId: string,
    f: { before?: string; limit: number; name?: string },
  ): Promise<BusinessEvent[]> {
    const where = ['org_id = ?', 'contact_id = ?'];
    const params: unknown[] = [orgId, contactId];
    if (f.before) {
      where.push('id < ?');
      params.push(f.before);
    }
    if (f.name !== undefined) {
      where.push('name = ?');
      params.push(f.name);
    }
    const rows = this.h
      .stmt(`SELECT * FROM business_events WHERE ${where.join(' AND ')} ORDER BY id DESC LIMIT ?`)
      .all(...params, f.limit) as EventRow[];
    return rows.map(toEvent);
  }

  async countEvents(
    orgId: string,
    contactIds: readonly string[],
    queries: readonly EventQuery[],
  ): Promise<Map<string, number[]>> {
    const out = new Map<string, number[]>(contactIds.map((id) => [id, queries.map(() => 0)]));
    if (contactIds.length === 0 || queries.length === 0) return out;
    const sums = queries.map((_, i) => `SUM(CASE WHEN name = ? AND occurred_at >= ? THEN 1 ELSE 0 END) AS q${i}`);
    const names = [...new Set(queries.map((q) => q.name))];
    const rows = this.h
      .stmt(
        `SELECT contact_id, ${sums.join(', ')} FROM business_events
         WHERE org_id = ? AND contact_id IN (SELECT value FROM json_each(?)) AND name IN (SELECT value FROM json_each(?))
         GROUP BY contact_id`,
      )
      .all(
        ...queries.flatMap((q) => [q.name, q.since]),
        orgId,
        JSON.stringify(contactIds),
        JSON.stringify(names),
      ) as Record<string, unknown>[];
    for (const r of rows)
      out.set(
        r.contact_id as string,
        queries.map((_, i) => Number(r[`q${i}`] ?? 0)),
      );
    return out;
  }

  async markEventsDispatched(ids: readonly string[], at: number): Promise<void> {
    if (ids.length === 0) return;
    this.h
      .stmt('UPDATE business_events SET dispatched_at = ? WHERE id IN (SELECT value FROM json_each(?))')
      .run(at, JSON.stringify(ids));
  }

  async listUndispatchedEvents(receivedBefore: number, limit: number): Promise<BusinessEvent[]> {
    const rows = this.h
      .stmt(
        'SELECT * FROM business_events WHERE dispatched_at IS NULL AND received_at < ? ORDER BY received_at LIMIT ?',
      )
      .all(receivedBefore, limit) as EventRow[];
    return rows.map(toEvent);
  }

  async insertSegment(s: Segment): Promise<void> {
    this.h
      .stmt(
        'INSERT INTO segments (id, org_id, name, description, rules, created_at, updated_at) VALUES (?,?,?,?,?,?,?)',
      )
      .run(s.id, s.orgId, s.name, s.description, JSON.stringify(s.rules), s.createdAt, s.updatedAt);
  }

  async updateSegment(s: Segment): Promise<boolean> {
    return this.tx(() => {
      const r = this.h
        .stmt('UPDATE segments SET name = ?, description = ?, rules = ?, updated_at = ? WHERE id = ? AND org_id = ?')
        .run(s.name, s.description, JSON.stringify(s.rules), s.updatedAt, s.id, s.orgId);
      if (r.changes === 0) return false;
      this.h.stmt('DELETE FROM segment_members WHERE segment_id = ?').run(s.id);
      return true;
    });
  }

  async getSegment(orgId: string, id: string): Promise<Segment | undefined> {
    const r = this.h.stmt('SELECT * FROM segments WHERE id = ? AND org_id = ?').get(id, orgId) as
      | SegmentRow
      | undefined;
    return r ? toSegment(r) : undefined;
  }

  async listSegments(orgId: string): Promise<Segment[]> {
    const rows = this.h.stmt('SELECT * FROM segments WHERE org_id = ? ORDER BY id').all(orgId) as SegmentRow[];
    return rows.map(toSegment);
  }

  async deleteSegment(orgId: string, id: string): Promise<boolean> {
    return this.tx(() => {
      const r = this.h.stmt('DELETE FROM segments WHERE id = ? AND org_id = ?').run(id, orgId);
      if (r.changes === 0) return false;
      this.h.stmt('DELETE FROM segment_members WHERE segment_id = ?').run(id);
      return true;
    });
  }

  async getMemberships(orgId: string, contactId: string): Promise<string[]> {
    return this.h
      .stmt('SELECT segment_id FROM segment_members WHERE org_id = ? AND contact_id = ? ORDER BY segment_id')
      .pluck()
      .all(orgId, contactId) as string[];
  }

  async setMemberships(
    orgId: string,
    contactId: string,
    entered: readonly string[],
    left: readonly string[],
    at: number,
  ): Promise<void> {
    this.tx(() => {
      insertRows(
        this.h,
        'segment_members',
        ['segment_id', 'contact_id', 'org_id', 'entered_at'],
        entered.map((s) => [s, contactId, orgId, at]),
        ' ON CONFLICT DO NOTHING',
      );
      const drop = this.h.stmt('DELETE FROM segment_members WHERE segment_id = ? AND contact_id = ?');
      for (const s of left) drop.run(s, contactId);
    });
  }

  async addSegmentMembers(orgId: string, segmentId: string, contactIds: readonly string[], at: number): Promise<void> {
    if (contactIds.length === 0) return;
    this.tx(() =>
      insertRows(
        this.h,
        'segment_members',
        ['segment_id', 'contact_id', 'org_id', 'entered_at'],
        contactIds.map((c) => [segmentId, c, orgId, at]),
        ' ON CONFLICT DO NOTHING',
      ),
    );
  }

  async countSegmentMembers(orgId: string, segmentId: string): Promise<number> {
    return this.h
      .stmt('SELECT count(*) FROM segment_members WHERE org_id = ? AND segment_id = ?')
      .pluck()
      .get(orgId, segmentId) as number;
  }
}
