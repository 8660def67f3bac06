/**
 * The webhook store on embedded SQLite: endpoints, the event outbox (filled by the history trigger of
 * migrations-webhooks.ts and by `publishEvents`), deliveries and attempts. One process holds the database and every
 * command is one synchronous transaction, so claims and the fan-out need no locks beyond SQLite's own.
 *
 * For the same reason the leases of claimed deliveries are kept in this process's memory rather than written (a
 * write per claimed row was a third of a delivery's database time): every worker that could take a delivery is in
 * this process, and a crash, the case leases are for, loses them with the process, so the deliveries come back.
 */

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
import type { MessageRow } from '../sql/rows.ts';
import { toMessage } from '../sql/rows.ts';
import type { SqliteHandle } from './database.ts';

const ACTIVE = 'enabled = 1 AND deleted_at IS NULL';

const INSERT_EVENT = `INSERT INTO webhook_events (org_id, type, message_id, payload, at)
  SELECT @orgId, @type, @messageId, @payload, @at
  WHERE EXISTS (SELECT 1 FROM webhook_endpoints WHERE org_id = @orgId AND ${ACTIVE}) RETURNING id`;

/**
 * A delivery of a message waits while another of that message to the same endpoint is unfinished (per-message
 * order); the one ahead promotes it when it is done (`recordDeliveryOutcomes`).
 *
 * Statements about one message's deliveries name their index: without statistics SQLite could prefer the
 * endpoint's due index and walk every pending delivery of the endpoint.
 */
const BY_MESSAGE = 'webhook_deliveries INDEXED BY webhook_deliveries_message';
const UNFINISHED = "status IN ('pending', 'waiting')";

const INSERT_DELIVERY = `INSERT INTO webhook_deliveries
  (endpoint_id, org_id, event_id, message_id, status, attempts, next_attempt_at, created_at, updated_at)
  VALUES (@endpointId, @orgId, @eventId, @messageId,
    CASE WHEN @messageId IS NOT NULL AND EXISTS (SELECT 1 FROM ${BY_MESSAGE}
      WHERE endpoint_id = @endpointId AND message_id = @messageId AND ${UNFINISHED}) THEN 'waiting' ELSE 'pending' END,
    0, @now, @now, @now)
  RETURNING id`;

/** The next delivery of a message to an endpoint, once the one ahead of it is done. */
const PROMOTE = `UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = @now, updated_at = @now
  WHERE id = (SELECT id FROM ${BY_MESSAGE} WHERE endpoint_id = @endpointId AND message_id = @messageId AND ${UNFINISHED}
    ORDER BY event_id, id LIMIT 1)
  AND status = 'waiting'`;

/**
 * Due deliveries, at most `perEndpoint` of each enabled endpoint (one endpoint's backlog cannot fill a batch), oldest
 * due first. Leased ones (in flight: `@leased`) are left alone.
 */
const CLAIM = `SELECT d.id FROM webhook_endpoints e
  JOIN webhook_deliveries d ON d.id IN (
    SELECT x.id FROM webhook_deliveries x
    WHERE x.endpoint_id = e.id AND x.status = 'pending' AND x.next_attempt_at <= @now
      AND x.id NOT IN (SELECT value FROM json_each(@leased))
    ORDER BY x.next_attempt_at, x.id LIMIT @perEndpoint)
  WHERE e.enabled = 1 AND e.deleted_at IS NULL AND e.id NOT IN (SELECT value FROM json_each(@skip))
  ORDER BY d.next_attempt_at, d.id LIMIT @limit`;

const CLAIMED = `SELECT d.id, d.endpoint_id, d.org_id, d.event_id, d.message_id, d.attempts, d.created_at,
    ev.type, ev.payload, ev.at AS event_at,
    e.url, e.secret, e.previous_secret, e.previous_secret_expires_at
  FROM webhook_deliveries d
  JOIN webhook_events ev ON ev.id = d.event_id
  JOIN webhook_endpoints e ON e.id = d.endpoint_id
  WHERE d.id IN (SELECT value FROM json_each(?))
  ORDER BY d.next_attempt_at, d.id`;

export class SqliteWebhookStore implements WebhookStore {
  /** Claimed deliveries and the end of their lease. */
  private readonly leases = new Map<number, number>();

  constructor(private readonly h: SqliteHandle) {}

  async createEndpoint(e: WebhookEndpointRecord): Promise<void> {
    this.h
      .stmt(
        `INSERT INTO webhook_endpoints (${ENDPOINT_COLS.join(', ')}) VALUES (${ENDPOINT_COLS.map(() => '?').join(', ')})`,
      )
      .run(...endpointValues(e));
  }

  async updateEndpoint(e: WebhookEndpointRecord): Promise<void> {
    const cols = ENDPOINT_COLS.slice(2).filter((c) => c !== 'created_at');
    const values = endpointValues(e);
    const byCol = new Map(ENDPOINT_COLS.map((c, i) => [c, values[i]]));
    this.h
      .stmt(`UPDATE webhook_endpoints SET ${cols.map((c) => `${c} = ?`).join(', ')} WHERE id = ? AND org_id = ?`)
      .run(...cols.map((c) => byCol.get(c)), e.id, e.orgId);
  }

  async getEndpoint(orgId: string, id: string): Promise<WebhookEndpointRecord | undefined> {
    const r = this.h
      .stmt('SELECT * FROM webhook_endpoints WHERE id = ? AND org_id = ? AND deleted_at IS NULL')
      .get(id, orgId) as EndpointRow | undefined;
    return r ? toEndpoint(r) : undefined;
  }

  async listEndpoints(orgId: string): Promise<WebhookEndpointRecord[]> {
    const rows = this.h
      .stmt('SELECT * FROM webhook_endpoints WHERE org_id = ? AND deleted_at IS NULL ORDER BY id')
      .all(orgId) as EndpointRow[];
    return rows.map(toEndpoint);
  }

  async deleteEndpoint(orgId: string, id: string, at: number): Promise<boolean> {
    const h = this.h;
    return h.db.transaction(() => {
      const r = h
        .stmt(
          'UPDATE webhook_endpoints SET deleted_at = ?, updated_at = ? WHERE id = ? AND org_id = ? AND deleted_at IS NULL',
        )
        .run(at, at, id, orgId);
      if (r.changes === 0) return false;
      h.stmt(
        `UPDATE webhook_deliveries SET status = 'canceled', updated_at = ? WHERE endpoint_id = ? AND ${UNFINISHED}`,
      ).run(at, id);
      return true;
    })();
  }

  async publishEvents(events: readonly NewWebhookEvent[]): Promise<number[]> {
    const h = this.h;
    return h.db.transaction(() => this.insertEvents(events))();
  }

  private insertEvents(events: readonly NewWebhookEvent[]): number[] {
    const ins = this.h.stmt(INSERT_EVENT);
    const ids: number[] = [];
    for (const e of events) {
      const r = ins.get({
        orgId: e.orgId,
        type: e.type,
        messageId: e.messageId ?? null,
        payload: e.payload,
        at: e.at,
      }) as { id: number } | undefined;
      if (r) ids.push(r.id);
    }
    return ids;
  }

  async dispatchEvents(limit: number, now: number, plan: FanOutPlanner): Promise<number> {
    const h = this.h;
    return h.db.transaction(() => {
      const rows = h
        .stmt(
          'SELECT id, org_id, type, message_id, payload, at FROM webhook_events WHERE dispatched_at IS NULL ORDER BY id LIMIT ?',
        )
        .all(limit) as EventRow[];
      if (rows.length === 0) return 0;
      const getMessage = h.stmt('SELECT * FROM messages WHERE id = ?');
      const messages = new Map<string, MessageRecord>();
      for (const r of rows) {
        if (r.message_id === null || messages.has(r.message_id)) continue;
        const m = getMessage.get(r.message_id) as MessageRow | undefined;
        if (m) messages.set(m.id, toMessage(m));
      }
      const endpointsOf = h.stmt(`SELECT * FROM webhook_endpoints WHERE org_id = ? AND ${ACTIVE} ORDER BY id`);
      const endpoints: WebhookEndpointRecord[] = [];
      for (const org of new Set(rows.map((r) => r.org_id))) {
        for (const e of endpointsOf.all(org) as EndpointRow[]) endpoints.push(toEndpoint(e));
      }
      const events = rows.map((r) => ({
        ...toEvent(r),
        message: r.message_id === null ? undefined : messages.get(r.message_id),
      }));
      const decided = plan({ events, endpoints });
      const mark = h.stmt('UPDATE webhook_events SET payload = coalesce(payload, ?), dispatched_at = ? WHERE id = ?');
      for (const r of rows) mark.run(decided.payloads.get(r.id) ?? null, now, r.id);
      const byId = new Map(rows.map((r) => [r.id, r]));
      const insert = h.stmt(INSERT_DELIVERY);
      for (const d of decided.deliveries) {
        const ev = byId.get(d.eventId);
        if (!ev) continue;
        insert.get({ endpointId: d.endpointId, orgId: ev.org_id, eventId: ev.id, messageId: ev.message_id, now });
      }
      return rows.length;
    })();
  }

  async claimDeliveries(o: ClaimOptions): Promise<ClaimedDelivery[]> {
    const h = this.h;
    for (const [id, until] of this.leases) if (until <= o.now) this.leases.delete(id);
    return h.db.transaction(() => {
      const ids = h
        .stmt(CLAIM)
        .pluck()
        .all({
          now: o.now,
          perEndpoint: o.perEndpoint,
          skip: JSON.stringify(o.skipEndpoints),
          leased: JSON.stringify([...this.leases.keys()]),
          limit: o.limit,
        }) as number[];
      if (ids.length === 0) return [];
      for (const id of ids) this.leases.set(id, o.leaseUntil);
      return (h.stmt(CLAIMED).all(JSON.stringify(ids)) as ClaimedRow[]).map(toClaimed);
    })();
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
    const h = this.h;
    return h.db.transaction(() => {
      const logAttempt = h.stmt(
        `INSERT INTO webhook_attempts (delivery_id, at, status_code, latency_ms, response, error) VALUES (?,?,?,?,?,?)`,
      );
      const settle = h.stmt(
        `UPDATE webhook_deliveries SET status = ?, attempts = attempts + 1, next_attempt_at = ?, updated_at = ?
         WHERE id = ? AND status = 'pending' RETURNING endpoint_id, message_id`,
      );
      const promote = h.stmt(PROMOTE);
      // Per endpoint: whether the batch ends with a success, and when its last run of failures began.
      const health = new Map<string, { reset: boolean; since: number | null }>();
      for (const o of outcomes) {
        const a = o.attempt;
        this.leases.delete(o.deliveryId);
        logAttempt.run(o.deliveryId, a.at, a.statusCode, Math.round(a.latencyMs), a.response, a.error);
        const cur = health.get(o.endpointId) ?? { reset: false, since: null };
        if (o.result.kind === 'delivered') health.set(o.endpointId, { reset: true, since: null });
        else health.set(o.endpointId, { reset: cur.reset, since: cur.since ?? a.at });
        const r = o.result;
        const d = settle.get(
          r.kind === 'retry' ? 'pending' : r.kind,
          r.kind === 'retry' ? r.nextAttemptAt : opts.now,
          opts.now,
          o.deliveryId,
        ) as { endpoint_id: string; message_id: string | null } | undefined;
        if (d && r.kind !== 'retry' && d.message_id !== null)
          promote.run({ now: opts.now, endpointId: d.endpoint_id, messageId: d.message_id });
      }
      const restart = h.stmt('UPDATE webhook_endpoints SET failing_since = ? WHERE id = ? AND failing_since IS NOT ?');
      const failing = h.stmt('UPDATE webhook_endpoints SET failing_since = ? WHERE id = ? AND failing_since IS NULL');
      const failed: string[] = [];
      for (const [id, s] of health) {
        if (s.reset) restart.run(s.since, id, s.since);
        else failing.run(s.since, id);
        if (s.since !== null) failed.push(id);
      }
      const disable = h.stmt(
        `UPDATE webhook_endpoints SET enabled = 0, disabled_at = @now, disabled_reason = @reason, updated_at = @now
         WHERE id = @id AND ${ACTIVE} AND failing_since IS NOT NULL AND failing_since <= @since RETURNING *`,
      );
      const disabled: WebhookEndpointRecord[] = [];
      for (const id of failed) {
        const r = disable.get({ id, now: opts.now, reason: opts.disabledReason, since: opts.disableFailingSince }) as
          | EndpointRow
          | undefined;
        if (r) disabled.push(toEndpoint(r));
      }
      this.insertEvents(disabled.map(opts.disabledEvent));
      return disabled.map((e) => e.id);
    })();
  }

  async listDeliveries(
    orgId: string,
    endpointId: string,
    opts: { limit: number; before?: number; status?: DeliveryStatus },
  ): Promise<DeliveryLogEntry[]> {
    const rows = this.h
      .stmt(
        `SELECT d.id, d.endpoint_id, d.event_id, ev.type, d.message_id, d.status, d.attempts, d.next_attempt_at,
           d.created_at, d.updated_at
         FROM webhook_deliveries d JOIN webhook_events ev ON ev.id = d.event_id
         WHERE d.endpoint_id = @endpointId AND d.org_id = @orgId AND d.id < @before
           AND (@status IS NULL OR d.status = @status)
         ORDER BY d.id DESC LIMIT @limit`,
      )
      .all({
        endpointId,
        orgId,
        before: opts.before ?? Number.MAX_SAFE_INTEGER,
        status: opts.status ?? null,
        limit: opts.limit,
      }) as DeliveryRow[];
    const attempts = this.h.stmt('SELECT * FROM webhook_attempts WHERE delivery_id = ? ORDER BY id');
    return rows.map((r) => toLogEntry(r, (attempts.all(r.id) as AttemptRow[]).map(toAttempt)));
  }

  async getEvent(orgId: string, id: number): Promise<WebhookEventRecord | undefined> {
    const r = this.h
      .stmt('SELECT id, org_id, type, message_id, payload, at FROM webhook_events WHERE id = ? AND org_id = ?')
      .get(id, orgId) as EventRow | undefined;
    return r ? toEvent(r) : undefined;
  }

  async listEvents(orgId: string, o: { from: number; to: number; limit: number }): Promise<WebhookEventRecord[]> {
    const rows = this.h
      .stmt(
        `SELECT id, org_id, type, message_id, payload, at FROM webhook_events
         WHERE org_id = ? AND at >= ? AND at < ? AND dispatched_at IS NOT NULL ORDER BY id LIMIT ?`,
      )
      .all(orgId, o.from, o.to, o.limit) as EventRow[];
    return rows.map(toEvent);
  }

  async createDeliveries(endpointId: string, eventIds: readonly number[], now: number): Promise<number[]> {
    const h = this.h;
    return h.db.transaction(() => {
      const ev = h.stmt('SELECT org_id, message_id FROM webhook_events WHERE id = ?');
      const insert = h.stmt(INSERT_DELIVERY);
      const ids: number[] = [];
      for (const eventId of eventIds) {
        const e = ev.get(eventId) as { org_id: string; message_id: string | null } | undefined;
        if (!e) continue;
        const r = insert.get({ endpointId, orgId: e.org_id, eventId, messageId: e.message_id, now }) as { id: number };
        ids.push(r.id);
      }
      return ids;
    })();
  }

  async createDirectedEvent(
    endpointId: string,
    event: NewWebhookEvent,
  ): Promise<{ eventId: number; deliveryId: number }> {
    const h = this.h;
    return h.db.transaction(() => {
      const { id: eventId } = h
        .stmt(
          `INSERT INTO webhook_events (org_id, type, message_id, payload, at, dispatched_at) VALUES (?,?,?,?,?,?)
           RETURNING id`,
        )
        .get(event.orgId, event.type, event.messageId ?? null, event.payload, event.at, event.at) as { id: number };
      const { id: deliveryId } = h
        .stmt(INSERT_DELIVERY)
        .get({ endpointId, orgId: event.orgId, eventId, messageId: event.messageId ?? null, now: event.at }) as {
        id: number;
      };
      return { eventId, deliveryId };
    })();
  }
}
