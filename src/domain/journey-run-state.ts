/**
 * The state of a journey run and the vocabulary of its step semantics: what a run remembers (its context: trigger,
 * messages, reply, split choices, ...), the signals that reach it, the effects a step asks for and the decisions
 * the semantics take (journey-steps.ts), and the keys on which signals wake a run. Pure.
 */
import { DateTime } from 'luxon';
import type { Channel } from './channels.ts';
import type { JourneyDefinition, MessageContent, StepType } from './journey-definition.ts';
import { isTerminal, type MessageStatus } from './message-status.ts';
import type { RetryPolicy } from './retry-policy.ts';

// --- state ------------------------------------------------------------------------------------------------------

export type TriggerPayload =
  | { kind: 'event'; name: string; properties: Record<string, unknown>; occurredAt: number }
  | { kind: 'segment'; segmentId: string }
  | { kind: 'api'; input: Record<string, unknown> };

export interface EventView {
  name: string;
  properties: Record<string, unknown>;
  occurredAt: number;
}

export interface ReplyView {
  text: string;
  channel: string;
  from: string;
  /** When the carrier says it was sent. */
  at: number;
  /** When it reached us (our clock, comparable with `lastSentAt`). */
  receivedAt: number;
}

export interface SentMessage {
  /** The leg that was sent last (or failed last). */
  leg: number;
  channel: Channel;
  messageId: string | null;
  legs: { channel: Channel; messageId: string | null; error?: { code: string; message: string } }[];
}

export interface RunContext {
  trigger: TriggerPayload;
  /** The latest event: the trigger's, or one a wait_for received. */
  event: EventView | null;
  /** The message of each send step (its latest visit). */
  messages: Record<string, SentMessage>;
  lastMessageStep: string | null;
  /** When the run last sent a message (a reply after it answers it). */
  lastSentAt?: number | null;
  reply: ReplyView | null;
  splits: Record<string, string>;
  webhooks: Record<string, { status: number | null; ok: boolean }>;
  /** Addresses messages went to: a reply from one of them belongs to this run's contact. */
  addresses: string[];
  /** How many times each step was entered (part of its idempotency keys). */
  visits: Record<string, number>;
}

/** Progress within the current step. */
export type Phase =
  /** A leg of a send step: to be sent (`messageId` null) or sent and awaiting delivery until `deadline`. */
  | { kind: 'send'; leg: number; messageId: string | null; deadline: number | null }
  | { kind: 'wait'; until: number }
  | { kind: 'wait_for'; since: number; until: number };

export interface RunState {
  stepId: string;
  phase: Phase | null;
  /** Failed attempts of the current effect. */
  attempts: number;
  context: RunContext;
}

export interface ContactView {
  id: string;
  attributes: Record<string, unknown>;
  tags: string[];
  timeZone: string | null;
}

export type Signal =
  | { id: number; kind: 'event'; receivedAt: number; event: EventView }
  | { id: number; kind: 'reply'; receivedAt: number; reply: ReplyView };

export function initialState(def: JourneyDefinition, trigger: TriggerPayload): RunState {
  return {
    stepId: def.entry,
    phase: null,
    attempts: 0,
    context: {
      trigger,
      event:
        trigger.kind === 'event'
          ? { name: trigger.name, properties: trigger.properties, occurredAt: trigger.occurredAt }
          : null,
      messages: {},
      lastMessageStep: null,
      lastSentAt: null,
      reply: null,
      splits: {},
      webhooks: {},
      addresses: [],
      visits: { [def.entry]: 1 },
    },
  };
}

// --- decisions --------------------------------------------------------------------------------------------------

export interface HistoryRecord {
  stepId: string | null;
  type: StepType | 'run';
  outcome: string;
  at: number;
  detail: Record<string, unknown> | null;
}

export type Effect =
  | {
      kind: 'send';
      stepId: string;
      leg: number;
      channel: Channel;
      content: MessageContent;
      purpose: 'transactional' | 'marketing';
      idempotencyKey: string;
    }
  | {
      kind: 'webhook';
      stepId: string;
      url: string;
      headers: Record<string, string>;
      body: Record<string, unknown>;
      timeoutMs: number;
      idempotencyKey: string;
      attempt: number;
    }
  | {
      kind: 'update_contact';
      stepId: string;
      patch: { set?: Record<string, unknown>; addTags?: string[]; removeTags?: string[] };
    };

export type EffectOutcome =
  | { ok: true; messageId?: string; to?: string | null; httpStatus?: number }
  | { ok: false; retryable: boolean; error: { code: string; message: string }; httpStatus?: number };

export type Decision =
  /** The state moved on (a new step or phase): decide again. */
  | { kind: 'continue'; state: RunState; history: HistoryRecord[] }
  /** Nothing to do until `dueAt` or a signal (a message status, a reply, an event). */
  | { kind: 'block'; state: RunState; dueAt: number; history: HistoryRecord[] }
  | { kind: 'perform'; effect: Effect }
  | { kind: 'complete'; state: RunState; history: HistoryRecord[] }
  | { kind: 'fail'; state: RunState; error: { code: string; message: string }; history: HistoryRecord[] };

export interface World {
  runId: string;
  journeyId: string;
  contactId: string;
  now: number;
  /** Current status of the run's messages. */
  statuses: ReadonlyMap<string, MessageStatus>;
  /** Signals received for the run, oldest first. */
  signals: readonly Signal[];
  /** The contact, when the runner loaded it (see `needsContact`). */
  contact: ContactView | undefined;
  retry: RetryPolicy;
  random?: () => number;
}

/** Whether deciding the current step needs the contact loaded. */
export function needsContact(def: JourneyDefinition, state: RunState): boolean {
  const s = def.steps[state.stepId];
  if (!s) return false;
  if (s.type === 'branch') return JSON.stringify(s.branches).includes('"contact');
  if (s.type === 'wait') return s.until !== undefined && state.phase === null;
  if (s.type === 'send') return true;
  return false;
}

/** The scope conditions read (see journey-conditions.ts for the roots). */
export function conditionScope(state: RunState, world: World): Record<string, unknown> {
  const ctx = state.context;
  const view = (m: SentMessage | undefined) => {
    if (!m) return undefined;
    const status = m.messageId ? (world.statuses.get(m.messageId) ?? 'queued') : 'failed';
    return {
      messageId: m.messageId,
      channel: m.channel,
      status,
      delivered: status === 'delivered' || status === 'read',
      failed: isTerminal(status),
    };
  };
  const messages: Record<string, unknown> = {};
  for (const [k, m] of Object.entries(ctx.messages)) messages[k] = view(m);
  return {
    contact: world.contact
      ? {
          id: world.contact.id,
          attributes: world.contact.attributes,
          tags: world.contact.tags,
          timeZone: world.contact.timeZone,
        }
      : { id: world.contactId },
    event: ctx.event ?? undefined,
    trigger: ctx.trigger,
    message: ctx.lastMessageStep ? view(ctx.messages[ctx.lastMessageStep]) : undefined,
    messages,
    reply: ctx.reply ?? undefined,
    splits: ctx.splits,
    webhooks: ctx.webhooks,
  };
}

/** Folds received replies into the context (the latest one is `reply`). */
export function absorbSignals(state: RunState, signals: readonly Signal[]): RunState {
  let reply = state.context.reply;
  for (const s of signals) if (s.kind === 'reply' && (!reply || s.receivedAt >= reply.receivedAt)) reply = s.reply;
  return reply === state.context.reply ? state : { ...state, context: { ...state.context, reply } };
}

/** A stable hash in [0, 1) of the inputs (FNV-1a mixed with murmur3's finalizer). */
export function stableFraction(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return (h >>> 0) / 2 ** 32;
}

/** The next moment the wall clock in `zone` shows hh:mm (today if still ahead, else tomorrow). */
export function nextLocalTime(now: number, hour: number, minute: number, zone: string): number {
  const base = DateTime.fromMillis(now, { zone });
  const at = (d: DateTime) => d.set({ hour, minute, second: 0, millisecond: 0 });
  let t = at(base);
  if (t.toMillis() <= now) t = at(base.plus({ days: 1 }));
  return t.toMillis();
}

/**
 * The keys that wake the run when a signal arrives: replies of the contact (when the journey reads replies),
 * events a wait_for of the journey names, and the message a step is waiting on now.
 */
export function wakeKeys(def: JourneyDefinition, state: RunState | null, orgId: string, contactId: string): string[] {
  const keys = new Set<string>();
  let replies = false;
  for (const s of Object.values(def.steps)) {
    if (s.type === 'wait_for' && s.event) keys.add(eventKey(contactId, s.event.name));
    if (s.type === 'wait_for' && s.reply) replies = true;
    if (s.type === 'branch' && JSON.stringify(s.branches).includes('"reply')) replies = true;
  }
  if (replies) {
    keys.add(replyKey(contactId));
    for (const a of state?.context.addresses ?? []) keys.add(addressKey(orgId, a));
  }
  if (state) {
    const step = def.steps[state.stepId];
    if (state.phase?.kind === 'send' && state.phase.messageId) keys.add(messageKey(state.phase.messageId));
    if (step?.type === 'wait_for' && step.messageStatus) {
      const m = state.context.messages[step.messageStatus.step];
      if (m?.messageId) keys.add(messageKey(m.messageId));
    }
  }
  return [...keys].sort();
}

export const eventKey = (contactId: string, name: string) => `event:${contactId}:${name}`;
export const replyKey = (contactId: string) => `reply:${contactId}`;
export const addressKey = (orgId: string, address: string) => `addr:${orgId}:${address}`;
export const messageKey = (messageId: string) => `msg:${messageId}`;
