/**
 * Compliance over a real store: STOP/STOPALL/START/HELP from inbound messages (per channel and sender), the send
 * decision (opt-outs, quiet hours in the recipient's zone, frequency caps), the pipeline's SendPolicy, and the
 * settings API.
 */
import { DateTime } from 'luxon';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DEFAULT_COMPLIANCE_SETTINGS } from '../../src/domain/compliance.ts';
import type { MessageRecord } from '../../src/ports/store.ts';
import type { SendRequest } from '../../src/services/compliance.ts';
import { type ContactsApp, contactsApp, NOON_NY, ORG } from './contacts-app.ts';

let t: ContactsApp;
beforeEach(async () => {
  t = await contactsApp();
});
afterEach(async () => {
  await t.close();
});

const ME = '+12025550100'; // the person
const OUR_A = '+12025550900'; // our numbers
const OUR_B = '+12025550901';
const HOUR = 3_600_000;

function send(over: Partial<SendRequest> = {}): SendRequest {
  return { orgId: ORG, channel: 'sms', to: ME, from: OUR_A, purpose: 'transactional', at: t.clock.now(), ...over };
}

const inbound = (body: string, over: Partial<{ channel: 'sms' | 'whatsapp' | 'mms'; to: string; from: string }> = {}) =>
  t.compliance.handleInbound({
    orgId: ORG,
    channel: over.channel ?? 'sms',
    from: over.from ?? ME,
    to: over.to ?? OUR_A,
    body,
    at: t.clock.now(),
  });

describe('inbound keywords', () => {
  it('STOP opts the sender out on that number only, creating the contact, with the evidence audited', async () => {
    const r = await inbound('  stop ');
    expect(r).toMatchObject({
      action: 'opt_out',
      keyword: 'STOP',
      scope: 'sender',
      replyBody: DEFAULT_COMPLIANCE_SETTINGS.optOutText,
    });
    const contactId = (r as { contactId: string }).contactId;
    expect((await t.contacts.get(ORG, contactId)).identifiers).toEqual([{ kind: 'phone', value: ME, data: null }]);

    expect(await t.compliance.checkSend(send())).toMatchObject({ kind: 'suppress', code: 'opted_out' });
    expect(await t.compliance.checkSend(send({ channel: 'mms' }))).toMatchObject({ kind: 'suppress' });
    expect(await t.compliance.checkSend(send({ from: OUR_B }))).toEqual({ kind: 'allow' });
    expect(await t.compliance.checkSend(send({ channel: 'whatsapp' }))).toEqual({ kind: 'allow' });
    // Not knowing the sender yet, it might be OUR_A: suppressed.
    expect(await t.compliance.checkSend(send({ from: null }))).toMatchObject({ kind: 'suppress' });
    // Addressed by contact id, the same.
    expect(await t.compliance.checkSend(send({ contactId, to: ME }))).toMatchObject({ kind: 'suppress' });

    const view = await t.consent.view(ORG, contactId);
    expect(view.history).toEqual([
      expect.objectContaining({
        channel: 'sms',
        sender: OUR_A,
        status: 'opted_out',
        source: 'inbound_keyword',
        evidence: { keyword: 'STOP', body: '  stop ', channel: 'sms', from: ME, to: OUR_A },
      }),
      expect.objectContaining({ channel: 'mms', sender: OUR_A, status: 'opted_out' }),
    ]);
  });

  it('START on that number opts back in', async () => {
    await inbound('STOP');
    t.clock.advance(1000);
    expect(await inbound('Start')).toMatchObject({
      action: 'opt_in',
      replyBody: DEFAULT_COMPLIANCE_SETTINGS.optInText,
    });
    expect(await t.compliance.checkSend(send())).toEqual({ kind: 'allow' });
  });

  it('STOPALL blocks every sender and channel; a later START reopens only its own number', async () => {
    await t.call('PUT', '/v1/contacts', { phones: [ME], emails: ['me@example.com'] });
    expect(await inbound('stop all')).toMatchObject({ action: 'opt_out', keyword: 'STOPALL', scope: 'all' });
    for (const s of [
      send(),
      send({ from: OUR_B }),
      send({ channel: 'whatsapp' }),
      send({ channel: 'email', to: 'me@example.com', from: null }),
    ]) {
      expect(await t.compliance.checkSend(s)).toMatchObject({ kind: 'suppress', code: 'opted_out' });
    }
    t.clock.advance(1000);
    await inbound('UNSTOP', { to: OUR_B });
    expect(await t.compliance.checkSend(send({ from: OUR_B }))).toEqual({ kind: 'allow' });
    expect(await t.compliance.checkSend(send({ from: OUR_A }))).toMatchObject({ kind: 'suppress' });
  });

  it('WhatsApp keywords apply to WhatsApp from that number', async () => {
    await inbound('STOP', { channel: 'whatsapp', from: 'whatsapp:+12025550100', to: `whatsapp:${OUR_A}` });
    expect(await t.compliance.checkSend(send({ channel: 'whatsapp' }))).toMatchObject({ kind: 'suppress' });
    expect(await t.compliance.checkSend(send({ channel: 'whatsapp', from: `whatsapp:${OUR_A}` }))).toMatchObject({
      kind: 'suppress',
    });
    expect(await t.compliance.checkSend(send())).toEqual({ kind: 'allow' });
  });

  it("HELP answers the tenant's help text, configurable per organization", async () => {
    expect(await inbound('help')).toEqual({
      action: 'help',
      keyword: 'HELP',
      replyBody: DEFAULT_COMPLIANCE_SETTINGS.helpText,
    });
    await t.call('PUT', '/v1/compliance/settings', { helpText: 'Acme Health: call 555-0100. Reply STOP to opt out.' });
    expect(await inbound(' Info ')).toMatchObject({ replyBody: 'Acme Health: call 555-0100. Reply STOP to opt out.' });
  });

  it('leaves other messages alone, and keywords from an address no message can go to', async () => {
    expect(await inbound('STOP', { from: '12345' })).toEqual({ action: 'none' });
    expect(await inbound('Please stop texting me')).toEqual({ action: 'none' });
    expect(await inbound('YES')).toEqual({ action: 'none' });
    expect(await t.compliance.checkSend(send())).toEqual({ kind: 'allow' });
  });
});

describe('quiet hours', () => {
  it("defers marketing outside 08:00–21:00 in the recipient's zone to the next allowed moment", async () => {
    t.clock.set(DateTime.fromISO('2026-06-10T22:30', { zone: 'America/New_York' }).toMillis());
    const d = await t.compliance.checkSend(send({ purpose: 'marketing' }));
    expect(d).toEqual({
      kind: 'defer',
      until: DateTime.fromISO('2026-06-11T08:00', { zone: 'America/New_York' }).toMillis(),
      reason: 'quiet_hours',
    });
    // Transactional messages are not held.
    expect(await t.compliance.checkSend(send())).toEqual({ kind: 'allow' });
    // A Los Angeles number is at 19:30: allowed.
    expect(await t.compliance.checkSend(send({ purpose: 'marketing', to: '+14155550100' }))).toEqual({ kind: 'allow' });
  });

  it("uses the contact's own zone over the number's, and the default zone for email", async () => {
    await t.call('POST', '/v1/contacts', { phones: [ME], emails: ['me@example.com'], timeZone: 'Asia/Tokyo' });
    // 12:00 in New York is 01:00 in Tokyo.
    const d = await t.compliance.checkSend(send({ purpose: 'marketing' }));
    expect(d).toMatchObject({ kind: 'defer', reason: 'quiet_hours' });
    expect(DateTime.fromMillis((d as { until: number }).until, { zone: 'Asia/Tokyo' }).toFormat('HH:mm')).toBe('08:00');
    await t.call('PUT', '/v1/compliance/settings', {
      defaultTimeZone: 'Asia/Kolkata',
      quietHours: { start: '09:00', end: '17:00' },
    });
    // An unknown email recipient: Kolkata, where it is 21:30.
    expect(
      await t.compliance.checkSend(send({ channel: 'email', to: 'x@example.com', from: null, purpose: 'marketing' })),
    ).toMatchObject({
      kind: 'defer',
    });
    await t.call('PUT', '/v1/compliance/settings', { quietHours: null });
    expect(await t.compliance.checkSend(send({ purpose: 'marketing' }))).toEqual({ kind: 'allow' });
  });
});

describe('frequency caps', () => {
  it('defers to when the rolling window frees a slot, counting what was sent', async () => {
    await t.call('PUT', '/v1/compliance/settings', {
      frequencyCaps: [{ channel: 'sms', purpose: 'marketing', max: 2, windowHours: 24, action: 'defer' }],
    });
    const start = t.clock.now();
    await t.compliance.recordSend(send({ purpose: 'marketing', at: start - 3 * HOUR }));
    expect(await t.compliance.checkSend(send({ purpose: 'marketing' }))).toEqual({ kind: 'allow' });
    await t.compliance.recordSend(send({ purpose: 'marketing', at: start - HOUR }));
    // Two in the last 24 h: the older frees its slot 21 h from now, which is 09:00 the next day in New York.
    expect(await t.compliance.checkSend(send({ purpose: 'marketing' }))).toEqual({
      kind: 'defer',
      until: start + 21 * HOUR,
      reason: 'frequency_cap',
    });
    // Other channels, purposes and recipients are not capped.
    expect(await t.compliance.checkSend(send({ purpose: 'marketing', channel: 'whatsapp' }))).toEqual({
      kind: 'allow',
    });
    expect(await t.compliance.checkSend(send())).toEqual({ kind: 'allow' });
    expect(await t.compliance.checkSend(send({ purpose: 'marketing', to: '+12025550155' }))).toEqual({ kind: 'allow' });
  });

  it('suppresses instead when the cap says so, and counts per contact across its addresses', async () => {
    await t.call('POST', '/v1/contacts', { phones: [ME, '+12025550102'] });
    await t.call('PUT', '/v1/compliance/settings', {
      frequencyCaps: [{ channel: 'sms', purpose: 'marketing', max: 1, windowHours: 1, action: 'suppress' }],
    });
    await t.compliance.recordSend(send({ purpose: 'marketing', to: '+12025550102' }));
    expect(await t.compliance.checkSend(send({ purpose: 'marketing' }))).toMatchObject({
      kind: 'suppress',
      code: 'frequency_cap',
    });
    t.clock.advance(HOUR);
    expect(await t.compliance.checkSend(send({ purpose: 'marketing' }))).toEqual({ kind: 'allow' });
  });

  it('accounts for the messages of one batch as it decides them', async () => {
    await t.call('PUT', '/v1/compliance/settings', {
      frequencyCaps: [{ channel: 'sms', purpose: 'marketing', max: 2, windowHours: 24, action: 'suppress' }],
    });
    const d = await t.compliance.checkSends([1, 2, 3].map(() => send({ purpose: 'marketing' })));
    expect(d.map((x) => x.kind)).toEqual(['allow', 'allow', 'suppress']);
  });
});

describe('the pipeline SendPolicy', () => {
  function message(over: Partial<MessageRecord>): MessageRecord {
    return {
      id: `msg_${Math.random().toString(36).slice(2)}`,
      orgId: ORG,
      direction: 'outbound',
      channel: 'sms',
      to: ME,
      from: null,
      status: 'sending',
      body: 'hi',
      subject: null,
      templateId: null,
      metadata: null,
      senderId: null,
      provider: null,
      providerMessageId: null,
      attempts: 1,
      sendAt: null,
      priority: 1,
      error: null,
      cost: null,
      options: null,
      contactId: null,
      purpose: null,
      segments: null,
      encoding: null,
      createdAt: NOON_NY,
      updatedAt: NOON_NY,
      ...over,
    };
  }

  it('decides a claimed batch (allowed ones are left out of the map) and counts what was sent', async () => {
    await t.call('PUT', '/v1/compliance/settings', {
      frequencyCaps: [{ channel: '*', purpose: 'marketing', max: 1, windowHours: 24, action: 'defer' }],
    });
    await inbound('STOP', { from: '+12025550111' });
    const contact = await t.call('POST', '/v1/contacts', { phones: [ME], emails: ['me@example.com'] });
    const ok = message({ purpose: 'marketing', contactId: contact.body.id });
    const stopped = message({ to: '+12025550111' });
    const plain = message({ to: '+12025550122' });
    const decisions = await t.compliance.decide([ok, stopped, plain], t.clock.now());
    expect([...decisions.keys()]).toEqual([stopped.id]);
    expect(decisions.get(stopped.id)).toMatchObject({ kind: 'suppress', code: 'opted_out' });
    await t.compliance.sent([ok], t.clock.now());
    // Counted for the contact: an email to the same person is now capped (the cap spans channels).
    const next = message({ channel: 'email', to: 'me@example.com', purpose: 'marketing' });
    const later = await t.compliance.decide([next], t.clock.now() + HOUR);
    expect(later.get(next.id)).toEqual({ kind: 'defer', until: t.clock.now() + 24 * HOUR, reason: 'frequency_cap' });
  });
});

describe('settings API', () => {
  it('answers the defaults, changes only what is given, and keeps organizations apart', async () => {
    expect((await t.call('GET', '/v1/compliance/settings')).body).toEqual(DEFAULT_COMPLIANCE_SETTINGS);
    const caps = [{ channel: 'sms', purpose: 'marketing', max: 3, windowHours: 168, action: 'defer' }];
    const r = await t.call('PUT', '/v1/compliance/settings', {
      quietHours: { start: '22:00', end: '06:00' },
      frequencyCaps: caps,
    });
    expect(r.status).toBe(200);
    expect(r.body).toEqual({
      ...DEFAULT_COMPLIANCE_SETTINGS,
      quietHours: { start: '22:00', end: '06:00' },
      frequencyCaps: caps,
    });
    expect((await t.call('PUT', '/v1/compliance/settings', { helpText: 'h' })).body.frequencyCaps).toEqual(caps);
    expect((await t.call('GET', '/v1/compliance/settings', undefined, { 'x-org': 'org_other' })).body).toEqual(
      DEFAULT_COMPLIANCE_SETTINGS,
    );
  });

  it.each([
    [{ quietHours: { start: '8:00', end: '21:00' } }, 'invalid_value', 'quietHours.start'],
    [{ quietHours: { start: '08:00', end: '25:00' } }, 'invalid_value', 'quietHours.end'],
    [{ quietHours: { start: '08:00', end: '08:00' } }, 'invalid_value', 'quietHours.end'],
    [{ quietHours: { start: '08:00' } }, 'missing_field', 'quietHours.end'],
    [{ defaultTimeZone: 'Nowhere/Land' }, 'invalid_time_zone', 'defaultTimeZone'],
    [{ helpText: '' }, 'invalid_value', 'helpText'],
    [
      { frequencyCaps: [{ channel: 'fax', purpose: 'marketing', max: 1, windowHours: 1, action: 'defer' }] },
      'unknown_channel',
      'frequencyCaps[0].channel',
    ],
    [
      { frequencyCaps: [{ channel: 'sms', purpose: 'marketing', max: 0, windowHours: 1, action: 'defer' }] },
      'invalid_value',
      'frequencyCaps[0].max',
    ],
    [
      { frequencyCaps: [{ channel: 'sms', purpose: 'marketing', max: 1, windowHours: 1, action: 'drop' }] },
      'invalid_value',
      'frequencyCaps[0].action',
    ],
    [
      {
        frequencyCaps: [
          { channel: 'sms', purpose: 'marketing', max: 1, windowHours: 1, action: 'defer' },
          { channel: 'sms', purpose: 'marketing', max: 2, windowHours: 1, action: 'suppress' },
        ],
      },
      'duplicate_cap',
      'frequencyCaps[1]',
    ],
    [{ marketingRequiresOptIn: 'yes' }, 'invalid_type', 'marketingRequiresOptIn'],
  ])('refuses %j with %s at %s', async (body, code, field) => {
    const r = await t.call('PUT', '/v1/compliance/settings', body);
    expect(r.status).toBe(400);
    expect(r.body.error).toMatchObject({ code, field });
  });
});

describe('consent API', () => {
  it('records statements with their source and shows the effect per channel and purpose', async () => {
    const c = await t.call('POST', '/v1/contacts', { phones: [ME] });
    const r = await t.call('POST', `/v1/contacts/${c.body.id}/consent`, {
      channel: 'sms',
      purpose: 'marketing',
      status: 'opted_in',
      source: 'import',
      evidence: { file: 'list.csv', row: 12 },
    });
    expect(r.status).toBe(200);
    expect(r.body.consents).toEqual([
      {
        channel: 'sms',
        purpose: 'marketing',
        sender: '*',
        status: 'opted_in',
        source: 'import',
        updatedAt: new Date(NOON_NY).toISOString(),
      },
    ]);
    expect(r.body.effective.sms).toEqual({ transactional: 'none', marketing: 'opted_in' });
    expect(r.body.history[0]).toMatchObject({ source: 'import', evidence: { file: 'list.csv', row: 12 } });
    await t.call('PUT', '/v1/compliance/settings', { marketingRequiresOptIn: true });
    expect(await t.compliance.checkSend(send({ purpose: 'marketing' }))).toEqual({ kind: 'allow' });
    expect(await t.compliance.checkSend(send({ purpose: 'marketing', channel: 'voice' }))).toMatchObject({
      kind: 'suppress',
      code: 'consent_missing',
    });
  });

  it.each([
    [{ channel: 'sms', purpose: 'marketing' }, 'missing_field', 'status'],
    [{ channel: 'pigeon', purpose: 'marketing', status: 'opted_in' }, 'unknown_channel', 'channel'],
    [{ channel: 'sms', purpose: 'spam', status: 'opted_in' }, 'invalid_value', 'purpose'],
    [
      { channel: 'sms', purpose: 'marketing', status: 'opted_in', source: 'inbound_keyword' },
      'invalid_value',
      'source',
    ],
  ])('refuses %j with %s at %s', async (body, code, field) => {
    const c = await t.call('POST', '/v1/contacts', { phones: [ME] });
    const r = await t.call('POST', `/v1/contacts/${c.body.id}/consent`, body);
    expect(r.status).toBe(400);
    expect(r.body.error).toMatchObject({ code, field });
  });
});
