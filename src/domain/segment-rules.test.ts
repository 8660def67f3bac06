import { describe, expect, it } from 'vitest';
import { ANY, type ConsentRecord } from './compliance.ts';
import { ValidationError } from './errors.ts';
import {
  eventQueries,
  eventQueryKey,
  MAX_RULE_DEPTH,
  matchesSegment,
  type SegmentFacts,
  type SegmentRule,
  validateSegmentRule,
} from './segment-rules.ts';

const DAY = 86_400_000;
const NOW = Date.UTC(2026, 5, 10, 12);

function facts(over: Partial<SegmentFacts['contact']> = {}, extra: Partial<SegmentFacts> = {}): SegmentFacts {
  return {
    contact: {
      attributes: { plan: 'gold', age: 41, address: { city: 'Lyon' }, signedUpAt: '2026-01-15T10:00:00Z' },
      tags: ['vip', 'beta'],
      language: 'fr',
      timeZone: 'Europe/Paris',
      persona: 'patient',
      ...over,
    },
    consents: [],
    eventCounts: new Map(),
    ...extra,
  };
}

const matches = (rule: SegmentRule, f = facts()) => matchesSegment(validateSegmentRule(rule), f, NOW);

describe('matchesSegment', () => {
  it('compares attributes: eq, neq, in, exists, not_exists, nested paths', () => {
    expect(matches({ attribute: 'plan', op: 'eq', value: 'gold' })).toBe(true);
    expect(matches({ attribute: 'plan', op: 'eq', value: 'silver' })).toBe(false);
    expect(matches({ attribute: 'plan', op: 'neq', value: 'silver' })).toBe(true);
    expect(matches({ attribute: 'plan', op: 'in', value: ['silver', 'gold'] })).toBe(true);
    expect(matches({ attribute: 'address.city', op: 'eq', value: 'Lyon' })).toBe(true);
    expect(matches({ attribute: 'address', op: 'eq', value: { city: 'Lyon' } })).toBe(true);
    expect(matches({ attribute: 'address.zip', op: 'exists' })).toBe(false);
    expect(matches({ attribute: 'address.zip', op: 'not_exists' })).toBe(true);
    expect(matches({ attribute: 'plan.level', op: 'exists' })).toBe(false);
    expect(matches({ attribute: 'constructor', op: 'exists' })).toBe(false);
  });

  it('orders numbers and dates, never one against the other', () => {
    expect(matches({ attribute: 'age', op: 'gt', value: 40 })).toBe(true);
    expect(matches({ attribute: 'age', op: 'gte', value: 41 })).toBe(true);
    expect(matches({ attribute: 'age', op: 'lt', value: 41 })).toBe(false);
    expect(matches({ attribute: 'age', op: 'lte', value: 41 })).toBe(true);
    expect(matches({ attribute: 'signedUpAt', op: 'gt', value: '2026-01-01' })).toBe(true);
    expect(matches({ attribute: 'signedUpAt', op: 'lt', value: '2026-01-01' })).toBe(false);
    // 2026-01-15 is 146 days before NOW.
    expect(matches({ attribute: 'signedUpAt', op: 'gt', value: { daysAgo: 150 } })).toBe(true);
    expect(matches({ attribute: 'signedUpAt', op: 'gt', value: { daysAgo: 140 } })).toBe(false);
    expect(matches({ attribute: 'signedUpAt', op: 'gt', value: 5 })).toBe(false);
    expect(matches({ attribute: 'age', op: 'gt', value: '2020-01-01' })).toBe(false);
    expect(matches({ attribute: 'plan', op: 'gt', value: 1 })).toBe(false);
  });

  it("tests tags and the contact's own fields", () => {
    expect(matches({ tag: 'vip' })).toBe(true);
    expect(matches({ tag: 'churned' })).toBe(false);
    expect(matches({ field: 'language', op: 'eq', value: 'fr' })).toBe(true);
    expect(matches({ field: 'persona', op: 'in', value: ['patient', 'payer'] })).toBe(true);
    expect(matches({ field: 'timeZone', op: 'exists' }, facts({ timeZone: null }))).toBe(false);
  });

  it('counts events in a window', () => {
    const rule: SegmentRule = { event: 'purchase', minCount: 2, withinDays: 30 };
    const [q] = eventQueries(rule, NOW);
    expect(q).toEqual({ name: 'purchase', since: NOW - 30 * DAY });
    const with2 = facts({}, { eventCounts: new Map([[eventQueryKey(q!), 2]]) });
    const with1 = facts({}, { eventCounts: new Map([[eventQueryKey(q!), 1]]) });
    expect(matches(rule, with2)).toBe(true);
    expect(matches(rule, with1)).toBe(false);
    expect(matches({ event: 'purchase' }, facts())).toBe(false);
    expect(eventQueries({ event: 'login' }, NOW)).toEqual([{ name: 'login', since: 0 }]);
  });

  it('asks for each event count once, however often the rule names it', () => {
    const rule: SegmentRule = {
      any: [{ event: 'a', withinDays: 7 }, { not: { event: 'a', withinDays: 7, minCount: 3 } }, { event: 'b' }],
    };
    expect(eventQueries(rule, NOW)).toHaveLength(2);
  });

  it('tests explicit consent (an opt-out from any one sender counts)', () => {
    const rule: SegmentRule = { consent: { channel: 'sms', purpose: 'marketing' } };
    const rec = (over: Partial<ConsentRecord>): ConsentRecord => ({
      channel: 'sms',
      purpose: 'marketing',
      sender: ANY,
      status: 'opted_in',
      source: 'api',
      updatedAt: 1,
      ...over,
    });
    expect(matches(rule, facts())).toBe(false);
    expect(matches(rule, facts({}, { consents: [rec({})] }))).toBe(true);
    expect(
      matches(
        rule,
        facts({}, { consents: [rec({}), rec({ sender: '+12025550100', status: 'opted_out', updatedAt: 2 })] }),
      ),
    ).toBe(false);
    expect(matches({ ...rule, status: 'opted_out' }, facts({}, { consents: [rec({ status: 'opted_out' })] }))).toBe(
      true,
    );
  });

  it('combines with all, any and not', () => {
    expect(matches({ all: [{ tag: 'vip' }, { attribute: 'plan', op: 'eq', value: 'gold' }] })).toBe(true);
    expect(matches({ all: [{ tag: 'vip' }, { tag: 'nope' }] })).toBe(false);
    expect(matches({ any: [{ tag: 'nope' }, { tag: 'beta' }] })).toBe(true);
    expect(matches({ not: { tag: 'vip' } })).toBe(false);
  });
});

describe('validateSegmentRule', () => {
  const error = (rule: unknown): { code: string; field: string | undefined } => {
    try {
      validateSegmentRule(rule);
    } catch (e) {
      expect(e).toBeInstanceOf(ValidationError);
      return { code: (e as ValidationError).code, field: (e as ValidationError).field };
    }
    throw new Error('expected a validation error');
  };

  it.each([
    [[], 'invalid_type', 'rules'],
    [{}, 'invalid_segment_rule', 'rules'],
    [{ all: [] }, 'invalid_segment_rule', 'rules.all'],
    [{ all: [{ tag: 'a' }], extra: 1 }, 'unknown_field', 'rules.extra'],
    [{ all: [{ tag: 'a' }, { attribute: 'x' }] }, 'missing_field', 'rules.all[1].op'],
    [{ attribute: 'x', op: 'like', value: 1 }, 'invalid_value', 'rules.op'],
    [{ attribute: 'x', op: 'eq' }, 'missing_field', 'rules.value'],
    [{ attribute: 'x', op: 'exists', value: 1 }, 'unknown_field', 'rules.value'],
    [{ attribute: 'x', op: 'in', value: 'a' }, 'invalid_value', 'rules.value'],
    [{ attribute: 'x', op: 'gt', value: 'soon' }, 'invalid_value', 'rules.value'],
    [{ attribute: 'x', op: 'gt', value: { daysAgo: -1 } }, 'invalid_value', 'rules.value.daysAgo'],
    [{ attribute: 'a..b', op: 'exists' }, 'invalid_segment_rule', 'rules.attribute'],
    [{ attribute: '', op: 'exists' }, 'invalid_segment_rule', 'rules.attribute'],
    [{ field: 'email', op: 'exists' }, 'invalid_value', 'rules.field'],
    [{ tag: '' }, 'invalid_segment_rule', 'rules.tag'],
    [{ event: 'x', withinDays: 0 }, 'invalid_segment_rule', 'rules.withinDays'],
    [{ event: 'x', minCount: 1.5 }, 'invalid_segment_rule', 'rules.minCount'],
    [{ not: { consent: { channel: 'fax', purpose: 'marketing' } } }, 'unknown_channel', 'rules.not.consent.channel'],
    [{ consent: { channel: 'sms', purpose: 'spam' } }, 'invalid_value', 'rules.consent.purpose'],
    [{ consent: { channel: 'sms', purpose: 'marketing' }, status: 'maybe' }, 'invalid_value', 'rules.status'],
  ])('%j → %s at %s', (rule, code, field) => {
    expect(error(rule)).toEqual({ code, field });
  });

  it('bounds depth and size', () => {
    let deep: unknown = { tag: 'x' };
    for (let i = 0; i < MAX_RULE_DEPTH; i++) deep = { not: deep };
    expect(error(deep).code).toBe('rules_too_deep');
    const wide = { any: Array.from({ length: 120 }, () => ({ tag: 'x' })) };
    expect(error(wide)).toEqual({ code: 'rules_too_large', field: 'rules.any[99]' });
  });
});
