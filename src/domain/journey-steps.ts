/**
 * Journey step semantics, as pure functions: given a run's state and what the world looks like now (the clock,
 * message statuses, signals received, the contact), `advance` decides the next thing to do — move on, wait, perform
 * an effect (send, call a webhook, update the contact), finish or fail — and `afterEffect` folds an effect's outcome
 * back into the state. The runner (src/services/journey-runner.ts) performs the effects and stores the state.
 *
 * Idempotency: every effect carries a key derived from the run, the step, the visit of that step and the channel
 * leg, so a step re-executed after a crash or a retry asks for the same message again (the messaging port dedupes
 * on it) instead of sending another. A random split hashes the same inputs, so a re-executed split takes the same
 * branch.
 */
import { DateTime } from 'luxon';
import type { Channel } from './channels.ts';
import { evaluateCondition } from './journey-conditions.ts';
import {
  DEFAULT_WEBHOOK_ATTEMPTS,
  DEFAULT_WEBHOOK_TIMEOUT_MS,
  type JourneyDefinition,
  type MessageContent,
  parseDuration,
  parseTimeOfDay,
  type SendLeg,
  type SendStep,
  type Step,
  type StepType,
  type WaitForStep,
} from './journey-definition.ts';
import {
  conditionScope,
  type Decision,
  type Effect,
  type EffectOutcome,
  type HistoryRecord,
  nextLocalTime,
  type Phase,
  type RunContext,
  type RunState,
  type SentMessage,
  type Signal,
  stableFraction,
  type World,
} from './journey-run-state.ts';
import { isTerminal, type MessageStatus, rankOf } from './message-status.ts';
import { backoffDelay } from './retry-policy.ts';

const DEFAULT_PURPOSE = 'transactional';

function stepOf(def: JourneyDefinition, id: string): Step {
  const s = def.steps[id];
  if (!s) throw new Error(`journey step '${id}' is missing from its version`);
  return s;
}

function rec(
  stepId: string | null,
  type: StepType | 'run',
  outcome: string,
  at: number,
  detail: Record<string, unknown> | null = null,
): HistoryRecord {
  return { stepId, type, outcome, at, detail };
}

/** The state entering step `to` (its visit counted). */
function moveTo(state: RunState, to: string): RunState {
  const visits = { ...state.context.visits, [to]: (state.context.visits[to] ?? 0) + 1 };
  return { stepId: to, phase: null, attempts: 0, context: { ...state.context, visits } };
}

function visitOf(state: RunState): number {
  return state.context.visits[state.stepId] ?? 1;
}

function zoneOr(zone: string | null | undefined, fallback: string): string {
  if (zone && DateTime.fromMillis(0, { zone }).isValid) return zone;
  return fallback;
}

function legsOf(step: SendStep): SendLeg[] {
  return step.fallback ?? [{ channel: step.channel as Channel }];
}

function contentOf(step: SendStep, leg: SendLeg): MessageContent {
  const pick = leg.body !== undefined || leg.template !== undefined ? leg : step;
  return {
    ...(pick.body !== undefined ? { body: pick.body } : {}),
    ...(pick.template !== undefined ? { template: pick.template } : {}),
    ...((leg.subject ?? step.subject) !== undefined ? { subject: leg.subject ?? step.subject } : {}),
  };
}

function retryOrFail(
  state: RunState,
  world: World,
  type: StepType,
  maxAttempts: number,
  error: { code: string; message: string },
): Decision {
  const attempts = state.attempts + 1;
  if (attempts < maxAttempts) {
    const delay = backoffDelay(world.retry, attempts, world.random);
    const dueAt = world.now + delay;
    return {
      kind: 'block',
      state: { ...state, attempts },
      dueAt,
      history: [rec(state.stepId, type, 'retrying', world.now, { attempt: attempts, error, retryAt: dueAt })],
    };
  }
  return {
    kind: 'fail',
    state: { ...state, attempts },
    error,
    history: [rec(state.stepId, type, 'failed', world.now, { attempts, error })],
  };
}

/** Decides what the run does next. */
export function advance(def: JourneyDefinition, state: RunState, world: World): Decision {
  const step = stepOf(def, state.stepId);
  const now = world.now;
  const id = state.stepId;
  switch (step.type) {
    case 'exit':
      return { kind: 'complete', state, history: [rec(id, 'exit', 'completed', now)] };

    case 'send':
      return advanceSend(step, state, world);

    case 'wait': {
      if (state.phase?.kind === 'wait') {
        if (now >= state.phase.until)
          return {
            kind: 'continue',
            state: moveTo(state, step.next),
            history: [rec(id, 'wait', 'completed', now, { next: step.next })],
          };
        return { kind: 'block', state, dueAt: state.phase.until, history: [] };
      }
      let until: number;
      if (step.duration !== undefined) until = now + (parseDuration(step.duration) as number);
      else {
        const [h, m] = parseTimeOfDay(step.until) as [number, number];
        const zone = zoneOr(world.contact?.timeZone, zoneOr(step.timeZone, 'UTC'));
        until = nextLocalTime(now, h, m, zone);
      }
      return {
        kind: 'block',
        state: { ...state, phase: { kind: 'wait', until } },
        dueAt: until,
        history: [rec(id, 'wait', 'waiting', now, { until: new Date(until).toISOString() })],
      };
    }

    case 'wait_for':
      return advanceWaitFor(step, state, world);

    case 'branch': {
      const scope = conditionScope(state, world);
      const i = step.branches.findIndex((b) => evaluateCondition(b.when, scope));
      const next = i >= 0 ? (step.branches[i]?.next as string) : step.otherwise;
      return {
        kind: 'continue',
        state: moveTo(state, next),
        history: [rec(id, 'branch', 'completed', now, { branch: i >= 0 ? i : 'otherwise', next })],
      };
    }

    case 'split': {
      const total = step.variants.reduce((n, v) => n + v.weight, 0);
      let point = stableFraction(`${world.runId}:${id}:${visitOf(state)}`) * total;
      let chosen = step.variants.length - 1;
      for (let i = 0; i < step.variants.length; i++) {
        point -= step.variants[i]?.weight ?? 0;
        if (point < 0) {
          chosen = i;
          break;
        }
      }
      const v = step.variants[chosen] as { name?: string; next: string };
      const name = v.name ?? String.fromCharCode(65 + chosen);
      const moved = moveTo(state, v.next);
      return {
        kind: 'continue',
        state: { ...moved, context: { ...moved.context, splits: { ...moved.context.splits, [id]: name } } },
        history: [rec(id, 'split', 'completed', now, { variant: name, next: v.next })],
      };
    }

    case 'update_contact':
      return {
        kind: 'perform',
        effect: {
          kind: 'update_contact',
          stepId: id,
          patch: {
            ...(step.set ? { set: step.set } : {}),
            ...(step.addTags ? { addTags: step.addTags } : {}),
            ...(step.removeTags ? { removeTags: step.removeTags } : {}),
          },
        },
      };

    case 'webhook': {
      const ctx = state.context;
      return {
        kind: 'perform',
        effect: {
          kind: 'webhook',
          stepId: id,
          url: step.url,
          headers: step.headers ?? {},
          body: {
            journeyId: world.journeyId,
            runId: world.runId,
            stepId: id,
            contactId: world.contactId,
            trigger: ctx.trigger,
            event: ctx.event,
            reply: ctx.reply,
            splits: ctx.splits,
            ...(step.body ?? {}),
          },
          timeoutMs: step.timeout ? (parseDuration(step.timeout) as number) : DEFAULT_WEBHOOK_TIMEOUT_MS,
          idempotencyKey: `${world.runId}:${id}:${visitOf(state)}`,
          attempt: state.attempts + 1,
        },
      };
    }
  }
}

function advanceSend(step: SendStep, state: RunState, world: World): Decision {
  const id = state.stepId;
  const now = world.now;
  const legs = legsOf(step);
  const phase =
    state.phase?.kind === 'send' ? state.phase : { kind: 'send' as const, leg: 0, messageId: null, deadline: null };
  const leg = legs[phase.leg] as SendLeg;
  if (phase.messageId === null) {
    return {
      kind: 'perform',
      effect: {
        kind: 'send',
        stepId: id,
        leg: phase.leg,
        channel: leg.channel,
        content: contentOf(step, leg),
        purpose: step.purpose ?? DEFAULT_PURPOSE,
        idempotencyKey: `journey:${world.runId}:${id}:${visitOf(state)}:${phase.leg}`,
      },
    };
  }
  // Sent; awaiting delivery until the deadline.
  const status = world.statuses.get(phase.messageId) ?? 'queued';
  if (status === 'delivered' || status === 'read') {
    return {
      kind: 'continue',
      state: moveTo(state, step.next),
      history: [rec(id, 'send', 'delivered', now, { leg: phase.leg, channel: leg.channel, next: step.next })],
    };
  }
  if (isTerminal(status) || phase.deadline === null || now >= phase.deadline) {
    const reason = isTerminal(status) ? status : 'not_delivered_in_time';
    return nextLeg(step, { ...state, phase }, world, { code: reason, message: `${leg.channel}: ${reason}` });
  }
  return { kind: 'block', state: { ...state, phase }, dueAt: phase.deadline, history: [] };
}

/** A leg failed (or was not delivered in time): the next channel, or the step's failure edge. */
function nextLeg(step: SendStep, state: RunState, world: World, error: { code: string; message: string }): Decision {
  const id = state.stepId;
  const legs = legsOf(step);
  const phase = state.phase as Extract<Phase, { kind: 'send' }>;
  const leg = legs[phase.leg] as SendLeg;
  const history = [rec(id, 'send', 'leg_failed', world.now, { leg: phase.leg, channel: leg.channel, error })];
  if (phase.leg + 1 < legs.length) {
    return {
      kind: 'continue',
      state: { ...state, attempts: 0, phase: { kind: 'send', leg: phase.leg + 1, messageId: null, deadline: null } },
      history,
    };
  }
  const to = step.onFailure ?? step.next;
  history.push(rec(id, 'send', 'failed', world.now, { next: to }));
  return { kind: 'continue', state: moveTo(state, to), history };
}

function waitForKind(step: WaitForStep): string {
  return step.event ? 'event' : step.reply ? 'reply' : 'messageStatus';
}

function advanceWaitFor(step: WaitForStep, state: RunState, world: World): Decision {
  const id = state.stepId;
  const now = world.now;
  const phase =
    state.phase?.kind === 'wait_for'
      ? state.phase
      : { kind: 'wait_for' as const, since: now, until: now + (parseDuration(step.timeout) as number) };
  const entering = state.phase?.kind !== 'wait_for';
  const matched = (ctx: RunContext, detail: Record<string, unknown>): Decision => ({
    kind: 'continue',
    state: moveTo({ ...state, context: ctx }, step.next),
    history: [rec(id, 'wait_for', 'matched', now, { ...detail, next: step.next })],
  });
  if (step.event) {
    const e = step.event;
    const hit = world.signals.find(
      (s): s is Extract<Signal, { kind: 'event' }> =>
        s.kind === 'event' &&
        s.receivedAt >= phase.since &&
        s.event.name === e.name &&
        (!e.filter || evaluateCondition(e.filter, { event: s.event })),
    );
    if (hit) return matched({ ...state.context, event: hit.event }, { event: hit.event.name });
  } else if (step.reply) {
    // A reply answers the run's last message: one that came after it counts, even before this wait began (the
    // contact may answer during a preceding wait). Without a message sent, only replies during the wait count.
    const wanted = step.reply.match?.map((m) => m.trim().toLowerCase());
    const lastSent = state.context.lastSentAt ?? null;
    const from = lastSent === null ? phase.since : Math.min(lastSent, phase.since);
    const candidates = [
      ...(state.context.reply ? [state.context.reply] : []),
      ...world.signals.flatMap((s) => (s.kind === 'reply' ? [s.reply] : [])),
    ].sort((a, b) => a.receivedAt - b.receivedAt);
    const hit = candidates.find(
      (r) => r.receivedAt >= from && (!wanted || wanted.includes(r.text.trim().toLowerCase())),
    );
    if (hit) return matched({ ...state.context, reply: hit }, { reply: hit.text });
  } else if (step.messageStatus) {
    const m = state.context.messages[step.messageStatus.step];
    const status = m?.messageId ? (world.statuses.get(m.messageId) ?? 'queued') : undefined;
    if (status !== undefined) {
      const wanted: readonly string[] = step.messageStatus.status;
      // `read` implies `delivered`, which implies `sent`: a status of higher rank satisfies a lower one.
      const reached = wanted.some(
        (w) =>
          w === status ||
          ((w === 'sent' || w === 'delivered') && !isTerminal(status) && rankOf(status) >= rankOf(w as MessageStatus)),
      );
      if (reached) return matched(state.context, { status });
      if (isTerminal(status)) {
        return {
          kind: 'continue',
          state: moveTo(state, step.onTimeout),
          history: [rec(id, 'wait_for', 'timed_out', now, { status, next: step.onTimeout })],
        };
      }
    }
  }
  if (now >= phase.until) {
    return {
      kind: 'continue',
      state: moveTo(state, step.onTimeout),
      history: [rec(id, 'wait_for', 'timed_out', now, { next: step.onTimeout })],
    };
  }
  return {
    kind: 'block',
    state: { ...state, phase },
    dueAt: phase.until,
    history: entering
      ? [rec(id, 'wait_for', 'waiting', now, { for: waitForKind(step), until: new Date(phase.until).toISOString() })]
      : [],
  };
}

/** Folds an effect's outcome into the state. */
export function afterEffect(
  def: JourneyDefinition,
  state: RunState,
  world: World,
  effect: Effect,
  outcome: EffectOutcome,
): Decision {
  const step = stepOf(def, state.stepId);
  const id = state.stepId;
  const now = world.now;
  if (effect.kind === 'send' && step.type === 'send') {
    const legs = legsOf(step);
    const leg = legs[effect.leg] as SendLeg;
    const prev = state.context.messages[id];
    const earlier = prev && state.phase?.kind === 'send' && effect.leg > 0 ? prev.legs : [];
    if (!outcome.ok) {
      if (outcome.retryable) return retryOrFail(state, world, 'send', world.retry.maxAttempts, outcome.error);
      // The channel cannot be used (no address, opted out at accept, bad template): the next one.
      const failed: SentMessage = {
        leg: effect.leg,
        channel: leg.channel,
        messageId: null,
        legs: [...earlier, { channel: leg.channel, messageId: null, error: outcome.error }],
      };
      const ctx = {
        ...state.context,
        messages: { ...state.context.messages, [id]: failed },
        lastMessageStep: id,
      };
      return nextLeg(
        step,
        { ...state, context: ctx, phase: { kind: 'send', leg: effect.leg, messageId: null, deadline: null } },
        world,
        outcome.error,
      );
    }
    const messageId = outcome.messageId as string;
    const sent: SentMessage = {
      leg: effect.leg,
      channel: leg.channel,
      messageId,
      legs: [...earlier, { channel: leg.channel, messageId }],
    };
    const addresses =
      outcome.to && !state.context.addresses.includes(outcome.to)
        ? [...state.context.addresses, outcome.to].slice(-20)
        : state.context.addresses;
    const ctx: RunContext = {
      ...state.context,
      messages: { ...state.context.messages, [id]: sent },
      lastMessageStep: id,
      lastSentAt: now,
      addresses,
    };
    const history = [rec(id, 'send', 'sent', now, { leg: effect.leg, channel: leg.channel, messageId })];
    if (leg.within === undefined) {
      history.push(rec(id, 'send', 'completed', now, { next: step.next }));
      return { kind: 'continue', state: moveTo({ ...state, context: ctx }, step.next), history };
    }
    const deadline = now + (parseDuration(leg.within) as number);
    return {
      kind: 'continue',
      state: { ...state, attempts: 0, context: ctx, phase: { kind: 'send', leg: effect.leg, messageId, deadline } },
      history,
    };
  }
  if (effect.kind === 'webhook' && step.type === 'webhook') {
    const status = outcome.httpStatus ?? null;
    if (outcome.ok) {
      const ctx = { ...state.context, webhooks: { ...state.context.webhooks, [id]: { status, ok: true } } };
      return {
        kind: 'continue',
        state: moveTo({ ...state, context: ctx }, step.next),
        history: [rec(id, 'webhook', 'completed', now, { status, attempt: effect.attempt, next: step.next })],
      };
    }
    const max = step.maxAttempts ?? DEFAULT_WEBHOOK_ATTEMPTS;
    if (outcome.retryable && state.attempts + 1 < max) return retryOrFail(state, world, 'webhook', max, outcome.error);
    const ctx = { ...state.context, webhooks: { ...state.context.webhooks, [id]: { status, ok: false } } };
    if (step.onFailure !== undefined) {
      return {
        kind: 'continue',
        state: moveTo({ ...state, context: ctx }, step.onFailure),
        history: [
          rec(id, 'webhook', 'failed', now, {
            attempts: state.attempts + 1,
            error: outcome.error,
            status,
            next: step.onFailure,
          }),
        ],
      };
    }
    return {
      kind: 'fail',
      state: { ...state, attempts: state.attempts + 1, context: ctx },
      error: outcome.error,
      history: [rec(id, 'webhook', 'failed', now, { attempts: state.attempts + 1, error: outcome.error, status })],
    };
  }
  if (effect.kind === 'update_contact' && step.type === 'update_contact') {
    if (outcome.ok)
      return {
        kind: 'continue',
        state: moveTo(state, step.next),
        history: [rec(id, 'update_contact', 'completed', now, { next: step.next })],
      };
    if (outcome.retryable) return retryOrFail(state, world, 'update_contact', world.retry.maxAttempts, outcome.error);
    return {
      kind: 'fail',
      state,
      error: outcome.error,
      history: [rec(id, 'update_contact', 'failed', now, { error: outcome.error })],
    };
  }
  throw new Error(`effect '${effect.kind}' does not belong to step '${id}' (${step.type})`);
}
