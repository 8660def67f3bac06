/**
 * The webhook store on PostgreSQL, shared by many worker processes.
 *
 * Per-message order rests on one rule: of a message's unfinished deliveries to an endpoint only the earliest is
 * `pending`, the others `waiting`. What creates deliveries (the fan-out, a redelivery) decides between the two, and
 * what finishes one promotes the next; so that neither misses the other's uncommitted rows, they exclude each other
 * through a transaction-scoped advisory lock per schema: creators take it exclusively (one at a time, so deliveries
 * are also created in event order), outcome writers shared (many at once). Events of one message are committed in
 * order, because every history write locks the message's row. Claims lock the chosen deliveries `FOR UPDATE SKIP
 * LOCKED` and re-check them (a concurrent claim that committed first set their lease), so a delivery goes to one
 * worker at a time. Batches travel as `unnest` arrays.
 */
import { sql } from 'kysely';
import type { MessageRecord } from '../../ports/store.ts';
import type {
  ClaimedDelivery,
  ClaimOptions,
  DeliveryLogEntry,
  DeliveryOutcome,
  DeliveryStatus,
  FanOutPlanner,
  NewWebhookEvent,
  WebhookEndpointRecord,
  WebhookEventRecord,
  WebhookStore,
} from '../../ports/webhook-store.ts';
import {
  type AttemptRow,
  type ClaimedRow,
  type DeliveryRow,
  ENDPOINT_COLS,
  type EndpointRow,
  type EventRow,
  endpointValues,
  toAttempt,
  toClaimed,
  toEndpoint,
  toEvent,
  toLogEntry,
} from '../sql/migrations-webhooks.ts';
import { type MessageRow, toMessage } from '../sql/rows.ts';
import { inTransaction, type PgHandle, type Trx } from './database.ts';
import { insertRows, unnestRows } from './pg-store.ts';

const ENDPOINT_TYPES = {
  id: 'text',
  org_id: 'text',
  url: 'text',
  description: 'text',
  event_types: 'text',
  filter: 'text',
  enabled: 'integer',
  secret: 'text',
  previous_secret: 'text',
  previous_secret_expires_at: 'bigint',
  disabled_reason: 'text',
  disabled_at: 'bigint',
  failing_since: 'bigint',
  created_at: 'bigint',
  updated_at: 'bigint',
  deleted_at: 'bigint',
} as const;
const ENDPOINT_COLUMNS = ENDPOINT_COLS.map((c) => [c, ENDPOINT_TYPES[c]] as const);

const EVENT_COLS = [
  ['org_id', 'text'],
  ['type', 'text'],
  ['message_id', 'text'],
  ['payload', 'text'],
  ['at', 'bigint'],
] as const;
const NEW_DELIVERY_COLS = [
  ['endpoint_id', 'text'],
  ['org_id', 'text'],
  ['event_id', 'bigint'],
  ['message_id', 'text'],
] as const;
const ATTEMPT_COLS = [
  ['delivery_id', 'bigint'],
  ['at', 'bigint'],
  ['status_code', 'integer'],
  ['latency_ms', 'integer'],
  ['response', 'text'],
  ['error', 'text'],
] as const;

/** The advisory lock between creating deliveries and finishing them (see the header). */
const DELIVERY_LOCK = sql`hashtext(current_schema() || '.webhook-deliveries')`;

const CLAIMED_SELECT = sql`u.id, u.endpoint_id, u.org_id, u.event_id, u.message_id, u.attempts, u.created_at,
  ev.type, ev.payload, ev.at as event_at, e.url, e.secret, e.previous_secret, e.previous_secret_expires_at`;

/**
 * New deliveries, due `now`: `waiting` behind an unfinished delivery of the same message to the same endpoint (in
 * the table, or earlier in `rows`), else `pending`. Call with the delivery lock held exclusively.
 */
function insertDeliveries(rows: (readonly [string, string, number, string | null])[], now: number, tail = sql``) {
  const seen = new Set<string>();
  const values = rows.map(([endpointId, orgId, eventId, messageId]) => {
    const key = `${endpointId}\u0000${messageId}`;
    const first = messageId === null || !seen.has(key);
    if (messageId !== null) seen.add(key);
    return [endpointId, orgId, eventId, messageId, first ? 1 : 0];
  });
  const names = sql.join(NEW_DELIVERY_COLS.map(([n]) => sql.ref(`v.${n}`)));
  return sql`insert into webhook_deliveries
    (endpoint_id, org_id, event_id, message_id, status, attempts, next_attempt_at, created_at, updated_at)
    select ${names},
      case when v.message_id is null then 'pending'
        when v.first = 1 and not exists (select 1 from webhook_deliveries p
          where p.endpoint_id = v.endpoint_id and p.message_id = v.message_id and p.status in ('pending', 'waiting'))
        then 'pending' else 'waiting' end,
      0, ${now}::bigint, ${now}::bigint, ${now}::bigint
    from (${unnestRows([...NEW_DELIVERY_COLS, ['first', 'integer']], values)}) as v ${tail}`;
}

/** Inserts events of organizations that have an enabled endpoint. */
function insertEvents(events: readonly NewWebhookEvent[]) {
  const rows = events.map((e) => [e.orgId, e.type, e.messageId ?? null, e.payload, e.at]);
  return sql<{ id: number }>`insert into webhook_events (org_id, type, message_id, payload, at)
    select v.org_id, v.type, v.message_id, v.payload, v.at from (${unnestRows(EVENT_COLS, rows)}) as v
    where exists (select 1 from webhook_endpoints e where e.org_id = v.org_id and e.enabled = 1 and e.deleted_at is null)
    returning id`;
}

export class PgWebhookStore implements WebhookStore {
  constructor(private readonly h: PgHandle) {}

  async createEndpoint(e: WebhookEndpointRecord): Promise<void> {
    await insertRows('webhook_endpoints', ENDPOINT_COLUMNS, [endpointValues(e)]).execute(this.h.kysely);
  }

  async updateEndpoint(e: WebhookEndpointRecord): Promise<void> {
    const values = endpointValues(e);
    const set = ENDPOINT_COLUMNS.map(([c, type], i) => ({ c, type, v: values[i] })).filter(
      ({ c }) => c !== 'id' && c !== 'org_id' && c !== 'created_at',
    );
    await sql`update webhook_endpoints set ${sql.join(
      set.map(({ c, type, v }) => sql`${sql.ref(c)} = ${v}::${sql.raw(type)}`),
    )} where id = ${e.id} and org_id = ${e.orgId}`.execute(this.h.kysely);
  }

  async getEndpoint(orgId: string, id: string): Promise<WebhookEndpointRecord | undefined> {
    const { rows } = await sql<EndpointRow>`select * from webhook_endpoints
      where id = ${id} and org_id = ${orgId} and deleted_at is null`.execute(this.h.kysely);
    return rows[0] ? toEndpoint(rows[0]) : undefined;
  }

  async listEndpoints(orgId: string): Promise<WebhookEndpointRecord[]> {
    const { rows } = await sql<EndpointRow>`select * from webhook_endpoints
      where org_id = ${orgId} and deleted_at is null order by id`.execute(this.h.kysely);
    return rows.map(toEndpoint);
  }

  async deleteEndpoint(orgId: string, id: string, at: number): Promise<boolean> {
    const { rows } = await sql<{ id: string }>`
      with d as (
        update webhook_endpoints set deleted_at = ${at}::bigint, updated_at = ${at}::bigint
        where id = ${id} and org_id = ${orgId} and deleted_at is null returning id
      ),
      c as (
        update webhook_deliveries set status = 'canceled', updated_at = ${at}::bigint
        where endpoint_id in (select id from d) and status in ('pending', 'waiting')
      )
      select id from d`.execute(this.h.kysely);
    return rows.length > 0;
  }

  async publishEvents(events: readonly NewWebhookEvent[]): Promise<number[]> {
    if (events.length === 0) return [];
    const { rows } = await insertEvents(events).execute(this.h.kysely);
    return rows.map((r) => r.id).sort((a, b) => a - b);
  }

  async dispatchEvents(limit: number, now: number, plan: FanOutPlanner): Promise<number> {
    // Every worker process runs the fan-out after each batch it sends; most of the time there is nothing to fan
    // out, and finding that out must not queue behind the lock another process holds.
    const { rows: pending } = await sql`select 1 from webhook_events where dispatched_at is null limit 1`.execute(
      this.h.kysely,
    );
    if (pending.length === 0) return 0;
    return inTransaction(this.h, async (trx) => {
      await sql`select pg_advisory_xact_lock(${DELIVERY_LOCK})`.execute(trx);
      const { rows } = await sql<EventRow>`select id, org_id, type, message_id, payload, at from webhook_events
        where dispatched_at is null order by id limit ${limit}`.execute(trx);
      if (rows.length === 0) return 0;
      const messageIds = [...new Set(rows.flatMap((r) => (r.message_id === null ? [] : [r.message_id])))];
      const messages = new Map<string, MessageRecord>();
      if (messageIds.length > 0) {
        const { rows: ms } =
          await sql<MessageRow>`select * from messages where id = any(${messageIds}::text[])`.execute(trx);
        for (const m of ms) messages.set(m.id, toMessage(m));
      }
      const orgs = [...new Set(rows.map((r) => r.org_id))];
      const { rows: eps } = await sql<EndpointRow>`select * from webhook_endpoints
        where org_id = any(${orgs}::text[]) and enabled = 1 and deleted_at is null order by id`.execute(trx);
      const decided = plan({
        events: rows.map((r) => ({
          ...toEvent(r),
          message: r.message_id === null ? undefined : messages.get(r.message_id),
        })),
        endpoints: eps.map(toEndpoint),
      });
      const byId = new Map(rows.map((r) => [r.id, r]));
      const deliveries = decided.deliveries.flatMap((d) => {
        const ev = byId.get(d.eventId);
        return ev ? [[d.endpointId, ev.org_id, ev.id, ev.message_id] as const] : [];
      });
      const marks = rows.map((r) => [r.id, decided.payloads.get(r.id) ?? null]);
      await sql`
        with u as (
          update webhook_events as w set payload = coalesce(w.payload, v.payload), dispatched_at = ${now}::bigint
          from (${unnestRows(
            [
              ['id', 'bigint'],
              ['payload', 'text'],
            ],
            marks,
          )}) as v
          where w.id = v.id
        )
        ${insertDeliveries(deliveries, now)}`.execute(trx);
      return rows.length;
    });
  }

  async claimDeliveries(o: ClaimOptions): Promise<ClaimedDelivery[]> {
    const { rows } = await sql<ClaimedRow>`
      with c as (
        select d.id, d.next_attempt_at from webhook_endpoints e
        cross join lateral (
          select x.id, x.next_attempt_at from webhook_deliveries x
          where x.endpoint_id = e.id and x.status = 'pending' and x.next_attempt_at <= ${o.now}::bigint
            and (x.leased_until is null or x.leased_until <= ${o.now}::bigint)
          order by x.next_attempt_at, x.id limit ${o.perEndpoint}
        ) d
        where e.enabled = 1 and e.deleted_at is null and e.id <> all(${[...o.skipEndpoints]}::text[])
        order by d.next_attempt_at, d.id limit ${o.limit}
      ),
      l as (
        select w.id from webhook_deliveries w
        where w.id in (select id from c) and w.status = 'pending' and w.next_attempt_at <= ${o.now}::bigint
          and (w.leased_until is null or w.leased_until <= ${o.now}::bigint)
        order by w.id for update skip locked
      ),
      u as (
        update webhook_deliveries w set leased_until = ${o.leaseUntil}::bigint from l where w.id = l.id returning w.*
      )
      select ${CLAIMED_SELECT} from u
      join webhook_events ev on ev.id = u.event_id
      join webhook_endpoints e on e.id = u.endpoint_id
      order by u.id`.execute(this.h.kysely);
    return rows.map(toClaimed);
  }

  async recordDeliveryOutcomes(
    outcomes: readonly DeliveryOutcome[],
    opts: {
      now: number;
      disableFailingSince: number;
      disabledReason: string;
      disabledEvent: (endpoint: WebhookEndpointRecord) => NewWebhookEvent;
    },
  ): Promise<string[]> {
    if (outcomes.length === 0) return [];
    // The last outcome of each delivery counts (a delivery is in one batch once, unless its lease ran out).
    const last = new Map<number, DeliveryOutcome>();
    for (const o of outcomes) last.set(o.deliveryId, o);
    // Per endpoint: whether it ends the batch healthy, and when its current run of failures began.
    const health = new Map<string, { reset: boolean; since: number | null }>();
    for (const o of outcomes) {
      const cur = health.get(o.endpointId) ?? { reset: false, since: null };
      if (o.result.kind === 'delivered') health.set(o.endpointId, { reset: true, since: null });
      else health.set(o.endpointId, { reset: cur.reset, since: cur.since ?? o.attempt.at });
    }
    const endpointIds = [...health.keys()].sort();
    return inTransaction(this.h, async (trx) => {
      const attempts = outcomes.map((o) => [
        o.deliveryId,
        o.attempt.at,
        o.attempt.statusCode,
        Math.round(o.attempt.latencyMs),
        o.attempt.response,
        o.attempt.error,
      ]);
      const settled = [...last.values()]
        .sort((a, b) => a.deliveryId - b.deliveryId)
        .map((o) => [
          o.deliveryId,
          o.result.kind === 'retry' ? 'pending' : o.result.kind,
          o.result.kind === 'retry' ? o.result.nextAttemptAt : opts.now,
        ]);
      await sql`select pg_advisory_xact_lock_shared(${DELIVERY_LOCK})`.execute(trx);
      // Attempts logged; deliveries settled or rescheduled.
      const { rows: done } = await sql<{ endpoint_id: string; message_id: string | null; status: DeliveryStatus }>`
        with a as (${insertRows('webhook_attempts', ATTEMPT_COLS, attempts)})
        update webhook_deliveries w set status = v.status, attempts = w.attempts + 1,
          next_attempt_at = v.next_attempt_at, leased_until = null, updated_at = ${opts.now}::bigint
        from (${unnestRows(
          [
            ['id', 'bigint'],
            ['status', 'text'],
            ['next_attempt_at', 'bigint'],
          ],
          settled,
        )}) as v
        where w.id = v.id and w.status = 'pending'
        returning w.endpoint_id, w.message_id, w.status`.execute(trx);
      // The next delivery of each message whose delivery is done (a separate statement: it must see the one above).
      const finished = done.filter((d) => d.message_id !== null && d.status !== 'pending');
      if (finished.length > 0) {
        await sql`
          update webhook_deliveries w set status = 'pending', next_attempt_at = ${opts.now}::bigint,
            updated_at = ${opts.now}::bigint
          from (
            select distinct on (d.endpoint_id, d.message_id) d.id, d.status
            from webhook_deliveries d
            join (${unnestRows(
              [
                ['endpoint_id', 'text'],
                ['message_id', 'text'],
              ],
              finished.map((f) => [f.endpoint_id, f.message_id]),
            )}) as k on d.endpoint_id = k.endpoint_id and d.message_id = k.message_id
            where d.status in ('pending', 'waiting')
            order by d.endpoint_id, d.message_id, d.event_id, d.id
          ) as nxt
          where w.id = nxt.id and nxt.status = 'waiting'`.execute(trx);
      }
      const states = endpointIds.map((id) => {
        const s = health.get(id) as { reset: boolean; since: number | null };
        return [id, s.reset ? 1 : 0, s.since];
      });
      await sql`
        update webhook_endpoints w
        set failing_since = case when v.reset = 1 then v.since else coalesce(w.failing_since, v.since) end
        from (${unnestRows(
          [
            ['id', 'text'],
            ['reset', 'integer'],
            ['since', 'bigint'],
          ],
          states,
        )}) as v
        where w.id = v.id and (v.reset = 1 and w.failing_since is distinct from v.since
          or v.reset = 0 and w.failing_since is null)`.execute(trx);
      return this.disableFailing(trx, endpointIds, opts);
    });
  }

  private async disableFailing(
    trx: Trx,
    endpointIds: string[],
    opts: {
      now: number;
      disableFailingSince: number;
      disabledReason: string;
      disabledEvent: (endpoint: WebhookEndpointRecord) => NewWebhookEvent;
    },
  ): Promise<string[]> {
    const { rows } = await sql<EndpointRow>`
      update webhook_endpoints set enabled = 0, disabled_at = ${opts.now}::bigint, disabled_reason = ${opts.disabledReason},
        updated_at = ${opts.now}::bigint
      where id = any(${endpointIds}::text[]) and enabled = 1 and deleted_at is null
        and failing_since is not null and failing_since <= ${opts.disableFailingSince}::bigint
      returning *`.execute(trx);
    const disabled = rows.map(toEndpoint);
    if (disabled.length > 0) await insertEvents(disabled.map(opts.disabledEvent)).execute(trx);
    return disabled.map((e) => e.id);
  }

  async listDeliveries(
    orgId: string,
    endpointId: string,
    opts: { limit: number; before?: number; status?: DeliveryStatus },
  ): Promise<DeliveryLogEntry[]> {
    const { rows } = await sql<DeliveryRow>`
      select d.id, d.endpoint_id, d.event_id, ev.type, d.message_id, d.status, d.attempts, d.next_attempt_at,
        d.created_at, d.updated_at
      from webhook_deliveries d join webhook_events ev on ev.id = d.event_id
      where d.endpoint_id = ${endpointId} and d.org_id = ${orgId}
        and d.id < ${opts.before ?? Number.MAX_SAFE_INTEGER}::bigint
        ${opts.status ? sql`and d.status = ${opts.status}` : sql``}
      order by d.id desc limit ${opts.limit}`.execute(this.h.kysely);
    if (rows.length === 0) return [];
    const { rows: attempts } = await sql<AttemptRow>`select * from webhook_attempts
      where delivery_id = any(${rows.map((r) => r.id)}::bigint[]) order by id`.execute(this.h.kysely);
    const byDelivery = new Map<number, AttemptRow[]>();
    for (const a of attempts) {
      const list = byDelivery.get(a.delivery_id) ?? [];
      list.push(a);
      byDelivery.set(a.delivery_id, list);
    }
    return rows.map((r) => toLogEntry(r, (byDelivery.get(r.id) ?? []).map(toAttempt)));
  }

  async getEvent(orgId: string, id: number): Promise<WebhookEventRecord | undefined> {
    const { rows } = await sql<EventRow>`select id, org_id, type, message_id, payload, at from webhook_events
      where id = ${id}::bigint and org_id = ${orgId}`.execute(this.h.kysely);
    return rows[0] ? toEvent(rows[0]) : undefined;
  }

  async listEvents(orgId: string, o: { from: number; to: number; limit: number }): Promise<WebhookEventRecord[]> {
    const { rows } = await sql<EventRow>`select id, org_id, type, message_id, payload, at from webhook_events
      where org_id = ${orgId} and at >= ${o.from}::bigint and at < ${o.to}::bigint and dispatched_at is not null
      order by id limit ${o.limit}`.execute(this.h.kysely);
    return rows.map(toEvent);
  }

  async createDeliveries(endpointId: string, eventIds: readonly number[], now: number): Promise<number[]> {
    if (eventIds.length === 0) return [];
    return inTransaction(this.h, async (trx) => {
      await sql`select pg_advisory_xact_lock(${DELIVERY_LOCK})`.execute(trx);
      const { rows: events } = await sql<{ id: number; org_id: string; message_id: string | null }>`
        select id, org_id, message_id from webhook_events where id = any(${[...eventIds]}::bigint[])`.execute(trx);
      const byId = new Map(events.map((e) => [e.id, e]));
      const rows = eventIds.flatMap((id) => {
        const e = byId.get(id);
        return e ? [[endpointId, e.org_id, e.id, e.message_id] as const] : [];
      });
      const { rows: ids } = await sql<{ id: number }>`${insertDeliveries(rows, now, sql`returning id`)}`.execute(trx);
      return ids.map((r) => r.id).sort((a, b) => a - b);
    });
  }

  async createDirectedEvent(
    endpointId: string,
    event: NewWebhookEvent,
  ): Promise<{ eventId: number; deliveryId: number }> {
    const { rows } = await sql<{ event_id: number; delivery_id: number }>`
      with ev as (
        insert into webhook_events (org_id, type, message_id, payload, at, dispatched_at)
        values (${event.orgId}, ${event.type}, ${event.messageId ?? null}, ${event.payload}, ${event.at}::bigint,
          ${event.at}::bigint)
        returning id, org_id, message_id
      ),
      d as (
        insert into webhook_deliveries
          (endpoint_id, org_id, event_id, message_id, status, attempts, next_attempt_at, created_at, updated_at)
        select ${endpointId}, org_id, id, message_id, 'pending', 0, ${event.at}::bigint, ${event.at}::bigint,
          ${event.at}::bigint
        from ev returning id, event_id
      )
      select event_id, id as delivery_id from d`.execute(this.h.kysely);
    const r = rows[0] as { event_id: number; delivery_id: number };
    return { eventId: r.event_id, deliveryId: r.delivery_id };
  }
}
