/**
 * The durable journey engine. Triggers (an event, a segment entry, an API call) start runs; signals (events,
 * replies, message statuses) reach the runs waiting for them; `runOnce` — run by a WorkerLoop — claims a batch of
 * due runs with a lease, executes each from where it stands (the step semantics of domain/journey-steps.ts decide,
 * this performs the effects) until it blocks, ends or fails, and saves them together.
 *
 * Durability: a run's state is saved only at the end of an execution, and every effect is idempotent by a key of
 * run, step, visit and leg, so a worker that dies mid-execution loses nothing: the run's lease ends, another worker
 * claims it, and the same effects are asked for again with the same keys (the message already accepted is returned,
 * not sent twice). A step whose effect fails is retried with back-off, then fails the run, which an operator may
 * retry; it resumes at that step.
 */
import { EventEmitter } from 'node:events';
import { asDomainError, ConflictError, DataError, NotFoundError } from '../domain/errors.ts';
import { evaluateCondition } from '../domain/journey-conditions.ts';
import type { JourneyDefinition } from '../domain/journey-definition.ts';
import { parseDuration } from '../domain/journey-definition.ts';
import {
  absorbSignals,
  addressKey,
  type Decision,
  eventKey,
  initialState,
  needsContact,
  type Phase,
  type RunContext,
  type RunState,
  replyKey,
  type Signal,
  type TriggerPayload,
  type World,
  wakeKeys,
} from '../domain/journey-run-state.ts';
import { advance, afterEffect } from '../domain/journey-steps.ts';
import type { MessageStatus } from '../domain/message-status.ts';
import { backoffDelay, DEFAULT_RETRY_POLICY, type RetryPolicy } from '../domain/retry-policy.ts';
import type { Clock } from '../ports/clock.ts';
import type { JourneyContact, JourneyContacts, JourneyMessaging, JourneyWebhookClient } from '../ports/journey-deps.ts';
import type {
  ClaimedRun,
  HistoryEntry,
  JourneyStore,
  NewRun,
  ReentryRule,
  RunSave,
  RunStatus,
  StartOutcome,
  StoredSignal,
  TriggerType,
} from '../ports/journey-store.ts';
import { GroupCommitter } from './group-commit.ts';
import { JourneyContent } from './journey-content.ts';
import { contactView, JourneyEffects } from './journey-effects.ts';
import { newRunId } from './journeys.ts';

export interface JourneyRunnerOptions {
  /** Runs claimed per `runOnce` (default 200). */
  batchSize?: number;
  /** How long a claimed run is held before another worker may take it (default 60 s). */
  leaseMs?: number;
  /** Back-off of failing steps (sends and contact updates; webhooks have their own attempt count). */
  retry?: RetryPolicy;
  /** Steps one execution may take before the run is failed as a runaway (default 100). */
  maxStepsPerExecution?: number;
  random?: () => number;
  /** Called for each run claimed: how late it was, and why it was due. */
  onFired?: (lagMs: number, kind: 'timer' | 'start' | 'signal') => void;
  onError?: (err: unknown) => void;
}

export interface JourneyEvent {
  name: string;
  properties: Record<string, unknown>;
  occurredAt: number;
  /** The event's id: an event delivered twice starts one run. */
  id?: string;
}

interface StoredState {
  phase: Phase | null;
  context: RunContext;
}

const DEFINITION_CACHE = 500;
/** An idle runner arms an in-process timer for the next due run when it is at most this far ahead. */
const MAX_ARM_MS = 60_000;

function toSignal(s: StoredSignal): Signal {
  const p = s.payload;
  if (s.kind === 'event') {
    return {
      id: s.id,
      kind: 'event',
      receivedAt: s.receivedAt,
      event: {
        name: String(p.name),
        properties: (p.properties ?? {}) as Record<string, unknown>,
        occurredAt: Number(p.occurredAt),
      },
    };
  }
  return {
    id: s.id,
    kind: 'reply',
    receivedAt: s.receivedAt,
    reply: {
      text: String(p.text ?? ''),
      channel: String(p.channel),
      from: String(p.from),
      at: Number(p.at),
      receivedAt: s.receivedAt,
    },
  };
}

function reentryOf(def: JourneyDefinition): ReentryRule {
  const r = def.reentry;
  return r.mode === 'cooldown'
    ? { mode: 'cooldown', cooldownMs: parseDuration(r.cooldown) as number }
    : { mode: r.mode };
}

export class JourneyRunner {
  private readonly definitions = new Map<string, JourneyDefinition>();
  private readonly dueEvents = new EventEmitter<{ due: [] }>();
  private readonly effects: JourneyEffects;
  /** Starts arriving in the same event-loop turn (concurrent events, API calls) share one transaction. */
  private readonly starts: GroupCommitter<NewRun, StartOutcome>;
  private readonly batchSize: number;
  private readonly leaseMs: number;
  private readonly retry: RetryPolicy;
  private readonly maxSteps: number;
  private timer: NodeJS.Timeout | undefined;
  private timerAt = Number.POSITIVE_INFINITY;

  constructor(
    private readonly store: JourneyStore,
    private readonly deps: {
      messaging: JourneyMessaging;
      contacts: JourneyContacts;
      webhooks: JourneyWebhookClient;
      content?: JourneyContent;
    },
    private readonly clock: Clock,
    private readonly opts: JourneyRunnerOptions = {},
  ) {
    this.effects = new JourneyEffects(
      deps.messaging,
      deps.contacts,
      deps.webhooks,
      deps.content ?? new JourneyContent(),
    );
    this.batchSize = opts.batchSize ?? 200;
    this.leaseMs = opts.leaseMs ?? 60_000;
    this.retry = opts.retry ?? DEFAULT_RETRY_POLICY;
    this.maxSteps = opts.maxStepsPerExecution ?? 100;
    this.dueEvents.setMaxListeners(100);
    this.starts = new GroupCommitter((runs) => this.store.startRuns(runs), 1000);
  }

  /** Told when runs became due now (started, signaled, retried), so a worker loop can wake. */
  onDue(listener: () => void): () => void {
    this.dueEvents.on('due', listener);
    return () => this.dueEvents.off('due', listener);
  }

  /** Tells the listeners of `onDue` (the operator commands call it after a retry). */
  notifyDue(): void {
    this.dueEvents.emit('due');
  }

  /** Clears the timer armed for the next due run. */
  close(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.timerAt = Number.POSITIVE_INFINITY;
  }

  /**
   * When idle, wakes the listeners when the next run comes due, rather than at their next poll: a timer then fires
   * within milliseconds of its due time, not up to a poll interval late.
   */
  private async armTimer(now: number): Promise<void> {
    if (this.dueEvents.listenerCount('due') === 0) return;
    const next = await this.store.nextDueAt();
    // An armed timer for an earlier moment stands, unless that moment has passed without it firing (the clock moved).
    if (next === null || next - now > MAX_ARM_MS || (this.timer && this.timerAt <= next && this.timerAt > now)) return;
    clearTimeout(this.timer);
    this.timerAt = next;
    this.timer = setTimeout(
      () => {
        this.timer = undefined;
        this.timerAt = Number.POSITIVE_INFINITY;
        this.notifyDue();
      },
      Math.max(0, next - now),
    );
    this.timer.unref();
  }

  // --- triggers and signals ------------------------------------------------------------------------------------

  /** Starts a run of an API-triggered journey. */
  async start(
    orgId: string,
    journeyId: string,
    contactId: string,
    input: { payload?: Record<string, unknown>; idempotencyKey?: string } = {},
  ): Promise<{ runId: string; duplicate: boolean }> {
    const journey = await this.store.getJourney(orgId, journeyId);
    if (!journey)
      throw new NotFoundError('journey_not_found', `journey '${journeyId}' does not exist`, { field: 'id' });
    if (journey.status !== 'active' || journey.publishedVersion === null)
      throw new ConflictError('journey_not_active', `journey '${journeyId}' is ${journey.status}; publish it first`, {
        field: 'id',
      });
    const def = await this.definition(journeyId, journey.publishedVersion);
    if (def.trigger.type !== 'api')
      throw new ConflictError(
        'journey_not_api_triggered',
        `journey '${journeyId}' starts on ${def.trigger.type === 'event' ? 'an event' : 'a segment entry'}, not by API`,
        { field: 'id' },
      );
    if (!(await this.deps.contacts.get(orgId, contactId)))
      throw new NotFoundError('contact_not_found', `contact '${contactId}' does not exist`, { field: 'contactId' });
    const run = this.newRun(
      orgId,
      journeyId,
      journey.publishedVersion,
      def,
      contactId,
      { kind: 'api', input: input.payload ?? {} },
      input.idempotencyKey ? `api:${input.idempotencyKey}` : null,
    );
    const outcome = await this.starts.submit(run);
    if (outcome?.kind === 'reentry_blocked')
      throw new ConflictError(
        'reentry_not_allowed',
        `contact '${contactId}' may not enter journey '${journeyId}' again (re-entry: ${def.reentry.mode})`,
        { field: 'contactId' },
      );
    if (outcome?.kind === 'started') this.notifyDue();
    return { runId: (outcome as { runId: string }).runId, duplicate: outcome?.kind === 'duplicate' };
  }

  /** A business event of a contact: starts the journeys it triggers and reaches the runs waiting for it. */
  async onEvent(orgId: string, contactId: string, event: JourneyEvent): Promise<{ started: number; signaled: number }> {
    const now = this.clock.now();
    const payload = { name: event.name, properties: event.properties, occurredAt: event.occurredAt };
    const signaled = await this.store.signalRuns([eventKey(contactId, event.name)], {
      kind: 'event',
      payload,
      receivedAt: now,
    });
    const trigger: TriggerPayload = { kind: 'event', ...payload };
    const runs: NewRun[] = [];
    for (const t of await this.store.findTriggered(orgId, 'event', event.name)) {
      const def = await this.definition(t.journeyId, t.version);
      if (
        def.trigger.type === 'event' &&
        def.trigger.filter &&
        !evaluateCondition(def.trigger.filter, { event: payload })
      )
        continue;
      runs.push(
        this.newRun(orgId, t.journeyId, t.version, def, contactId, trigger, event.id ? `event:${event.id}` : null),
      );
    }
    const started = await this.startAll(runs);
    if (signaled > 0 && started === 0) this.notifyDue();
    return { started, signaled };
  }

  /** A contact entered a segment: starts the journeys triggered by it. */
  async onSegmentEntered(orgId: string, contactId: string, segmentId: string): Promise<number> {
    return this.startTriggered(orgId, 'segment', segmentId, contactId, { kind: 'segment', segmentId });
  }

  /** An inbound message: a reply for the runs of its contact (or of the address, when no contact is known). */
  async onInbound(
    orgId: string,
    contactId: string | null,
    channel: string,
    from: string,
    body: string,
    at: number,
  ): Promise<number> {
    const keys = [addressKey(orgId, from), ...(contactId ? [replyKey(contactId)] : [])];
    const n = await this.store.signalRuns(keys, {
      kind: 'reply',
      payload: { text: body, channel, from, at },
      receivedAt: this.clock.now(),
    });
    if (n > 0) this.notifyDue();
    return n;
  }

  /** A message changed status (call it with each applied change; other messages are ignored). */
  async onMessageStatus(messageId: string, status: MessageStatus, at: number): Promise<number> {
    return this.onMessageStatuses([{ messageId, status }], at);
  }

  async onMessageStatuses(
    updates: readonly { messageId: string; status: MessageStatus }[],
    at: number,
  ): Promise<number> {
    const n = await this.store.recordMessageStatuses(updates, at);
    if (n > 0) this.notifyDue();
    return n;
  }

  private async startTriggered(
    orgId: string,
    type: TriggerType,
    key: string,
    contactId: string,
    trigger: TriggerPayload,
  ): Promise<number> {
    const runs: NewRun[] = [];
    for (const t of await this.store.findTriggered(orgId, type, key)) {
      const def = await this.definition(t.journeyId, t.version);
      runs.push(this.newRun(orgId, t.journeyId, t.version, def, contactId, trigger, null));
    }
    return this.startAll(runs);
  }

  private async startAll(runs: NewRun[]): Promise<number> {
    if (runs.length === 0) return 0;
    const outcomes = await Promise.all(runs.map((r) => this.starts.submit(r)));
    const started = outcomes.filter((o) => o.kind === 'started').length;
    if (started > 0) this.notifyDue();
    return started;
  }

  private newRun(
    orgId: string,
    journeyId: string,
    version: number,
    def: JourneyDefinition,
    contactId: string,
    trigger: TriggerPayload,
    dedupeKey: string | null,
  ): NewRun {
    const state = initialState(def, trigger);
    const stored: StoredState = { phase: null, context: state.context };
    return {
      id: newRunId(),
      orgId,
      journeyId,
      version,
      contactId,
      stepId: state.stepId,
      state: JSON.stringify(stored),
      keys: wakeKeys(def, state, orgId, contactId),
      dedupeKey,
      reentry: reentryOf(def),
      startedAt: this.clock.now(),
    };
  }

  /** A published version's definition (immutable, so cached). */
  private async definition(journeyId: string, version: number): Promise<JourneyDefinition> {
    const key = `${journeyId}@${version}`;
    const cached = this.definitions.get(key);
    if (cached) return cached;
    const v = await this.store.getVersion(journeyId, version);
    if (!v) throw new DataError('journey_version_missing', `journey '${journeyId}' has no version ${version}`);
    const def = JSON.parse(v.definition) as JourneyDefinition;
    if (this.definitions.size >= DEFINITION_CACHE) this.definitions.clear();
    this.definitions.set(key, def);
    return def;
  }

  // --- the worker ----------------------------------------------------------------------------------------------

  /** Claims due runs, executes them and saves them. Returns how many runs it handled. */
  async runOnce(): Promise<number> {
    const claimedAt = this.clock.now();
    const claimed = await this.store.claimDueRuns(claimedAt, this.batchSize, this.leaseMs);
    if (claimed.length === 0) {
      await this.armTimer(claimedAt);
      return 0;
    }
    const saves = await Promise.all(claimed.map((c) => this.execute(c, claimedAt)));
    const saved = await this.store.saveRuns(saves);
    await this.catchUpStatuses(claimed, saves, saved);
    return claimed.length;
  }

  /**
   * A status reported before the messages' rows were saved found nothing to update: read the statuses of the
   * messages just sent now that their rows exist (a later report finds the rows).
   */
  private async catchUpStatuses(claimed: ClaimedRun[], saves: RunSave[], saved: boolean[]): Promise<void> {
    const byOrg = new Map<string, string[]>();
    saves.forEach((s, i) => {
      if (!saved[i] || s.messages.length === 0) return;
      const org = claimed[i]?.run.orgId as string;
      const list = byOrg.get(org) ?? [];
      for (const m of s.messages) list.push(m.messageId);
      byOrg.set(org, list);
    });
    for (const [org, ids] of byOrg) {
      try {
        const statuses = await this.deps.messaging.statuses(org, ids);
        const updates = [...statuses].map(([messageId, status]) => ({ messageId, status }));
        if (updates.length > 0) await this.onMessageStatuses(updates, this.clock.now());
      } catch (err) {
        this.opts.onError?.(err);
      }
    }
  }

  private async execute(c: ClaimedRun, claimedAt: number): Promise<RunSave> {
    const run = c.run;
    const history: HistoryEntry[] = [];
    const messages: { messageId: string; stepId: string }[] = [];
    const stored = JSON.parse(run.state) as StoredState;
    this.opts.onFired?.(claimedAt - c.dueAt, firedKind(c, stored.phase));
    const signals = c.signals.map(toSignal);
    let state: RunState = absorbSignals(
      { stepId: run.stepId, phase: stored.phase, attempts: run.attempts, context: stored.context },
      signals,
    );
    let def: JourneyDefinition | undefined;
    const save = (status: RunStatus, dueAt: number | null, error: RunSave['error']): RunSave => ({
      runId: run.id,
      token: c.token,
      status,
      stepId: state.stepId,
      state: JSON.stringify({ phase: state.phase, context: state.context } satisfies StoredState),
      attempts: state.attempts,
      keys: def && (status === 'running' || status === 'waiting') ? wakeKeys(def, state, run.orgId, run.contactId) : [],
      dueAt,
      error,
      consumedSignalsUpTo: c.signals.at(-1)?.id ?? null,
      history,
      messages,
      at: this.clock.now(),
    });
    try {
      def = await this.definition(run.journeyId, run.version);
      let contact: JourneyContact | undefined;
      let contactLoaded = false;
      const world = (): World => ({
        runId: run.id,
        journeyId: run.journeyId,
        contactId: run.contactId,
        now: this.clock.now(),
        statuses: c.statuses,
        signals,
        contact: contactView(contact),
        retry: this.retry,
        ...(this.opts.random ? { random: this.opts.random } : {}),
      });
      for (let i = 0; ; i++) {
        if (i >= this.maxSteps) {
          const error = { code: 'too_many_steps', message: `the run took ${i} steps at once without waiting` };
          history.push(entry(state.stepId, 'run', 'failed', this.clock.now(), { error }));
          return save('failed', null, error);
        }
        if (!contactLoaded && needsContact(def, state)) {
          contact = await this.deps.contacts.get(run.orgId, run.contactId);
          contactLoaded = true;
        }
        let d: Decision = advance(def, state, world());
        if (d.kind === 'perform') {
          // Effects may be slow (a webhook): hand the rest to a later execution well before the lease ends.
          if (this.clock.now() - claimedAt > this.leaseMs / 2) return save('running', this.clock.now(), null);
          const effect = d.effect;
          const outcome = await this.effects.perform(effect, {
            orgId: run.orgId,
            journeyId: run.journeyId,
            runId: run.id,
            contactId: run.contactId,
            context: state.context,
            contact,
          });
          if (outcome.ok && outcome.messageId) messages.push({ messageId: outcome.messageId, stepId: effect.stepId });
          if (effect.kind === 'update_contact' && outcome.ok) contactLoaded = false;
          d = afterEffect(def, state, world(), effect, outcome);
        }
        if (d.kind === 'perform') throw new Error('an effect led to another effect without a decision');
        history.push(...d.history);
        state = d.state;
        if (d.kind === 'continue') continue;
        if (d.kind === 'block') return save('waiting', d.dueAt, null);
        if (d.kind === 'complete') return save('completed', null, null);
        return save('failed', null, d.error);
      }
    } catch (err) {
      // Something outside the steps' effects failed (the contacts service, the store): retry the run from where it
      // got to, with back-off, like a failing step.
      this.opts.onError?.(err);
      const e = asDomainError(err);
      const error = { code: e.code, message: e.message };
      const attempts = state.attempts + 1;
      state = { ...state, attempts };
      const now = this.clock.now();
      if (e.isRetryable && attempts < this.retry.maxAttempts) {
        const dueAt = now + backoffDelay(this.retry, attempts, this.opts.random);
        history.push(entry(state.stepId, 'run', 'retrying', now, { attempt: attempts, error, retryAt: dueAt }));
        return save('waiting', dueAt, null);
      }
      history.push(entry(state.stepId, 'run', 'failed', now, { attempts, error }));
      return save('failed', null, error);
    }
  }
}

function entry(
  stepId: string | null,
  type: string,
  outcome: string,
  at: number,
  detail: Record<string, unknown> | null,
): HistoryEntry {
  return { stepId, type, outcome, at, detail };
}

/** Why a claimed run was due: its timer (a wait, a time-out, a retry), its start, or a signal. */
function firedKind(c: ClaimedRun, phase: Phase | null): 'timer' | 'start' | 'signal' {
  if (c.run.status === 'running') return 'start';
  const timer =
    (phase?.kind === 'send' && phase.deadline === c.dueAt) ||
    ((phase?.kind === 'wait' || phase?.kind === 'wait_for') && phase.until === c.dueAt) ||
    (c.run.attempts > 0 && c.signals.length === 0);
  return timer ? 'timer' : 'signal';
}
