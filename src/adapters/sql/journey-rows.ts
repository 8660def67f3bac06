/** Rows of the journey tables and their mapping to records, shared by the SQLite and PostgreSQL journey stores. */
import type { MessageStatus } from '../../domain/message-status.ts';
import type {
  HistoryEntry,
  JourneyRecord,
  JourneyStatus,
  JourneyVersion,
  RunRecord,
  RunStatus,
  StoredSignal,
} from '../../ports/journey-store.ts';

export interface JourneyRow {
  id: string;
  org_id: string;
  name: string;
  status: string;
  draft: string;
  published_version: number | null;
  created_at: number;
  updated_at: number;
}

export interface VersionRow {
  journey_id: string;
  org_id: string;
  version: number;
  definition: string;
  published_at: number;
}

export interface RunRow {
  id: string;
  org_id: string;
  journey_id: string;
  version: number;
  contact_id: string;
  status: string;
  step_id: string;
  state: string;
  attempts: number;
  wait_keys: string;
  due_at: number | null;
  error: string | null;
  started_at: number;
  updated_at: number;
  ended_at: number | null;
}

export interface HistoryRow {
  entries: string;
}

export interface SignalRow {
  id: number;
  run_id: string;
  kind: string;
  payload: string;
  received_at: number;
}

export interface RunMessageRow {
  run_id: string;
  message_id: string;
  status: string;
}

export function toJourney(r: JourneyRow): JourneyRecord {
  return {
    id: r.id,
    orgId: r.org_id,
    name: r.name,
    status: r.status as JourneyStatus,
    draft: r.draft,
    publishedVersion: r.published_version,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

export function toVersion(r: VersionRow): JourneyVersion {
  return {
    journeyId: r.journey_id,
    orgId: r.org_id,
    version: r.version,
    definition: r.definition,
    publishedAt: r.published_at,
  };
}

export function toRun(r: RunRow): RunRecord {
  return {
    id: r.id,
    orgId: r.org_id,
    journeyId: r.journey_id,
    version: r.version,
    contactId: r.contact_id,
    status: r.status as RunStatus,
    stepId: r.step_id,
    state: r.state,
    attempts: r.attempts,
    keys: JSON.parse(r.wait_keys) as string[],
    dueAt: r.due_at,
    error: r.error === null ? null : (JSON.parse(r.error) as { code: string; message: string }),
    startedAt: r.started_at,
    updatedAt: r.updated_at,
    endedAt: r.ended_at,
  };
}

/** History rows (each the entries of one execution, in order) as one list. */
export function toHistory(rows: readonly HistoryRow[]): HistoryEntry[] {
  return rows.flatMap((r) => JSON.parse(r.entries) as HistoryEntry[]);
}

/** A history row: the run, when it was written, and its entries. */
export function historyRow(runId: string, at: number, entries: readonly HistoryEntry[]): unknown[] {
  return [runId, at, JSON.stringify(entries)];
}

export function toSignal(r: SignalRow): StoredSignal {
  return {
    id: r.id,
    kind: r.kind as StoredSignal['kind'],
    payload: JSON.parse(r.payload) as Record<string, unknown>,
    receivedAt: r.received_at,
  };
}

/** Groups signal and message rows of claimed runs by run id. */
export function groupByRun<T extends { run_id: string }>(rows: readonly T[]): Map<string, T[]> {
  const out = new Map<string, T[]>();
  for (const r of rows) {
    let list = out.get(r.run_id);
    if (!list) {
      list = [];
      out.set(r.run_id, list);
    }
    list.push(r);
  }
  return out;
}

export function statusMap(rows: readonly RunMessageRow[] | undefined): Map<string, MessageStatus> {
  return new Map((rows ?? []).map((r) => [r.message_id, r.status as MessageStatus]));
}

/** Run statuses a cancel applies to. */
export const CANCELABLE_RUN_STATUSES: readonly RunStatus[] = ['running', 'waiting', 'failed'];
/** The terminal run statuses: the run's waits and inbox are dropped on reaching one. */
export const ENDED_RUN_STATUSES: readonly RunStatus[] = ['completed', 'failed', 'canceled'];
