/**
 * Contacts, consent and journeys through the real API and the sandbox carrier (issue "Contacts, consent and
 * compliance, business events, and durable journeys"): a journey triggered by an event sends, waits, branches on
 * the sandbox's YES reply and falls back from WhatsApp to SMS; STOP / START / HELP from a handset change consent
 * and answer; quiet hours defer marketing; a frequency cap suppresses; messages can be addressed to a contact.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signSandboxPayload } from '../src/sandbox/signature.ts';
import { createSandboxSender, eventually, startTestServer, type TestServer } from './support/harness.ts';

const YES = '+12025550194';
const STOP = '+12025550193';
const UNDELIVERABLE = '+12025550192';

let s: TestServer;

beforeAll(async () => {
  s = await startTestServer();
  // Marketing may go out at any time unless a test sets a window (the default window, 08:00–21:00 in the
  // recipient's zone, would make these tests depend on the hour they run at).
  await ok('PUT', '/v1/compliance/settings', { quietHours: null });
});
afterAll(async () => {
  await s?.stop();
});

async function ok<T = any>(method: string, path: string, body?: unknown): Promise<T> {
  const r = await s.api(method, path, body);
  if (r.status >= 300) throw new Error(`${method} ${path} → ${r.status} ${JSON.stringify(r.body)}`);
  return r.body as T;
}

async function settledMessage(id: string): Promise<Record<string, any>> {
  return eventually(async () => {
    const m = await ok('GET', `/v1/messages/${id}`);
    return ['delivered', 'failed', 'undelivered', 'suppressed'].includes(m.status) ? m : undefined;
  });
}

async function publishJourney(name: string, definition: unknown): Promise<string> {
  const j = await ok('POST', '/v1/journeys', { name, definition });
  await ok('POST', `/v1/journeys/${j.id}/publish`);
  return j.id as string;
}

async function runOf(journeyId: string): Promise<Record<string, any>> {
  return eventually(async () => {
    const runs = await ok('GET', `/v1/journeys/${journeyId}/runs`);
    const run = (runs.items ?? runs.data ?? [])[0];
    return run && ['completed', 'failed', 'canceled'].includes(run.status) ? run : undefined;
  }, 30_000);
}

async function messagesOfRun(runId: string): Promise<Record<string, any>[]> {
  const page = await ok('GET', '/v1/messages?direction=outbound&limit=500');
  return (page.items as Record<string, any>[]).filter((m) => m.metadata?.journeyRunId === runId).reverse();
}

describe('journeys through the API', () => {
  it('an event starts a run that sends, waits, and branches on the YES the contact replies', async () => {
    await ok('POST', '/v1/contacts', { externalId: 'cust-yes', phones: [YES], attributes: { name: 'Ada' } });
    const journeyId = await publishJourney('confirm', {
      trigger: { type: 'event', event: 'appointment.booked' },
      entry: 'ask',
      reentry: { mode: 'always' },
      steps: {
        ask: { type: 'send', channel: 'sms', body: 'Reply YES to confirm {{ event.when }}', next: 'pause' },
        pause: { type: 'wait', duration: '100ms', next: 'answer' },
        answer: { type: 'wait_for', reply: { match: ['yes'] }, timeout: '20s', next: 'thanks', onTimeout: 'late' },
        thanks: { type: 'send', channel: 'sms', body: 'Confirmed, see you', next: 'done' },
        late: { type: 'send', channel: 'sms', body: 'No answer', next: 'done' },
        done: { type: 'exit' },
      },
    });
    const ev = await s.api('POST', '/v1/events', {
      name: 'appointment.booked',
      contact: { externalId: 'cust-yes' },
      properties: { when: 'Tuesday 10:00' },
      occurredAt: new Date().toISOString(),
    });
    expect(ev.status, JSON.stringify(ev.body)).toBe(201);
    const run = await runOf(journeyId);
    expect(run.status).toBe('completed');
    const sent = await messagesOfRun(run.id);
    expect(sent.map((m) => m.body)).toEqual(['Reply YES to confirm Tuesday 10:00', 'Confirmed, see you']);
  });

  it('falls back from WhatsApp to SMS when WhatsApp is not delivered', async () => {
    const c = await ok('POST', '/v1/contacts', { whatsappIds: [UNDELIVERABLE], phones: ['+12025550155'] });
    const journeyId = await publishJourney('bill', {
      trigger: { type: 'api' },
      entry: 'notify',
      reentry: { mode: 'always' },
      steps: {
        notify: {
          type: 'send',
          fallback: [
            { channel: 'whatsapp', within: '10m' },
            { channel: 'sms', within: '10m' },
          ],
          body: 'Your bill is ready',
          next: 'ok',
          onFailure: 'ko',
        },
        ok: { type: 'exit' },
        ko: { type: 'exit' },
      },
    });
    await ok('POST', `/v1/journeys/${journeyId}/start`, { contactId: c.id });
    const run = await runOf(journeyId);
    expect(run.status).toBe('completed');
    const sent = await messagesOfRun(run.id);
    expect(sent.map((m) => [m.channel, m.to, m.status])).toEqual([
      ['whatsapp', UNDELIVERABLE, 'undelivered'],
      ['sms', '+12025550155', 'delivered'],
    ]);
  });
});

describe('consent and compliance', () => {
  it('STOP from the handset opts the contact out: a confirmation goes back, later sends are suppressed; an API opt-in lets them through', async () => {
    const first = await ok('POST', '/v1/messages', { to: STOP, channel: 'sms', body: 'Hello' });
    expect((await settledMessage(first.id)).status).toBe('delivered');
    // The sandbox answers STOP from this number; the product records the opt-out and confirms it.
    const confirmation = await eventually(async () => {
      const page = await ok('GET', '/v1/messages?direction=outbound&limit=100');
      return (page.items as Record<string, any>[]).find((m) => m.to === STOP && m.id !== first.id);
    });
    expect(confirmation.body.length).toBeGreaterThan(0);
    const contacts = await ok('GET', `/v1/contacts?phone=${encodeURIComponent(STOP)}`);
    const contact = (contacts.items ?? contacts.data)[0];
    // The sandbox handset answers STOP to the confirmation too: recorded, not answered again (no endless exchange).
    await eventually(async () => {
      const v = await ok('GET', `/v1/contacts/${contact.id}/consent`);
      return v.history.filter((h: { source: string }) => h.source === 'inbound_keyword').length >= 2;
    });
    const blocked = await ok('POST', '/v1/messages', { to: STOP, channel: 'sms', body: 'Promo', purpose: 'marketing' });
    const m = await settledMessage(blocked.id);
    expect(m.status).toBe('suppressed');
    expect(m.error.code).toBe('opted_out');
    await ok('POST', `/v1/contacts/${contact.id}/consent`, {
      channel: 'sms',
      purpose: 'marketing',
      status: 'opted_in',
      source: 'api',
      evidence: { note: 'customer called to opt back in' },
    });
    const again = await ok('POST', '/v1/messages', {
      to: STOP,
      channel: 'sms',
      body: 'Welcome back',
      purpose: 'marketing',
    });
    expect((await settledMessage(again.id)).status).toBe('delivered');
    // Its STOP answer opts out again and is confirmed once; the confirmation's STOP is not answered.
    await new Promise((r) => setTimeout(r, 500));
    const page = await ok('GET', '/v1/messages?direction=outbound&limit=200');
    const toStop = (page.items as { to: string }[]).filter((x) => x.to === STOP);
    expect(toStop.length).toBeLessThanOrEqual(5);
  });

  it('answers HELP with the help text and changes no consent', async () => {
    await ok('PUT', '/v1/compliance/settings', { helpText: 'Acme: reply STOP to opt out. Help at acme.example' });
    const sender = await createSandboxSender(s, { priority: 50 });
    const handset = '+12025550188';
    // A handset's HELP, as the sandbox carrier posts an inbound message (signed with the sender's token).
    const payload = JSON.stringify([
      {
        type: 'message.inbound',
        eventId: `evt_help_${Date.now()}`,
        messageId: `sbx_help_${Date.now()}`,
        channel: 'sms',
        from: handset,
        to: '+12025550180',
        body: '  help ',
        timestamp: new Date().toISOString(),
      },
    ]);
    const res = await fetch(`${s.url}/webhooks/sandbox/${sender.id}`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'x-omni-sandbox-signature': signSandboxPayload(sender.token, payload, Date.now() / 1000),
      },
      body: payload,
    });
    expect(res.status).toBe(200);
    const reply = await eventually(async () => {
      const page = await ok('GET', '/v1/messages?direction=outbound&limit=100');
      return (page.items as { to: string; body: string }[]).find((m) => m.to === handset);
    });
    expect(reply.body).toBe('Acme: reply STOP to opt out. Help at acme.example');
    const contacts = await ok('GET', `/v1/contacts?phone=${encodeURIComponent(handset)}`);
    expect((contacts.items ?? contacts.data).length).toBe(0);
    await ok('DELETE', `/v1/senders/${sender.id}`);
  });

  it('defers marketing during quiet hours instead of dropping it, and lets transactional through', async () => {
    const now = new Date();
    // The marketing window (when sending is allowed) opens in an hour and closed an hour ago: now is quiet.
    const hh = (d: Date) => `${String(d.getUTCHours()).padStart(2, '0')}:${String(d.getUTCMinutes()).padStart(2, '0')}`;
    const start = new Date(now.getTime() + 60 * 60_000);
    const end = new Date(now.getTime() - 60 * 60_000);
    await ok('PUT', '/v1/compliance/settings', {
      quietHours: { start: hh(start), end: hh(end) },
      defaultTimeZone: 'UTC',
    });
    try {
      const c = await ok('POST', '/v1/contacts', { phones: ['+12025550166'], timeZone: 'UTC' });
      const promo = await ok('POST', '/v1/messages', {
        contactId: c.id,
        channel: 'sms',
        body: 'Sale!',
        purpose: 'marketing',
      });
      const held = await eventually(async () => {
        const m = await ok('GET', `/v1/messages/${promo.id}`);
        return m.status === 'scheduled' && m.history.some((h: { status: string }) => h.status === 'sending')
          ? m
          : undefined;
      });
      expect(new Date(held.sendAt).getTime()).toBeGreaterThan(now.getTime() + 30 * 60_000);
      expect(held.attempts).toBe(0);
      const otp = await ok('POST', '/v1/messages', { contactId: c.id, channel: 'sms', body: 'Code 1234' });
      expect((await settledMessage(otp.id)).status).toBe('delivered');
    } finally {
      await ok('PUT', '/v1/compliance/settings', { quietHours: null });
    }
  });

  it('a frequency cap suppresses the marketing message over the limit', async () => {
    await ok('PUT', '/v1/compliance/settings', {
      frequencyCaps: [{ channel: 'sms', purpose: 'marketing', max: 1, windowHours: 24, action: 'suppress' }],
    });
    try {
      const c = await ok('POST', '/v1/contacts', { phones: ['+12025550177'] });
      const one = await ok('POST', '/v1/messages', {
        contactId: c.id,
        channel: 'sms',
        body: 'Deal 1',
        purpose: 'marketing',
      });
      expect((await settledMessage(one.id)).status).toBe('delivered');
      const two = await ok('POST', '/v1/messages', {
        contactId: c.id,
        channel: 'sms',
        body: 'Deal 2',
        purpose: 'marketing',
      });
      const m = await settledMessage(two.id);
      expect(m.status).toBe('suppressed');
      expect(m.error.code).toBe('frequency_cap');
    } finally {
      await ok('PUT', '/v1/compliance/settings', { frequencyCaps: [] });
    }
  });
});
