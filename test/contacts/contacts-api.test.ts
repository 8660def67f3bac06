/** The contacts API over a real store: create, upsert, read, list, patch, validation errors, merge, export, erase. */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type ContactsApp, contactsApp, ORG, OTHER_ORG } from './contacts-app.ts';

let t: ContactsApp;
beforeEach(async () => {
  t = await contactsApp();
});
afterEach(async () => {
  await t.close();
});

const ada = {
  externalId: 'crm-ada',
  phones: ['+12025550100'],
  emails: ['Ada@Example.COM'],
  attributes: { plan: 'gold', address: { city: 'London', zip: 'N1' } },
  tags: ['vip', 'vip', 'beta'],
  persona: 'patient',
  language: 'en-us',
};

describe('create and read', () => {
  it('creates a contact, normalizing identifiers, deriving the zone from the phone', async () => {
    const r = await t.call('POST', '/v1/contacts', ada);
    expect(r.status).toBe(201);
    expect(r.body).toMatchObject({
      externalId: 'crm-ada',
      phones: ['+12025550100'],
      emails: ['ada@example.com'],
      whatsappIds: [],
      pushSubscriptions: [],
      attributes: { plan: 'gold', address: { city: 'London', zip: 'N1' } },
      tags: ['vip', 'beta'],
      persona: 'patient',
      timeZone: 'America/New_York',
      timeZoneSource: 'phone',
      language: 'en-US',
      erasedAt: null,
    });
    expect(r.body.id).toMatch(/^ctc_/);
    const got = await t.call('GET', `/v1/contacts/${r.body.id}`);
    expect(got).toEqual({ status: 200, body: r.body });
    // Nothing of one organization is visible to another.
    expect((await t.call('GET', `/v1/contacts/${r.body.id}`, undefined, { 'x-org': OTHER_ORG })).status).toBe(404);
  });

  it('keeps a zone that was given, and derives per area code otherwise', async () => {
    const given = await t.call('POST', '/v1/contacts', { phones: ['+14155550100'], timeZone: 'Europe/Paris' });
    expect(given.body).toMatchObject({ timeZone: 'Europe/Paris', timeZoneSource: 'given' });
    const derived = await t.call('POST', '/v1/contacts', { phones: ['+14155550101'] });
    expect(derived.body).toMatchObject({ timeZone: 'America/Los_Angeles', timeZoneSource: 'phone' });
    const none = await t.call('POST', '/v1/contacts', { emails: ['x@example.com'] });
    expect(none.body).toMatchObject({ timeZone: null, timeZoneSource: null });
    // Back to the derived zone with null.
    const back = await t.call('PATCH', `/v1/contacts/${given.body.id}`, { timeZone: null });
    expect(back.body).toMatchObject({ timeZone: 'America/Los_Angeles', timeZoneSource: 'phone' });
  });

  it('stores push subscriptions with their keys', async () => {
    const sub = { endpoint: 'https://push.example.com/send/abc123', keys: { p256dh: 'BP-key', auth: 'auth-secret' } };
    const r = await t.call('POST', '/v1/contacts', { pushSubscriptions: [sub] });
    expect(r.body.pushSubscriptions).toEqual([sub]);
    const resolved = await t.contacts.resolveRecipient(ORG, 'push', { contactId: r.body.id });
    expect(resolved).toEqual({ contactId: r.body.id, to: sub.endpoint, data: { keys: sub.keys } });
  });

  it('forgets a push subscription the push service said is gone, keeping the others', async () => {
    const keys = { p256dh: 'BP-key', auth: 'auth-secret' };
    const gone = { endpoint: 'https://push.example.com/send/gone1', keys };
    const kept = { endpoint: 'https://push.example.com/send/kept1', keys };
    const r = await t.call('POST', '/v1/contacts', { phones: ['+12025550111'], pushSubscriptions: [gone, kept] });
    expect(await t.contacts.forgetPushSubscription(ORG, gone.endpoint)).toBe(true);
    const after = await t.call('GET', `/v1/contacts/${r.body.id}`);
    expect(after.body.pushSubscriptions).toEqual([kept]);
    expect(after.body.phones).toEqual(['+12025550111']);
    expect((await t.contacts.get(ORG, r.body.id)).version).toBe(2);
    // Gone already, held by nobody, or in another organization: nothing to do.
    expect(await t.contacts.forgetPushSubscription(ORG, gone.endpoint)).toBe(false);
    expect(await t.contacts.forgetPushSubscription(OTHER_ORG, kept.endpoint)).toBe(false);
    expect((await t.call('GET', `/v1/contacts/${r.body.id}`)).body.pushSubscriptions).toEqual([kept]);
  });

  it.each([
    [{ phones: ['12345'] }, 400, 'invalid_phone_number', 'phones[0]'],
    [{ phones: ['+12025550100', 'nope'] }, 400, 'invalid_phone_number', 'phones[1]'],
    [{ emails: ['not-an-email'] }, 400, 'invalid_email', 'emails[0]'],
    [{ whatsappIds: ['bad id!'] }, 400, 'invalid_whatsapp_id', 'whatsappIds[0]'],
    [
      { pushSubscriptions: [{ endpoint: 'http://insecure.example.com/x', keys: { p256dh: 'a', auth: 'b' } }] },
      400,
      'invalid_recipient',
      'pushSubscriptions[0].endpoint',
    ],
    [
      { pushSubscriptions: [{ endpoint: 'https://push.example.com/abc' }] },
      400,
      'missing_field',
      'pushSubscriptions[0].keys',
    ],
    [{ timeZone: 'Mars/Base' }, 400, 'invalid_time_zone', 'timeZone'],
    [{ language: 'not a language' }, 400, 'invalid_language', 'language'],
    [{ tags: [''] }, 400, 'invalid_value', 'tags[0]'],
    [{ tags: 'vip' }, 400, 'invalid_type', 'tags'],
    [{ attributes: [] }, 400, 'invalid_type', 'attributes'],
    [{ nickname: 'x' }, 400, 'unknown_field', 'nickname'],
    [{ attributes: { big: 'x'.repeat(70_000) } }, 400, 'attributes_too_large', 'attributes'],
  ])('refuses %j: %i %s at %s', async (body, status, code, field) => {
    const r = await t.call('POST', '/v1/contacts', body);
    expect(r.status).toBe(status);
    expect(r.body.error).toMatchObject({ code, field });
  });

  it('answers 409 with the holder when an identifier or the external id is taken', async () => {
    const first = await t.call('POST', '/v1/contacts', ada);
    const dupPhone = await t.call('POST', '/v1/contacts', { phones: ['+12025550199', '+12025550100'] });
    expect(dupPhone.status).toBe(409);
    expect(dupPhone.body.error).toMatchObject({
      code: 'identifier_taken',
      field: 'phones[1]',
      details: { contactId: first.body.id },
    });
    const dupExternal = await t.call('POST', '/v1/contacts', { externalId: 'crm-ada' });
    expect(dupExternal.body.error).toMatchObject({ code: 'external_id_taken', field: 'externalId' });
    // The same addresses in another organization are another person.
    expect((await t.call('POST', '/v1/contacts', ada, { 'x-org': OTHER_ORG })).status).toBe(201);
  });

  it('answers 404 for an unknown contact', async () => {
    const r = await t.call('GET', '/v1/contacts/ctc_unknown');
    expect(r).toEqual({
      status: 404,
      body: { error: { code: 'contact_not_found', message: "contact 'ctc_unknown' does not exist", field: 'id' } },
    });
  });
});

describe('upsert (PUT /v1/contacts)', () => {
  it('creates once, then updates the contact holding the external id or any identifier', async () => {
    const created = await t.call('PUT', '/v1/contacts', { externalId: 'crm-1', attributes: { a: 1, keep: true } });
    expect(created.status).toBe(201);
    const byExternal = await t.call('PUT', '/v1/contacts', {
      externalId: 'crm-1',
      phones: ['+12025550111'],
      attributes: { a: 2, keep: null, b: { c: 3 } },
    });
    expect(byExternal.status).toBe(200);
    expect(byExternal.body).toMatchObject({
      id: created.body.id,
      phones: ['+12025550111'],
      attributes: { a: 2, b: { c: 3 } },
    });
    // Matched by phone; the new email joins; tags given replace.
    const byPhone = await t.call('PUT', '/v1/contacts', {
      phones: ['+12025550111'],
      emails: ['one@example.com'],
      tags: ['x'],
    });
    expect(byPhone.status).toBe(200);
    expect(byPhone.body).toMatchObject({
      id: created.body.id,
      externalId: 'crm-1',
      phones: ['+12025550111'],
      emails: ['one@example.com'],
      tags: ['x'],
    });
    const list = await t.call('GET', '/v1/contacts');
    expect(list.body.items).toHaveLength(1);
  });

  it('refuses what it cannot match on, identifiers of two people, and a different external id', async () => {
    const none = await t.call('PUT', '/v1/contacts', { attributes: { a: 1 } });
    expect(none.status).toBe(400);
    expect(none.body.error).toMatchObject({ code: 'missing_field', field: 'externalId' });
    const a = await t.call('POST', '/v1/contacts', { phones: ['+12025550120'] });
    const b = await t.call('POST', '/v1/contacts', { emails: ['b@example.com'], externalId: 'crm-b' });
    const both = await t.call('PUT', '/v1/contacts', { phones: ['+12025550120'], emails: ['b@example.com'] });
    expect(both.status).toBe(409);
    expect(both.body.error.code).toBe('contact_ambiguous');
    expect(both.body.error.details.contactIds.sort()).toEqual([a.body.id, b.body.id].sort());
    const mismatch = await t.call('PUT', '/v1/contacts', { emails: ['b@example.com'], externalId: 'crm-other' });
    expect(mismatch.status).toBe(409);
    expect(mismatch.body.error).toMatchObject({ code: 'external_id_mismatch', field: 'externalId' });
  });

  it('creates one contact when the same new person is upserted concurrently', async () => {
    const results = await Promise.all(
      Array.from({ length: 8 }, () => t.call('PUT', '/v1/contacts', { phones: ['+12025550177'], tags: ['t'] })),
    );
    expect(new Set(results.map((r) => r.body.id)).size).toBe(1);
    expect(results.filter((r) => r.status === 201)).toHaveLength(1);
  });
});

describe('list and patch', () => {
  it('pages newest first and filters by tag, external id, phone and email', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      const r = await t.call('POST', '/v1/contacts', {
        externalId: `e${i}`,
        phones: [`+1202555014${i}`],
        emails: [`p${i}@example.com`],
        tags: i % 2 ? ['odd'] : ['even'],
      });
      ids.unshift(r.body.id);
    }
    const p1 = await t.call('GET', '/v1/contacts?limit=2');
    expect(p1.body.items.map((c: { id: string }) => c.id)).toEqual(ids.slice(0, 2));
    const p2 = await t.call('GET', `/v1/contacts?limit=2&cursor=${p1.body.nextCursor}`);
    expect(p2.body.items.map((c: { id: string }) => c.id)).toEqual(ids.slice(2, 4));
    const p3 = await t.call('GET', `/v1/contacts?limit=2&cursor=${p2.body.nextCursor}`);
    expect(p3.body).toMatchObject({ nextCursor: null });
    expect((await t.call('GET', '/v1/contacts?tag=odd')).body.items).toHaveLength(2);
    expect((await t.call('GET', '/v1/contacts?externalId=e3')).body.items[0].id).toBe(ids[1]);
    expect((await t.call('GET', '/v1/contacts?phone=%2B12025550142')).body.items[0].id).toBe(ids[2]);
    expect((await t.call('GET', '/v1/contacts?email=P4@EXAMPLE.com')).body.items[0].id).toBe(ids[0]);
    const bad = await t.call('GET', '/v1/contacts?limit=0');
    expect(bad.status).toBe(400);
    expect(bad.body.error).toMatchObject({ code: 'invalid_value', field: 'limit' });
  });

  it('patches: identifier lists replace, attributes merge-patch, the rest as given', async () => {
    const c = await t.call('POST', '/v1/contacts', ada);
    const r = await t.call('PATCH', `/v1/contacts/${c.body.id}`, {
      phones: ['+442079460000'],
      attributes: { address: { zip: null, country: 'GB' }, plan: null },
      persona: null,
    });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({
      phones: ['+442079460000'],
      emails: ['ada@example.com'],
      attributes: { address: { city: 'London', country: 'GB' } },
      persona: null,
      timeZone: 'Europe/London',
    });
    expect(r.body.attributes).not.toHaveProperty('plan');
    const other = await t.call('POST', '/v1/contacts', { emails: ['other@example.com'] });
    const taken = await t.call('PATCH', `/v1/contacts/${c.body.id}`, {
      emails: ['x@example.com', 'other@example.com'],
    });
    expect(taken.status).toBe(409);
    expect(taken.body.error).toMatchObject({
      code: 'identifier_taken',
      field: 'emails[1]',
      details: { contactId: other.body.id },
    });
  });
});

describe("modify (the journeys' update-contact step)", () => {
  it('merge-patches attributes and adds and removes tags against the current contact', async () => {
    const c = await t.call('POST', '/v1/contacts', { attributes: { a: 1, b: 2 }, tags: ['x', 'y'] });
    const m = await t.contacts.modify(ORG, c.body.id, {
      attributes: { b: null, c: 3 },
      addTags: ['z', 'x'],
      removeTags: ['y'],
    });
    expect(m).toMatchObject({ attributes: { a: 1, c: 3 }, tags: ['x', 'z'], version: 2 });
    const erased = await t.call('POST', '/v1/contacts', {});
    await t.call('DELETE', `/v1/contacts/${erased.body.id}`);
    await expect(t.contacts.modify(ORG, erased.body.id, { addTags: ['a'] })).rejects.toMatchObject({
      code: 'contact_erased',
    });
  });
});

describe('merge', () => {
  it('folds another contact in: identifiers, attributes (target wins), consents (most restrictive), events', async () => {
    const target = await t.call('POST', '/v1/contacts', {
      phones: ['+12025550100'],
      attributes: { plan: 'gold', address: { city: 'Paris' } },
      tags: ['a'],
    });
    const other = await t.call('POST', '/v1/contacts', {
      externalId: 'crm-7',
      emails: ['o@example.com'],
      attributes: { plan: 'silver', address: { city: 'Lyon', zip: '69001' }, vip: true },
      tags: ['b'],
      language: 'fr',
    });
    await t.call('POST', `/v1/contacts/${target.body.id}/consent`, {
      channel: 'sms',
      purpose: 'marketing',
      status: 'opted_in',
    });
    t.clock.advance(1000);
    await t.call('POST', `/v1/contacts/${other.body.id}/consent`, {
      channel: 'sms',
      purpose: 'marketing',
      status: 'opted_out',
    });
    await t.call('POST', `/v1/contacts/${other.body.id}/consent`, {
      channel: 'email',
      purpose: 'marketing',
      status: 'opted_in',
    });
    await t.call('POST', '/v1/events', { name: 'purchase', contact: { id: other.body.id } });

    const r = await t.call('POST', `/v1/contacts/${target.body.id}/merge`, { otherId: other.body.id });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({
      id: target.body.id,
      externalId: 'crm-7',
      phones: ['+12025550100'],
      emails: ['o@example.com'],
      attributes: { plan: 'gold', address: { city: 'Paris', zip: '69001' }, vip: true },
      tags: ['a', 'b'],
      language: 'fr',
    });
    const consent = await t.call('GET', `/v1/contacts/${target.body.id}/consent`);
    expect(consent.body.effective.sms.marketing).toBe('opted_out');
    expect(consent.body.effective.email.marketing).toBe('opted_in');
    expect(consent.body.history).toHaveLength(3);
    const events = await t.call('GET', `/v1/contacts/${target.body.id}/events`);
    expect(events.body.items.map((e: { name: string }) => e.name)).toEqual(['purchase']);
    // The other id still answers, with the merged contact; the list counts one person.
    expect((await t.call('GET', `/v1/contacts/${other.body.id}`)).body.id).toBe(target.body.id);
    expect((await t.call('GET', '/v1/contacts')).body.items).toHaveLength(1);
  });

  it('refuses merging a contact into itself, and unknown contacts', async () => {
    const c = await t.call('POST', '/v1/contacts', { phones: ['+12025550100'] });
    const self = await t.call('POST', `/v1/contacts/${c.body.id}/merge`, { otherId: c.body.id });
    expect(self.status).toBe(400);
    expect(self.body.error).toMatchObject({ code: 'merge_same_contact', field: 'otherId' });
    const unknown = await t.call('POST', `/v1/contacts/${c.body.id}/merge`, { otherId: 'ctc_nope' });
    expect(unknown.status).toBe(404);
    expect(unknown.body.error).toMatchObject({ code: 'contact_not_found', field: 'otherId' });
    const missing = await t.call('POST', `/v1/contacts/${c.body.id}/merge`, {});
    expect(missing.body.error).toMatchObject({ code: 'missing_field', field: 'otherId' });
  });
});

describe('export and erase', () => {
  it('exports everything held on the person', async () => {
    const c = await t.call('POST', '/v1/contacts', ada);
    await t.call('POST', `/v1/contacts/${c.body.id}/consent`, {
      channel: 'email',
      purpose: 'marketing',
      status: 'opted_in',
      evidence: { form: 'newsletter' },
    });
    await t.call('POST', '/v1/events', {
      name: 'signup',
      contact: { externalId: 'crm-ada' },
      properties: { via: 'web' },
    });
    const r = await t.call('GET', `/v1/contacts/${c.body.id}/export`);
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({
      contact: { id: c.body.id, emails: ['ada@example.com'], attributes: ada.attributes },
      consents: [{ channel: 'email', purpose: 'marketing', status: 'opted_in', source: 'api' }],
      consentHistory: [{ evidence: { form: 'newsletter' } }],
      events: [{ name: 'signup', properties: { via: 'web' } }],
      segments: [],
      messages: [],
    });
    expect(typeof r.body.exportedAt).toBe('string');
  });

  it('erases personal data, keeps an anonymous tombstone, and reports the addresses to redact', async () => {
    const c = await t.call('POST', '/v1/contacts', ada);
    await t.call('POST', `/v1/contacts/${c.body.id}/consent`, {
      channel: 'sms',
      purpose: 'marketing',
      status: 'opted_in',
      evidence: { ip: '192.0.2.1' },
    });
    await t.call('POST', '/v1/events', { name: 'purchase', contact: { id: c.body.id }, properties: { card: '4242' } });

    const r = await t.call('DELETE', `/v1/contacts/${c.body.id}`);
    expect(r.status).toBe(204);
    expect(t.erased).toEqual([{ contactId: c.body.id, addresses: ['ada@example.com', '+12025550100'] }]);
    const tomb = await t.call('GET', `/v1/contacts/${c.body.id}`);
    expect(tomb.body).toMatchObject({
      id: c.body.id,
      externalId: null,
      phones: [],
      emails: [],
      attributes: {},
      tags: [],
      persona: null,
      timeZone: null,
      language: null,
    });
    expect(tomb.body.erasedAt).not.toBeNull();
    const exported = await t.call('GET', `/v1/contacts/${c.body.id}/export`);
    expect(exported.body.events).toEqual([expect.objectContaining({ name: 'purchase', properties: null })]);
    expect(exported.body.consents).toEqual([]);
    expect(exported.body.consentHistory[0].evidence).toBeNull();
    // Gone from lists; its addresses are free; erasing again is harmless; changes are refused.
    expect((await t.call('GET', '/v1/contacts')).body.items).toEqual([]);
    expect((await t.call('POST', '/v1/contacts', { phones: ['+12025550100'], externalId: 'crm-ada' })).status).toBe(
      201,
    );
    expect((await t.call('DELETE', `/v1/contacts/${c.body.id}`)).status).toBe(204);
    const patch = await t.call('PATCH', `/v1/contacts/${c.body.id}`, { tags: ['x'] });
    expect(patch.status).toBe(409);
    expect(patch.body.error.code).toBe('contact_erased');
    await expect(t.contacts.resolveRecipient(ORG, 'sms', { contactId: c.body.id })).rejects.toMatchObject({
      code: 'contact_erased',
    });
    expect((await t.call('DELETE', '/v1/contacts/ctc_nope')).status).toBe(404);
  });
});

describe('resolving recipients', () => {
  it("picks the contact's address for the channel, or finds the contact of an address", async () => {
    const org = ORG;
    const c = await t.call('POST', '/v1/contacts', {
      phones: ['+12025550100', '+12025550101'],
      whatsappIds: ['442079460001'],
      emails: ['a@example.com'],
    });
    const id = c.body.id as string;
    expect((await t.contacts.resolveRecipient(org, 'sms', { contactId: id })).to).toBe('+12025550100');
    expect((await t.contacts.resolveRecipient(org, 'whatsapp', { contactId: id })).to).toBe('+442079460001');
    expect((await t.contacts.resolveRecipient(org, 'email', { contactId: id })).to).toBe('a@example.com');
    await expect(t.contacts.resolveRecipient(org, 'push', { contactId: id })).rejects.toMatchObject({
      code: 'contact_has_no_address',
      field: 'contactId',
    });
    expect(await t.contacts.resolveRecipient(org, 'sms', { to: '+12025550101' })).toEqual({
      contactId: id,
      to: '+12025550101',
      data: null,
    });
    expect(await t.contacts.resolveRecipient(org, 'whatsapp', { to: 'whatsapp:+442079460001' })).toMatchObject({
      contactId: id,
    });
    expect(await t.contacts.resolveRecipient(org, 'sms', { to: '+12025550199' })).toEqual({
      contactId: null,
      to: '+12025550199',
      data: null,
    });
    // The accept pipeline's resolver.
    expect(await t.contacts.resolve(org, id, 'voice', null, 'messages[2].contactId')).toBe('+12025550100');
    expect(await t.contacts.resolve(org, id, 'sms', '+12025550101', 'contactId')).toBe('+12025550101');
    await expect(t.contacts.resolve(org, id, 'sms', '+12025550199', 'messages[2].contactId')).rejects.toMatchObject({
      code: 'recipient_not_of_contact',
      field: 'messages[2].to',
    });
    await expect(t.contacts.resolve(org, 'ctc_nope', 'sms', null, 'contactId')).rejects.toMatchObject({
      code: 'contact_not_found',
      field: 'contactId',
    });
  });
});
