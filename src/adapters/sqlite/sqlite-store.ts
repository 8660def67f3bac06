/**
 * The message store on embedded SQLite. Every command is one synchronous better-sqlite3 transaction over
 * cached prepared statements; the hot paths (accept, claim, outcomes, carrier events) are batch-shaped so a
 * group of requests shares one commit.
 */
import type { Kysely } from 'kysely';
import type { Channel } from '../../domain/channels.ts';
import { applyStatusEvent, type MessageStatus, type StatusEvent } from '../../domain/message-status.ts';
import type { CarrierEvent, SenderRecord } from '../../ports/carrier.ts';
import type { NewJob } from '../../ports/queue.ts';
import type {
  AcceptOutcome,
  ApiKeyRecord,
  CarrierEventResult,
  HistoryEntry,
  MessageFilter,
  MessageRecord,
  MessageStore,
  NewMessage,
  SendOutcome,
  StaleMessage,
  StoredCarrierEvent,
  StoredSender,
  Template,
  UnsettledCarrierEvent,
} from '../../ports/store.ts';
import {
  jobRow,
  json,
  type MessageRow,
  outboundMessageRow,
  REDACTED,
  SENDER_SETTING_COLS,
  type SenderRow,
  senderSettings,
  toMessage,
  toSender,
} from '../sql/rows.ts';
import { insertRows, type SqliteHandle } from './database.ts';

const MESSAGE_COLS = [
  'id',
  'org_id',
  'direction',
  'channel',
  'recipient',
  'from_address',
  'status',
  'body',
  'subject',
  'template_id',
  'metadata',
  'send_at',
  'priority',
  'created_at',
  'updated_at',
  'options',
  'contact_id',
  'purpose',
] as const;
const HISTORY_COLS = ['message_id', 'status', 'at', 'applied', 'detail'] as const;
export const JOB_COLS = ['id', 'queue', 'priority', 'run_at', 'org_id', 'payload'] as const;

export class SqliteStore implements MessageStore {
  private readonly h: SqliteHandle;
  // biome-ignore lint/suspicious/noExplicitAny: dynamic queries over an untyped schema
  private readonly k: Kysely<any>;

  constructor(handle: SqliteHandle) {
    this.h = handle;
    this.k = handle.kysely;
  }

  async acceptMessages(
    messages: readonly NewMessage[],
    jobsFor: (accepted: readonly NewMessage[]) => readonly NewJob[],
  ): Promise<AcceptOutcome[]> {
    const h = this.h;
    const queues = new Set<string>();
    const outcomes = h.db.transaction((): AcceptOutcome[] => {
      const out: AcceptOutcome[] = new Array(messages.length);
      const accepted: NewMessage[] = [];
      const idem = h.stmt(
        'INSERT INTO idempotency_keys (org_id, key, request_hash, response, created_at) VALUES (?,?,?,?,?) ON CONFLICT DO NOTHING',
      );
      for (let i = 0; i < messages.length; i++) {
        const m = messages[i] as NewMessage;
        if (m.idempotency) {
          const r = idem.run(
            m.orgId,
            m.idempotency.key,
            m.idempotency.requestHash,
            m.idempotency.response,
            m.createdAt,
          );
          if (r.changes === 0) {
            out[i] = { ok: false, reason: 'idempotency_key_taken' };
            continue;
          }
        }
        out[i] = { ok: true };
        accepted.push(m);
      }
      if (accepted.length === 0) return out;
      // The first history entry of each new message is derived from its row in SQL (rows inserted in this
      // transaction have the highest rowids), which saves binding five values per message.
      const lastRowid = h.stmt('SELECT coalesce(max(rowid), 0) FROM messages').pluck().get() as number;
      insertRows(h, 'messages', MESSAGE_COLS, accepted.map(outboundMessageRow));
      h.stmt(
        `INSERT INTO message_history (message_id, status, at, applied, detail)
         SELECT id, status, created_at, 1, CASE WHEN status = 'scheduled' THEN json_object('sendAt', send_at) END
         FROM messages WHERE rowid > ? ORDER BY rowid`,
      ).run(lastRowid);
      const jobs = jobsFor(accepted);
      if (jobs.length > 0) insertRows(h, 'jobs', JOB_COLS, jobs.map(jobRow), ' ON CONFLICT DO NOTHING');
      for (const j of jobs) queues.add(j.queue);
      return out;
    })();
    for (const q of queues) h.jobsWritten.emit('queue', q);
    return outcomes;
  }

  async findIdempotentResponse(orgId: string, key: string) {
    const r = this.h
      .stmt('SELECT request_hash, response FROM idempotency_keys WHERE org_id = ? AND key = ?')
      .get(orgId, key) as { request_hash: string; response: string } | undefined;
    return r ? { requestHash: r.request_hash, response: r.response } : undefined;
  }

  async getMessage(orgId: string, id: string): Promise<MessageRecord | undefined> {
    const r = this.h.stmt('SELECT * FROM messages WHERE id = ? AND org_id = ?').get(id, orgId) as
      | MessageRow
      | undefined;
    return r ? toMessage(r) : undefined;
  }

  async getHistory(messageId: string): Promise<HistoryEntry[]> {
    const rows = this.h
      .stmt('SELECT status, at, applied, detail FROM message_history WHERE message_id = ? ORDER BY rowid')
      .all(messageId) as { status: MessageStatus; at: number; applied: number; detail: string | null }[];
    return rows.map((r) => ({
      status: r.status,
      at: r.at,
      applied: r.applied === 1,
      detail: r.detail === null ? null : (JSON.parse(r.detail) as Record<string, unknown>),
    }));
  }

  async listMessages(orgId: string, f: MessageFilter): Promise<MessageRecord[]> {
    let q = this.k.selectFrom('messages').selectAll().where('org_id', '=', orgId);
    if (f.status) q = q.where('status', '=', f.status);
    if (f.channel) q = q.where('channel', '=', f.channel);
    if (f.direction) q = q.where('direction', '=', f.direction);
    if (f.createdFrom !== undefined) q = q.where('created_at', '>=', f.createdFrom);
    if (f.createdTo !== undefined) q = q.where('created_at', '<', f.createdTo);
    if (f.before) q = q.where('id', '<', f.before);
    const rows = (await q.orderBy('id', 'desc').limit(f.limit).execute()) as MessageRow[];
    return rows.map(toMessage);
  }

  async claimForSending(ids: readonly string[], now: number, leaseUntil: number): Promise<MessageRecord[]> {
    const h = this.h;
    return h.db.transaction(() => {
      const claim = h.stmt(
        `UPDATE messages SET status = 'sending', attempts = attempts + 1, lease_until = ?, updated_at = ?
         WHERE id = ? AND (status IN ('queued', 'scheduled') OR (status = 'sending' AND lease_until < ?)) RETURNING *`,
      );
      const claimed: MessageRecord[] = [];
      const hist: unknown[][] = [];
      for (const id of ids) {
        const r = claim.get(leaseUntil, now, id, now) as MessageRow | undefined;
        if (!r) continue;
        claimed.push(toMessage(r));
        hist.push([id, 'sending', now, 1, JSON.stringify({ attempt: r.attempts })]);
      }
      insertRows(h, 'message_history', HISTORY_COLS, hist);
      return claimed;
    })();
  }

  async recordSendOutcomes(outcomes: readonly SendOutcome[]): Promise<void> {
    const h = this.h;
    h.db.transaction(() => {
      const current = h.stmt('SELECT status FROM messages WHERE id = ?').pluck();
      // A late `sent` (the carrier already reported an outcome) keeps that outcome's error.
      const sent = h.stmt(
        `UPDATE messages SET status = ?, sender_id = ?, provider = ?, from_address = coalesce(from_address, ?),
         provider_message_id = ?, cost = ?, segments = ?, encoding = ?, lease_until = NULL,
         error_code = iif(?, NULL, error_code),
         error_class = iif(?, NULL, error_class), error_message = iif(?, NULL, error_message),
         updated_at = ? WHERE id = ?`,
      );
      const failed = h.stmt(
        `UPDATE messages SET status = ?, error_code = ?, error_class = ?, error_message = ?, lease_until = NULL,
         sender_id = coalesce(?, sender_id), provider = coalesce(?, provider), updated_at = ? WHERE id = ?`,
      );
      const deferred = h.stmt(
        `UPDATE messages SET status = 'scheduled', send_at = ?, attempts = max(0, attempts - 1), lease_until = NULL,
         updated_at = ? WHERE id = ?`,
      );
      const suppressed = h.stmt(
        `UPDATE messages SET status = 'suppressed', error_code = ?, error_class = 'PermanentError', error_message = ?,
         lease_until = NULL, updated_at = ? WHERE id = ?`,
      );
      const hist: unknown[][] = [];
      for (const o of outcomes) {
        const status = current.get(o.messageId) as MessageStatus | undefined;
        if (status === undefined) continue;
        if (o.kind === 'defer' || o.kind === 'suppress') {
          const t = applyStatusEvent(
            status,
            o.kind === 'defer'
              ? { kind: 'defer', until: o.until, reason: o.reason }
              : { kind: 'suppress', reason: o.reason },
          );
          if (t.applied) {
            if (o.kind === 'defer') deferred.run(o.until, o.at, o.messageId);
            else suppressed.run(o.code, o.reason, o.at, o.messageId);
          }
          const detail =
            o.kind === 'defer'
              ? { reason: o.reason, until: new Date(o.until).toISOString() }
              : { reason: o.reason, code: o.code };
          hist.push([o.messageId, t.recorded, o.at, t.applied ? 1 : 0, JSON.stringify(detail)]);
          continue;
        }
        if (o.kind === 'sent') {
          const t = applyStatusEvent(status, { kind: 'report', status: 'sent' });
          const clear = t.applied ? 1 : 0;
          sent.run(
            t.status,
            o.senderId,
            o.provider,
            o.from,
            o.providerMessageId,
            o.cost,
            o.segments ?? null,
            o.encoding ?? null,
            clear,
            clear,
            clear,
            o.at,
            o.messageId,
          );
          hist.push([
            o.messageId,
            'sent',
            o.at,
            t.applied ? 1 : 0,
            JSON.stringify({ provider: o.provider, senderId: o.senderId, providerMessageId: o.providerMessageId }),
          ]);
        } else {
          const t = applyStatusEvent(
            status,
            o.kind === 'retry' ? { kind: 'retry', error: o.error } : { kind: 'fail', error: o.error },
          );
          if (t.applied) {
            failed.run(
              t.status,
              o.error.code,
              o.error.class,
              o.error.message,
              o.kind === 'fail' ? (o.senderId ?? null) : null,
              o.kind === 'fail' ? (o.provider ?? null) : null,
              o.at,
              o.messageId,
            );
          }
          const detail = o.kind === 'retry' ? { error: o.error, retryAt: o.retryAt } : { error: o.error };
          hist.push([o.messageId, t.recorded, o.at, t.applied ? 1 : 0, JSON.stringify(detail)]);
        }
      }
      insertRows(h, 'message_history', HISTORY_COLS, hist);
    })();
  }

  async applyCommand(orgId: string, id: string, event: StatusEvent, at: number) {
    const h = this.h;
    return h.db.transaction(() => {
      const status = h.stmt('SELECT status FROM messages WHERE id = ? AND org_id = ?').pluck().get(id, orgId) as
        | MessageStatus
        | undefined;
      if (status === undefined) return undefined;
      const t = applyStatusEvent(status, event);
      if (!t.applied) return { applied: false, status };
      const err = t.error ?? null;
      h.stmt(
        `UPDATE messages SET status = ?, lease_until = NULL, updated_at = ?,
         error_code = coalesce(?, error_code), error_class = coalesce(?, error_class), error_message = coalesce(?, error_message)
         WHERE id = ?`,
      ).run(t.status, at, err?.code ?? null, err?.class ?? null, err?.message ?? null, id);
      const detail = event.kind === 'suppress' ? { reason: event.reason, ...event.detail } : (event.detail ?? null);
      h.stmt('INSERT INTO message_history (message_id, status, at, applied, detail) VALUES (?,?,?,?,?)').run(
        id,
        t.recorded,
        at,
        1,
        json(detail),
      );
      return { applied: true, status: t.status };
    })();
  }

  async storeCarrierEvents(
    sender: SenderRecord,
    events: readonly CarrierEvent[],
    job: (ids: number[]) => NewJob,
    now: number,
  ) {
    const h = this.h;
    let queue: string | undefined;
    const ids = h.db.transaction(() => {
      const ins = h.stmt(
        `INSERT INTO carrier_events (sender_id, org_id, event_key, payload, received_at) VALUES (?,?,?,?,?)
         ON CONFLICT DO NOTHING RETURNING id`,
      );
      const out: number[] = [];
      for (const e of events) {
        const r = ins.get(sender.id, sender.orgId, e.eventKey, JSON.stringify(e), now) as { id: number } | undefined;
        if (r) out.push(r.id);
      }
      if (out.length > 0) {
        const j = job(out);
        queue = j.queue;
        insertRows(h, 'jobs', JOB_COLS, [jobRow(j)], ' ON CONFLICT DO NOTHING');
      }
      return out;
    })();
    if (queue) h.jobsWritten.emit('queue', queue);
    return ids;
  }

  async loadCarrierEvents(ids: readonly number[]): Promise<StoredCarrierEvent[]> {
    const get = this.h.stmt('SELECT id, sender_id, org_id, payload FROM carrier_events WHERE id = ?');
    const out: StoredCarrierEvent[] = [];
    for (const id of ids) {
      const r = get.get(id) as { id: number; sender_id: string; org_id: string; payload: string } | undefined;
      if (r)
        out.push({ id: r.id, senderId: r.sender_id, orgId: r.org_id, event: JSON.parse(r.payload) as CarrierEvent });
    }
    return out;
  }

  async applyCarrierEvents(
    events: readonly StoredCarrierEvent[],
    now: number,
    newInboundId: () => string,
  ): Promise<CarrierEventResult> {
    const h = this.h;
    return h.db.transaction(() => {
      // Events already settled (by an earlier run of the same job) are skipped.
      const isOpen = h.stmt('SELECT 1 FROM carrier_events WHERE id = ? AND settled_at IS NULL').pluck();
      const settle = h.stmt('UPDATE carrier_events SET settled_at = ? WHERE id = ?');
      const byId = h.stmt('SELECT id, org_id, status, provider_message_id FROM messages WHERE id = ?');
      const byProvider = h.stmt(
        'SELECT id, org_id, status, provider_message_id FROM messages WHERE sender_id = ? AND provider_message_id = ?',
      );
      const update = h.stmt(
        `UPDATE messages SET status = ?, updated_at = ?, provider_message_id = coalesce(provider_message_id, ?),
         error_code = coalesce(?, error_code), error_class = coalesce(?, error_class), error_message = coalesce(?, error_message)
         WHERE id = ?`,
      );
      const result: CarrierEventResult = { unmatched: [], applied: [], inbound: [] };
      const hist: unknown[][] = [];
      const inbound: unknown[][] = [];
      for (const se of events) {
        const e = se.event;
        if (isOpen.get(se.id) === undefined) continue;
        if (e.kind === 'status') {
          type Row = { id: string; org_id: string; status: MessageStatus; provider_message_id: string | null };
          let m = e.reference ? (byId.get(e.reference) as Row | undefined) : undefined;
          if (m && m.org_id !== se.orgId) m = undefined;
          if (!m && e.providerMessageId) m = byProvider.get(se.senderId, e.providerMessageId) as Row | undefined;
          if (!m) {
            result.unmatched.push(se.id);
            continue;
          }
          const t = applyStatusEvent(m.status, {
            kind: 'report',
            status: e.status,
            ...(e.error ? { error: e.error } : {}),
          });
          if (t.applied) {
            const err = t.error ?? null;
            update.run(
              t.status,
              now,
              e.providerMessageId,
              err?.code ?? null,
              err?.class ?? null,
              err?.message ?? null,
              m.id,
            );
            result.applied.push({ messageId: m.id, status: t.status });
          }
          const detail: Record<string, unknown> = { providerMessageId: e.providerMessageId, receivedAt: now };
          if (e.error) detail.error = e.error;
          if (e.detail) Object.assign(detail, e.detail);
          hist.push([m.id, e.status, e.occurredAt, t.applied ? 1 : 0, JSON.stringify(detail)]);
          settle.run(now, se.id);
        } else {
          const id = newInboundId();
          const sender = h.stmt('SELECT provider FROM senders WHERE id = ?').pluck().get(se.senderId) as
            | string
            | undefined;
          inbound.push([
            id,
            se.orgId,
            e.channel,
            e.to,
            e.from,
            e.body,
            se.senderId,
            sender ?? null,
            e.providerMessageId,
            e.occurredAt,
            now,
          ]);
          hist.push([id, 'received', e.occurredAt, 1, JSON.stringify({ providerMessageId: e.providerMessageId })]);
          result.inbound.push(id);
          settle.run(now, se.id);
        }
      }
      insertRows(
        h,
        'messages',
        [
          'id',
          'org_id',
          'direction',
          'channel',
          'recipient',
          'from_address',
          'status',
          'body',
          'sender_id',
          'provider',
          'provider_message_id',
          'created_at',
          'updated_at',
        ],
        inbound.map((r) => [r[0], r[1], 'inbound', r[2], r[3], r[4], 'received', r[5], r[6], r[7], r[8], r[9], r[10]]),
      );
      insertRows(h, 'message_history', HISTORY_COLS, hist);
      return result;
    })();
  }

  async createTemplate(t: Template): Promise<void> {
    this.h
      .stmt('INSERT INTO templates (id, org_id, name, content, created_at) VALUES (?,?,?,?,?)')
      .run(t.id, t.orgId, t.name, JSON.stringify(t.content), t.createdAt);
  }

  async getTemplate(orgId: string, id: string): Promise<Template | undefined> {
    const r = this.h.stmt('SELECT * FROM templates WHERE id = ? AND org_id = ?').get(id, orgId) as
      | { id: string; org_id: string; name: string; content: string; created_at: number }
      | undefined;
    return r
      ? { id: r.id, orgId: r.org_id, name: r.name, content: JSON.parse(r.content), createdAt: r.created_at }
      : undefined;
  }

  async findApiKeyByHash(hash: string): Promise<ApiKeyRecord | undefined> {
    const r = this.h.stmt('SELECT id, org_id, name FROM api_keys WHERE hash = ? AND revoked_at IS NULL').get(hash) as
      | { id: string; org_id: string; name: string }
      | undefined;
    return r ? { id: r.id, orgId: r.org_id, name: r.name } : undefined;
  }

  async createOrganization(org: { id: string; name: string; createdAt: number }): Promise<void> {
    this.h.stmt('INSERT INTO organizations (id, name, created_at) VALUES (?,?,?)').run(org.id, org.name, org.createdAt);
  }

  async createApiKey(key: { id: string; orgId: string; name: string; hash: string; createdAt: number }): Promise<void> {
    this.h
      .stmt('INSERT INTO api_keys (id, org_id, name, hash, created_at) VALUES (?,?,?,?,?)')
      .run(key.id, key.orgId, key.name, key.hash, key.createdAt);
  }

  async countOrganizations(): Promise<number> {
    return this.h.stmt('SELECT count(*) FROM organizations').pluck().get() as number;
  }

  async firstOrganizationId(): Promise<string | undefined> {
    return this.h.stmt('SELECT id FROM organizations ORDER BY created_at, id LIMIT 1').pluck().get() as
      | string
      | undefined;
  }

  async createSender(s: StoredSender): Promise<void> {
    const cols = ['id', 'org_id', 'provider', 'created_at', ...SENDER_SETTING_COLS];
    this.h
      .stmt(`INSERT INTO senders (${cols.join(', ')}) VALUES (${cols.map(() => '?').join(', ')})`)
      .run(s.id, s.orgId, s.provider, s.createdAt, ...senderSettings(s));
  }

  async updateSender(s: StoredSender): Promise<void> {
    this.h
      .stmt(`UPDATE senders SET ${SENDER_SETTING_COLS.map((c) => `${c} = ?`).join(', ')} WHERE id = ? AND org_id = ?`)
      .run(...senderSettings(s), s.id, s.orgId);
  }

  async listSenders(orgId: string): Promise<StoredSender[]> {
    const rows = this.h
      .stmt('SELECT * FROM senders WHERE org_id = ? AND deleted_at IS NULL ORDER BY priority, id')
      .all(orgId) as SenderRow[];
    return rows.map(toSender);
  }

  async getSender(id: string): Promise<StoredSender | undefined> {
    const r = this.h.stmt('SELECT * FROM senders WHERE id = ?').get(id) as SenderRow | undefined;
    return r ? toSender(r) : undefined;
  }

  async getSenderAffinity(
    orgId: string,
    channel: Channel,
    recipients: readonly string[],
  ): Promise<Map<string, string>> {
    const found = new Map<string, string>();
    const get = this.h
      .stmt('SELECT sender_id FROM sender_affinity WHERE org_id = ? AND channel = ? AND recipient = ?')
      .pluck();
    for (const r of new Set(recipients)) {
      const id = get.get(orgId, channel, r) as string | undefined;
      if (id !== undefined) found.set(r, id);
    }
    return found;
  }

  async setSenderAffinity(
    entries: readonly { orgId: string; channel: Channel; recipient: string; senderId: string }[],
    at: number,
  ): Promise<void> {
    if (entries.length === 0) return;
    const h = this.h;
    h.db.transaction(() => {
      const upsert = h.stmt(
        `INSERT INTO sender_affinity (org_id, channel, recipient, sender_id, updated_at) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (org_id, channel, recipient) DO UPDATE SET sender_id = excluded.sender_id,
         updated_at = excluded.updated_at`,
      );
      for (const e of entries) upsert.run(e.orgId, e.channel, e.recipient, e.senderId, at);
    })();
  }

  async redactRecipients(orgId: string, contactId: string, addresses: readonly string[], at: number): Promise<number> {
    const h = this.h;
    return h.db.transaction(() => {
      const list = JSON.stringify([...new Set(addresses)]);
      const r = h
        .stmt(
          `UPDATE messages SET
             recipient = CASE WHEN direction = 'outbound' THEN '${REDACTED}' ELSE recipient END,
             from_address = CASE WHEN direction = 'inbound' THEN '${REDACTED}' ELSE from_address END,
             body = NULL, subject = NULL, metadata = NULL, options = NULL, updated_at = ?
           WHERE org_id = ? AND (contact_id = ?
             OR (direction = 'outbound' AND recipient IN (SELECT value FROM json_each(?)))
             OR (direction = 'inbound' AND from_address IN (SELECT value FROM json_each(?))))`,
        )
        .run(at, orgId, contactId, list, list);
      return r.changes;
    })();
  }

  async countByStatus(): Promise<Record<string, number>> {
    // Kept by triggers (see `migrations-status-counts.ts`): a few rows, not a count of the table.
    const rows = this.h.stmt('SELECT status, n FROM message_status_counts WHERE n <> 0').all() as {
      status: string;
      n: number;
    }[];
    return Object.fromEntries(rows.map((r) => [r.status, r.n]));
  }

  async listStaleMessages(updatedBefore: number, now: number, limit: number): Promise<StaleMessage[]> {
    const rows = this.h
      .stmt(
        `SELECT id, org_id, priority, send_at FROM messages
         WHERE status IN ('queued', 'scheduled', 'sending')
           AND ((status IN ('queued', 'scheduled') AND updated_at < ? AND coalesce(send_at, 0) <= ?)
            OR (status = 'sending' AND lease_until < ?))
         ORDER BY updated_at LIMIT ?`,
      )
      .all(updatedBefore, now, now, limit) as {
      id: string;
      org_id: string;
      priority: number;
      send_at: number | null;
    }[];
    return rows.map((r) => ({ id: r.id, orgId: r.org_id, priority: r.priority, sendAt: r.send_at }));
  }

  async settleCarrierEvents(ids: readonly number[], now: number): Promise<void> {
    const h = this.h;
    const settle = h.stmt('UPDATE carrier_events SET settled_at = ? WHERE id = ? AND settled_at IS NULL');
    h.db.transaction(() => {
      for (const id of ids) settle.run(now, id);
    })();
  }

  async listUnsettledCarrierEvents(receivedBefore: number, limit: number): Promise<UnsettledCarrierEvent[]> {
    const rows = this.h
      .stmt(
        `SELECT id, org_id FROM carrier_events WHERE settled_at IS NULL AND received_at < ?
         ORDER BY received_at, id LIMIT ?`,
      )
      .all(receivedBefore, limit) as { id: number; org_id: string }[];
    return rows.map((r) => ({ id: r.id, orgId: r.org_id }));
  }

  async ping(): Promise<boolean> {
    return this.h.stmt('SELECT 1').pluck().get() === 1;
  }

  async close(): Promise<void> {
    this.h.close();
  }
}
