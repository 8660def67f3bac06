/**
 * The condition format of journeys (branch steps and event-trigger filters): a small JSON expression tree, checked
 * when a journey is saved and evaluated against a run's view of the world. Pure.
 *
 *   { "path": "contact.attributes.plan", "op": "eq", "value": "gold" }
 *   { "all": [ ... ] } | { "any": [ ... ] } | { "not": { ... } }
 *
 * Paths start at a root: `contact` (id, attributes, tags, timeZone), `event` (the latest event: name, properties),
 * `trigger` (what started the run), `message` (the last message sent: status, channel, delivered), `messages.<step>`
 * (the message of a send step), `reply` (text, channel), `splits.<step>` (the variant a split chose),
 * `webhooks.<step>` (status of a webhook call). JSON rather than a string grammar: an editor builds it without a
 * parser, and an error points at the exact node (`steps.b1.branches[0].when.all[1].op`).
 */
import { ValidationError } from './errors.ts';

export const CONDITION_OPS = [
  'eq',
  'ne',
  'gt',
  'gte',
  'lt',
  'lte',
  'in',
  'not_in',
  'contains',
  'starts_with',
  'exists',
  'not_exists',
] as const;
export type ConditionOp = (typeof CONDITION_OPS)[number];

export type Condition =
  | { all: Condition[] }
  | { any: Condition[] }
  | { not: Condition }
  | { path: string; op: ConditionOp; value?: unknown; ignoreCase?: boolean };

export const CONDITION_ROOTS = ['contact', 'event', 'trigger', 'message', 'messages', 'reply', 'splits', 'webhooks'];

const MAX_DEPTH = 8;
const MAX_ITEMS = 50;
const PATH = /^[A-Za-z_][A-Za-z0-9_-]*(\.[A-Za-z0-9_$-]+){0,15}$/;

export interface ConditionRules {
  /** Roots a path may start with (a trigger filter sees only `event`). */
  roots: readonly string[];
  /** Ids of send steps, which `messages.<step>` may name (undefined: not checked). */
  sendSteps?: ReadonlySet<string>;
  /** Ids of split steps, for `splits.<step>`. */
  splitSteps?: ReadonlySet<string>;
  /** Ids of webhook steps, for `webhooks.<step>`. */
  webhookSteps?: ReadonlySet<string>;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function invalid(field: string, message: string, code = 'invalid_condition'): ValidationError {
  return new ValidationError(code, `'${field}': ${message}`, { field });
}

/** Checks a condition; throws a ValidationError whose field points at the faulty node (under `field`). */
export function validateCondition(value: unknown, field: string, rules: ConditionRules, depth = 1): Condition {
  if (!isObject(value)) throw invalid(field, 'must be an object: {path, op, value}, {all}, {any} or {not}');
  if (depth > MAX_DEPTH) throw invalid(field, `conditions may nest at most ${MAX_DEPTH} deep`);
  const keys = Object.keys(value);
  for (const combinator of ['all', 'any'] as const) {
    if (combinator in value) {
      if (keys.length !== 1) throw invalid(field, `'${combinator}' stands alone in its object`);
      const items = value[combinator];
      if (!Array.isArray(items) || items.length === 0 || items.length > MAX_ITEMS)
        throw invalid(`${field}.${combinator}`, `must be an array of 1 to ${MAX_ITEMS} conditions`);
      items.forEach((c, i) => {
        validateCondition(c, `${field}.${combinator}[${i}]`, rules, depth + 1);
      });
      return value as Condition;
    }
  }
  if ('not' in value) {
    if (keys.length !== 1) throw invalid(field, "'not' stands alone in its object");
    validateCondition(value.not, `${field}.not`, rules, depth + 1);
    return value as Condition;
  }
  for (const k of keys) {
    if (!['path', 'op', 'value', 'ignoreCase'].includes(k))
      throw new ValidationError('unknown_field', `'${field}.${k}' is not a known field`, { field: `${field}.${k}` });
  }
  if (typeof value.path !== 'string' || !PATH.test(value.path))
    throw invalid(`${field}.path`, 'must be a dotted path such as "contact.attributes.plan"');
  checkPath(value.path, `${field}.path`, rules);
  if (typeof value.op !== 'string' || !(CONDITION_OPS as readonly string[]).includes(value.op))
    throw invalid(`${field}.op`, `must be one of: ${CONDITION_OPS.join(', ')}`);
  const op = value.op as ConditionOp;
  if (value.ignoreCase !== undefined && typeof value.ignoreCase !== 'boolean')
    throw invalid(`${field}.ignoreCase`, 'must be a boolean');
  const v = value.value;
  if (op === 'exists' || op === 'not_exists') {
    if (v !== undefined) throw invalid(`${field}.value`, `'${op}' takes no value`);
  } else if (op === 'in' || op === 'not_in') {
    if (!Array.isArray(v) || v.length === 0 || v.length > 500 || !v.every(isScalar))
      throw invalid(`${field}.value`, `'${op}' needs an array of 1 to 500 strings, numbers or booleans`);
  } else if (op === 'gt' || op === 'gte' || op === 'lt' || op === 'lte') {
    if (typeof v !== 'number' && typeof v !== 'string')
      throw invalid(`${field}.value`, `'${op}' needs a number or string`);
  } else if (op === 'contains' || op === 'starts_with') {
    if (typeof v !== 'string' && !(op === 'contains' && isScalar(v)))
      throw invalid(`${field}.value`, `'${op}' needs a string`);
  } else if (v === undefined || !isScalar(v)) {
    if (v !== null) throw invalid(`${field}.value`, `'${op}' needs a string, number, boolean or null`);
  }
  return value as Condition;
}

function isScalar(v: unknown): boolean {
  return typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean';
}

function checkPath(path: string, field: string, rules: ConditionRules): void {
  const [root, second] = path.split('.');
  if (!root || !rules.roots.includes(root)) throw invalid(field, `must start with one of: ${rules.roots.join(', ')}`);
  const refs: Record<string, ReadonlySet<string> | undefined> = {
    messages: rules.sendSteps,
    splits: rules.splitSteps,
    webhooks: rules.webhookSteps,
  };
  if (root in refs) {
    if (second === undefined) throw invalid(field, `'${root}' needs a step id: ${root}.<step>`);
    const known = refs[root];
    if (known && !known.has(second))
      throw new ValidationError('invalid_reference', `'${field}': '${second}' is not a ${root.slice(0, -1)} step`, {
        field,
      });
  }
}

/** Reads a dotted path from a plain object tree; undefined when any part is missing. */
export function readPath(root: unknown, path: string): unknown {
  let cur: unknown = root;
  for (const part of path.split('.')) {
    if (cur === null || typeof cur !== 'object') return undefined;
    if (!Object.hasOwn(cur, part)) return undefined;
    cur = (cur as Record<string, unknown>)[part];
  }
  return cur;
}

function norm(v: unknown, ignoreCase: boolean): unknown {
  return ignoreCase && typeof v === 'string' ? v.trim().toLowerCase() : v;
}

function compare(a: unknown, b: unknown): number | undefined {
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  if (typeof a === 'string' && typeof b === 'string') return a < b ? -1 : a > b ? 1 : 0;
  return undefined;
}

/** Evaluates a (validated) condition against `scope` (an object whose keys are the roots). */
export function evaluateCondition(c: Condition, scope: Record<string, unknown>): boolean {
  if ('all' in c) return c.all.every((x) => evaluateCondition(x, scope));
  if ('any' in c) return c.any.some((x) => evaluateCondition(x, scope));
  if ('not' in c) return !evaluateCondition(c.not, scope);
  const ic = c.ignoreCase === true;
  const actual = readPath(scope, c.path);
  const a = norm(actual, ic);
  const v = norm(c.value, ic);
  switch (c.op) {
    case 'exists':
      return actual !== undefined && actual !== null;
    case 'not_exists':
      return actual === undefined || actual === null;
    case 'eq':
      return a === v || (a === undefined && v === null);
    case 'ne':
      return !(a === v || (a === undefined && v === null));
    case 'in':
      return (c.value as unknown[]).some((x) => norm(x, ic) === a);
    case 'not_in':
      return !(c.value as unknown[]).some((x) => norm(x, ic) === a);
    case 'gt':
    case 'gte':
    case 'lt':
    case 'lte': {
      const d = compare(a, v);
      if (d === undefined) return false;
      return c.op === 'gt' ? d > 0 : c.op === 'gte' ? d >= 0 : c.op === 'lt' ? d < 0 : d <= 0;
    }
    case 'contains':
      if (Array.isArray(actual)) return actual.some((x) => norm(x, ic) === v);
      return typeof a === 'string' && typeof v === 'string' && a.includes(v);
    case 'starts_with':
      return typeof a === 'string' && typeof v === 'string' && a.startsWith(v);
  }
}

/** The step ids a condition names through `messages.<step>` (and the other per-step roots). */
export function conditionPaths(c: Condition): string[] {
  if ('all' in c) return c.all.flatMap(conditionPaths);
  if ('any' in c) return c.any.flatMap(conditionPaths);
  if ('not' in c) return conditionPaths(c.not);
  return [c.path];
}
