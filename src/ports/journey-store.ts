/**
 * The journey store port: journeys (a draft and immutable published versions) and their durable runs. Each method
 * is one transaction. Runs are claimed with a lease like jobs are: a run is due (`dueAt`), a worker claims a batch
 * of due runs (disjoint across workers: SKIP LOCKED on PostgreSQL), executes them and saves each under its lease
 * token; a save whose lease was lost (expired and claimed again, or the run canceled) changes nothing. A run that
 * was claimed and never saved comes due again when its lease ends, so a crash resumes it at the step it was in.
 *
 * Signals (a reply, an event) reach the runs waiting on one of their keys (`journey_waits`): they are queued in the
 * run's inbox and make the run due now. Message statuses are kept per message and wake the runs waiting on it.
 * Adapters: SQLite and PostgreSQL, behind test/contracts/journey-store-contract.ts.
 */
import type { MessageStatus } from '../domain/message-status.ts';

export type JourneyStatus = 'draft' | 'active' | 'archived';
export type RunStatus = 'running' | 'waiting' | 'completed' | 'failed' | 'canceled';
export const ACTIVE_RUN_STATUSES: readonly RunStatus[] = ['running', 'waiting'];
export type TriggerType = 'event' | 'segment' | 'api';

export interface JourneyRecord {
  id: string;
  orgId: string;
  name: string;
  status: JourneyStatus;
  /** The working definition (JSON text, validated when saved). */
  draft: string;
  publishedVersion: number | null;
  createdAt: number;
  updatedAt: number;
}

export interface JourneyVersion {
  journeyId: string;
  orgId: string;
  version: number;
  /** JSON text, immutable. */
  definition: string;
  publishedAt: number;
}

export interface JourneyFilter {
  status?: JourneyStatus;
  /** Ids lower than this (newest first). */
  before?: string;
  limit: number;
}

export interface ReentryRule {
  mode: 'never' | 'always' | 'cooldown';
  cooldownMs?: number;
}

export interface HistoryEntry {
  stepId: string | null;
  type: string;
  outcome: string;
  at: number;
  detail: Record<string, unknown> | null;
}

export interface NewRun {
  id: string;
  orgId: string;
  journeyId: string;
  version: number;
  contactId: string;
  stepId: string;
  /** JSON text of the run's state (phase and context), opaque to the store. */
  state: string;
  /** Keys whose signals wake the run. */
  keys: readonly string[];
  /** Starting twice with one key (an event id, an Idempotency-Key) starts one run. */
  dedupeKey: string | null;
  reentry: ReentryRule;
  startedAt: number;
}

export type StartOutcome =
  | { kind: 'started'; runId: string }
  | { kind: 'duplicate'; runId: string }
  | { kind: 'reentry_blocked' };

export interface RunRecord {
  id: string;
  orgId: string;
  journeyId: string;
  version: number;
  contactId: string;
  status: RunStatus;
  stepId: string;
  state: string;
  /** Failed attempts of the current step's effect. */
  attempts: number;
  keys: string[];
  dueAt: number | null;
  error: { code: string; message: string } | null;
  startedAt: number;
  updatedAt: number;
  endedAt: number | null;
}

export interface StoredSignal {
  id: number;
  kind: 'event' | 'reply';
  payload: Record<string, unknown>;
  receivedAt: number;
}

export interface ClaimedRun {
  run: RunRecord;
  /** The lease: a save must present it. */
  token: string;
  /** The due time the claim found (timer lag = claim time − this). */
  dueAt: number;
  signals: StoredSignal[];
  /** Status of every message the run sent. */
  statuses: Map<string, MessageStatus>;
}

export interface RunSave {
  runId: string;
  token: string;
  status: RunStatus;
  stepId: string;
  state: string;
  attempts: number;
  keys: readonly string[];
  /** When the run is next due (null: only a signal wakes it, or it ended). */
  dueAt: number | null;
  error: { code: string; message: string } | null;
  /** Signals up to this id were read (they are deleted); later ones make the run due again at once. */
  consumedSignalsUpTo: number | null;
  history: readonly HistoryEntry[];
  /** Messages the run sent in this execution. */
  messages: readonly { messageId: string; stepId: string }[];
  at: number;
}

export interface RunFilter {
  journeyId?: string;
  status?: RunStatus;
  contactId?: string;
  before?: string;
  limit: number;
}

export type RunCommandOutcome =
  | { kind: 'ok'; run: RunRecord }
  | { kind: 'not_found' }
  | { kind: 'conflict'; status: RunStatus };

export interface JourneyStore {
  createJourney(journey: JourneyRecord): Promise<void>;
  getJourney(orgId: string, id: string): Promise<JourneyRecord | undefined>;
  listJourneys(orgId: string, filter: JourneyFilter): Promise<JourneyRecord[]>;
  /** Replaces name and draft (and updatedAt). False when the journey does not exist. */
  updateJourney(journey: Pick<JourneyRecord, 'orgId' | 'id' | 'name' | 'draft' | 'updatedAt'>): Promise<boolean>;
  /**
   * Publishes `definition` as the next version (1, 2, ...) and makes the journey active with that version's
   * trigger. Undefined when the journey does not exist or is archived.
   */
  publishJourney(
    orgId: string,
    id: string,
    publish: { definition: string; triggerType: TriggerType; triggerKey: string | null; at: number },
  ): Promise<JourneyVersion | undefined>;
  /** Archives: no new runs (runs in flight go on). False when it does not exist. */
  archiveJourney(orgId: string, id: string, at: number): Promise<boolean>;
  getVersion(journeyId: string, version: number): Promise<JourneyVersion | undefined>;
  listVersions(orgId: string, journeyId: string): Promise<JourneyVersion[]>;
  /** Active journeys whose published trigger is `type` with `key` (an event name, a segment id). */
  findTriggered(
    orgId: string,
    type: TriggerType,
    key: string | null,
  ): Promise<{ journeyId: string; version: number }[]>;

  /**
   * Starts runs (each due at once), in order: a run whose dedupe key was used is a duplicate; one the journey's
   * re-entry rule refuses for its contact is blocked (never: once per contact; cooldown: not within `cooldownMs`
   * of the contact's last entry; always: no limit).
   */
  startRuns(runs: readonly NewRun[]): Promise<StartOutcome[]>;
  /** Leases up to `limit` runs due at `now` for `leaseMs`, earliest due first. */
  claimDueRuns(now: number, limit: number, leaseMs: number): Promise<ClaimedRun[]>;
  /** Saves executed runs; false for each whose lease was lost (nothing of it is written). */
  saveRuns(saves: readonly RunSave[]): Promise<boolean[]>;
  getRun(orgId: string, id: string): Promise<RunRecord | undefined>;
  listRuns(orgId: string, filter: RunFilter): Promise<RunRecord[]>;
  /** A run's step history, oldest first. */
  getRunHistory(runId: string): Promise<HistoryEntry[]>;
  /** Cancels a running or waiting (or failed) run; its lease, waits and signals go. */
  cancelRun(orgId: string, id: string, at: number): Promise<RunCommandOutcome>;
  /** Makes a failed run due now at the step it failed in, attempts reset. */
  retryRun(orgId: string, id: string, at: number): Promise<RunCommandOutcome>;
  /** Queues a signal for every run waiting on one of `keys` (once per run) and makes them due. Returns how many. */
  signalRuns(keys: readonly string[], signal: Omit<StoredSignal, 'id'>): Promise<number>;
  /**
   * Records message statuses (a status of lower rank than the stored one is ignored) for messages runs sent, and
   * makes the runs waiting on them due. Returns how many runs were woken.
   */
  recordMessageStatuses(updates: readonly { messageId: string; status: MessageStatus }[], at: number): Promise<number>;
  /** The earliest due time of a run not leased, or null. */
  nextDueAt(): Promise<number | null>;
}
