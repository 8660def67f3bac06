/**
 * The journey store on embedded SQLite: every command is one synchronous better-sqlite3 transaction over cached
 * statements (never an async Kysely transaction, which would interleave with the message store's writes on the
 * same connection). Id lists travel as one JSON parameter (`json_each`), so statements stay cached whatever the
 * batch size. SQLite serializes writers, so a claim is a plain conditional update.
 */
import { randomUUID } from 'node:crypto';
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
import { insertRows, type SqliteHandle } from './database.ts';

const HISTORY_COLS = ['run_id', 'at', 'entries'] as const;
/** SQL rank of a message status (see domain/message-status.ts). */
export const STATUS_RANK_SQL = (col: string) =>
  `CASE ${col} ${STATUSES.map((s) => `WHEN '${s}' THEN ${rankOf(s)}`).join(' ')} ELSE -1 END`;
const ids = (list: readonly string[]) => JSON.stringify(list);

export class SqliteJourneyStore implements JourneyStore {
  constructor(private readonly h: SqliteHandle) {}

  async createJourney(j: JourneyRecord): Promise<void> {
    this.h
      .stmt(
        `INSERT INTO journeys (id, org_id, name, status, draft, published_version, created_at, updated_at)
         VALUES (?,?,?,?,?,?,?,?)`,
      )
      .run(j.id, j.orgId, j.name, j.status, j.draft, j.publishedVersion, j.createdAt, j.updatedAt);
  }

  async getJourney(orgId: string, id: string): Promise<JourneyRecord | undefined> {
    const r = this.h.stmt('SELECT * FROM journeys WHERE id = ? AND org_id = ?').get(id, orgId) as
      | JourneyRow
      | undefined;
    return r ? toJourney(r) : undefined;
  }

  async listJourneys(orgId: string, f: JourneyFilter): Promise<JourneyRecord[]> {
    const rows = this.h
      .stmt(
        `SELECT * FROM journeys WHERE org_id = ? AND (? IS NULL OR status = ?) AND (? IS NULL OR id < ?)
         ORDER BY id DESC LIMIT ?`,
      )
      .all(orgId, f.status ?? null, f.status ?? null, f.before ?? null, f.before ?? null, f.limit) as JourneyRow[];
    return rows.map(toJourney);
  }

  async updateJourney(j: Pick<JourneyRecord, 'orgId' | 'id' | 'name' | 'draft' | 'updatedAt'>): Promise<boolean> {
    const r = this.h
      .stmt('UPDATE journeys SET name = ?, draft = ?, updated_at = ? WHERE id = ? AND org_id = ?')
      .run(j.name, j.draft, j.updatedAt, j.id, j.orgId);
    return r.changes > 0;
  }

  async publishJourney(
    orgId: string,
    id: string,
    p: { definition: string; triggerType: TriggerType; triggerKey: string | null; at: number },
  ): Promise<JourneyVersion | undefined> {
    const h = this.h;
    return h.db.transaction((): JourneyVersion | undefined => {
      const j = h.stmt('SELECT status FROM journeys WHERE id = ? AND org_id = ?').pluck().get(id, orgId) as
        | string
        | undefined;
      if (j === undefined || j === 'archived') return undefined;
      const version =
        (h
          .stmt('SELECT coalesce(max(version), 0) FROM journey_versions WHERE journey_id = ?')
          .pluck()
          .get(id) as number) + 1;
      h.stmt(
        'INSERT INTO journey_versions (journey_id, version, org_id, definition, published_at) VALUES (?,?,?,?,?)',
      ).run(id, version, orgId, p.definition, p.at);
      h.stmt(
        `UPDATE journeys SET status = 'active', published_version = ?, trigger_type = ?, trigger_key = ?, updated_at = ?
         WHERE id = ?`,
      ).run(version, p.triggerType, p.triggerKey, p.at, id);
      return { journeyId: id, orgId, version, definition: p.definition, publishedAt: p.at };
    })();
  }

  async archiveJourney(orgId: string, id: string, at: number): Promise<boolean> {
    const r = this.h
      .stmt(`UPDATE journeys SET status = 'archived', updated_at = ? WHERE id = ? AND org_id = ?`)
      .run(at, id, orgId);
    return r.changes > 0;
  }

  async getVersion(journeyId: string, version: number): Promise<JourneyVersion | undefined> {
    const r = this.h
      .stmt('SELECT * FROM journey_versions WHERE journey_id = ? AND version = ?')
      .get(journeyId, version) as VersionRow | undefined;
    return r ? toVersion(r) : undefined;
  }

  async listVersions(orgId: string, journeyId: string): Promise<JourneyVersion[]> {
    const rows = this.h
      .stmt('SELECT * FROM journey_versions WHERE journey_id = ? AND org_id = ? ORDER BY version')
      .all(journeyId, orgId) as VersionRow[];
    return rows.map(toVersion);
  }

  async findTriggered(orgId: string, type: TriggerType, key: string | null) {
    const rows = this.h
      .stmt(
        `SELECT id, published_version FROM journeys WHERE org_id = ? AND status = 'active' AND trigger_type = ?
         AND trigger_key IS ? ORDER BY id`,
      )
      .all(orgId, type, key) as { id: string; published_version: number }[];
    return rows.map((r) => ({ journeyId: r.id, version: r.published_version }));
  }

  async startRuns(runs: readonly NewRun[]): Promise<StartOutcome[]> {
    const h = this.h;
    return h.db.transaction(() => {
      const byDedupe = h.stmt('SELECT id FROM journey_runs WHERE journey_id = ? AND dedupe_key = ?').pluck();
      const entry = h
        .stmt('SELECT last_started_at FROM journey_entries WHERE journey_id = ? AND contact_id = ?')
        .pluck();
      const upsertEntry = h.stmt(
        `INSERT INTO journey_entries (journey_id, contact_id, last_run_id, last_started_at, entries) VALUES (?,?,?,?,1)
         ON CONFLICT (journey_id, contact_id) DO UPDATE SET last_run_id = excluded.last_run_id,
         last_started_at = excluded.last_started_at, entries = entries + 1`,
      );
      const insertRun = h.stmt(
        `INSERT INTO journey_runs (id, org_id, journey_id, version, contact_id, status, step_id, state, attempts,
         wait_keys, due_at, dedupe_key, started_at, updated_at) VALUES (?,?,?,?,?,'running',?,?,0,?,?,?,?,?)`,
      );
      const insertWait = h.stmt('INSERT INTO journey_waits (wait_key, run_id) VALUES (?,?) ON CONFLICT DO NOTHING');
      const history: unknown[][] = [];
      const out: StartOutcome[] = [];
      for (const r of runs) {
        if (r.dedupeKey !== null) {
          const existing = byDedupe.get(r.journeyId, r.dedupeKey) as string | undefined;
          if (existing !== undefined) {
            out.push({ kind: 'duplicate', runId: existing });
            continue;
          }
        }
        const last = entry.get(r.journeyId, r.contactId) as number | undefined;
        if (
          last !== undefined &&
          (r.reentry.mode === 'never' ||
            (r.reentry.mode === 'cooldown' && r.startedAt - last < (r.reentry.cooldownMs ?? 0)))
        ) {
          out.push({ kind: 'reentry_blocked' });
          continue;
        }
        upsertEntry.run(r.journeyId, r.contactId, r.id, r.startedAt);
        insertRun.run(
          r.id,
          r.orgId,
          r.journeyId,
          r.version,
          r.contactId,
          r.stepId,
          r.state,
          JSON.stringify(r.keys),
          r.startedAt,
          r.dedupeKey,
          r.startedAt,
          r.startedAt,
        );
        for (const k of r.keys) insertWait.run(k, r.id);
        history.push(
          historyRow(r.id, r.startedAt, [
            { stepId: null, type: 'run', outcome: 'started', at: r.startedAt, detail: { version: r.version } },
          ]),
        );
        out.push({ kind: 'started', runId: r.id });
      }
      insertRows(h, 'journey_run_history', HISTORY_COLS, history);
      return out;
    })();
  }

  async claimDueRuns(now: number, limit: number, leaseMs: number): Promise<ClaimedRun[]> {
    const h = this.h;
    const token = randomUUID();
    return h.db.transaction(() => {
      const rows = h
        .stmt(
          `UPDATE journey_runs SET lease_until = ?, lease_token = ? WHERE id IN (
             SELECT id FROM journey_runs WHERE due_at <= ? AND (lease_until IS NULL OR lease_until <= ?)
             ORDER BY due_at LIMIT ?)
           RETURNING *`,
        )
        .all(now + leaseMs, token, now, now, limit) as RunRow[];
      if (rows.length === 0) return [];
      rows.sort((a, b) => (a.due_at as number) - (b.due_at as number));
      const list = ids(rows.map((r) => r.id));
      const signals = groupByRun(
        h
          .stmt('SELECT * FROM journey_signals WHERE run_id IN (SELECT value FROM json_each(?)) ORDER BY id')
          .all(list) as SignalRow[],
      );
      const messages = groupByRun(
        h
          .stmt(
            'SELECT run_id, message_id, status FROM journey_messages WHERE run_id IN (SELECT value FROM json_each(?))',
          )
          .all(list) as RunMessageRow[],
      );
      return rows.map((r) => ({
        run: toRun(r),
        token,
        dueAt: r.due_at as number,
        signals: (signals.get(r.id) ?? []).map(toSignal),
        statuses: statusMap(messages.get(r.id)),
      }));
    })();
  }

  async saveRuns(saves: readonly RunSave[]): Promise<boolean[]> {
    const h = this.h;
    return h.db.transaction(() => {
      const current = new Map(
        (
          h
            .stmt('SELECT id, wait_keys, lease_token FROM journey_runs WHERE id IN (SELECT value FROM json_each(?))')
            .all(ids(saves.map((s) => s.runId))) as { id: string; wait_keys: string; lease_token: string | null }[]
        ).map((r) => [r.id, r]),
      );
      const update = h.stmt(
        `UPDATE journey_runs SET status = ?, step_id = ?, state = ?, attempts = ?, wait_keys = ?, due_at = ?, error = ?,
         lease_until = NULL, lease_token = NULL, updated_at = ?, ended_at = ? WHERE id = ?`,
      );
      const dropWaits = h.stmt('DELETE FROM journey_waits WHERE run_id = ?');
      const insertWait = h.stmt('INSERT INTO journey_waits (wait_key, run_id) VALUES (?,?) ON CONFLICT DO NOTHING');
      const consume = h.stmt('DELETE FROM journey_signals WHERE run_id = ? AND id <= ?');
      const dropSignals = h.stmt('DELETE FROM journey_signals WHERE run_id = ?');
      const insertMessage = h.stmt(
        `INSERT INTO journey_messages (message_id, run_id, step_id, status, updated_at) VALUES (?,?,?,'queued',?)
         ON CONFLICT DO NOTHING`,
      );
      const history: unknown[][] = [];
      const live: string[] = [];
      let at = 0;
      const out: boolean[] = [];
      for (const s of saves) {
        const row = current.get(s.runId);
        if (row === undefined || row.lease_token !== s.token) {
          out.push(false);
          continue;
        }
        // One save per run per batch: a second one with the same token finds the lease released.
        row.lease_token = null;
        const ended = ENDED_RUN_STATUSES.includes(s.status);
        const keys = ended ? '[]' : JSON.stringify(s.keys);
        update.run(
          s.status,
          s.stepId,
          s.state,
          s.attempts,
          keys,
          ended ? null : s.dueAt,
          s.error === null ? null : JSON.stringify(s.error),
          s.at,
          ended ? s.at : null,
          s.runId,
        );
        if (keys !== row.wait_keys) {
          dropWaits.run(s.runId);
          if (!ended) for (const k of s.keys) insertWait.run(k, s.runId);
        }
        if (ended) dropSignals.run(s.runId);
        else {
          if (s.consumedSignalsUpTo !== null) consume.run(s.runId, s.consumedSignalsUpTo);
          live.push(s.runId);
          at = Math.max(at, s.at);
        }
        for (const m of s.messages) insertMessage.run(m.messageId, s.runId, m.stepId, s.at);
        if (s.history.length > 0) history.push(historyRow(s.runId, s.at, s.history));
        out.push(true);
      }
      insertRows(h, 'journey_run_history', HISTORY_COLS, history);
      if (live.length > 0) {
        // Signals that arrived after the claim read them: the run is due again at once.
        h.stmt(
          `UPDATE journey_runs SET due_at = min(coalesce(due_at, ?), ?)
           WHERE id IN (SELECT DISTINCT run_id FROM journey_signals WHERE run_id IN (SELECT value FROM json_each(?)))`,
        ).run(at, at, ids(live));
      }
      return out;
    })();
  }

  async getRun(orgId: string, id: string): Promise<RunRecord | undefined> {
    const r = this.h.stmt('SELECT * FROM journey_runs WHERE id = ? AND org_id = ?').get(id, orgId) as
      | RunRow
      | undefined;
    return r ? toRun(r) : undefined;
  }

  async listRuns(orgId: string, f: RunFilter): Promise<RunRecord[]> {
    const rows = this.h
      .stmt(
        `SELECT * FROM journey_runs WHERE org_id = @orgId AND (@journeyId IS NULL OR journey_id = @journeyId)
         AND (@status IS NULL OR status = @status) AND (@contactId IS NULL OR contact_id = @contactId)
         AND (@before IS NULL OR id < @before) ORDER BY id DESC LIMIT @limit`,
      )
      .all({
        orgId,
        journeyId: f.journeyId ?? null,
        status: f.status ?? null,
        contactId: f.contactId ?? null,
        before: f.before ?? null,
        limit: f.limit,
      }) as RunRow[];
    return rows.map(toRun);
  }

  async getRunHistory(runId: string): Promise<HistoryEntry[]> {
    const rows = this.h
      .stmt('SELECT entries FROM journey_run_history WHERE run_id = ? ORDER BY seq')
      .all(runId) as HistoryRow[];
    return toHistory(rows);
  }

  async cancelRun(orgId: string, id: string, at: number): Promise<RunCommandOutcome> {
    const h = this.h;
    return h.db.transaction((): RunCommandOutcome => {
      const r = h.stmt('SELECT status FROM journey_runs WHERE id = ? AND org_id = ?').pluck().get(id, orgId) as
        | RunRecord['status']
        | undefined;
      if (r === undefined) return { kind: 'not_found' };
      if (!CANCELABLE_RUN_STATUSES.includes(r)) return { kind: 'conflict', status: r };
      h.stmt(
        `UPDATE journey_runs SET status = 'canceled', due_at = NULL, lease_until = NULL, lease_token = NULL,
         wait_keys = '[]', ended_at = ?, updated_at = ? WHERE id = ?`,
      ).run(at, at, id);
      h.stmt('DELETE FROM journey_waits WHERE run_id = ?').run(id);
      h.stmt('DELETE FROM journey_signals WHERE run_id = ?').run(id);
      insertRows(h, 'journey_run_history', HISTORY_COLS, [
        historyRow(id, at, [{ stepId: null, type: 'run', outcome: 'canceled', at, detail: { status: r } }]),
      ]);
      return { kind: 'ok', run: toRun(h.stmt('SELECT * FROM journey_runs WHERE id = ?').get(id) as RunRow) };
    })();
  }

  async retryRun(orgId: string, id: string, at: number): Promise<RunCommandOutcome> {
    const h = this.h;
    return h.db.transaction((): RunCommandOutcome => {
      const r = h.stmt('SELECT status FROM journey_runs WHERE id = ? AND org_id = ?').pluck().get(id, orgId) as
        | RunRecord['status']
        | undefined;
      if (r === undefined) return { kind: 'not_found' };
      if (r !== 'failed') return { kind: 'conflict', status: r };
      h.stmt(
        `UPDATE journey_runs SET status = 'running', due_at = ?, attempts = 0, error = NULL, ended_at = NULL,
         lease_until = NULL, lease_token = NULL, updated_at = ? WHERE id = ?`,
      ).run(at, at, id);
      insertRows(h, 'journey_run_history', HISTORY_COLS, [
        historyRow(id, at, [{ stepId: null, type: 'run', outcome: 'retried', at, detail: null }]),
      ]);
      return { kind: 'ok', run: toRun(h.stmt('SELECT * FROM journey_runs WHERE id = ?').get(id) as RunRow) };
    })();
  }

  async signalRuns(keys: readonly string[], signal: Omit<StoredSignal, 'id'>): Promise<number> {
    if (keys.length === 0) return 0;
    const h = this.h;
    const waiting = h
      .stmt(
        `SELECT DISTINCT w.run_id FROM journey_waits w JOIN journey_runs r ON r.id = w.run_id
         WHERE w.wait_key IN (SELECT value FROM json_each(?)) AND r.status IN ('running', 'waiting')`,
      )
      .pluck();
    // Most events and replies concern no waiting run: find that out without opening a write transaction.
    if (waiting.all(ids(keys)).length === 0) return 0;
    return h.db.transaction(() => {
      const runs = waiting.all(ids(keys)) as string[];
      const insert = h.stmt('INSERT INTO journey_signals (run_id, kind, payload, received_at) VALUES (?,?,?,?)');
      const wake = h.stmt('UPDATE journey_runs SET due_at = min(coalesce(due_at, ?), ?) WHERE id = ?');
      const payload = JSON.stringify(signal.payload);
      for (const id of runs) {
        insert.run(id, signal.kind, payload, signal.receivedAt);
        wake.run(signal.receivedAt, signal.receivedAt, id);
      }
      return runs.length;
    })();
  }

  async recordMessageStatuses(
    updates: readonly { messageId: string; status: MessageStatus }[],
    at: number,
  ): Promise<number> {
    if (updates.length === 0) return 0;
    const h = this.h;
    return h.db.transaction(() => {
      const set = h.stmt(
        `UPDATE journey_messages SET status = ?, updated_at = ? WHERE message_id = ? AND ${STATUS_RANK_SQL('status')} < ?`,
      );
      const wake = h.stmt(
        `UPDATE journey_runs SET due_at = min(coalesce(due_at, ?), ?)
         WHERE id IN (SELECT run_id FROM journey_waits WHERE wait_key = ?) AND status IN ('running', 'waiting')`,
      );
      let woken = 0;
      for (const u of updates) {
        if (set.run(u.status, at, u.messageId, rankOf(u.status)).changes === 0) continue;
        woken += wake.run(at, at, messageKey(u.messageId)).changes;
      }
      return woken;
    })();
  }

  async nextDueAt(): Promise<number | null> {
    return (this.h
      .stmt('SELECT min(due_at) FROM journey_runs WHERE due_at IS NOT NULL AND lease_token IS NULL')
      .pluck()
      .get() ?? null) as number | null;
  }
}
