/**
 * Real carriers through the whole product: senders created over the API (credentials sealed, never returned), a
 * message sent to Twilio's emulator whose signed callbacks come back through `/webhooks` and end it delivered,
 * inbound replies, the WhatsApp GET handshake, and routing: failover to the next sender, a circuit that stops
 * calling a failing carrier, sticky senders per recipient, and country match.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSandboxSender, eventually, startTestServer, type TestServer } from '../support/harness.ts';
import { TWILIO_NUMBERS, TwilioEmulator } from './emulators/twilio-emulator.ts';

let server: TestServer;
let twilio: TwilioEmulator;

beforeAll(async () => {
  server = await startTestServer();
  twilio = await TwilioEmulator.start();
});
afterAll(async () => {
  await server?.stop();
  await twilio?.close();
});

async function message(id: string) {
  return (await server.api('GET', `/v1/messages/${id}`)).body;
}

async function send(to: string, body = 'Hello from routing', channel = 'sms'): Promise<string> {
  const r = await server.api('POST', '/v1/messages', { to, channel, body });
  expect(r.status).toBe(202);
  return r.body.id as string;
}

async function settled(id: string): Promise<Record<string, any>> {
  return eventually(async () => {
    const m = await message(id);
    return ['delivered', 'failed', 'undelivered'].includes(m.status) ? m : undefined;
  });
}

describe('senders API', () => {
  it('creates a Twilio sender: secrets sealed at rest, never returned, webhook URL given', async () => {
    const r = await server.api('POST', '/v1/senders', {
      name: 'Twilio main',
      provider: 'twilio',
      channels: ['sms'],
      config: twilio.senderConfig,
      from: TWILIO_NUMBERS.from,
      priority: 50,
      costPerMessage: 0.0079,
      rateLimitPerSecond: 100,
    });
    expect(r.status).toBe(201);
    expect(r.body).toMatchObject({
      provider: 'twilio',
      channels: ['sms'],
      secrets: ['authToken'],
      webhookUrl: `${server.url}/webhooks/twilio/${r.body.id}`,
      enabled: true,
    });
    expect(JSON.stringify(r.body)).not.toContain(twilio.authToken);
    const listed = await server.api('GET', '/v1/senders');
    expect(JSON.stringify(listed.body)).not.toContain(twilio.authToken);
    expect(listed.body.data.map((s: { id: string }) => s.id)).toContain(r.body.id);
    const db = new Database(join(server.dataDir, 'omni.db'), { readonly: true });
    try {
      const row = db.prepare('SELECT * FROM senders WHERE id = ?').get(r.body.id) as Record<string, string>;
      expect(JSON.stringify(row)).not.toContain(twilio.authToken);
      expect(row.secrets).toMatch(/^v1\.[0-9a-f]{8}\./);
    } finally {
      db.close();
    }
    await server.api('DELETE', `/v1/senders/${r.body.id}`);
  });

  it('answers precise errors for an unknown provider, a channel it lacks and a bad config', async () => {
    const base = { name: 'x', provider: 'twilio', channels: ['sms'], config: twilio.senderConfig };
    const cases: [Record<string, unknown>, string, string][] = [
      [{ ...base, provider: 'carrier-pigeon' }, 'unknown_provider', 'provider'],
      [{ ...base, channels: ['email'] }, 'channel_not_supported', 'channels[0]'],
      [{ ...base, config: { authToken: 'x' } }, 'missing_field', 'config.accountSid'],
      [{ ...base, config: { ...twilio.senderConfig, colour: 'red' } }, 'unknown_field', 'config.colour'],
      [{ ...base, rateLimitPerSecond: 0 }, 'invalid_value', 'rateLimitPerSecond'],
    ];
    for (const [body, code, field] of cases) {
      const r = await server.api('POST', '/v1/senders', body);
      expect(r.status, JSON.stringify(r.body)).toBe(400);
      expect(r.body.error).toMatchObject({ code, field });
    }
    expect((await server.api('GET', '/v1/senders/snd_nope')).status).toBe(404);
    expect((await server.api('PATCH', '/v1/senders/snd_nope', { priority: 1 })).status).toBe(404);
  });

  it('rotates a secret, and a removed sender is gone from the API', async () => {
    const created = await createSandboxSender(server, { priority: 900 });
    const r = await server.api('PATCH', `/v1/senders/${created.id}`, { config: { token: 'rotated-token-123' } });
    expect(r.status).toBe(200);
    expect(r.body.secrets).toEqual(['token']);
    expect(JSON.stringify(r.body)).not.toContain('rotated-token-123');
    expect((await server.api('DELETE', `/v1/senders/${created.id}`)).status).toBe(204);
    expect((await server.api('GET', `/v1/senders/${created.id}`)).status).toBe(404);
  });

  it('lists the providers with their config schemas', async () => {
    const r = await server.api('GET', '/v1/providers');
    const ids = r.body.data.map((p: { id: string }) => p.id);
    expect(ids).toEqual(
      expect.arrayContaining([
        'sandbox',
        'twilio',
        'bandwidth',
        'messagebird',
        'inteliquent',
        'whatsapp',
        'smtp',
        'webpush',
        'lob',
      ]),
    );
    const tw = r.body.data.find((p: { id: string }) => p.id === 'twilio');
    expect(tw.secretFields).toContain('authToken');
    expect(tw.configSchema.properties.accountSid).toBeDefined();
  });
});

describe('through a real carrier protocol', () => {
  let twilioSender: string;

  beforeAll(async () => {
    const r = await server.api('POST', '/v1/senders', {
      name: 'Twilio',
      provider: 'twilio',
      channels: ['sms'],
      config: twilio.senderConfig,
      from: TWILIO_NUMBERS.from,
      priority: 1,
      costPerMessage: 0.0079,
    });
    twilioSender = r.body.id;
    twilio.inboundUrl = r.body.webhookUrl;
  });
  afterAll(async () => {
    await server.api('DELETE', `/v1/senders/${twilioSender}`);
  });

  it('sends over Twilio, takes its signed callbacks, and records segments and cost', async () => {
    const id = await send('+14155550123', `Your order ${'is on its way '.repeat(12)}`);
    const m = await eventually(async () => {
      const x = await message(id);
      return x.status === 'delivered' ? x : undefined;
    });
    expect(m).toMatchObject({ carrier: 'twilio', senderId: twilioSender, segments: 2, encoding: 'GSM-7' });
    expect(m.cost).toBeCloseTo(0.0158, 6);
    expect(m.providerMessageId).toMatch(/^SM[0-9a-f]{32}$/);
    expect(twilio.violations).toEqual([]);
  });

  it('records an undelivered message with the carrier error code', async () => {
    const m = await settled(await send(TWILIO_NUMBERS.undelivered));
    expect(m.status).toBe('undelivered');
    expect(m.error.code).toContain('30003');
  });

  it('stores an inbound reply and answers Twilio with empty TwiML', async () => {
    await twilio.sendInbound({ from: '+14155550124', to: TWILIO_NUMBERS.from, body: 'Thanks!' });
    const inbound = await eventually(async () => {
      const r = await server.api('GET', '/v1/messages?direction=inbound&limit=50');
      return r.body.items.find((x: { body: string }) => x.body === 'Thanks!');
    });
    expect(inbound).toMatchObject({ from: '+14155550124', channel: 'sms' });
    expect(twilio.callbackFailures).toEqual([]);
  });

  it('refuses a forged callback with 401 and stores nothing', async () => {
    const body = new URLSearchParams({ MessageSid: 'SMforged', MessageStatus: 'delivered' }).toString();
    const res = await fetch(`${server.url}/webhooks/twilio/${twilioSender}`, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        'x-twilio-signature': 'AAAAAAAAAAAAAAAAAAAAAAAAAAA=',
      },
      body,
    });
    expect(res.status).toBe(401);
    expect((await res.json()).error.code).toBe('webhook_signature_invalid');
  });
});

describe('WhatsApp webhook handshake', () => {
  it('echoes hub.challenge for the right verify token and refuses a wrong one', async () => {
    const r = await server.api('POST', '/v1/senders', {
      name: 'WhatsApp',
      provider: 'whatsapp',
      channels: ['whatsapp'],
      config: {
        phoneNumberId: '106540352242922',
        accessToken: 'EAAG-test-token',
        appSecret: 'app-secret-for-tests',
        verifyToken: 'meatyhamhock',
      },
      from: '+15550783881',
      priority: 900,
    });
    expect(r.status, JSON.stringify(r.body)).toBe(201);
    const url = `${r.body.webhookUrl}?hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=`;
    const ok = await fetch(`${url}meatyhamhock`);
    expect(ok.status).toBe(200);
    expect(await ok.text()).toBe('1158201444');
    const bad = await fetch(`${url}wrong`);
    expect(bad.status).toBe(403);
    await server.api('DELETE', `/v1/senders/${r.body.id}`);
  });
});

describe('routing', () => {
  let failing: Server;
  let failingUrl: string;
  let failingRequests = 0;

  beforeAll(async () => {
    failing = createServer((req, res) => {
      failingRequests++;
      req.resume();
      res.writeHead(503, { 'content-type': 'application/json' }).end('{"code":20503,"message":"Service unavailable"}');
    });
    await new Promise<void>((r) => failing.listen(0, '127.0.0.1', r));
    failingUrl = `http://127.0.0.1:${(failing.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    failing.closeAllConnections();
    await new Promise((r) => failing.close(r));
  });

  it('fails over to the next sender in the same attempt, then stops calling the failing one (circuit open)', async () => {
    const primary = await server.api('POST', '/v1/senders', {
      name: 'Twilio down',
      provider: 'twilio',
      channels: ['sms'],
      config: { ...twilio.senderConfig, baseUrl: failingUrl },
      from: TWILIO_NUMBERS.from,
      priority: -10,
    });
    const backup = await createSandboxSender(server, { priority: -5, channels: ['sms'] });
    try {
      for (let i = 0; i < 8; i++) {
        const m = await settled(await send(`+1415555020${i}`));
        expect(m).toMatchObject({ status: 'delivered', senderId: backup.id, attempts: 1 });
      }
      // Five failed batches open the circuit (default threshold); later messages skip the failing carrier.
      expect(failingRequests).toBe(5);
    } finally {
      await server.api('DELETE', `/v1/senders/${primary.body.id}`);
      await server.api('DELETE', `/v1/senders/${backup.id}`);
    }
  });

  it('keeps a recipient on the sender that served it, and serves a new recipient by priority', async () => {
    const a = await createSandboxSender(server, { priority: -20, channels: ['sms'] });
    const b = await createSandboxSender(server, { priority: -19, channels: ['sms'] });
    try {
      const first = await settled(await send('+14155550301'));
      expect(first.senderId).toBe(a.id);
      await server.api('PATCH', `/v1/senders/${a.id}`, { priority: -18 });
      // Sender lists are cached briefly in the worker; the API change is local, so it applies at once here.
      const again = await settled(await send('+14155550301'));
      expect(again.senderId).toBe(a.id);
      const other = await settled(await send('+14155550302'));
      expect(other.senderId).toBe(b.id);
    } finally {
      await server.api('DELETE', `/v1/senders/${a.id}`);
      await server.api('DELETE', `/v1/senders/${b.id}`);
    }
  });

  it('only uses a sender for the countries it serves', async () => {
    const uk = await createSandboxSender(server, { priority: -30, channels: ['sms'], countries: ['gb'] });
    try {
      const us = await settled(await send('+14155550401'));
      expect(us.senderId).not.toBe(uk.id);
      const gb = await settled(await send('+447400123456'));
      expect(gb.senderId).toBe(uk.id);
    } finally {
      await server.api('DELETE', `/v1/senders/${uk.id}`);
    }
  });
});
