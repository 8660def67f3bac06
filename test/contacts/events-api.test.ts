/** Business events over the API: matching to contacts, idempotency, batches, hand-over to the consumer, listing. */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type ContactsApp, contactsApp, NOON_NY, ORG, OTHER_ORG } from './contacts-app.ts';

let t: ContactsApp;
beforeEach(async () => {
  t = await contactsApp();
});
afterEach(async () => {
  await t.close();
});

describe('POST /v1/events', () => {
  it('matches the event to a contact by any identifier, stores it and hands it to the consumer', async () => {
    const c = await t.call('POST', '/v1/contacts', { externalId: 'crm-1', phones: ['+12025550100'] });
    const r = await t.call('POST', '/v1/events', {
      name: 'appointment.booked',
      contact: { phone: '+12025550100' },
      properties: { at: '2026-06-12T09:00:00Z', clinic: 'North' },
      occurredAt: '2026-06-10T15:59:00Z',
    });
    expect(r.status).toBe(201);
    expect(r.body).toEqual({
      id: expect.stringMatching(/^evt_/),
      contactId: c.body.id,
      duplicate: false,
      contactCreated: false,
    });
    expect(t.dispatched).toEqual([
      {
        id: r.body.id,
        orgId: ORG,
        contactId: c.body.id,
        name: 'appointment.booked',
        properties: { at: '2026-06-12T09:00:00Z', clinic: 'North' },
        occurredAt: Date.parse('2026-06-10T15:59:00Z'),
        receivedAt: NOON_NY,
        idempotencyKey: null,
        dispatchedAt: null,
      },
    ]);
    const byExternal = await t.call('POST', '/v1/events', { name: 'x', contact: { externalId: 'crm-1' } });
    expect(byExternal.body.contactId).toBe(c.body.id);
    const got = await t.call('GET', `/v1/events/${r.body.id}`);
    expect(got.body).toMatchObject({ name: 'appointment.booked', occurredAt: '2026-06-10T15:59:00.000Z' });
    expect((await t.call('GET', `/v1/events/${r.body.id}`, undefined, { 'x-org': OTHER_ORG })).status).toBe(404);
  });

  it('creates the contact only when asked to', async () => {
    const unknown = await t.call('POST', '/v1/events', { name: 'signup', contact: { email: 'new@example.com' } });
    expect(unknown.status).toBe(404);
    expect(unknown.body.error).toMatchObject({ code: 'contact_not_found', field: 'contact' });
    const created = await t.call('POST', '/v1/events', {
      name: 'signup',
      contact: { email: 'New@Example.com', phone: '+14155550100', externalId: 'u-9' },
      createContact: true,
    });
    expect(created.status).toBe(201);
    expect(created.body.contactCreated).toBe(true);
    const contact = await t.call('GET', `/v1/contacts/${created.body.contactId}`);
    expect(contact.body).toMatchObject({
      externalId: 'u-9',
      emails: ['new@example.com'],
      phones: ['+14155550100'],
      timeZone: 'America/Los_Angeles',
    });
    const again = await t.call('POST', '/v1/events', {
      name: 'login',
      contact: { email: 'new@example.com' },
      createContact: true,
    });
    expect(again.body).toMatchObject({ contactId: created.body.contactId, contactCreated: false });
  });

  it('answers 409 when the identifiers given name two different contacts', async () => {
    await t.call('POST', '/v1/contacts', { phones: ['+12025550100'] });
    await t.call('POST', '/v1/contacts', { externalId: 'crm-2' });
    const r = await t.call('POST', '/v1/events', {
      name: 'x',
      contact: { phone: '+12025550100', externalId: 'crm-2' },
    });
    expect(r.status).toBe(409);
    expect(r.body.error).toMatchObject({ code: 'contact_ambiguous', field: 'contact' });
  });

  it('is idempotent by key (body or header): the first event answers, nothing is stored or handed over twice', async () => {
    await t.call('POST', '/v1/contacts', { phones: ['+12025550100'] });
    const body = { name: 'paid', contact: { phone: '+12025550100' }, idempotencyKey: 'inv-42' };
    const first = await t.call('POST', '/v1/events', body);
    const second = await t.call('POST', '/v1/events', { ...body, properties: { other: true } });
    expect(second.status).toBe(200);
    expect(second.body).toEqual({ ...first.body, duplicate: true, contactCreated: false });
    const viaHeader = { name: 'paid', contact: { phone: '+12025550100' } };
    const h1 = await t.call('POST', '/v1/events', viaHeader, { 'idempotency-key': 'hdr-1' });
    const h2 = await t.call('POST', '/v1/events', viaHeader, { 'idempotency-key': 'hdr-1' });
    expect(h2.body).toMatchObject({ id: h1.body.id, duplicate: true });
    expect(t.dispatched.map((e) => e.id)).toEqual([first.body.id, h1.body.id]);
    // Keys are per organization.
    await t.call('POST', '/v1/contacts', { phones: ['+12025550100'] }, { 'x-org': OTHER_ORG });
    expect((await t.call('POST', '/v1/events', body, { 'x-org': OTHER_ORG })).status).toBe(201);
  });

  it('hands an event over again when its consumer failed: on the retried request, or by redispatch', async () => {
    await t.call('POST', '/v1/contacts', { phones: ['+12025550100'] });
    t.failOnEvent = new Error('journeys are down');
    const body = { name: 'paid', contact: { phone: '+12025550100' }, idempotencyKey: 'k' };
    const failed = await t.call('POST', '/v1/events', body);
    expect(failed.status).toBe(500);
    t.failOnEvent = null;
    const retried = await t.call('POST', '/v1/events', body);
    expect(retried.body.duplicate).toBe(true);
    expect(t.dispatched.map((e) => e.idempotencyKey)).toEqual(['k']);
    // Handed over once marked: a third try does not hand it over again.
    await t.call('POST', '/v1/events', body);
    expect(t.dispatched).toHaveLength(1);

    t.failOnEvent = new Error('down again');
    await t.call('POST', '/v1/events', { name: 'lost', contact: { phone: '+12025550100' } });
    t.failOnEvent = null;
    t.clock.advance(60_000);
    expect(await t.events.redispatch(30_000)).toBe(1);
    expect(t.dispatched.map((e) => e.name)).toEqual(['paid', 'lost']);
    expect(await t.events.redispatch(30_000)).toBe(0);
  });

  it.each([
    [{ contact: { phone: '+12025550100' } }, 400, 'missing_field', 'name'],
    [{ name: '', contact: { phone: '+12025550100' } }, 400, 'invalid_value', 'name'],
    [{ name: 'x' }, 400, 'missing_field', 'contact'],
    [{ name: 'x', contact: {} }, 400, 'missing_field', 'contact'],
    [{ name: 'x', contact: { fax: '1' } }, 400, 'unknown_field', 'contact.fax'],
    [{ name: 'x', contact: { phone: '555' }, createContact: true }, 400, 'invalid_phone_number', 'contact.phone'],
    [{ name: 'x', contact: { email: 'nope' } }, 400, 'invalid_email', 'contact.email'],
    [{ name: 'x', contact: { id: 'ctc_nope' } }, 404, 'contact_not_found', 'contact.id'],
    [{ name: 'x', contact: { phone: '+12025550100' }, occurredAt: 'yesterday' }, 400, 'invalid_date', 'occurredAt'],
    [
      { name: 'x', contact: { phone: '+12025550100' }, occurredAt: '2027-01-01T00:00:00Z' },
      400,
      'occurred_in_future',
      'occurredAt',
    ],
    [{ name: 'x', contact: { phone: '+12025550100' }, properties: [] }, 400, 'invalid_type', 'properties'],
    [{ name: 'x', contact: { phone: '+12025550100' }, createContact: 'yes' }, 400, 'invalid_type', 'createContact'],
  ])('refuses %j: %i %s at %s', async (body, status, code, field) => {
    await t.call('POST', '/v1/contacts', { phones: ['+12025550100'] });
    const r = await t.call('POST', '/v1/events', body);
    expect(r.status).toBe(status);
    expect(r.body.error).toMatchObject({ code, field });
  });
});

describe('POST /v1/events/batch', () => {
  it('stores each valid item and answers each invalid one with its error, in order', async () => {
    await t.call('POST', '/v1/contacts', { phones: ['+12025550100'] });
    const r = await t.call('POST', '/v1/events/batch', {
      events: [
        { name: 'a', contact: { phone: '+12025550100' } },
        { name: 'b', contact: { phone: 'bad' }, createContact: true },
        { name: 'c', contact: { email: 'nobody@example.com' } },
        { nom: 'd' },
        { name: 'e', contact: { phone: '+12025550100' }, idempotencyKey: 'a-key' },
        { name: 'e', contact: { phone: '+12025550100' }, idempotencyKey: 'a-key' },
      ],
    });
    expect(r.status).toBe(200);
    const items = r.body.items;
    expect(items[0]).toMatchObject({ id: expect.any(String), duplicate: false });
    expect(items[1].error).toMatchObject({ code: 'invalid_phone_number', field: 'events[1].contact.phone' });
    expect(items[2].error).toMatchObject({ code: 'contact_not_found', field: 'events[2].contact' });
    expect(items[3].error).toMatchObject({ code: 'missing_field', field: 'events[3].name' });
    expect(items[5]).toEqual({ id: items[4].id, contactId: items[4].contactId, duplicate: true });
    expect(t.dispatched.map((e) => e.name)).toEqual(['a', 'e']);
  });

  it('refuses an empty or oversized batch as a whole', async () => {
    const empty = await t.call('POST', '/v1/events/batch', { events: [] });
    expect(empty.body.error).toMatchObject({ code: 'invalid_value', field: 'events' });
    const big = await t.call('POST', '/v1/events/batch', { events: Array.from({ length: 1001 }, () => ({})) });
    expect(big.body.error).toMatchObject({ code: 'too_many_items', field: 'events' });
  });
});

describe("a contact's events", () => {
  it('lists them newest first, by page and by name', async () => {
    const c = await t.call('POST', '/v1/contacts', { phones: ['+12025550100'] });
    for (const name of ['a', 'b', 'a', 'c']) await t.call('POST', '/v1/events', { name, contact: { id: c.body.id } });
    const p1 = await t.call('GET', `/v1/contacts/${c.body.id}/events?limit=3`);
    expect(p1.body.items.map((e: { name: string }) => e.name)).toEqual(['c', 'a', 'b']);
    const p2 = await t.call('GET', `/v1/contacts/${c.body.id}/events?limit=3&cursor=${p1.body.nextCursor}`);
    expect(p2.body).toMatchObject({ items: [{ name: 'a' }], nextCursor: null });
    expect((await t.call('GET', `/v1/contacts/${c.body.id}/events?name=a`)).body.items).toHaveLength(2);
    expect((await t.call('GET', '/v1/contacts/ctc_nope/events')).status).toBe(404);
  });
});
