/**
 * The message store on PostgreSQL, for several API and worker processes sharing one database.
 *
 * Every command is one transaction (READ COMMITTED, retried when chosen as a deadlock victim). Batches are written
 * with one statement per table: `INSERT ... SELECT FROM unnest($1::text[], $2::bigint[], ...)`, a multi-row insert
 * whose statement text and parameter count do not grow with the batch (no 65,535-parameter limit), and the
 * statements of a command are chained with data-modifying CTEs where they can be, to save round trips.
 *
 * Concurrency: a status change reads the message's row `FOR UPDATE` and decides with `applyStatusEvent`, so two
 * processes reporting on one message are serialized and the second sees the first's result (a rank is never
 * lowered). Commands that lock several messages lock them in id order, so they cannot deadlock each other.
 * History rows of a message are written while its row is locked, so their `seq` order is the order of events.
 * Applying carrier events locks the (unsettled) events first, then their messages; nothing locks in the other order.
 */
import { type RawBuilder, sql } from 'kysely';
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
import { foldStatusCountShards } from '../sql/migrations-status-counts.ts';
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
import { inTransaction, type PgHandle, preferKeyLookups, type Trx } from './database.ts';

type PgType = 'text' | 'bigint' | 'integer' | 'double precision';
type Columns = readonly (readonly [name: string, type: PgType])[];

/**
 * `SELECT cols FROM unnest(...)` over `rows` (arrays of column values in `cols` order), in row order: the source
 * of a batch insert or update. Each column travels as one typed array parameter.
 */
export function unnestRows(cols: Columns, rows: readonly (readonly unknown[])[]): RawBuilder<unknown> {
  const names = sql.join(cols.map(([name]) => sql.ref(name)));
  const arrays = sql.join(cols.map(([, type], i) => sql`${rows.map((r) => r[i] ?? null)}::${sql.raw(type)}[]`));
  return sql`select ${names} from unnest(${arrays}) with ordinality as v(${names}, ord) order by ord`;
}

/** `INSERT INTO table (cols) SELECT ... FROM unnest(...)` (+ `tail`, e.g. `on conflict do nothing`). */
export function insertRows(
  table: string,
  cols: Columns,
  rows: readonly (readonly unknown[])[],
  tail: RawBuilder<unknown> = sql``,
): RawBuilder<unknown> {
  const names = sql.join(cols.map(([name]) => sql.ref(name)));
  return sql`insert into ${sql.table(table)} (${names}) (${unnestRows(cols, rows)}) ${tail}`;
}

const MESSAGE_COLS: Columns = [
  ['id', 'text'],
  ['org_id', 'text'],
  ['direction', 'text'],
  ['channel', 'text'],
  ['recipient', 'text'],
  ['from_address', 'text'],
  ['status', 'text'],
  ['body', 'text'],
  ['subject', 'text'],
  ['template_id', 'text'],
  ['metadata', 'text'],
  ['send_at', 'bigint'],
  ['priority', 'integer'],
  ['created_at', 'bigint'],
  ['updated_at', 'bigint'],
  ['options', 'text'],
  ['contact_id', 'text'],
  ['purpose', 'text'],
];
const INBOUND_COLS: Columns = [
  ['id', 'text'],
  ['org_id', 'text'],
  ['direction', 'text'],
  ['channel', 'text'],
  ['recipient', 'text'],
  ['from_address', 'text'],
  ['status', 'text'],
  ['body', 'text'],
  ['sender_id', 'text'],
  ['provider', 'text'],
  ['provider_message_id', 'text'],
  ['created_at', 'bigint'],
  ['updated_at', 'bigint'],
];
const HISTORY_COLS: Columns = [
  ['message_id', 'text'],
  ['status', 'text'],
  ['at', 'bigint'],
  ['applied', 'integer'],
  ['detail', 'text'],
];
export const JOB_COLS: Columns = [
  ['id', 'text'],
  ['queue', 'text'],
  ['priority', 'integer'],
  ['run_at', 'bigint'],
  ['org_id', 'text'],
  ['payload', 'text'],
];
const IDEMPOTENCY_COLS: Columns = [
  ['org_id', 'text'],
  ['key', 'text'],
  ['request_hash', 'text'],
  ['response', 'text'],
  ['created_at', 'bigint'],
];
/** The columns a status change may write back (the rest of a message never changes after it is accepted). */
const MUTABLE_COLS: Columns = [
  ['id', 'text'],
  ['status', 'text'],
  ['sender_id', 'text'],
  ['provider', 'text'],
  ['from_address', 'text'],
  ['provider_message_id', 'text'],
  ['cost', 'double precision'],
  ['lease_until', 'bigint'],
  ['error_code', 'text'],
  ['error_class', 'text'],
  ['error_message', 'text'],
  ['updated_at', 'bigint'],
  ['segments', 'integer'],
  ['encoding', 'text'],
  ['send_at', 'bigint'],
  ['attempts', 'integer'],
];

const ON_CONFLICT_DO_NOTHING = sql`on conflict do nothing`;
/** Counter rows (statuses × backends) above which `countByStatus` folds those of ended backends. */
const STATUS_COUNT_ROWS_BEFORE_FOLD = 200;

/** What a status change reads and writes of a message: its organization and the mutable columns. */
type LockedRow = Pick<
  MessageRow,
  | 'id'
  | 'org_id'
  | 'status'
  | 'sender_id'
  | 'provider'
  | 'from_address'
  | 'provider_message_id'
  | 'cost'
  | 'error_code'
  | 'error_class'
  | 'error_message'
  | 'updated_at'
  | 'segments'
  | 'encoding'
  | 'send_at'
  | 'attempts'
> & { lease_until: number | null };
/** The columns of a `LockedRow` (not the body, metadata or options a status change never needs). */
const LOCKED_COLS = sql.raw(['org_id', ...MUTABLE_COLS.map(([name]) => name)].join(', '));

/** A statement writing the mutable columns of `rows` back (they were read `FOR UPDATE` in this transaction). */
function writeBack(rows: readonly LockedRow[]): RawBuilder<unknown> {
  const set = sql.join(
    MUTABLE_COLS.slice(1).map(([name]) => sql`${sql.ref(name)} = ${sql.ref(`v.${name}`)}`),
    sql`, `,
  );
  const values = rows.map((r) => [
    r.id,
    r.status,
    r.sender_id,
    r.provider,
    r.from_address,
    r.provider_message_id,
    r.cost,
    r.lease_until,
    r.error_code,
    r.error_class,
    r.error_message,
    r.updated_at,
    r.segments,
    r.encoding,
    r.send_at,
    r.attempts,
  ]);
  return sql`update messages as m set ${set} from (${unnestRows(MUTABLE_COLS, values)}) as v where m.id = v.id`;
}

export class PgStore implements MessageStore {
  constructor(private readonly h: PgHandle) {}

  async acceptMessages(
    messages: readonly NewMessage[],
    jobsFor: (accepted: readonly NewMessage[]) => readonly NewJob[],
  ): Promise<AcceptOutcome[]> {
    if (messages.length === 0) return [];
    const queues = new Set<string>();
    const outcomes = await inTransaction(this.h, async (trx) => {
      const out: AcceptOutcome[] = messages.map(() => ({ ok: true }));
      // Idempotency keys: the first message of the batch with a key may take it (if no earlier request did);
      // later ones with the same key are rejected, as if inserted one by one. Keys are inserted in a fixed order
      // so two batches sharing keys cannot deadlock on each other's uncommitted rows.
      const claims = new Map<string, number>();
      for (let i = 0; i < messages.length; i++) {
        const m = messages[i] as NewMessage;
        if (!m.idempotency) continue;
        const k = `${m.orgId}\u0000${m.idempotency.key}`;
        if (claims.has(k)) out[i] = { ok: false, reason: 'idempotency_key_taken' };
        else claims.set(k, i);
      }
      if (claims.size > 0) {
        const rows = [...claims.entries()]
          .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
          .map(([, i]) => {
            const m = messages[i] as NewMessage;
            const idem = m.idempotency as NonNullable<NewMessage['idempotency']>;
            return [m.orgId, idem.key, idem.requestHash, idem.response, m.createdAt];
          });
        const { rows: taken } = await sql<{ org_id: string; key: string }>`${insertRows(
          'idempotency_keys',
          IDEMPOTENCY_COLS,
          rows,
          sql`on conflict do nothing returning org_id, key`,
        )}`.execute(trx);
        const inserted = new Set(taken.map((r) => `${r.org_id}\u0000${r.key}`));
        for (const [k, i] of claims) if (!inserted.has(k)) out[i] = { ok: false, reason: 'idempotency_key_taken' };
      }

      const accepted = messages.filter((_, i) => out[i]?.ok);
      const msgRows = accepted.map(outboundMessageRow);
      const jobs = accepted.length > 0 ? jobsFor(accepted) : [];
      const jobRows = jobs.map(jobRow);
      queues.clear();
      for (const j of jobs) queues.add(j.queue);
      if (msgRows.length > 0) {
        // Messages, their first history entries (derived from the inserted rows) and their jobs, in one statement;
        // the NOTIFY is delivered by PostgreSQL when the transaction commits.
        await sql`
          with m as (${insertRows('messages', MESSAGE_COLS, msgRows, sql`returning id, status, created_at, send_at`)}),
          h as (
            insert into message_history (message_id, status, at, applied, detail)
            select id, status, created_at, 1,
              case when status = 'scheduled' then json_build_object('sendAt', send_at)::text end
            from m
          ),
          j as (${insertRows('jobs', JOB_COLS, jobRows, ON_CONFLICT_DO_NOTHING)})
          ${this.h.notifyJobs(queues)}`.execute(trx);
      }
      return out;
    });
    this.h.announce(queues);
    return outcomes;
  }

  async findIdempotentResponse(orgId: string, key: string) {
    const { rows } = await sql<{ request_hash: string; response: string }>`
      select request_hash, response from idempotency_keys where org_id = ${orgId} and key = ${key}`.execute(
      this.h.kysely,
    );
    const r = rows[0];
    return r ? { requestHash: r.request_hash, response: r.response } : undefined;
  }

  async getMessage(orgId: string, id: string): Promise<MessageRecord | undefined> {
    const { rows } = await sql<MessageRow>`select * from messages where id = ${id} and org_id = ${orgId}`.execute(
      this.h.kysely,
    );
    return rows[0] ? toMessage(rows[0]) : undefined;
  }

  async getHistory(messageId: string): Promise<HistoryEntry[]> {
    const { rows } = await sql<{ status: MessageStatus; at: number; applied: number; detail: string | null }>`
      select status, at, applied, detail from message_history where message_id = ${messageId} order by seq`.execute(
      this.h.kysely,
    );
    return rows.map((r) => ({
      status: r.status,
      at: r.at,
      applied: r.applied === 1,
      detail: r.detail === null ? null : (JSON.parse(r.detail) as Record<string, unknown>),
    }));
  }

  async listMessages(orgId: string, f: MessageFilter): Promise<MessageRecord[]> {
    let q = this.h.kysely.selectFrom('messages').selectAll().where('org_id', '=', orgId);
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
    if (ids.length === 0) return [];
    const rows = await inTransaction(this.h, async (trx) => {
      await preferKeyLookups(trx);
      // One conditional UPDATE: rows are locked in id order first; a row another transaction changed meanwhile is
      // re-checked against the condition on its new version (so two workers never both claim a message).
      const { rows } = await sql<MessageRow>`
        with l as (select id from messages where id = any(${[...ids]}::text[]) order by id for update),
        c as (
          update messages as m
          set status = 'sending', attempts = m.attempts + 1, lease_until = ${leaseUntil}::bigint,
            updated_at = ${now}::bigint
          from l
          where m.id = l.id
            and (m.status in ('queued', 'scheduled') or (m.status = 'sending' and m.lease_until < ${now}::bigint))
          returning m.*
        ),
        h as (
          insert into message_history (message_id, status, at, applied, detail)
          select id, 'sending', ${now}::bigint, 1, json_build_object('attempt', attempts)::text from c
        )
        select * from c`.execute(trx);
      return rows;
    });
    // In the order asked for, like the embedded store.
    const byId = new Map(rows.map((r) => [r.id, r]));
    const out: MessageRecord[] = [];
    for (const id of new Set(ids)) {
      const r = byId.get(id);
      if (r) out.push(toMessage(r));
    }
    return out;
  }

  /** Reads messages `FOR UPDATE`, in id order (the lock order of every multi-message command). */
  private async lockMessages(trx: Trx, where: RawBuilder<unknown>): Promise<LockedRow[]> {
    const { rows } =
      await sql<LockedRow>`select ${LOCKED_COLS} from messages where ${where} order by id for update`.execute(trx);
    return rows;
  }

  async recordSendOutcomes(outcomes: readonly SendOutcome[]): Promise<void> {
    if (outcomes.length === 0) return;
    const ids = [...new Set(outcomes.map((o) => o.messageId))];
    await inTransaction(this.h, async (trx) => {
      await preferKeyLookups(trx);
      const rows = await this.lockMessages(trx, sql`id = any(${ids}::text[])`);
      const current = new Map(rows.map((r) => [r.id, r]));
      const dirty = new Set<LockedRow>();
      const hist: unknown[][] = [];
      for (const o of outcomes) {
        const r = current.get(o.messageId);
        if (!r) continue;
        if (o.kind === 'defer' || o.kind === 'suppress') {
          const t = applyStatusEvent(
            r.status,
            o.kind === 'defer'
              ? { kind: 'defer', until: o.until, reason: o.reason }
              : { kind: 'suppress', reason: o.reason },
          );
          if (t.applied) {
            r.status = t.status;
            r.lease_until = null;
            r.updated_at = o.at;
            if (o.kind === 'defer') {
              r.send_at = o.until;
              r.attempts = Math.max(0, r.attempts - 1);
            } else {
              r.error_code = o.code;
              r.error_class = 'PermanentError';
              r.error_message = o.reason;
            }
            dirty.add(r);
          }
          const detail =
            o.kind === 'defer'
              ? { reason: o.reason, until: new Date(o.until).toISOString() }
              : { reason: o.reason, code: o.code };
          hist.push([o.messageId, t.recorded, o.at, t.applied ? 1 : 0, JSON.stringify(detail)]);
          continue;
        }
        if (o.kind === 'sent') {
          const t = applyStatusEvent(r.status, { kind: 'report', status: 'sent' });
          // A late `sent` (the carrier already reported an outcome) keeps that outcome's status and error.
          r.status = t.status;
          r.sender_id = o.senderId;
          r.provider = o.provider;
          r.from_address = r.from_address ?? o.from;
          r.provider_message_id = o.providerMessageId;
          r.cost = o.cost;
          r.segments = o.segments ?? null;
          r.encoding = o.encoding ?? null;
          r.lease_until = null;
          if (t.applied) {
            r.error_code = null;
            r.error_class = null;
            r.error_message = null;
          }
          r.updated_at = o.at;
          dirty.add(r);
          hist.push([
            o.messageId,
            'sent',
            o.at,
            t.applied ? 1 : 0,
            JSON.stringify({ provider: o.provider, senderId: o.senderId, providerMessageId: o.providerMessageId }),
          ]);
        } else {
          const t = applyStatusEvent(
            r.status,
            o.kind === 'retry' ? { kind: 'retry', error: o.error } : { kind: 'fail', error: o.error },
          );
          if (t.applied) {
            r.status = t.status;
            r.error_code = o.error.code;
            r.error_class = o.error.class;
            r.error_message = o.error.message;
            r.lease_until = null;
            if (o.kind === 'fail') {
              r.sender_id = o.senderId ?? r.sender_id;
              r.provider = o.provider ?? r.provider;
            }
            r.updated_at = o.at;
            dirty.add(r);
          }
          const detail = o.kind === 'retry' ? { error: o.error, retryAt: o.retryAt } : { error: o.error };
          hist.push([o.messageId, t.recorded, o.at, t.applied ? 1 : 0, JSON.stringify(detail)]);
        }
      }
      if (hist.length === 0) return;
      await sql`with u as (${writeBack([...dirty])}) ${insertRows('message_history', HISTORY_COLS, hist)}`.execute(trx);
    });
  }

  async applyCommand(orgId: string, id: string, event: StatusEvent, at: number) {
    return inTransaction(this.h, async (trx) => {
      const { rows } = await sql<{ status: MessageStatus }>`
        select status from messages where id = ${id} and org_id = ${orgId} for update`.execute(trx);
      const status = rows[0]?.status;
      if (status === undefined) return undefined;
      const t = applyStatusEvent(status, event);
      if (!t.applied) return { applied: false, status };
      const err = t.error ?? null;
      const detail = event.kind === 'suppress' ? { reason: event.reason, ...event.detail } : (event.detail ?? null);
      await sql`
        with u as (
          update messages set status = ${t.status}, lease_until = null, updated_at = ${at}::bigint,
            error_code = coalesce(${err?.code ?? null}::text, error_code),
            error_class = coalesce(${err?.class ?? null}::text, error_class),
            error_message = coalesce(${err?.message ?? null}::text, error_message)
          where id = ${id}
        )
        insert into message_history (message_id, status, at, applied, detail)
        values (${id}, ${t.recorded}, ${at}::bigint, 1, ${json(detail)}::text)`.execute(trx);
      return { applied: true, status: t.status };
    });
  }

  async storeCarrierEvents(
    sender: SenderRecord,
    events: readonly CarrierEvent[],
    job: (ids: number[]) => NewJob,
    now: number,
  ): Promise<number[]> {
    if (events.length === 0) return [];
    let queue: string | undefined;
    const ids = await inTransaction(this.h, async (trx) => {
      queue = undefined;
      // Deduplicated by (sender, event key): an event a concurrent transaction is storing waits for it, then is
      // skipped if that one committed. Ids are assigned in event order, so sorting them restores it.
      const { rows } = await sql<{ id: number }>`${insertRows(
        'carrier_events',
        [
          ['sender_id', 'text'],
          ['org_id', 'text'],
          ['event_key', 'text'],
          ['payload', 'text'],
          ['received_at', 'bigint'],
        ],
        events.map((e) => [sender.id, sender.orgId, e.eventKey, JSON.stringify(e), now]),
        sql`on conflict do nothing returning id`,
      )}`.execute(trx);
      const out = rows.map((r) => r.id).sort((a, b) => a - b);
      if (out.length > 0) {
        const j = job(out);
        queue = j.queue;
        await sql`with j as (${insertRows('jobs', JOB_COLS, [jobRow(j)], ON_CONFLICT_DO_NOTHING)})
          ${this.h.notifyJobs([j.queue])}`.execute(trx);
      }
      return out;
    });
    if (queue) this.h.announce([queue]);
    return ids;
  }

  async loadCarrierEvents(ids: readonly number[]): Promise<StoredCarrierEvent[]> {
    if (ids.length === 0) return [];
    const { rows } = await sql<{ id: number; sender_id: string; org_id: string; payload: string }>`
      select id, sender_id, org_id, payload from carrier_events where id = any(${[...ids]}::bigint[])`.execute(
      this.h.kysely,
    );
    const byId = new Map(rows.map((r) => [r.id, r]));
    const out: StoredCarrierEvent[] = [];
    for (const id of ids) {
      const r = byId.get(id);
      if (r) out.push({ id: r.id, senderId: r.sender_id, orgId: r.org_id, event: JSON.parse(r.payload) });
    }
    return out;
  }

  async applyCarrierEvents(
    given: readonly StoredCarrierEvent[],
    now: number,
    newInboundId: () => string,
  ): Promise<CarrierEventResult> {
    return inTransaction(this.h, async (trx) => {
      await preferKeyLookups(trx);
      const result: CarrierEventResult = { unmatched: [], applied: [], inbound: [] };
      if (given.length === 0) return result;
      // The events not settled yet, settled at once (so locked, in id order through the primary key, before any
      // message): a job running twice at once applies them once, the second waiting for the first and then
      // finding them settled. Those no message matches are made unsettled again below.
      const { rows: open } = await sql<{ id: number }>`
        update carrier_events set settled_at = ${now}::bigint
        where id = any(${given.map((e) => e.id)}::bigint[]) and settled_at is null returning id`.execute(trx);
      const unsettled = new Set(open.map((r) => r.id));
      const events = given.filter((se) => unsettled.has(se.id));
      const refs = new Set<string>();
      const providerSenders: string[] = [];
      const providerIds: string[] = [];
      const inboundSenders = new Set<string>();
      for (const se of events) {
        const e = se.event;
        if (e.kind === 'status') {
          if (e.reference) refs.add(e.reference);
          if (e.providerMessageId) {
            providerSenders.push(se.senderId);
            providerIds.push(e.providerMessageId);
          }
        } else {
          inboundSenders.add(se.senderId);
        }
      }
      // Every message the status events may concern, locked (in id order) before any is decided on.
      const rows =
        refs.size + providerIds.length === 0
          ? []
          : await this.lockMessages(
              trx,
              // The ids first (an index lookup each way), then the rows by primary key: an OR of the two
              // conditions would make PostgreSQL scan the whole table.
              sql`id = any(array(
                select unnest(${[...refs]}::text[])
                union all
                select m.id from unnest(${providerSenders}::text[], ${providerIds}::text[]) as k(sender_id, pmid)
                join messages as m on m.sender_id = k.sender_id and m.provider_message_id = k.pmid
                  and m.provider_message_id is not null))`,
            );
      const byId = new Map(rows.map((r) => [r.id, r]));
      const providerKey = (senderId: string, providerMessageId: string) => `${senderId}\u0000${providerMessageId}`;
      const byProvider = new Map<string, LockedRow>();
      const indexProvider = (r: LockedRow) => {
        if (r.sender_id === null || r.provider_message_id === null) return;
        const k = providerKey(r.sender_id, r.provider_message_id);
        if (!byProvider.has(k)) byProvider.set(k, r);
      };
      for (const r of rows) indexProvider(r);

      let providers = new Map<string, string>();
      if (inboundSenders.size > 0) {
        const { rows: senders } = await sql<{ id: string; provider: string }>`
          select id, provider from senders where id = any(${[...inboundSenders]}::text[])`.execute(trx);
        providers = new Map(senders.map((s) => [s.id, s.provider]));
      }

      const dirty = new Set<LockedRow>();
      const hist: unknown[][] = [];
      const inbound: unknown[][] = [];
      for (const se of events) {
        const e = se.event;
        if (e.kind === 'status') {
          let m = e.reference ? byId.get(e.reference) : undefined;
          if (m && m.org_id !== se.orgId) m = undefined;
          if (!m && e.providerMessageId) m = byProvider.get(providerKey(se.senderId, e.providerMessageId));
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
            m.status = t.status;
            m.updated_at = now;
            if (m.provider_message_id === null && e.providerMessageId !== null) {
              m.provider_message_id = e.providerMessageId;
              indexProvider(m);
            }
            if (t.error) {
              m.error_code = t.error.code;
              m.error_class = t.error.class;
              m.error_message = t.error.message;
            }
            dirty.add(m);
            result.applied.push({ messageId: m.id, status: t.status });
          }
          const detail: Record<string, unknown> = { providerMessageId: e.providerMessageId, receivedAt: now };
          if (e.error) detail.error = e.error;
          if (e.detail) Object.assign(detail, e.detail);
          hist.push([m.id, e.status, e.occurredAt, t.applied ? 1 : 0, JSON.stringify(detail)]);
        } else {
          const id = newInboundId();
          inbound.push([
            id,
            se.orgId,
            'inbound',
            e.channel,
            e.to,
            e.from,
            'received',
            e.body,
            se.senderId,
            providers.get(se.senderId) ?? null,
            e.providerMessageId,
            e.occurredAt,
            now,
          ]);
          hist.push([id, 'received', e.occurredAt, 1, JSON.stringify({ providerMessageId: e.providerMessageId })]);
          result.inbound.push(id);
        }
      }
      if (hist.length > 0) {
        await sql`
          with u as (${writeBack([...dirty])}),
          i as (${insertRows('messages', INBOUND_COLS, inbound)})
          ${insertRows('message_history', HISTORY_COLS, hist)}`.execute(trx);
      }
      if (result.unmatched.length > 0) {
        await sql`update carrier_events set settled_at = null where id = any(${result.unmatched}::bigint[])`.execute(
          trx,
        );
      }
      return result;
    });
  }

  async createTemplate(t: Template): Promise<void> {
    await sql`insert into templates (id, org_id, name, content, created_at)
      values (${t.id}, ${t.orgId}, ${t.name}, ${JSON.stringify(t.content)}, ${t.createdAt}::bigint)`.execute(
      this.h.kysely,
    );
  }

  async getTemplate(orgId: string, id: string): Promise<Template | undefined> {
    const { rows } = await sql<{ id: string; org_id: string; name: string; content: string; created_at: number }>`
      select * from templates where id = ${id} and org_id = ${orgId}`.execute(this.h.kysely);
    const r = rows[0];
    return r
      ? { id: r.id, orgId: r.org_id, name: r.name, content: JSON.parse(r.content), createdAt: r.created_at }
      : undefined;
  }

  async findApiKeyByHash(hash: string): Promise<ApiKeyRecord | undefined> {
    const { rows } = await sql<{ id: string; org_id: string; name: string }>`
      select id, org_id, name from api_keys where hash = ${hash} and revoked_at is null`.execute(this.h.kysely);
    const r = rows[0];
    return r ? { id: r.id, orgId: r.org_id, name: r.name } : undefined;
  }

  async createOrganization(org: { id: string; name: string; createdAt: number }): Promise<void> {
    await sql`insert into organizations (id, name, created_at)
      values (${org.id}, ${org.name}, ${org.createdAt}::bigint)`.execute(this.h.kysely);
  }

  async createApiKey(key: { id: string; orgId: string; name: string; hash: string; createdAt: number }): Promise<void> {
    await sql`insert into api_keys (id, org_id, name, hash, created_at)
      values (${key.id}, ${key.orgId}, ${key.name}, ${key.hash}, ${key.createdAt}::bigint)`.execute(this.h.kysely);
  }

  async countOrganizations(): Promise<number> {
    const { rows } = await sql<{ n: number }>`select count(*) as n from organizations`.execute(this.h.kysely);
    return rows[0]?.n ?? 0;
  }

  async firstOrganizationId(): Promise<string | undefined> {
    const { rows } = await sql<{ id: string }>`
      select id from organizations order by created_at, id limit 1`.execute(this.h.kysely);
    return rows[0]?.id;
  }

  async createSender(s: StoredSender): Promise<void> {
    const cols = ['id', 'org_id', 'provider', 'created_at', ...SENDER_SETTING_COLS];
    const values = [s.id, s.orgId, s.provider, s.createdAt, ...senderSettings(s)];
    await sql`insert into senders (${sql.raw(cols.join(', '))}) values (${sql.join(values)})`.execute(this.h.kysely);
  }

  async updateSender(s: StoredSender): Promise<void> {
    const values = senderSettings(s);
    const sets = SENDER_SETTING_COLS.map((c, i) => sql`${sql.ref(c)} = ${values[i]}`);
    await sql`update senders set ${sql.join(sets)} where id = ${s.id} and org_id = ${s.orgId}`.execute(this.h.kysely);
  }

  async listSenders(orgId: string): Promise<StoredSender[]> {
    const { rows } = await sql<SenderRow>`
      select * from senders where org_id = ${orgId} and deleted_at is null order by priority, id`.execute(
      this.h.kysely,
    );
    return rows.map(toSender);
  }

  async getSenderAffinity(
    orgId: string,
    channel: Channel,
    recipients: readonly string[],
  ): Promise<Map<string, string>> {
    if (recipients.length === 0) return new Map();
    const { rows } = await sql<{ recipient: string; sender_id: string }>`
      select recipient, sender_id from sender_affinity
      where org_id = ${orgId} and channel = ${channel} and recipient = any(${[...new Set(recipients)]}::text[])`.execute(
      this.h.kysely,
    );
    return new Map(rows.map((r) => [r.recipient, r.sender_id]));
  }

  async setSenderAffinity(
    entries: readonly { orgId: string; channel: Channel; recipient: string; senderId: string }[],
    at: number,
  ): Promise<void> {
    if (entries.length === 0) return;
    // One row per key: PostgreSQL refuses to update the same row twice in one statement.
    const unique = new Map(entries.map((e) => [`${e.orgId}\u0000${e.channel}\u0000${e.recipient}`, e]));
    const list = [...unique.values()];
    await sql`
      insert into sender_affinity (org_id, channel, recipient, sender_id, updated_at)
      select o, c, r, s, ${at}::bigint from unnest(${list.map((e) => e.orgId)}::text[], ${list.map((e) => e.channel)}::text[],
        ${list.map((e) => e.recipient)}::text[], ${list.map((e) => e.senderId)}::text[]) as t(o, c, r, s)
      on conflict (org_id, channel, recipient) do update set sender_id = excluded.sender_id,
        updated_at = excluded.updated_at`.execute(this.h.kysely);
  }

  async getSender(id: string): Promise<StoredSender | undefined> {
    const { rows } = await sql<SenderRow>`select * from senders where id = ${id}`.execute(this.h.kysely);
    return rows[0] ? toSender(rows[0]) : undefined;
  }

  async redactRecipients(orgId: string, contactId: string, addresses: readonly string[], at: number): Promise<number> {
    const list = [...new Set(addresses)];
    const r = await sql`
      update messages set
        recipient = case when direction = 'outbound' then ${REDACTED} else recipient end,
        from_address = case when direction = 'inbound' then ${REDACTED} else from_address end,
        body = null, subject = null, metadata = null, options = null, updated_at = ${at}::bigint
      where org_id = ${orgId} and (contact_id = ${contactId}
        or (direction = 'outbound' and recipient = any(${list}::text[]))
        or (direction = 'inbound' and from_address = any(${list}::text[])))`.execute(this.h.kysely);
    return Number(r.numAffectedRows ?? 0);
  }

  /** From the counter rows the triggers keep (see `migrations-status-counts.ts`), not a count of the table. */
  async countByStatus(): Promise<Record<string, number>> {
    const { rows } = await sql<{ status: string; n: string; shards: number }>`
      select status, sum(n) as n, count(*)::int as shards from message_status_counts group by status`.execute(
      this.h.kysely,
    );
    // Backends come and go (each has its own counter rows): fold the rows of ended ones once they pile up.
    if (rows.reduce((sum, r) => sum + r.shards, 0) > STATUS_COUNT_ROWS_BEFORE_FOLD)
      await foldStatusCountShards(this.h.kysely);
    return Object.fromEntries(rows.filter((r) => Number(r.n) !== 0).map((r) => [r.status, Number(r.n)]));
  }

  async listStaleMessages(updatedBefore: number, now: number, limit: number): Promise<StaleMessage[]> {
    const { rows } = await sql<{ id: string; org_id: string; priority: number; send_at: number | null }>`
      select id, org_id, priority, send_at from messages
      where status in ('queued', 'scheduled', 'sending')
        and ((status in ('queued', 'scheduled') and updated_at < ${updatedBefore} and coalesce(send_at, 0) <= ${now})
         or (status = 'sending' and lease_until < ${now}))
      order by updated_at limit ${limit}`.execute(this.h.kysely);
    return rows.map((r) => ({ id: r.id, orgId: r.org_id, priority: r.priority, sendAt: r.send_at }));
  }

  async settleCarrierEvents(ids: readonly number[], now: number): Promise<void> {
    if (ids.length === 0) return;
    await sql`update carrier_events set settled_at = ${now}::bigint
      where id = any(${[...ids]}::bigint[]) and settled_at is null`.execute(this.h.kysely);
  }

  async listUnsettledCarrierEvents(receivedBefore: number, limit: number): Promise<UnsettledCarrierEvent[]> {
    const { rows } = await sql<{ id: number; org_id: string }>`
      select id, org_id from carrier_events where settled_at is null and received_at < ${receivedBefore}::bigint
      order by received_at, id limit ${limit}`.execute(this.h.kysely);
    return rows.map((r) => ({ id: r.id, orgId: r.org_id }));
  }

  async ping(): Promise<boolean> {
    const { rows } = await sql<{ one: number }>`select 1 as one`.execute(this.h.kysely);
    return rows[0]?.one === 1;
  }

  async close(): Promise<void> {
    await this.h.close();
  }
}
