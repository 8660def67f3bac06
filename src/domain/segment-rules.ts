/**
 * Segment rules: their grammar, their validation (with the path of the faulty part) and a pure evaluator over
 * one contact and the facts the store fetched for it (its consents, and event counts per name and window).
 *
 * A rule is one of:
 * - `{all: [rules]}`, `{any: [rules]}`, `{not: rule}`;
 * - `{attribute: "plan" | "address.city", op, value?}` on the contact's attributes (a dotted path), with `op` one
 *   of `eq`, `neq`, `in` (value: an array), `exists`, `not_exists` (no value), `gt`, `gte`, `lt`, `lte` (value: a
 *   number, an ISO-8601 date, or `{daysAgo: n}`: the moment n days before the evaluation);
 * - `{field: "language" | "timeZone" | "persona", op, value?}`: the same on the contact's own fields;
 * - `{tag: "vip"}`: has the tag;
 * - `{event: "purchase", minCount?: 1, withinDays?: n}`: performed the event at least `minCount` times (in the last
 *   `withinDays` days; ever when absent);
 * - `{consent: {channel, purpose}, status?: "opted_in" | "opted_out"}`: the contact's consent for that channel and
 *   purpose (sender not known) is that status (default `opted_in`: an explicit opt-in, not just no opt-out).
 */
import { CHANNELS, type Channel } from './channels.ts';
import { type ConsentPurpose, type ConsentRecord, effectiveConsent } from './compliance.ts';
import { ValidationError } from './errors.ts';

export type CompareOp = 'eq' | 'neq' | 'in' | 'exists' | 'not_exists' | 'gt' | 'gte' | 'lt' | 'lte';
const OPS: readonly CompareOp[] = ['eq', 'neq', 'in', 'exists', 'not_exists', 'gt', 'gte', 'lt', 'lte'];
export type ContactField = 'language' | 'timeZone' | 'persona';
const FIELDS: readonly ContactField[] = ['language', 'timeZone', 'persona'];

export type SegmentRule =
  | { all: SegmentRule[] }
  | { any: SegmentRule[] }
  | { not: SegmentRule }
  | { attribute: string; op: CompareOp; value?: unknown }
  | { field: ContactField; op: CompareOp; value?: unknown }
  | { tag: string }
  | { event: string; minCount?: number; withinDays?: number }
  | { consent: { channel: Channel; purpose: ConsentPurpose }; status?: 'opted_in' | 'opted_out' };

export const MAX_RULE_DEPTH = 8;
export const MAX_RULE_NODES = 100;
const DAY = 86_400_000;

// ---------------------------------------------------------------------------------------------------------------
// Validation

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function fail(field: string, message: string, code = 'invalid_segment_rule'): never {
  throw new ValidationError(code, `'${field}' ${message}`, { field });
}

function onlyKeys(rule: Record<string, unknown>, allowed: readonly string[], field: string): void {
  for (const k of Object.keys(rule)) {
    if (!allowed.includes(k)) fail(`${field}.${k}`, 'is not a known field of this rule', 'unknown_field');
  }
}

function checkString(v: unknown, field: string, max = 200): string {
  if (typeof v !== 'string' || v.length === 0 || v.length > max)
    fail(field, `must be a string of 1 to ${max} characters`);
  return v;
}

function checkCount(v: unknown, field: string, min: number, max: number): void {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max)
    fail(field, `must be an integer from ${min} to ${max}`);
}

/** A comparison's value as a number (numbers, ISO dates, `{daysAgo}`), or null when it is not comparable. */
function comparable(v: unknown, now: number): number | null {
  if (typeof v === 'number' && Number.isFinite(v)) return v;
  if (typeof v === 'string' && /^\d{4}-\d{2}-\d{2}/.test(v)) {
    const t = Date.parse(v);
    return Number.isNaN(t) ? null : t;
  }
  if (isObject(v) && typeof v.daysAgo === 'number' && Object.keys(v).length === 1) return now - v.daysAgo * DAY;
  return null;
}

function checkComparison(rule: Record<string, unknown>, field: string): void {
  const op = rule.op;
  if (op === undefined) fail(`${field}.op`, 'is required', 'missing_field');
  if (typeof op !== 'string' || !(OPS as readonly string[]).includes(op))
    fail(`${field}.op`, `must be one of: ${OPS.join(', ')}`, 'invalid_value');
  const has = Object.hasOwn(rule, 'value');
  if (op === 'exists' || op === 'not_exists') {
    if (has) fail(`${field}.value`, `is not used with '${op}'`, 'unknown_field');
    return;
  }
  if (!has) fail(`${field}.value`, `is required with '${op}'`, 'missing_field');
  const value = rule.value;
  if (op === 'in') {
    if (!Array.isArray(value) || value.length === 0 || value.length > 1000)
      fail(`${field}.value`, "must be an array of 1 to 1000 values with 'in'", 'invalid_value');
    return;
  }
  if (op === 'gt' || op === 'gte' || op === 'lt' || op === 'lte') {
    const daysAgo = isObject(value) ? value.daysAgo : undefined;
    if (isObject(value) && (typeof daysAgo !== 'number' || !Number.isFinite(daysAgo) || daysAgo < 0))
      fail(`${field}.value.daysAgo`, 'must be a number of days, 0 or more', 'invalid_value');
    if (comparable(value, 0) === null)
      fail(`${field}.value`, `must be a number, an ISO-8601 date or {"daysAgo": n} with '${op}'`, 'invalid_value');
  }
}

/**
 * Checks a rule tree; throws a ValidationError naming the faulty part (`rules.all[1].op`). Returns the rule,
 * typed.
 */
export function validateSegmentRule(input: unknown, field = 'rules'): SegmentRule {
  let nodes = 0;
  const walk = (rule: unknown, path: string, depth: number): void => {
    nodes++;
    if (nodes > MAX_RULE_NODES)
      fail(path, `makes the rules longer than ${MAX_RULE_NODES} conditions`, 'rules_too_large');
    if (depth > MAX_RULE_DEPTH) fail(path, `nests rules more than ${MAX_RULE_DEPTH} deep`, 'rules_too_deep');
    if (!isObject(rule)) fail(path, 'must be a rule object', 'invalid_type');
    if ('all' in rule || 'any' in rule) {
      const key = 'all' in rule ? 'all' : 'any';
      onlyKeys(rule, [key], path);
      const list = rule[key];
      if (!Array.isArray(list) || list.length === 0) fail(`${path}.${key}`, 'must be a non-empty array of rules');
      list.forEach((r, i) => {
        walk(r, `${path}.${key}[${i}]`, depth + 1);
      });
    } else if ('not' in rule) {
      onlyKeys(rule, ['not'], path);
      walk(rule.not, `${path}.not`, depth + 1);
    } else if ('attribute' in rule) {
      onlyKeys(rule, ['attribute', 'op', 'value'], path);
      const name = checkString(rule.attribute, `${path}.attribute`);
      if (name.split('.').some((p) => p.length === 0)) fail(`${path}.attribute`, 'must be a dotted path like "a.b"');
      checkComparison(rule, path);
    } else if ('field' in rule) {
      onlyKeys(rule, ['field', 'op', 'value'], path);
      if (typeof rule.field !== 'string' || !(FIELDS as readonly string[]).includes(rule.field))
        fail(`${path}.field`, `must be one of: ${FIELDS.join(', ')}`, 'invalid_value');
      checkComparison(rule, path);
    } else if ('tag' in rule) {
      onlyKeys(rule, ['tag'], path);
      checkString(rule.tag, `${path}.tag`, 64);
    } else if ('event' in rule) {
      onlyKeys(rule, ['event', 'minCount', 'withinDays'], path);
      checkString(rule.event, `${path}.event`);
      if (rule.minCount !== undefined) checkCount(rule.minCount, `${path}.minCount`, 1, 1_000_000);
      if (rule.withinDays !== undefined) checkCount(rule.withinDays, `${path}.withinDays`, 1, 3650);
    } else if ('consent' in rule) {
      onlyKeys(rule, ['consent', 'status'], path);
      const c = rule.consent;
      if (!isObject(c)) fail(`${path}.consent`, 'must be {"channel", "purpose"}', 'invalid_type');
      onlyKeys(c, ['channel', 'purpose'], `${path}.consent`);
      if (!(CHANNELS as readonly unknown[]).includes(c.channel))
        fail(`${path}.consent.channel`, `must be one of: ${CHANNELS.join(', ')}`, 'unknown_channel');
      if (c.purpose !== 'transactional' && c.purpose !== 'marketing')
        fail(`${path}.consent.purpose`, "must be 'transactional' or 'marketing'", 'invalid_value');
      if (rule.status !== undefined && rule.status !== 'opted_in' && rule.status !== 'opted_out')
        fail(`${path}.status`, "must be 'opted_in' or 'opted_out'", 'invalid_value');
    } else {
      fail(path, 'must have one of: all, any, not, attribute, field, tag, event, consent');
    }
  };
  walk(input, field, 1);
  return input as SegmentRule;
}

// ---------------------------------------------------------------------------------------------------------------
// Evaluation

export interface EventQuery {
  name: string;
  /** Count events that occurred at or after this moment (0: ever). */
  since: number;
}

export const eventQueryKey = (q: EventQuery): string => `${q.name}\u0000${q.since}`;

/** The event counts a rule needs, at `now`, so the store can fetch them for a page of contacts at once. */
export function eventQueries(rule: SegmentRule, now: number): EventQuery[] {
  const out = new Map<string, EventQuery>();
  const walk = (r: SegmentRule): void => {
    if ('all' in r) r.all.forEach(walk);
    else if ('any' in r) r.any.forEach(walk);
    else if ('not' in r) walk(r.not);
    else if ('event' in r) {
      const q = { name: r.event, since: r.withinDays === undefined ? 0 : now - r.withinDays * DAY };
      out.set(eventQueryKey(q), q);
    }
  };
  walk(rule);
  return [...out.values()];
}

export interface SegmentContact {
  attributes: Record<string, unknown>;
  tags: readonly string[];
  language: string | null;
  timeZone: string | null;
  persona: string | null;
}

export interface SegmentFacts {
  contact: SegmentContact;
  consents: readonly ConsentRecord[];
  /** Counts by `eventQueryKey` of each of `eventQueries(rule, now)`. */
  eventCounts: ReadonlyMap<string, number>;
}

function lookup(attributes: Record<string, unknown>, path: string): unknown {
  let v: unknown = attributes;
  for (const part of path.split('.')) {
    if (!isObject(v) || !Object.hasOwn(v, part)) return undefined;
    v = v[part];
  }
  return v;
}

function sameValue(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  return JSON.stringify(a) === JSON.stringify(b);
}

function compare(actual: unknown, op: CompareOp, value: unknown, now: number): boolean {
  const present = actual !== undefined && actual !== null;
  switch (op) {
    case 'exists':
      return present;
    case 'not_exists':
      return !present;
    case 'eq':
      return sameValue(actual, value);
    case 'neq':
      return !sameValue(actual, value);
    case 'in':
      return Array.isArray(value) && value.some((v) => sameValue(actual, v));
    default: {
      const want = comparable(value, now);
      // Numbers compare with numbers; dates (and `daysAgo`) with dates.
      const got = typeof value === 'number' ? (typeof actual === 'number' ? actual : null) : comparable(actual, now);
      if (want === null || got === null || (typeof value !== 'number' && typeof actual === 'number')) return false;
      if (op === 'gt') return got > want;
      if (op === 'gte') return got >= want;
      if (op === 'lt') return got < want;
      return got <= want;
    }
  }
}

/** Whether a contact, with its facts, is in a segment at `now`. */
export function matchesSegment(rule: SegmentRule, facts: SegmentFacts, now: number): boolean {
  if ('all' in rule) return rule.all.every((r) => matchesSegment(r, facts, now));
  if ('any' in rule) return rule.any.some((r) => matchesSegment(r, facts, now));
  if ('not' in rule) return !matchesSegment(rule.not, facts, now);
  if ('attribute' in rule) return compare(lookup(facts.contact.attributes, rule.attribute), rule.op, rule.value, now);
  if ('field' in rule) return compare(facts.contact[rule.field], rule.op, rule.value, now);
  if ('tag' in rule) return facts.contact.tags.includes(rule.tag);
  if ('event' in rule) {
    const q = { name: rule.event, since: rule.withinDays === undefined ? 0 : now - rule.withinDays * DAY };
    return (facts.eventCounts.get(eventQueryKey(q)) ?? 0) >= (rule.minCount ?? 1);
  }
  const consent = effectiveConsent(facts.consents, { ...rule.consent, sender: null });
  return consent.status === (rule.status ?? 'opted_in');
}
