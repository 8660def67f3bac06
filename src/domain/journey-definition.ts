/**
 * A journey definition: a JSON graph `{trigger, entry, steps: {id: step}, reentry}`, and its validation. Pure.
 *
 * Validation runs when a draft is saved and reports the first problem with a `field` pointing into the definition
 * (`steps.s3.next`): shape and types, unknown step types, bad durations, dangling edges, steps that cannot be
 * reached, steps from which no exit can be reached (every path must end), and loops that do not pass through a wait
 * (which would spin without ever yielding).
 */
import { Duration } from 'luxon';
import { CHANNELS, type Channel } from './channels.ts';
import { ValidationError } from './errors.ts';
import { CONDITION_ROOTS, type Condition, validateCondition } from './journey-conditions.ts';

export const STEP_TYPES = ['send', 'wait', 'wait_for', 'branch', 'split', 'update_contact', 'webhook', 'exit'] as const;
export type StepType = (typeof STEP_TYPES)[number];

/** A message status a `wait_for` may wait for. */
export const AWAITABLE_STATUSES = ['sent', 'delivered', 'read', 'failed', 'undelivered', 'suppressed'] as const;
export type AwaitableStatus = (typeof AWAITABLE_STATUSES)[number];

export type Trigger =
  | { type: 'event'; event: string; filter?: Condition }
  | { type: 'segment'; segmentId: string }
  | { type: 'api' };

export type Reentry = { mode: 'never' } | { mode: 'always' } | { mode: 'cooldown'; cooldown: string };

export interface MessageContent {
  body?: string;
  subject?: string;
  template?: { id: string; variables?: Record<string, unknown> };
}

/** One channel of a send step's fallback chain; `within`: how long to wait for `delivered` before the next one. */
export interface SendLeg extends MessageContent {
  channel: Channel;
  within?: string;
}

export interface SendStep extends MessageContent {
  type: 'send';
  /** One channel, or `fallback`: channels tried in order. */
  channel?: Channel;
  fallback?: SendLeg[];
  purpose?: 'transactional' | 'marketing';
  next: string;
  /** Taken when every channel failed (default: `next`). */
  onFailure?: string;
}

export interface WaitStep {
  type: 'wait';
  /** A duration (`60s`, `10m`, `1h30m`, `2d`, ISO-8601 `PT10M`), or `until` a local time of day. */
  duration?: string;
  until?: string;
  /** Used by `until` when the contact has no time zone (default UTC). */
  timeZone?: string;
  next: string;
}

export interface WaitForStep {
  type: 'wait_for';
  event?: { name: string; filter?: Condition };
  /** Any reply of the contact, or one whose text is one of `match` (case- and whitespace-insensitive). */
  reply?: { match?: string[] };
  messageStatus?: { step: string; status: AwaitableStatus[] };
  timeout: string;
  next: string;
  /** Taken on time-out (or when the awaited message status can no longer happen). */
  onTimeout: string;
}

export interface BranchStep {
  type: 'branch';
  branches: { when: Condition; next: string }[];
  otherwise: string;
}

export interface SplitStep {
  type: 'split';
  variants: { name?: string; weight: number; next: string }[];
}

export interface UpdateContactStep {
  type: 'update_contact';
  /** Attributes to set (null removes one). */
  set?: Record<string, unknown>;
  addTags?: string[];
  removeTags?: string[];
  next: string;
}

export interface WebhookStep {
  type: 'webhook';
  url: string;
  headers?: Record<string, string>;
  /** Extra JSON merged into the posted body. */
  body?: Record<string, unknown>;
  /** Per attempt (default 10s, at most 30s). */
  timeout?: string;
  /** Attempts in all (default 5, at most 10). */
  maxAttempts?: number;
  next: string;
  onFailure?: string;
}

export interface ExitStep {
  type: 'exit';
}

export type Step =
  | SendStep
  | WaitStep
  | WaitForStep
  | BranchStep
  | SplitStep
  | UpdateContactStep
  | WebhookStep
  | ExitStep;

export interface JourneyDefinition {
  trigger: Trigger;
  entry: string;
  steps: Record<string, Step>;
  reentry: Reentry;
}

export const MAX_STEPS = 200;
export const MAX_DURATION_MS = 366 * 24 * 3_600_000;
export const DEFAULT_WEBHOOK_TIMEOUT_MS = 10_000;
export const MAX_WEBHOOK_TIMEOUT_MS = 30_000;
export const DEFAULT_WEBHOOK_ATTEMPTS = 5;

const STEP_ID = /^[A-Za-z0-9_-]{1,64}$/;
const COMPACT_DURATION = /^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m(?!s))?(?:(\d+)s)?(?:(\d+)ms)?$/;
const TIME_OF_DAY = /^([01]\d|2[0-3]):([0-5]\d)$/;
const EVENT_NAME = /^[\w.:/-]{1,128}$/;

/**
 * Milliseconds of a duration (`90s`, `10m`, `1h30m`, `2d`, `500ms`, or ISO-8601 `PT10M`); undefined when it is not
 * one, or not within (0, 366 days].
 */
export function parseDuration(text: unknown): number | undefined {
  if (typeof text !== 'string' || text.length === 0 || text.length > 40) return undefined;
  let ms: number;
  const m = COMPACT_DURATION.exec(text);
  if (m?.slice(1).some((x) => x !== undefined)) {
    const [d, h, min, s, milli] = m.slice(1).map((x) => Number(x ?? 0)) as [number, number, number, number, number];
    ms = (((d * 24 + h) * 60 + min) * 60 + s) * 1000 + milli;
  } else if (text.startsWith('P')) {
    const iso = Duration.fromISO(text);
    if (!iso.isValid) return undefined;
    // Months and years have no fixed length; journeys count in days.
    if (iso.years || iso.months) return undefined;
    ms = iso.as('milliseconds');
  } else return undefined;
  return Number.isFinite(ms) && ms > 0 && ms <= MAX_DURATION_MS ? ms : undefined;
}

/** The time of day `HH:MM` as [hour, minute]; undefined when malformed. */
export function parseTimeOfDay(text: unknown): [number, number] | undefined {
  if (typeof text !== 'string') return undefined;
  const m = TIME_OF_DAY.exec(text);
  return m ? [Number(m[1]), Number(m[2])] : undefined;
}

/** The steps a step leads to, with the field of each edge (for errors). */
export function edgesOf(id: string, step: Step): { field: string; to: string }[] {
  const f = (name: string) => `steps.${id}.${name}`;
  switch (step.type) {
    case 'send':
    case 'webhook':
      return [
        { field: f('next'), to: step.next },
        ...(step.onFailure !== undefined ? [{ field: f('onFailure'), to: step.onFailure }] : []),
      ];
    case 'wait':
    case 'update_contact':
      return [{ field: f('next'), to: step.next }];
    case 'wait_for':
      return [
        { field: f('next'), to: step.next },
        { field: f('onTimeout'), to: step.onTimeout },
      ];
    case 'branch':
      return [
        ...step.branches.map((b, i) => ({ field: f(`branches[${i}].next`), to: b.next })),
        { field: f('otherwise'), to: step.otherwise },
      ];
    case 'split':
      return step.variants.map((v, i) => ({ field: f(`variants[${i}].next`), to: v.next }));
    case 'exit':
      return [];
  }
}

/** Steps that hold a run until time passes (the only ones a loop may go round through). */
export function isWaitingStep(step: Step): boolean {
  return step.type === 'wait' || step.type === 'wait_for';
}

// --- validation -------------------------------------------------------------------------------------------------

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function fail(code: string, field: string, message: string): never {
  throw new ValidationError(code, `'${field}' ${message}`, { field });
}

function only(obj: Record<string, unknown>, field: string, allowed: readonly string[]): void {
  for (const k of Object.keys(obj)) {
    if (!allowed.includes(k)) fail('unknown_field', `${field}.${k}`, 'is not a known field');
  }
}

function requireString(obj: Record<string, unknown>, key: string, field: string, max = 1000): string {
  const v = obj[key];
  if (v === undefined) fail('missing_field', `${field}.${key}`, 'is required');
  if (typeof v !== 'string') fail('invalid_type', `${field}.${key}`, 'must be a string');
  if (v.length === 0 || v.length > max) fail('invalid_value', `${field}.${key}`, `must be 1 to ${max} characters`);
  return v;
}

function optionalString(obj: Record<string, unknown>, key: string, field: string, max = 1000): void {
  if (obj[key] !== undefined) requireString(obj, key, field, max);
}

function requireDuration(obj: Record<string, unknown>, key: string, field: string): void {
  const v = obj[key];
  if (v === undefined) fail('missing_field', `${field}.${key}`, 'is required');
  if (parseDuration(v) === undefined)
    fail(
      'invalid_duration',
      `${field}.${key}`,
      'must be a duration such as "30s", "10m", "1h30m", "2d" or "PT10M", more than 0 and at most 366 days',
    );
}

function validTimeZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

interface Context {
  ids: ReadonlySet<string>;
  sendSteps: ReadonlySet<string>;
  splitSteps: ReadonlySet<string>;
  webhookSteps: ReadonlySet<string>;
}

function validateContent(obj: Record<string, unknown>, field: string, required: boolean): void {
  optionalString(obj, 'body', field, 200_000);
  optionalString(obj, 'subject', field, 998);
  if (obj.template !== undefined) {
    const t = obj.template;
    if (!isObject(t)) fail('invalid_type', `${field}.template`, 'must be an object: {id, variables?}');
    only(t, `${field}.template`, ['id', 'variables']);
    requireString(t, 'id', `${field}.template`, 64);
    if (t.variables !== undefined && !isObject(t.variables))
      fail('invalid_type', `${field}.template.variables`, 'must be an object');
  }
  if (obj.body !== undefined && obj.template !== undefined)
    fail('conflicting_content', field, "has both 'body' and 'template'; give one");
  if (required && obj.body === undefined && obj.template === undefined)
    fail('missing_content', field, "needs 'body' or 'template'");
}

function validateChannel(v: unknown, field: string): void {
  if (v === undefined) fail('missing_field', field, 'is required');
  if (typeof v !== 'string' || !(CHANNELS as readonly string[]).includes(v))
    fail('unknown_channel', field, `must be one of: ${CHANNELS.join(', ')}`);
}

function validateSend(s: Record<string, unknown>, field: string): void {
  only(s, field, ['type', 'channel', 'fallback', 'body', 'subject', 'template', 'purpose', 'next', 'onFailure']);
  if (s.channel !== undefined && s.fallback !== undefined)
    fail('conflicting_channels', field, "has both 'channel' and 'fallback'; give one");
  if (s.purpose !== undefined && s.purpose !== 'transactional' && s.purpose !== 'marketing')
    fail('invalid_value', `${field}.purpose`, "must be 'transactional' or 'marketing'");
  if (s.fallback === undefined) {
    validateChannel(s.channel, `${field}.channel`);
    validateContent(s, field, true);
    return;
  }
  validateContent(s, field, false);
  const legs = s.fallback;
  if (!Array.isArray(legs) || legs.length === 0 || legs.length > 10)
    fail('invalid_value', `${field}.fallback`, 'must be an array of 1 to 10 channels');
  legs.forEach((leg, i) => {
    const lf = `${field}.fallback[${i}]`;
    if (!isObject(leg)) fail('invalid_type', lf, 'must be an object: {channel, within?, body?, template?}');
    only(leg, lf, ['channel', 'within', 'body', 'subject', 'template']);
    validateChannel(leg.channel, `${lf}.channel`);
    validateContent(leg, lf, s.body === undefined && s.template === undefined);
    if (leg.within !== undefined) requireDuration(leg, 'within', lf);
    else if (i < legs.length - 1)
      fail(
        'missing_field',
        `${lf}.within`,
        'is required on every channel but the last (how long to wait for delivery)',
      );
  });
}

function validateWait(s: Record<string, unknown>, field: string): void {
  only(s, field, ['type', 'duration', 'until', 'timeZone', 'next']);
  if ((s.duration === undefined) === (s.until === undefined))
    fail('invalid_wait', field, "needs exactly one of 'duration' and 'until'");
  if (s.duration !== undefined) {
    requireDuration(s, 'duration', field);
    if (s.timeZone !== undefined) fail('invalid_value', `${field}.timeZone`, "applies to 'until' only");
    return;
  }
  if (parseTimeOfDay(s.until) === undefined) fail('invalid_time', `${field}.until`, 'must be a time of day HH:MM');
  if (s.timeZone !== undefined && (typeof s.timeZone !== 'string' || !validTimeZone(s.timeZone)))
    fail('invalid_time_zone', `${field}.timeZone`, 'must be an IANA time zone such as "Europe/Paris"');
}

function validateWaitFor(s: Record<string, unknown>, field: string, ctx: Context): void {
  only(s, field, ['type', 'event', 'reply', 'messageStatus', 'timeout', 'next', 'onTimeout']);
  const kinds = ['event', 'reply', 'messageStatus'].filter((k) => s[k] !== undefined);
  if (kinds.length !== 1) fail('invalid_wait', field, "needs exactly one of 'event', 'reply' and 'messageStatus'");
  requireDuration(s, 'timeout', field);
  if (s.event !== undefined) {
    const e = s.event;
    const ef = `${field}.event`;
    if (!isObject(e)) fail('invalid_type', ef, 'must be an object: {name, filter?}');
    only(e, ef, ['name', 'filter']);
    const name = requireString(e, 'name', ef, 128);
    if (!EVENT_NAME.test(name)) fail('invalid_value', `${ef}.name`, 'must be letters, digits and . _ : / -');
    if (e.filter !== undefined) validateCondition(e.filter, `${ef}.filter`, { roots: ['event'] });
  } else if (s.reply !== undefined) {
    const r = s.reply;
    const rf = `${field}.reply`;
    if (!isObject(r)) fail('invalid_type', rf, 'must be an object: {match?}');
    only(r, rf, ['match']);
    if (r.match !== undefined) {
      const m = r.match;
      if (!Array.isArray(m) || m.length === 0 || m.length > 50)
        fail('invalid_value', `${rf}.match`, 'must be an array of 1 to 50 strings');
      m.forEach((x, i) => {
        if (typeof x !== 'string' || x.trim().length === 0 || x.length > 1000)
          fail('invalid_value', `${rf}.match[${i}]`, 'must be a non-empty string');
      });
    }
  } else {
    const ms = s.messageStatus;
    const mf = `${field}.messageStatus`;
    if (!isObject(ms)) fail('invalid_type', mf, 'must be an object: {step, status}');
    only(ms, mf, ['step', 'status']);
    const step = requireString(ms, 'step', mf, 64);
    if (!ctx.sendSteps.has(step)) fail('invalid_reference', `${mf}.step`, `names no send step ('${step}')`);
    const st = ms.status;
    if (!Array.isArray(st) || st.length === 0) fail('invalid_value', `${mf}.status`, 'must be a non-empty array');
    st.forEach((x, i) => {
      if (!(AWAITABLE_STATUSES as readonly unknown[]).includes(x))
        fail('invalid_status', `${mf}.status[${i}]`, `must be one of: ${AWAITABLE_STATUSES.join(', ')}`);
    });
  }
}

function validateBranch(s: Record<string, unknown>, field: string, ctx: Context): void {
  only(s, field, ['type', 'branches', 'otherwise']);
  const b = s.branches;
  if (!Array.isArray(b) || b.length === 0 || b.length > 50)
    fail('invalid_value', `${field}.branches`, 'must be an array of 1 to 50 {when, next}');
  b.forEach((x, i) => {
    const bf = `${field}.branches[${i}]`;
    if (!isObject(x)) fail('invalid_type', bf, 'must be an object: {when, next}');
    only(x, bf, ['when', 'next']);
    if (x.when === undefined) fail('missing_field', `${bf}.when`, 'is required');
    validateCondition(x.when, `${bf}.when`, {
      roots: CONDITION_ROOTS,
      sendSteps: ctx.sendSteps,
      splitSteps: ctx.splitSteps,
      webhookSteps: ctx.webhookSteps,
    });
  });
}

function validateSplit(s: Record<string, unknown>, field: string): void {
  only(s, field, ['type', 'variants']);
  const v = s.variants;
  if (!Array.isArray(v) || v.length < 2 || v.length > 20)
    fail('invalid_value', `${field}.variants`, 'must be an array of 2 to 20 {weight, next, name?}');
  v.forEach((x, i) => {
    const vf = `${field}.variants[${i}]`;
    if (!isObject(x)) fail('invalid_type', vf, 'must be an object: {weight, next, name?}');
    only(x, vf, ['name', 'weight', 'next']);
    optionalString(x, 'name', vf, 64);
    if (typeof x.weight !== 'number' || !Number.isInteger(x.weight) || x.weight < 1 || x.weight > 10_000)
      fail('invalid_weight', `${vf}.weight`, 'must be an integer from 1 to 10000');
  });
}

function validateUpdateContact(s: Record<string, unknown>, field: string): void {
  only(s, field, ['type', 'set', 'addTags', 'removeTags', 'next']);
  if (s.set === undefined && s.addTags === undefined && s.removeTags === undefined)
    fail('missing_field', `${field}.set`, "is required (or 'addTags' / 'removeTags')");
  if (s.set !== undefined && (!isObject(s.set) || Object.keys(s.set).length === 0))
    fail('invalid_type', `${field}.set`, 'must be an object of attributes');
  for (const k of ['addTags', 'removeTags']) {
    const t = s[k];
    if (t === undefined) continue;
    if (!Array.isArray(t) || t.length === 0 || t.length > 100)
      fail('invalid_value', `${field}.${k}`, 'must be an array of 1 to 100 tags');
    t.forEach((x, i) => {
      if (typeof x !== 'string' || x.length === 0 || x.length > 100)
        fail('invalid_value', `${field}.${k}[${i}]`, 'must be a tag of 1 to 100 characters');
    });
  }
}

function validateWebhook(s: Record<string, unknown>, field: string): void {
  only(s, field, ['type', 'url', 'headers', 'body', 'timeout', 'maxAttempts', 'next', 'onFailure']);
  const url = requireString(s, 'url', field, 2048);
  let parsed: URL | undefined;
  try {
    parsed = new URL(url);
  } catch {
    parsed = undefined;
  }
  if (!parsed || (parsed.protocol !== 'https:' && parsed.protocol !== 'http:'))
    fail('invalid_url', `${field}.url`, 'must be an http(s) URL');
  if (s.headers !== undefined) {
    if (!isObject(s.headers)) fail('invalid_type', `${field}.headers`, 'must be an object of strings');
    for (const [k, v] of Object.entries(s.headers)) {
      if (!/^[A-Za-z0-9-]{1,100}$/.test(k) || typeof v !== 'string' || v.length > 4000 || /[\r\n]/.test(v))
        fail('invalid_value', `${field}.headers.${k}`, 'must be a header name with a one-line string value');
    }
  }
  if (s.body !== undefined && !isObject(s.body)) fail('invalid_type', `${field}.body`, 'must be an object');
  if (s.timeout !== undefined) {
    requireDuration(s, 'timeout', field);
    if ((parseDuration(s.timeout) as number) > MAX_WEBHOOK_TIMEOUT_MS)
      fail('invalid_duration', `${field}.timeout`, 'must be at most 30s');
  }
  if (
    s.maxAttempts !== undefined &&
    (typeof s.maxAttempts !== 'number' || !Number.isInteger(s.maxAttempts) || s.maxAttempts < 1 || s.maxAttempts > 10)
  )
    fail('invalid_value', `${field}.maxAttempts`, 'must be an integer from 1 to 10');
}

function validateTrigger(t: unknown): void {
  if (t === undefined) fail('missing_field', 'trigger', 'is required');
  if (!isObject(t)) fail('invalid_type', 'trigger', 'must be an object: {type, ...}');
  switch (t.type) {
    case 'event': {
      only(t, 'trigger', ['type', 'event', 'filter']);
      const name = requireString(t, 'event', 'trigger', 128);
      if (!EVENT_NAME.test(name)) fail('invalid_value', 'trigger.event', 'must be letters, digits and . _ : / -');
      if (t.filter !== undefined) validateCondition(t.filter, 'trigger.filter', { roots: ['event'] });
      return;
    }
    case 'segment':
      only(t, 'trigger', ['type', 'segmentId']);
      requireString(t, 'segmentId', 'trigger', 64);
      return;
    case 'api':
      only(t, 'trigger', ['type']);
      return;
    case undefined:
      fail('missing_field', 'trigger.type', 'is required');
      break;
    default:
      fail('unknown_trigger_type', 'trigger.type', "must be 'event', 'segment' or 'api'");
  }
}

function validateReentry(r: unknown): void {
  if (r === undefined) fail('missing_field', 'reentry', 'is required');
  if (!isObject(r)) fail('invalid_type', 'reentry', "must be an object: {mode: 'never' | 'always' | 'cooldown'}");
  if (r.mode === 'cooldown') {
    only(r, 'reentry', ['mode', 'cooldown']);
    requireDuration(r, 'cooldown', 'reentry');
    return;
  }
  only(r, 'reentry', ['mode']);
  if (r.mode !== 'never' && r.mode !== 'always')
    fail('invalid_reentry', 'reentry.mode', "must be 'never', 'always' or 'cooldown'");
}

/** Checks a definition; returns it typed, or throws the first problem as a ValidationError. */
export function validateDefinition(value: unknown): JourneyDefinition {
  if (!isObject(value)) fail('invalid_type', 'definition', 'must be an object: {trigger, entry, steps, reentry}');
  only(value, 'definition', ['trigger', 'entry', 'steps', 'reentry']);
  validateTrigger(value.trigger);
  validateReentry(value.reentry);
  if (value.entry === undefined) fail('missing_field', 'entry', 'is required');
  if (typeof value.entry !== 'string') fail('invalid_type', 'entry', 'must be a step id');
  const steps = value.steps;
  if (steps === undefined) fail('missing_field', 'steps', 'is required');
  if (!isObject(steps)) fail('invalid_type', 'steps', 'must be an object of steps by id');
  const ids = Object.keys(steps);
  if (ids.length === 0) fail('invalid_value', 'steps', 'needs at least one step');
  if (ids.length > MAX_STEPS) fail('too_many_steps', 'steps', `may hold at most ${MAX_STEPS} steps`);
  const typeOf = new Map<string, unknown>();
  for (const id of ids) {
    if (!STEP_ID.test(id)) fail('invalid_step_id', `steps.${id}`, 'must be 1 to 64 letters, digits, _ or -');
    const s = steps[id];
    if (!isObject(s)) fail('invalid_type', `steps.${id}`, 'must be an object: {type, ...}');
    if (s.type === undefined) fail('missing_field', `steps.${id}.type`, 'is required');
    if (!(STEP_TYPES as readonly unknown[]).includes(s.type))
      fail('unknown_step_type', `steps.${id}.type`, `must be one of: ${STEP_TYPES.join(', ')}`);
    typeOf.set(id, s.type);
  }
  const ofType = (t: StepType) => new Set(ids.filter((id) => typeOf.get(id) === t));
  const ctx: Context = {
    ids: new Set(ids),
    sendSteps: ofType('send'),
    splitSteps: ofType('split'),
    webhookSteps: ofType('webhook'),
  };
  for (const id of ids) {
    const s = steps[id] as Record<string, unknown>;
    const field = `steps.${id}`;
    // Edges first: their presence and type, so the graph checks below see well-formed steps.
    const edgeKeys: Record<StepType, string[]> = {
      send: ['next'],
      wait: ['next'],
      wait_for: ['next', 'onTimeout'],
      branch: ['otherwise'],
      split: [],
      update_contact: ['next'],
      webhook: ['next'],
      exit: [],
    };
    switch (s.type as StepType) {
      case 'send':
        validateSend(s, field);
        break;
      case 'wait':
        validateWait(s, field);
        break;
      case 'wait_for':
        validateWaitFor(s, field, ctx);
        break;
      case 'branch':
        validateBranch(s, field, ctx);
        break;
      case 'split':
        validateSplit(s, field);
        break;
      case 'update_contact':
        validateUpdateContact(s, field);
        break;
      case 'webhook':
        validateWebhook(s, field);
        break;
      case 'exit':
        only(s, field, ['type']);
        break;
    }
    for (const k of edgeKeys[s.type as StepType]) requireString(s, k, field, 64);
    for (const k of ['onFailure']) if (s[k] !== undefined) requireString(s, k, field, 64);
    if (s.type === 'branch') {
      (s.branches as Record<string, unknown>[]).forEach((b, i) => {
        requireString(b, 'next', `${field}.branches[${i}]`, 64);
      });
    }
    if (s.type === 'split') {
      (s.variants as Record<string, unknown>[]).forEach((v, i) => {
        requireString(v, 'next', `${field}.variants[${i}]`, 64);
      });
    }
  }
  const def = value as unknown as JourneyDefinition;
  validateGraph(def);
  return def;
}

/** Dangling edges, reachability, a way out from every step, and no loop that skips every wait. */
function validateGraph(def: JourneyDefinition): void {
  const ids = Object.keys(def.steps);
  const entry = def.entry;
  if (!Object.hasOwn(def.steps, entry)) fail('dangling_edge', 'entry', `names no step ('${entry}')`);
  const out = new Map<string, string[]>();
  for (const id of ids) {
    const edges = edgesOf(id, def.steps[id] as Step);
    for (const e of edges) {
      if (!Object.hasOwn(def.steps, e.to)) fail('dangling_edge', e.field, `names no step ('${e.to}')`);
    }
    out.set(
      id,
      edges.map((e) => e.to),
    );
  }
  // Reachable from the entry.
  const reachable = new Set<string>([entry]);
  const queue = [entry];
  while (queue.length > 0) {
    const id = queue.shift() as string;
    for (const to of out.get(id) ?? []) {
      if (!reachable.has(to)) {
        reachable.add(to);
        queue.push(to);
      }
    }
  }
  for (const id of ids) {
    if (!reachable.has(id)) fail('unreachable_step', `steps.${id}`, `cannot be reached from the entry ('${entry}')`);
  }
  // Every step must have a way to an exit.
  const into = new Map<string, string[]>(ids.map((id) => [id, []]));
  for (const [from, tos] of out) for (const to of tos) into.get(to)?.push(from);
  const ends = new Set(ids.filter((id) => def.steps[id]?.type === 'exit'));
  const back = [...ends];
  while (back.length > 0) {
    const id = back.shift() as string;
    for (const from of into.get(id) ?? []) {
      if (!ends.has(from)) {
        ends.add(from);
        back.push(from);
      }
    }
  }
  for (const id of ids) {
    if (!ends.has(id)) fail('no_path_to_exit', `steps.${id}`, 'has no path to an exit step (every path must end)');
  }
  // A cycle among steps that never wait would run forever within one moment.
  const color = new Map<string, 0 | 1 | 2>();
  const busy = (id: string) => !isWaitingStep(def.steps[id] as Step);
  const visit = (id: string): string | undefined => {
    color.set(id, 1);
    for (const to of out.get(id) ?? []) {
      if (!busy(to)) continue;
      const c = color.get(to) ?? 0;
      if (c === 1) return to;
      if (c === 0) {
        const found = visit(to);
        if (found) return found;
      }
    }
    color.set(id, 2);
    return undefined;
  };
  for (const id of ids) {
    if (!busy(id) || (color.get(id) ?? 0) !== 0) continue;
    const loop = visit(id);
    if (loop) fail('loop_without_wait', `steps.${loop}`, 'is on a loop that passes through no wait or wait_for step');
  }
}
