import { describe, expect, it } from 'vitest';
import {
  CONDITION_ROOTS,
  type Condition,
  evaluateCondition,
  readPath,
  validateCondition,
} from './journey-conditions.ts';

const scope = {
  contact: { id: 'c1', attributes: { plan: 'gold', visits: 3, vip: true }, tags: ['a', 'b'] },
  event: { name: 'order.paid', properties: { total: 120, currency: 'EUR' } },
  message: { status: 'delivered', delivered: true },
  reply: { text: '  Yes ' },
};
const c = (x: Condition) => evaluateCondition(x, scope);

describe('evaluateCondition', () => {
  it('compares values', () => {
    expect(c({ path: 'contact.attributes.plan', op: 'eq', value: 'gold' })).toBe(true);
    expect(c({ path: 'contact.attributes.plan', op: 'ne', value: 'gold' })).toBe(false);
    expect(c({ path: 'event.properties.total', op: 'gt', value: 100 })).toBe(true);
    expect(c({ path: 'event.properties.total', op: 'lte', value: 100 })).toBe(false);
    expect(c({ path: 'event.properties.total', op: 'gt', value: '100' })).toBe(false);
    expect(c({ path: 'event.properties.currency', op: 'in', value: ['USD', 'EUR'] })).toBe(true);
    expect(c({ path: 'event.properties.currency', op: 'not_in', value: ['USD', 'EUR'] })).toBe(false);
    expect(c({ path: 'contact.tags', op: 'contains', value: 'b' })).toBe(true);
    expect(c({ path: 'event.name', op: 'starts_with', value: 'order.' })).toBe(true);
    expect(c({ path: 'message.delivered', op: 'eq', value: true })).toBe(true);
  });

  it('treats missing values as absent', () => {
    expect(c({ path: 'contact.attributes.missing', op: 'exists' })).toBe(false);
    expect(c({ path: 'contact.attributes.missing', op: 'not_exists' })).toBe(true);
    expect(c({ path: 'contact.attributes.missing', op: 'eq', value: null })).toBe(true);
    expect(c({ path: 'contact.attributes.plan.deeper', op: 'eq', value: 'x' })).toBe(false);
    expect(readPath(scope, 'contact.attributes.constructor')).toBeUndefined();
  });

  it('ignores case and surrounding spaces when asked', () => {
    expect(c({ path: 'reply.text', op: 'eq', value: 'YES' })).toBe(false);
    expect(c({ path: 'reply.text', op: 'eq', value: 'YES', ignoreCase: true })).toBe(true);
    expect(c({ path: 'reply.text', op: 'in', value: ['y', 'yes'], ignoreCase: true })).toBe(true);
  });

  it('combines with all, any and not', () => {
    const gold = { path: 'contact.attributes.plan', op: 'eq', value: 'gold' } as const;
    const cheap = { path: 'event.properties.total', op: 'lt', value: 10 } as const;
    expect(c({ all: [gold, cheap] })).toBe(false);
    expect(c({ any: [gold, cheap] })).toBe(true);
    expect(c({ not: cheap })).toBe(true);
  });
});

describe('validateCondition', () => {
  const rules = { roots: CONDITION_ROOTS, sendSteps: new Set(['s1']) };
  it('accepts valid trees', () => {
    expect(() =>
      validateCondition(
        {
          any: [{ path: 'messages.s1.status', op: 'eq', value: 'read' }, { not: { path: 'reply.text', op: 'exists' } }],
        },
        'when',
        rules,
      ),
    ).not.toThrow();
  });

  it('points at the faulty node', () => {
    const field = (v: unknown) => {
      try {
        validateCondition(v, 'when', rules);
        return 'accepted';
      } catch (err) {
        return (err as { field: string }).field;
      }
    };
    expect(field({ all: [] })).toBe('when.all');
    expect(field({ all: [{ path: 'x', op: 'eq', value: 1 }], any: [] })).toBe('when');
    expect(field({ not: { path: 'contact.a', op: 'exists', value: 1 } })).toBe('when.not.value');
    expect(field({ path: 'contact.a', op: 'eq', value: { nested: 1 } })).toBe('when.value');
    expect(field({ path: 'contact.a', op: 'eq', value: 1, extra: true })).toBe('when.extra');
    expect(field({ path: 'messages.s2.status', op: 'exists' })).toBe('when.path');
    expect(field({ path: 'contact..a', op: 'exists' })).toBe('when.path');
    let deep: unknown = { path: 'contact.a', op: 'exists' };
    for (let i = 0; i < 10; i++) deep = { not: deep };
    expect(field(deep)).toMatch(/^when(\.not)+$/);
  });
});
