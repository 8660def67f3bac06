/**
 * The journey store on PostgreSQL, for many API and worker processes sharing one database.
 *
 * Claims: due runs are picked `FOR UPDATE SKIP LOCKED` and leased (a token and an end), so concurrent workers take
 * disjoint runs and never wait for each other. Saves lock their runs in id order and write only those whose token
 * still matches (a canceled run, or one whose lease ended and was claimed again, is left alone). Batches travel as
 * typed arrays (`unnest`), so statements do not grow with the batch. Starting runs locks the contacts' entry rows
 * (re-entry rules) in (journey, contact) order, so concurrent starts cannot deadlock each other.
 */
import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import { messageKey } from '../../domain/journey-run-state.ts';
import { type MessageStatus, rankOf, STATUSES } from '../../domain/message-status.ts';
import type {
  ClaimedRun,
  HistoryEntry,
  JourneyFilter,
  JourneyRecord,
  JourneyStore,
  JourneyVersion,
  NewRun,
  RunCommandOutcome,
  RunFilter,
  RunRecord,
  RunSave,
  RunStatus,
  StartOutcome,
  StoredSignal,
  TriggerType,
} from '../../ports/journey-store.ts';
import {
  CANCELABLE_RUN_STATUSES,
  ENDED_RUN_STATUSES,
  groupByRun,
  type HistoryRow,
  historyRow,
  type JourneyRow,
  type RunMessageRow,
  type RunRow,
  type SignalRow,
  statusMap,
  toHistory,
  toJourney,
  toRun,
  toSignal,
  toVersion,
  type VersionRow,
} from '../sql/journey-rows.ts';
import { inTransaction, type PgHandle, type Trx } from './database.ts';
import { insertRows, unnestRows } from './pg-store.ts';

const HISTORY_COLS = [
  ['run_id', 'text'],
  ['at', 'bigint'],
  ['entries', 'text'],
] as const;
const WAIT_COLS = [
  ['wait_key', 'text'],
  ['run_id', 'text'],
] as const;
const MESSAGE_COLS = [
  ['message_id', 'text'],
  ['run_id', 'text'],
  ['step_id', 'text'],
  ['status', 'text'],
  ['updated_at', 'bigint'],
] as const;
const SAVE_COLS = [
  ['id', 'text'],
  ['status', 'text'],
  ['step_id', 'text'],
  ['state', 'text'],
  ['attempts', 'integer'],
  ['wait_keys', 'text'],
  ['due_at', 'bigint'],
  ['error', 'text'],
  ['updated_at', 'bigint'],
  ['ended_at', 'bigint'],
] as const;

const RANK_OF_STATUS = sql.raw(
  `case m.status ${STATUSES.map((s) => `when '${s}' then ${rankOf(s)}`).join(' ')} else -1 end`,
);
const LIVE = sql`('running', 'waiting')`;

export class PgJourneyStore implements JourneyStore {
  constructor(private readonly h: PgHandle) {}

  async createJourney(j: JourneyRecord): Promise<void> {
    await sql`insert into journeys (id, org_id, name, status, draft, published_version, created_at, updated_at)
      values (${j.id}, ${j.orgId}, ${j.name}, ${j.status}, ${j.draft}, ${j.publishedVersion}, ${j.createdAt}::bigint,
        ${j.updatedAt}::bigint)`.execute(this.h.kysely);
  }

  async getJourney(orgId: string, id: string): Promise<JourneyRecord | undefined> {
    const { rows } = await sql<JourneyRow>`select * from journeys where id = ${id} and org_id = ${orgId}`.execute(
      this.h.kysely,
    );
    return rows[0] ? toJourney(rows[0]) : undefined;
  }

  async listJourneys(orgId: string, f: JourneyFilter): Promise<JourneyRecord[]> {
    const { rows } = await sql<JourneyRow>`select * from journeys where org_id = ${orgId}
      and (${f.status ?? null}::text is null or status = ${f.status ?? null}::text)
      and (${f.before ?? null}::text is null or id < ${f.before ?? null}::text)
      order by id desc limit ${f.limit}`.execute(this.h.kysely);
    return rows.map(toJourney);
  }

  async updateJourney(j: Pick<JourneyRecord, 'orgId' | 'id' | 'name' | 'draft' | 'updatedAt'>): Promise<boolean> {
    const r = await sql`update journeys set name = ${j.name}, draft = ${j.draft}, updated_at = ${j.updatedAt}::bigint
      where id = ${j.id} and org_id = ${j.orgId}`.execute(this.h.kysely);
    return Number(r.numAffectedRows ?? 0) > 0;
  }

  async publishJourney(
    orgId: string,
    id: string,
    p: { definition: string; triggerType: TriggerType; triggerKey: string | null; at: number },
  ): Promise<JourneyVersion | undefined> {
    return inTransaction(this.h, async (trx) => {
      const { rows } = await sql<{ status: string }>`
        select status from journeys where id = ${id} and org_id = ${orgId} for update`.execute(trx);
      const status = rows[0]?.status;
      if (status === undefined || status === 'archived') return undefined;
      const { rows: v } = await sql<{ version: number }>`
        insert into journey_versions (journey_id, version, org_id, definition, published_at)
        select ${id}, coalesce(max(version), 0) + 1, ${orgId}, ${p.definition}, ${p.at}::bigint
        from journey_versions where journey_id = ${id}
        returning version`.execute(trx);
      const version = v[0]?.version as number;
      await sql`update journeys set status = 'active', published_version = ${version}, trigger_type = ${p.triggerType},
        trigger_key = ${p.triggerKey}, updated_at = ${p.at}::bigint where id = ${id}`.execute(trx);
      return { journeyId: id, orgId, version, definition: p.definition, publishedAt: p.at };
    });
  }

  async archiveJourney(orgId: string, id: string, at: number): Promise<boolean> {
    const r = await sql`update journeys set status = 'archived', updated_at = ${at}::bigint
      where id = ${id} and org_id = ${orgId}`.execute(this.h.kysely);
    return Number(r.numAffectedRows ?? 0) > 0;
  }

  async getVersion(journeyId: string, version: number): Promise<JourneyVersion | undefined> {
    const { rows } = await sql<VersionRow>`
      select * from journey_versions where journey_id = ${journeyId} and version = ${version}`.execute(this.h.kysely);
    return rows[0] ? toVersion(rows[0]) : undefined;
  }

  async listVersions(orgId: string, journeyId: string): Promise<JourneyVersion[]> {
    const { rows } = await sql<VersionRow>`
      select * from journey_versions where journey_id = ${journeyId} and org_id = ${orgId} order by version`.execute(
      this.h.kysely,
    );
    return rows.map(toVersion);
  }

  async findTriggered(orgId: string, type: TriggerType, key: string | null) {
    const { rows } = await sql<{ id: string; published_version: number }>`
      select id, published_version from journeys where org_id = ${orgId} and status = 'active'
      and trigger_type = ${type} and trigger_key is not distinct from ${key}::text order by id`.execute(this.h.kysely);
    return rows.map((r) => ({ journeyId: r.id, version: r.published_version }));
  }

  async startRuns(runs: readonly NewRun[]): Promise<StartOutcome[]> {
    if (runs.length === 0) return [];
    // Entry rows are locked in (journey, contact) order; the sort is stable, so runs of one contact keep theirs.
    const order = runs
      .map((_, i) => i)
      .sort((a, b) => {
        const x = runs[a] as NewRun;
        const y = runs[b] as NewRun;
        return x.journeyId < y.journeyId
          ? -1
          : x.journeyId > y.journeyId
            ? 1
            : x.contactId < y.contactId
              ? -1
              : x.contactId > y.contactId
                ? 1
                : a - b;
      });
    return inTransaction(this.h, async (trx) => {
      const out: StartOutcome[] = new Array(runs.length);
      const waits: unknown[][] = [];
      const history: unknown[][] = [];
      for (const i of order) {
        const r = runs[i] as NewRun;
        const { rows: inserted } = await sql<{ id: string }>`
          insert into journey_runs (id, org_id, journey_id, version, contact_id, status, step_id, state, attempts,
            wait_keys, due_at, dedupe_key, started_at, updated_at)
          values (${r.id}, ${r.orgId}, ${r.journeyId}, ${r.version}, ${r.contactId}, 'running', ${r.stepId}, ${r.state},
            0, ${JSON.stringify(r.keys)}, ${r.startedAt}::bigint, ${r.dedupeKey}, ${r.startedAt}::bigint,
            ${r.startedAt}::bigint)
          on conflict (journey_id, dedupe_key) where dedupe_key is not null do nothing
          returning id`.execute(trx);
        if (inserted.length === 0) {
          const { rows } = await sql<{ id: string }>`
            select id from journey_runs where journey_id = ${r.journeyId} and dedupe_key = ${r.dedupeKey}`.execute(trx);
          out[i] = { kind: 'duplicate', runId: rows[0]?.id as string };
          continue;
        }
        const { rows: entered } = await sql`
          insert into journey_entries (journey_id, contact_id, last_run_id, last_started_at, entries)
          values (${r.journeyId}, ${r.contactId}, ${r.id}, ${r.startedAt}::bigint, 1)
          on conflict (journey_id, contact_id) do update set last_run_id = excluded.last_run_id,
            last_started_at = excluded.last_started_at, entries = journey_entries.entries + 1
          where ${r.reentry.mode} = 'always' or (${r.reentry.mode} = 'cooldown'
            and journey_entries.last_started_at <= ${r.startedAt - (r.reentry.cooldownMs ?? 0)}::bigint)
          returning 1`.execute(trx);
        if (entered.length === 0) {
          await sql`delete from journey_runs where id = ${r.id}`.execute(trx);
          out[i] = { kind: 'reentry_blocked' };
          continue;
        }
        for (const k of r.keys) waits.push([k, r.id]);
        history.push(
          historyRow(r.id, r.startedAt, [
            { stepId: null, type: 'run', outcome: 'started', at: r.startedAt, detail: { version: r.version } },
          ]),
        );
        out[i] = { kind: 'started', runId: r.id };
      }
      if (waits.length > 0)
        await insertRows('journey_waits', WAIT_COLS, waits, sql`on conflict do nothing`).execute(trx);
      if (history.length > 0) await insertRows('journey_run_history', HISTORY_COLS, history).execute(trx);
      return out;
    });
  }

  async claimDueRuns(now: number, limit: number, leaseMs: number): Promise<ClaimedRun[]> {
    const token = randomUUID();
    const k = this.h.kysely;
    const { rows } = await sql<RunRow>`
      with c as (
        select id from journey_runs
        where due_at <= ${now}::bigint and (lease_until is null or lease_until <= ${now}::bigint)
        order by due_at limit ${limit}
        for update skip locked
      )
      update journey_runs as r set lease_until = ${now + leaseMs}::bigint, lease_token = ${token}
      from c where r.id = c.id
      returning r.*`.execute(k);
    if (rows.length === 0) return [];
    rows.sort((a, b) => (a.due_at as number) - (b.due_at as number));
    const idList = rows.map((r) => r.id);
    const [signals, messages] = await Promise.all([
      sql<SignalRow>`select * from journey_signals where run_id = any(${idList}::text[]) order by id`.execute(k),
      sql<RunMessageRow>`select run_id, message_id, status from journey_messages
        where run_id = any(${idList}::text[])`.execute(k),
    ]);
    const byRunSignals = groupByRun(signals.rows);
    const byRunMessages = groupByRun(messages.rows);
    return rows.map((r) => ({
      run: toRun(r),
      token,
      dueAt: r.due_at as number,
      signals: (byRunSignals.get(r.id) ?? []).map(toSignal),
      statuses: statusMap(byRunMessages.get(r.id)),
    }));
  }

  async saveRuns(saves: readonly RunSave[]): Promise<boolean[]> {
    if (saves.length === 0) return [];
    const sorted = [...saves].sort((a, b) => (a.runId < b.runId ? -1 : a.runId > b.runId ? 1 : 0));
    const kept = await inTransaction(this.h, async (trx) => {
      const { rows: locked } = await sql<{ id: string; wait_keys: string; lease_token: string | null }>`
        select id, wait_keys, lease_token from journey_runs where id = any(${sorted.map((s) => s.runId)}::text[])
        order by id for update`.execute(trx);
      const current = new Map(locked.map((r) => [r.id, r]));
      const ok = sorted.filter((s) => current.get(s.runId)?.lease_token === s.token);
      if (ok.length === 0) return new Set<string>();
      const ended = (s: RunSave) => ENDED_RUN_STATUSES.includes(s.status);
      const keysOf = (s: RunSave) => (ended(s) ? '[]' : JSON.stringify(s.keys));
      const values = ok.map((s) => [
        s.runId,
        s.status,
        s.stepId,
        s.state,
        s.attempts,
        keysOf(s),
        ended(s) ? null : s.dueAt,
        s.error === null ? null : JSON.stringify(s.error),
        s.at,
        ended(s) ? s.at : null,
      ]);
      const set = sql.join(
        SAVE_COLS.slice(1).map(([name]) => sql`${sql.ref(name)} = ${sql.ref(`v.${name}`)}`),
        sql`, `,
      );
      await sql`update journey_runs as r set ${set}, lease_until = null, lease_token = null
        from (${unnestRows(SAVE_COLS, values)}) as v where r.id = v.id`.execute(trx);
      const changed = ok.filter((s) => keysOf(s) !== current.get(s.runId)?.wait_keys);
      if (changed.length > 0) {
        await sql`delete from journey_waits where run_id = any(${changed.map((s) => s.runId)}::text[])`.execute(trx);
        const waits = changed.filter((s) => !ended(s)).flatMap((s) => s.keys.map((key) => [key, s.runId]));
        if (waits.length > 0)
          await insertRows('journey_waits', WAIT_COLS, waits, sql`on conflict do nothing`).execute(trx);
      }
      const done = ok.filter(ended).map((s) => s.runId);
      if (done.length > 0) await sql`delete from journey_signals where run_id = any(${done}::text[])`.execute(trx);
      const consumed = ok.filter((s) => !ended(s) && s.consumedSignalsUpTo !== null);
      if (consumed.length > 0) {
        await sql`delete from journey_signals as s
          using unnest(${consumed.map((s) => s.runId)}::text[], ${consumed.map((s) => s.consumedSignalsUpTo)}::bigint[])
            as v(run_id, up_to)
          where s.run_id = v.run_id and s.id <= v.up_to`.execute(trx);
      }
      const live = ok.filter((s) => !ended(s));
      if (live.length > 0) {
        // Signals that arrived after the claim read them: the run is due again at once.
        await sql`update journey_runs as r set due_at = least(coalesce(r.due_at, v.at), v.at)
          from unnest(${live.map((s) => s.runId)}::text[], ${live.map((s) => s.at)}::bigint[]) as v(id, at)
          where r.id = v.id and exists (select 1 from journey_signals s where s.run_id = r.id)`.execute(trx);
      }
      const history = ok.filter((s) => s.history.length > 0).map((s) => historyRow(s.runId, s.at, s.history));
      if (history.length > 0) await insertRows('journey_run_history', HISTORY_COLS, history).execute(trx);
      const messages = ok.flatMap((s) => s.messages.map((m) => [m.messageId, s.runId, m.stepId, 'queued', s.at]));
      if (messages.length > 0)
        await insertRows('journey_messages', MESSAGE_COLS, messages, sql`on conflict do nothing`).execute(trx);
      return new Set(ok.map((s) => s.runId));
    });
    return saves.map((s) => kept.has(s.runId));
  }

  async getRun(orgId: string, id: string): Promise<RunRecord | undefined> {
    const { rows } = await sql<RunRow>`select * from journey_runs where id = ${id} and org_id = ${orgId}`.execute(
      this.h.kysely,
    );
    return rows[0] ? toRun(rows[0]) : undefined;
  }

  async listRuns(orgId: string, f: RunFilter): Promise<RunRecord[]> {
    const { rows } = await sql<RunRow>`select * from journey_runs where org_id = ${orgId}
      and (${f.journeyId ?? null}::text is null or journey_id = ${f.journeyId ?? null}::text)
      and (${f.status ?? null}::text is null or status = ${f.status ?? null}::text)
      and (${f.contactId ?? null}::text is null or contact_id = ${f.contactId ?? null}::text)
      and (${f.before ?? null}::text is null or id < ${f.before ?? null}::text)
      order by id desc limit ${f.limit}`.execute(this.h.kysely);
    return rows.map(toRun);
  }

  async getRunHistory(runId: string): Promise<HistoryEntry[]> {
    const { rows } = await sql<HistoryRow>`select entries from journey_run_history
      where run_id = ${runId} order by seq`.execute(this.h.kysely);
    return toHistory(rows);
  }

  private async command(
    orgId: string,
    id: string,
    allowed: readonly RunStatus[],
    apply: (trx: Trx, from: RunStatus) => Promise<void>,
  ): Promise<RunCommandOutcome> {
    return inTransaction(this.h, async (trx) => {
      const { rows } = await sql<{ status: RunStatus }>`
        select status from journey_runs where id = ${id} and org_id = ${orgId} for update`.execute(trx);
      const status = rows[0]?.status;
      if (status === undefined) return { kind: 'not_found' };
      if (!allowed.includes(status)) return { kind: 'conflict', status };
      await apply(trx, status);
      const { rows: after } = await sql<RunRow>`select * from journey_runs where id = ${id}`.execute(trx);
      return { kind: 'ok', run: toRun(after[0] as RunRow) };
    });
  }

  async cancelRun(orgId: string, id: string, at: number): Promise<RunCommandOutcome> {
    return this.command(orgId, id, CANCELABLE_RUN_STATUSES, async (trx, from) => {
      await sql`
        with u as (
          update journey_runs set status = 'canceled', due_at = null, lease_until = null, lease_token = null,
            wait_keys = '[]', ended_at = ${at}::bigint, updated_at = ${at}::bigint where id = ${id}
        ),
        w as (delete from journey_waits where run_id = ${id}),
        s as (delete from journey_signals where run_id = ${id})
        ${insertRows('journey_run_history', HISTORY_COLS, [
          historyRow(id, at, [{ stepId: null, type: 'run', outcome: 'canceled', at, detail: { status: from } }]),
        ])}`.execute(trx);
    });
  }

  async retryRun(orgId: string, id: string, at: number): Promise<RunCommandOutcome> {
    return this.command(orgId, id, ['failed'], async (trx) => {
      await sql`
        with u as (
          update journey_runs set status = 'running', due_at = ${at}::bigint, attempts = 0, error = null,
            ended_at = null, lease_until = null, lease_token = null, updated_at = ${at}::bigint where id = ${id}
        )
        ${insertRows('journey_run_history', HISTORY_COLS, [
          historyRow(id, at, [{ stepId: null, type: 'run', outcome: 'retried', at, detail: null }]),
        ])}`.execute(trx);
    });
  }

  async signalRuns(keys: readonly string[], signal: Omit<StoredSignal, 'id'>): Promise<number> {
    if (keys.length === 0) return 0;
    const at = signal.receivedAt;
    const { rows } = await sql<{ n: number }>`
      with w as (
        select distinct w.run_id from journey_waits w join journey_runs r on r.id = w.run_id
        where w.wait_key = any(${[...keys]}::text[]) and r.status in ${LIVE}
      ),
      s as (
        insert into journey_signals (run_id, kind, payload, received_at)
        select run_id, ${signal.kind}, ${JSON.stringify(signal.payload)}, ${at}::bigint from w
      ),
      u as (
        update journey_runs set due_at = least(coalesce(due_at, ${at}::bigint), ${at}::bigint)
        where id in (select run_id from w)
      )
      select count(*)::int as n from w`.execute(this.h.kysely);
    return rows[0]?.n ?? 0;
  }

  async recordMessageStatuses(
    updates: readonly { messageId: string; status: MessageStatus }[],
    at: number,
  ): Promise<number> {
    if (updates.length === 0) return 0;
    // One update per message: the highest-ranked status of the batch.
    const best = new Map<string, MessageStatus>();
    for (const u of updates) {
      const prev = best.get(u.messageId);
      if (prev === undefined || rankOf(u.status) > rankOf(prev)) best.set(u.messageId, u.status);
    }
    const { rows } = await sql<{ n: number }>`
      with v as (
        select * from unnest(${[...best.keys()]}::text[], ${[...best.values()]}::text[],
          ${[...best.values()].map(rankOf)}::int[]) as v(message_id, status, rank)
      ),
      m as (
        update journey_messages as m set status = v.status, updated_at = ${at}::bigint
        from v where m.message_id = v.message_id and ${RANK_OF_STATUS} < v.rank
        returning m.message_id
      ),
      r as (
        update journey_runs set due_at = least(coalesce(due_at, ${at}::bigint), ${at}::bigint)
        where status in ${LIVE} and id in (
          select run_id from journey_waits where wait_key in (select ${messageKey('')} || message_id from m)
        )
        returning id
      )
      select count(*)::int as n from r`.execute(this.h.kysely);
    return rows[0]?.n ?? 0;
  }

  async nextDueAt(): Promise<number | null> {
    const { rows } = await sql<{ due: number | null }>`
      select min(due_at) as due from journey_runs where due_at is not null and lease_token is null`.execute(
      this.h.kysely,
    );
    return rows[0]?.due ?? null;
  }
}
