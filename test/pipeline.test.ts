/**
 * The whole product in one process: messages go through the queue, the sandbox carrier (over HTTP), its signed
 * callbacks and the status machine. Each documented sandbox destination behaves as the README says.
 * Runs on both back ends: embedded SQLite and PostgreSQL.
 */

import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually, startTestServer, type TestServer } from './support/harness.ts';
import { dropSchema, newSchemaName, PG_URL, postgresForTests } from './support/postgres.ts';
import { deleteKeys, REDIS_URL, redisReachable, testPrefix } from './support/redis.ts';

const pgTests = await postgresForTests();
const backends: {
  name: string;
  env: () => Record<string, string>;
  cleanup: (env: Record<string, string>) => Promise<void>;
}[] = [{ name: 'sqlite', env: () => ({}), cleanup: async () => undefined }];
if (pgTests.run) {
  backends.push({
    name: 'postgres',
    env: () => ({ OMNI_DATABASE_URL: PG_URL, OMNI_DATABASE_SCHEMA: newSchemaName() }),
    cleanup: (env) => dropSchema(env.OMNI_DATABASE_SCHEMA as string),
  });
  if (redisReachable) {
    // Scale-out: the outbox in PostgreSQL is relayed to BullMQ, where the workers take their jobs.
    backends.push({
      name: 'postgres+redis',
      env: () => ({
        OMNI_DATABASE_URL: PG_URL,
        OMNI_DATABASE_SCHEMA: newSchemaName(),
        OMNI_REDIS_URL: REDIS_URL,
        OMNI_REDIS_PREFIX: testPrefix(),
      }),
      cleanup: async (env) => {
        await dropSchema(env.OMNI_DATABASE_SCHEMA as string);
        const client = new Redis(REDIS_URL);
        await deleteKeys(client, env.OMNI_REDIS_PREFIX as string);
        client.disconnect();
      },
    });
  }
}

describe.each(backends)('on $name', (backend) => {
  let s: TestServer;

  let env: Record<string, string> = {};
  beforeAll(async () => {
    env = backend.env();
    s = await startTestServer(env);
  });
  afterAll(async () => {
    await s.stop();
    await backend.cleanup(env);
  });

  async function send(body: Record<string, unknown>, headers: Record<string, string> = {}) {
    const r = await s.api('POST', '/v1/messages', body, headers);
    expect(r.status, JSON.stringify(r.body)).toBe(202);
    return r.body as { id: string; status: string };
  }

  async function settled(id: string, status: string) {
    return eventually(async () => {
      const r = await s.api('GET', `/v1/messages/${id}`);
      return r.body.status === status ? r.body : undefined;
    });
  }

  const statuses = (m: { history: { status: string; applied: boolean }[] }) =>
    m.history.map((h) => `${h.status}${h.applied ? '' : '(ignored)'}`);

  describe('sandbox destinations', () => {
    it('delivers an ordinary number with a full history', async () => {
      const { id, status } = await send({
        to: '+12025550100',
        channel: 'sms',
        body: 'Hello from the test',
        metadata: { order: 42 },
      });
      expect(status).toBe('queued');
      const m = await settled(id, 'delivered');
      expect(statuses(m)).toEqual(['queued', 'sending', 'sent', 'delivered']);
      expect(m).toMatchObject({
        channel: 'sms',
        carrier: 'sandbox',
        to: '+12025550100',
        from: '+12025550180',
        error: null,
        attempts: 1,
        metadata: { order: 42 },
      });
      expect(m.providerMessageId).toMatch(/^sbx_/);
      expect(m.cost).toBe(0);
      for (const h of m.history) expect(Number.isNaN(Date.parse(h.at))).toBe(false);
    });

    it('+12025550190 fails permanently as an invalid number, without retries', async () => {
      const { id } = await send({ to: '+12025550190', channel: 'sms', body: 'x' });
      const m = await settled(id, 'failed');
      expect(m.error).toMatchObject({ code: 'invalid_number', class: 'PermanentError' });
      expect(m.attempts).toBe(1);
      expect(statuses(m)).toEqual(['queued', 'sending', 'failed']);
    });

    it('+12025550191 fails with a retryable error once, then is delivered on the retry', async () => {
      const { id } = await send({ to: '+12025550191', channel: 'sms', body: 'x' });
      const m = await settled(id, 'delivered');
      expect(m.attempts).toBe(2);
      expect(statuses(m)).toEqual(['queued', 'sending', 'queued', 'sending', 'sent', 'delivered']);
      expect(m.history[2].detail.error.code).toBe('carrier_unavailable');
      expect(m.error).toBeNull();
    });

    it('+12025550192 is sent, then undelivered', async () => {
      const { id } = await send({ to: '+12025550192', channel: 'sms', body: 'x' });
      const m = await settled(id, 'undelivered');
      expect(statuses(m)).toEqual(['queued', 'sending', 'sent', 'undelivered']);
      expect(m.error).toMatchObject({ code: 'unreachable_handset' });
    });

    it.each([
      ['+12025550193', 'STOP'],
      ['+12025550194', 'YES'],
    ])('%s is delivered, then replies %s (stored as an inbound message)', async (to, reply) => {
      const { id } = await send({ to, channel: 'sms', body: 'Reply please' });
      await settled(id, 'delivered');
      const inbound = await eventually(async () => {
        const r = await s.api('GET', '/v1/messages?direction=inbound&limit=50');
        return r.body.items.find((m: { from: string }) => m.from === to);
      });
      expect(inbound).toMatchObject({
        direction: 'inbound',
        status: 'received',
        body: reply,
        to: '+12025550180',
        channel: 'sms',
        carrier: 'sandbox',
      });
    });

    it('an email to fail.sandbox bounces', async () => {
      const { id } = await send({ to: 'someone@fail.sandbox', channel: 'email', subject: 'Hi', body: 'Hello' });
      const m = await settled(id, 'undelivered');
      expect(m.error).toMatchObject({ code: 'email_bounced' });
    });

    it('other channels are delivered too', async () => {
      const sent = await Promise.all([
        send({ to: 'ana@example.com', channel: 'email', subject: 'Hi', body: 'Hello' }),
        send({ to: '+447911123456', channel: 'whatsapp', body: 'Hola' }),
        send({ to: '+33612345678', channel: 'voice', body: 'Your code is 1 2 3' }),
      ]);
      for (const { id } of sent) await settled(id, 'delivered');
    });
  });

  describe('API behaviour', () => {
    it('Idempotency-Key: the same request twice gives the same message', async () => {
      const body = { to: '+12025550101', channel: 'sms', body: 'once' };
      const a = await send(body, { 'idempotency-key': 'order-1-confirmation' });
      const b = await send(
        { body: 'once', channel: 'sms', to: '+12025550101' },
        { 'idempotency-key': 'order-1-confirmation' },
      );
      expect(b.id).toBe(a.id);
      const c = await s.api(
        'POST',
        '/v1/messages',
        { ...body, body: 'twice' },
        { 'idempotency-key': 'order-1-confirmation' },
      );
      expect(c.status).toBe(409);
      expect(c.body.error.code).toBe('idempotency_key_reused');
    });

    it('concurrent requests with one Idempotency-Key create one message', async () => {
      const body = { to: '+12025550102', channel: 'sms', body: 'race' };
      const results = await Promise.all(Array.from({ length: 10 }, () => send(body, { 'idempotency-key': 'race-1' })));
      expect(new Set(results.map((r) => r.id)).size).toBe(1);
    });

    it('templates render per channel; a missing variable is a 400 naming it', async () => {
      const t = await s.api('POST', '/v1/templates', {
        name: 'otp',
        channels: {
          sms: { body: 'Hi {{ name }}, your code is {{ code }}' },
          email: { subject: 'Code for {{ name }}', body: '<p>{{ code }}</p>' },
        },
      });
      expect(t.status).toBe(201);
      const got = await s.api('GET', `/v1/templates/${t.body.id}`);
      expect(got.body.channels.sms.body).toContain('{{ code }}');
      const { id } = await send({
        to: '+12025550103',
        channel: 'sms',
        template: { id: t.body.id, variables: { name: 'Ana', code: '123456' } },
      });
      const m = await settled(id, 'delivered');
      expect(m.body).toBe('Hi Ana, your code is 123456');
      expect(m.templateId).toBe(t.body.id);
      const e = await send({
        to: 'ana@example.com',
        channel: 'email',
        template: { id: t.body.id, variables: { name: 'Ana', code: '9' } },
      });
      expect((await settled(e.id, 'delivered')).subject).toBe('Code for Ana');
      const missing = await s.api('POST', '/v1/messages', {
        to: '+12025550103',
        channel: 'sms',
        template: { id: t.body.id, variables: { name: 'Ana' } },
      });
      expect(missing.status).toBe(400);
      expect(missing.body.error).toMatchObject({ code: 'template_variable_missing', field: 'template.variables.code' });
    });

    it('sendAt schedules; cancel stops a scheduled message; a sent one cannot be canceled', async () => {
      const later = new Date(Date.now() + 3600_000).toISOString();
      const { id, status } = await send({ to: '+12025550104', channel: 'sms', body: 'later', sendAt: later });
      expect(status).toBe('scheduled');
      const c = await s.api('POST', `/v1/messages/${id}/cancel`);
      expect(c).toMatchObject({ status: 200, body: { id, status: 'canceled' } });
      const again = await s.api('POST', `/v1/messages/${id}/cancel`);
      expect(again.status).toBe(409);
      const m = await s.api('GET', `/v1/messages/${id}`);
      expect(statuses(m.body)).toEqual(['scheduled', 'canceled']);
      const soon = await send({
        to: '+12025550105',
        channel: 'sms',
        body: 'soon',
        sendAt: new Date(Date.now() + 300).toISOString(),
      });
      expect(soon.status).toBe('scheduled');
      await settled(soon.id, 'delivered');
    });

    it('batch: each item on its own, answers in order', async () => {
      const r = await s.api('POST', '/v1/messages/batch', {
        messages: [
          { to: '+12025550106', channel: 'sms', body: 'a' },
          { to: 'not-a-number', channel: 'sms', body: 'b' },
          { to: '+12025550107', channel: 'fax', body: 'c' },
          { to: 'x@example.com', channel: 'email', body: 'd' },
        ],
      });
      expect(r.status).toBe(200);
      const [a, b, c, d] = r.body.items;
      expect(a.id).toMatch(/^msg_/);
      expect(b.error).toMatchObject({ code: 'invalid_phone_number', field: 'messages[1].to' });
      expect(c.error).toMatchObject({ code: 'unknown_channel', field: 'messages[2].channel' });
      expect(d.id).toMatch(/^msg_/);
      await settled(a.id, 'delivered');
    });

    it('batch: messages that share a send job each meet their own fate (retry, failure, delivery)', async () => {
      // One batch is one transaction: its messages travel in shared send jobs. A retry moves one message to a
      // job of its own; the others are not held back or sent twice.
      const messages = [
        ...Array.from({ length: 60 }, (_, i) => ({ to: `+1202555${String(3000 + i)}`, channel: 'sms', body: `n${i}` })),
        { to: '+12025550191', channel: 'sms', body: 'retry once' },
        { to: '+12025550190', channel: 'sms', body: 'invalid' },
      ];
      const r = await s.api('POST', '/v1/messages/batch', { messages });
      expect(r.status).toBe(200);
      const ids = (r.body.items as { id: string }[]).map((it) => it.id);
      const retried = await settled(ids[60] as string, 'delivered');
      expect(retried.attempts).toBe(2);
      expect(statuses(retried)).toEqual(['queued', 'sending', 'queued', 'sending', 'sent', 'delivered']);
      const failed = await settled(ids[61] as string, 'failed');
      expect(failed.attempts).toBe(1);
      for (const id of ids.slice(0, 60)) {
        const m = await settled(id, 'delivered');
        expect(statuses(m)).toEqual(['queued', 'sending', 'sent', 'delivered']);
      }
    });

    it('lists with filters and cursor pagination', async () => {
      const created = [];
      for (let i = 0; i < 5; i++)
        created.push((await send({ to: '+12025550108', channel: 'mms', body: `page ${i}` })).id);
      const seen: string[] = [];
      let cursor: string | null = null;
      do {
        const r: { body: { items: { id: string; channel: string }[]; nextCursor: string | null } } = await s.api(
          'GET',
          `/v1/messages?channel=mms&limit=2${cursor ? `&cursor=${cursor}` : ''}`,
        );
        for (const m of r.body.items) {
          expect(m.channel).toBe('mms');
          seen.push(m.id);
        }
        cursor = r.body.nextCursor;
      } while (cursor);
      expect(seen).toEqual([...created].reverse());
      const none = await s.api(
        'GET',
        `/v1/messages?channel=mms&createdTo=${encodeURIComponent('2000-01-01T00:00:00Z')}`,
      );
      expect(none.body.items).toEqual([]);
    });

    it('health, readiness, metrics and docs answer', async () => {
      const h = await s.api('GET', '/health');
      expect(h.body).toMatchObject({ status: 'ok', version: expect.any(String) });
      expect(Number.isNaN(Date.parse(h.body.timestamp))).toBe(false);
      expect((await s.api('GET', '/ready')).status).toBe(200);
      const m = await fetch(`${s.url}/metrics`);
      const text = await m.text();
      expect(text).toContain('omni_messages_accepted_total');
      expect(text).toMatch(/omni_messages\{status="delivered"\} \d+/);
      const docs = await s.api('GET', '/docs/json');
      expect(docs.body.paths['/v1/messages']).toBeDefined();
    });
  });
});
