/**
 * Segments over the API: validation on save, evaluation on demand (cursor and count), and the entries and exits
 * `contactChanged` reports when contacts, consents and events change.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type ContactsApp, contactsApp, ORG, OTHER_ORG } from './contacts-app.ts';

let t: ContactsApp;
beforeEach(async () => {
  t = await contactsApp();
});
afterEach(async () => {
  await t.close();
});

const DAY = 86_400_000;
const gold = { name: 'Gold', rules: { attribute: 'plan', op: 'eq', value: 'gold' } };

describe('saving segments', () => {
  it('creates, reads, lists, replaces and deletes a segment', async () => {
    const r = await t.call('POST', '/v1/segments', { ...gold, description: 'Gold plan' });
    expect(r.status).toBe(201);
    expect(r.body).toMatchObject({
      id: expect.stringMatching(/^seg_/),
      name: 'Gold',
      description: 'Gold plan',
      rules: gold.rules,
    });
    expect((await t.call('GET', `/v1/segments/${r.body.id}`)).body).toMatchObject({ name: 'Gold', memberCount: 0 });
    expect((await t.call('GET', '/v1/segments')).body.items).toHaveLength(1);
    expect((await t.call('GET', '/v1/segments', undefined, { 'x-org': OTHER_ORG })).body.items).toHaveLength(0);
    const put = await t.call('PUT', `/v1/segments/${r.body.id}`, { name: 'VIP', rules: { tag: 'vip' } });
    expect(put.body).toMatchObject({ name: 'VIP', description: null, rules: { tag: 'vip' } });
    expect((await t.call('DELETE', `/v1/segments/${r.body.id}`)).status).toBe(204);
    expect((await t.call('GET', `/v1/segments/${r.body.id}`)).body.error.code).toBe('segment_not_found');
    expect((await t.call('DELETE', `/v1/segments/${r.body.id}`)).status).toBe(404);
  });

  it.each([
    [{ rules: { tag: 'x' } }, 'missing_field', 'name'],
    [{ name: 'S' }, 'missing_field', 'rules'],
    [
      { name: 'S', rules: { all: [{ tag: 'x' }, { attribute: 'plan', op: 'like', value: 1 }] } },
      'invalid_value',
      'rules.all[1].op',
    ],
    [
      { name: 'S', rules: { any: [{ event: 'buy', withinDays: 0 }] } },
      'invalid_segment_rule',
      'rules.any[0].withinDays',
    ],
    [
      { name: 'S', rules: { consent: { channel: 'fax', purpose: 'marketing' } } },
      'unknown_channel',
      'rules.consent.channel',
    ],
    [{ name: 'S', rules: { colour: 'blue' } }, 'invalid_segment_rule', 'rules'],
    [{ name: 'S', rules: { tag: 'x' }, owner: 'me' }, 'unknown_field', 'owner'],
  ])('refuses %j: %s at %s', async (body, code, field) => {
    const r = await t.call('POST', '/v1/segments', body);
    expect(r.status).toBe(400);
    expect(r.body.error).toMatchObject({ code, field });
  });
});

describe('evaluating on demand', () => {
  it('pages through the members newest first, with the total on request', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 9; i++) {
      const r = await t.call('POST', '/v1/contacts', { attributes: { plan: i % 3 === 0 ? 'silver' : 'gold', n: i } });
      if (i % 3 !== 0) ids.unshift(r.body.id);
    }
    const s = await t.call('POST', '/v1/segments', gold);
    const p1 = await t.call('GET', `/v1/segments/${s.body.id}/contacts?limit=4&count=true`);
    expect(p1.body.items.map((c: { id: string }) => c.id)).toEqual(ids.slice(0, 4));
    expect(p1.body.count).toBe(6);
    const p2 = await t.call('GET', `/v1/segments/${s.body.id}/contacts?limit=4&cursor=${p1.body.nextCursor}`);
    expect(p2.body.items.map((c: { id: string }) => c.id)).toEqual(ids.slice(4));
    expect(p2.body.nextCursor).toBeNull();
    expect(p2.body).not.toHaveProperty('count');
    expect((await t.call('GET', `/v1/segments/${s.body.id}`)).body.memberCount).toBe(6);
    expect((await t.call('GET', '/v1/segments/seg_nope/contacts')).status).toBe(404);
  });

  it('counts events in a window and explicit consent', async () => {
    const buyer = await t.call('POST', '/v1/contacts', { phones: ['+12025550100'] });
    const old = await t.call('POST', '/v1/contacts', { phones: ['+12025550101'] });
    const once = await t.call('POST', '/v1/contacts', { phones: ['+12025550102'] });
    const now = t.clock.now();
    for (const [id, daysAgo] of [
      [buyer.body.id, 1],
      [buyer.body.id, 3],
      [old.body.id, 40],
      [old.body.id, 41],
      [once.body.id, 2],
    ] as const) {
      await t.call('POST', '/v1/events', {
        name: 'purchase',
        contact: { id },
        occurredAt: new Date(now - daysAgo * DAY).toISOString(),
      });
    }
    const repeat = await t.call('POST', '/v1/segments', {
      name: 'Repeat buyers',
      rules: { event: 'purchase', minCount: 2, withinDays: 30 },
    });
    const members = await t.call('GET', `/v1/segments/${repeat.body.id}/contacts`);
    expect(members.body.items.map((c: { id: string }) => c.id)).toEqual([buyer.body.id]);

    await t.call('POST', `/v1/contacts/${once.body.id}/consent`, {
      channel: 'sms',
      purpose: 'marketing',
      status: 'opted_in',
    });
    const optedIn = await t.call('POST', '/v1/segments', {
      name: 'SMS marketing',
      rules: { all: [{ consent: { channel: 'sms', purpose: 'marketing' } }, { event: 'purchase' }] },
    });
    const m2 = await t.call('GET', `/v1/segments/${optedIn.body.id}/contacts?count=true`);
    expect(m2.body).toMatchObject({ items: [{ id: once.body.id }], count: 1 });
  });
});

describe('contactChanged: entries and exits', () => {
  it('reports a contact entering and leaving as it changes, from a baseline taken when the segment is saved', async () => {
    const already = await t.call('POST', '/v1/contacts', { attributes: { plan: 'gold' } });
    const s = await t.call('POST', '/v1/segments', gold);
    // The contact already in it when it was saved did not "enter".
    expect(t.transitions).toEqual([]);
    expect((await t.segments.contactChanged(ORG, already.body.id)).entered).toEqual([]);

    const c = await t.call('POST', '/v1/contacts', { attributes: { plan: 'silver' } });
    expect(t.transitions).toEqual([]);
    await t.call('PATCH', `/v1/contacts/${c.body.id}`, { attributes: { plan: 'gold' } });
    expect(t.transitions).toEqual([{ contactId: c.body.id, entered: [s.body.id], left: [] }]);
    await t.call('PATCH', `/v1/contacts/${c.body.id}`, { tags: ['x'] });
    expect(t.transitions).toHaveLength(1);
    await t.call('PATCH', `/v1/contacts/${c.body.id}`, { attributes: { plan: 'bronze' } });
    expect(t.transitions[1]).toEqual({ contactId: c.body.id, entered: [], left: [s.body.id] });
    // Erased contacts leave every segment.
    await t.call('DELETE', `/v1/contacts/${already.body.id}`);
    expect(t.transitions[2]).toEqual({ contactId: already.body.id, entered: [], left: [s.body.id] });
  });

  it('reports entries caused by events and by consent changes', async () => {
    const c = await t.call('POST', '/v1/contacts', { phones: ['+12025550100'] });
    const buyers = await t.call('POST', '/v1/segments', {
      name: 'Buyers',
      rules: { event: 'purchase', withinDays: 7 },
    });
    const optedOut = await t.call('POST', '/v1/segments', {
      name: 'Opted out',
      rules: { consent: { channel: 'sms', purpose: 'marketing' }, status: 'opted_out' },
    });
    await t.call('POST', '/v1/events', { name: 'purchase', contact: { id: c.body.id } });
    expect(t.transitions).toEqual([{ contactId: c.body.id, entered: [buyers.body.id], left: [] }]);
    await t.compliance.handleInbound({
      orgId: ORG,
      channel: 'sms',
      from: '+12025550100',
      to: '+12025550900',
      body: 'STOP',
      at: t.clock.now(),
    });
    expect(t.transitions[1]).toEqual({ contactId: c.body.id, entered: [optedOut.body.id], left: [] });
    // A week later the purchase is out of the window: noticed at the next evaluation.
    t.clock.advance(8 * DAY);
    const later = await t.segments.contactChanged(ORG, c.body.id);
    expect(later).toEqual({ contactId: c.body.id, entered: [], left: [buyers.body.id] });
  });

  it('moves memberships with a merge', async () => {
    const target = await t.call('POST', '/v1/contacts', { attributes: { plan: 'silver' } });
    const other = await t.call('POST', '/v1/contacts', { attributes: { plan: 'gold' } });
    const s = await t.call('POST', '/v1/segments', gold);
    expect((await t.call('GET', `/v1/segments/${s.body.id}`)).body.memberCount).toBe(1);
    await t.call('POST', `/v1/contacts/${target.body.id}/merge`, { otherId: other.body.id });
    // The target's own plan wins ('silver'): the other left, the target did not enter.
    expect(t.transitions).toEqual([{ contactId: other.body.id, entered: [], left: [s.body.id] }]);
    expect((await t.call('GET', `/v1/segments/${s.body.id}`)).body.memberCount).toBe(0);
  });
});
