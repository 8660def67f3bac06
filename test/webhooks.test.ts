/**
 * Outbound webhooks end to end, through the real API and workers: a receiver verifies every request with the
 * `standardwebhooks` library and fails, times out or recovers on command; the tests check that a message's lifecycle
 * arrives signed, that an endpoint down for a while gets everything once it is back, that nothing arrives twice
 * without a retry cause, that per-message order holds, and the delivery log, redelivery, test sends, secret rotation
 * and the SSRF guard. The lifecycle runs on SQLite and PostgreSQL. With a manual clock, the service is driven through
 * days of failures (retries for three days, the endpoint disabled after five) and a hanging endpoint beside a
 * healthy one.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../src/adapters/clock/system-clock.ts';
import { migrateToLatest } from '../src/adapters/sql/migrations.ts';
import { openSqlite, type SqliteHandle } from '../src/adapters/sqlite/database.ts';
import { SqliteStore } from '../src/adapters/sqlite/sqlite-store.ts';
import { SqliteWebhookStore } from '../src/adapters/sqlite/sqlite-webhook-store.ts';
import { newId } from '../src/domain/ids.ts';
import { DEFAULT_WEBHOOK_RETRY } from '../src/domain/webhook-retry.ts';
import { noMetrics } from '../src/ports/metrics.ts';
import type { SecretBox } from '../src/ports/secrets.ts';
import type { NewMessage } from '../src/ports/store.ts';
import type { WebhookResponse, WebhookTransport } from '../src/ports/webhook-store.ts';
import { WebhookDelivery } from '../src/services/webhook-delivery.ts';
import { WebhookEndpoints } from '../src/services/webhook-endpoints.ts';
import { eventually, startTestServer, type TestServer } from './support/harness.ts';
import { dropSchema, newSchemaName, PG_URL, postgresForTests } from './support/postgres.ts';

const TIMEOUT_MS = 300;
const WEBHOOK_ENV = {
  OMNI_WEBHOOK_ALLOW_PRIVATE: 'true',
  OMNI_WEBHOOK_TIMEOUT_MS: String(TIMEOUT_MS),
  OMNI_WEBHOOK_RETRY_BASE_MS: '100',
  OMNI_WEBHOOK_RETRY_MAX_MS: '400',
};

type Mode = 'ok' | 'fail' | 'timeout';

interface Received {
  path: string;
  id: string;
  headers: IncomingHttpHeaders;
  body: string;
  type: string;
  data: Record<string, unknown>;
  /** What the receiver answered: 2xx, a 500, or nothing within the product's time-out. */
  answer: Mode;
  /** Which of the path's secrets verified it (with the standardwebhooks library). */
  verifiedBy: string[];
}

/** A customer's webhook receiver: one path per endpoint, each with its mode and the secrets it verifies with. */
class Receiver {
  readonly requests: Received[] = [];
  private readonly paths = new Map<string, { mode: Mode; secrets: string[] }>();
  private server: Server | undefined;
  url = '';

  async start(): Promise<this> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const path = req.url ?? '/';
        const conf = this.paths.get(path) ?? { mode: 'ok' as Mode, secrets: [] };
        const body = Buffer.concat(chunks).toString('utf8');
        const headers = Object.fromEntries(
          Object.entries(req.headers).map(([k, v]) => [k, Array.isArray(v) ? v.join(',') : (v ?? '')]),
        );
        const verifiedBy = conf.secrets.filter((s) => {
          try {
            new Webhook(s).verify(body, headers);
            return true;
          } catch {
            return false;
          }
        });
        const parsed = JSON.parse(body) as { type: string; data: Record<string, unknown> };
        this.requests.push({
          path,
          id: headers['webhook-id'] ?? '',
          headers: req.headers,
          body,
          type: parsed.type,
          data: parsed.data,
          answer: conf.mode,
          verifiedBy,
        });
        if (conf.mode === 'ok') res.writeHead(204).end();
        else if (conf.mode === 'fail') res.writeHead(500).end('down for maintenance');
        else setTimeout(() => res.writeHead(200).end(), TIMEOUT_MS + 200);
      });
    });
    await new Promise<void>((resolve) => this.server?.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  /** A new path that answers `mode` and verifies with `secrets`. */
  path(name: string, secrets: string[] = [], mode: Mode = 'ok'): string {
    const path = `/hooks/${name}`;
    this.paths.set(path, { mode, secrets });
    return path;
  }

  set(path: string, change: Partial<{ mode: Mode; secrets: string[] }>): void {
    const cur = this.paths.get(path) ?? { mode: 'ok' as Mode, secrets: [] };
    this.paths.set(path, { ...cur, ...change });
  }

  at(path: string): Received[] {
    return this.requests.filter((r) => r.path === path);
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise((resolve) => this.server?.close(resolve));
  }
}

const pgTests = await postgresForTests();
const backends: {
  name: string;
  env: () => Record<string, string>;
  cleanup: (env: Record<string, string>) => Promise<void>;
}[] = [{ name: 'sqlite', env: () => ({}), cleanup: async () => undefined }];
if (pgTests.run)
  backends.push({
    name: 'postgres',
    env: () => ({ OMNI_DATABASE_URL: PG_URL, OMNI_DATABASE_SCHEMA: newSchemaName() }),
    cleanup: (env) => dropSchema(env.OMNI_DATABASE_SCHEMA as string),
  });

const LIFECYCLE = ['message.queued', 'message.sent', 'message.delivered'];

describe.each(backends)('webhooks on $name', (backend) => {
  let s: TestServer;
  let receiver: Receiver;
  let env: Record<string, string> = {};

  beforeAll(async () => {
    env = backend.env();
    receiver = await new Receiver().start();
    s = await startTestServer({ ...WEBHOOK_ENV, ...env });
  });
  afterAll(async () => {
    await s.stop();
    await receiver.stop();
    await backend.cleanup(env);
  });

  async function subscribe(name: string, body: Record<string, unknown> = {}, mode: Mode = 'ok') {
    const path = receiver.path(name, [], mode);
    const r = await s.api('POST', '/v1/webhook-endpoints', {
      url: receiver.url + path,
      eventTypes: LIFECYCLE,
      ...body,
    });
    expect(r.status, JSON.stringify(r.body)).toBe(201);
    receiver.set(path, { secrets: [r.body.secret] });
    return { path, id: r.body.id as string, secret: r.body.secret as string, endpoint: r.body };
  }

  async function send(to: string, metadata: Record<string, unknown> = {}) {
    const r = await s.api('POST', '/v1/messages', { to, channel: 'sms', body: 'Your code is 123456', metadata });
    expect(r.status, JSON.stringify(r.body)).toBe(202);
    return r.body.id as string;
  }

  it("delivers a message's lifecycle as signed events an existing verifier accepts", async () => {
    const { path, id, secret, endpoint } = await subscribe('lifecycle', { description: 'CRM' });
    expect(secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    expect(endpoint).toMatchObject({ url: receiver.url + path, eventTypes: LIFECYCLE, enabled: true, filter: null });
    const got = await s.api('GET', `/v1/webhook-endpoints/${id}`);
    expect(got.body).not.toHaveProperty('secret');
    expect(got.body.description).toBe('CRM');

    const messageId = await send('+12025550100', { order: 42 });
    await eventually(async () => receiver.at(path).filter((r) => r.data.id === messageId).length >= 3);
    const reqs = receiver.at(path).filter((r) => r.data.id === messageId);
    expect(reqs.map((r) => r.type)).toEqual(LIFECYCLE);
    for (const r of reqs) {
      expect(r.verifiedBy).toEqual([secret]);
      expect(r.id).toMatch(/^whe_\d+$/);
      expect(r.headers['content-type']).toBe('application/json');
      expect(Math.abs(Number(r.headers['webhook-timestamp']) * 1000 - Date.now())).toBeLessThan(60_000);
    }
    expect(new Set(reqs.map((r) => r.id)).size).toBe(3);
    const delivered = reqs[2] as Received;
    expect(delivered.data).toMatchObject({
      id: messageId,
      status: 'delivered',
      direction: 'outbound',
      channel: 'sms',
      to: '+12025550100',
      error: null,
      metadata: { order: 42 },
    });
    expect(typeof delivered.data.providerMessageId).toBe('string');
    expect(JSON.parse(delivered.body).timestamp).toBe(delivered.data.at);

    // The delivery log shows each with its attempt (stored just after the receiver answered).
    const log = await eventually(async () => {
      const r = await s.api('GET', `/v1/webhook-endpoints/${id}/deliveries?limit=2`);
      return r.status === 200 && r.body.items[0]?.status === 'delivered' ? r : undefined;
    });
    expect(log.body.items).toHaveLength(2);
    expect(log.body.items[0]).toMatchObject({ status: 'delivered', attempts: 1, eventType: 'message.delivered' });
    expect(log.body.items[0].attemptLog[0]).toMatchObject({ statusCode: 204, error: null });
    const page2 = await s.api('GET', `/v1/webhook-endpoints/${id}/deliveries?limit=2&cursor=${log.body.nextCursor}`);
    expect(page2.body.items.map((d: { eventType: string }) => d.eventType)).toContain('message.queued');
    // Prometheus counts the attempts by result and times them.
    const metrics = await (await fetch(`${s.url}/metrics`)).text();
    const attemptsDelivered = Number(/omni_webhook_attempts_total\{result="delivered"\} (\d+)/.exec(metrics)?.[1]);
    expect(attemptsDelivered).toBeGreaterThanOrEqual(3);
    expect(metrics).toMatch(/omni_webhook_attempt_duration_seconds_count \d+/);
  });

  it('gives an endpoint that was down everything once it is back: once each, in order per message', async () => {
    const { path, id } = await subscribe('flaky', { eventTypes: [...LIFECYCLE, 'message.undelivered'] }, 'fail');
    const ids = [
      await send('+12025550100'),
      await send('+12025550101'),
      await send('+12025550192'),
      await send('+12025550102'),
    ];
    await eventually(async () => receiver.at(path).filter((r) => r.answer === 'fail').length >= 8);
    receiver.set(path, { mode: 'timeout' });
    await eventually(async () => receiver.at(path).filter((r) => r.answer === 'timeout').length >= 4);
    receiver.set(path, { mode: 'ok' });
    const expected = (m: string) =>
      m === ids[2] ? ['message.queued', 'message.sent', 'message.undelivered'] : LIFECYCLE;
    await eventually(async () =>
      ids.every((m) =>
        expected(m).every((t) => receiver.at(path).some((r) => r.data.id === m && r.type === t && r.answer === 'ok')),
      ),
    );
    const reqs = receiver.at(path);
    // Each event: retried only after a failure or a time-out, and answered with success exactly once, last.
    const byEvent = new Map<string, Received[]>();
    for (const r of reqs) byEvent.set(r.id, [...(byEvent.get(r.id) ?? []), r]);
    for (const [, attempts] of byEvent) {
      expect(attempts.map((a) => a.answer).slice(0, -1)).not.toContain('ok');
      expect(attempts.at(-1)?.answer).toBe('ok');
      expect(new Set(attempts.map((a) => a.type)).size).toBe(1);
      for (const a of attempts) expect(a.verifiedBy).toHaveLength(1);
    }
    // Per message, no event is attempted before the earlier ones are through.
    for (const m of ids) {
      const order = reqs.filter((r) => r.data.id === m).map((r) => expected(m).indexOf(r.type));
      expect(order).toEqual([...order].sort((a, b) => a - b));
      expect(new Set(order)).toEqual(new Set([0, 1, 2]));
    }
    // The log shows the failed attempts: 500 with the receiver's answer, and time-outs (once the last outcomes,
    // written just after the receiver answered, are stored).
    const log = await eventually(async () => {
      const r = await s.api('GET', `/v1/webhook-endpoints/${id}/deliveries?limit=200`);
      return r.body.items.every((d: { status: string }) => d.status === 'delivered') ? r : undefined;
    });
    expect(log.body.items).toHaveLength(12);
    const attempts = log.body.items.flatMap((d: { attemptLog: unknown[] }) => d.attemptLog) as {
      statusCode: number | null;
      response: string | null;
      error: string | null;
      latencyMs: number;
    }[];
    expect(attempts.some((a) => a.statusCode === 500 && a.response === 'down for maintenance')).toBe(true);
    expect(
      attempts.some((a) => a.statusCode === null && a.error === 'timed out' && a.latencyMs >= TIMEOUT_MS - 5),
    ).toBe(true);
  });

  it('redelivers one event or a time range, and sends test events', async () => {
    const run = `range-${Math.random().toString(36).slice(2)}`;
    const { path, id, secret } = await subscribe('redeliver', { filter: { metadata: { run } } });
    const from = new Date(Date.now() - 1000).toISOString();
    const m1 = await send('+12025550103', { run });
    const m2 = await send('+12025550104', { run });
    await send('+12025550105', { run: 'another' });
    await eventually(async () => receiver.at(path).filter((r) => r.type === 'message.delivered').length === 2);
    expect(new Set(receiver.at(path).map((r) => r.data.id))).toEqual(new Set([m1, m2]));
    const first = receiver.at(path)[0] as Received;
    const before = receiver.at(path).length;

    const one = await s.api('POST', `/v1/webhook-endpoints/${id}/redeliver`, { eventId: first.id });
    expect(one).toEqual({ status: 202, body: { redelivered: 1 } });
    await eventually(async () => receiver.at(path).filter((r) => r.id === first.id).length === 2);
    const again = receiver.at(path).filter((r) => r.id === first.id)[1] as Received;
    expect(again.body).toBe(first.body);
    expect(again.verifiedBy).toEqual([secret]);

    const range = await s.api('POST', `/v1/webhook-endpoints/${id}/redeliver`, {
      from,
      to: new Date(Date.now() + 1000).toISOString(),
    });
    expect(range).toEqual({ status: 202, body: { redelivered: 6 } });
    await eventually(async () => receiver.at(path).length === before + 1 + 6);

    const test = await s.api('POST', `/v1/webhook-endpoints/${id}/test`);
    expect(test.status).toBe(202);
    expect(test.body.eventId).toMatch(/^whe_\d+$/);
    await eventually(async () => receiver.at(path).find((r) => r.type === 'webhook.test'));
    const t = receiver.at(path).find((r) => r.type === 'webhook.test') as Received;
    expect(t).toMatchObject({ id: test.body.eventId, verifiedBy: [secret], data: { endpointId: id } });

    const missing = await s.api('POST', `/v1/webhook-endpoints/${id}/redeliver`, { eventId: 'whe_999999999' });
    expect(missing.status).toBe(404);
    expect(missing.body.error).toMatchObject({ code: 'webhook_event_not_found', field: 'eventId' });
    const backwards = await s.api('POST', `/v1/webhook-endpoints/${id}/redeliver`, { from, to: from });
    expect(backwards.body.error).toMatchObject({ code: 'invalid_time_range', field: 'to' });
  });

  it('tells of consent stated through the API, without its evidence; a channel filter passes changes for every channel', async () => {
    const { path } = await subscribe('consent', {
      eventTypes: ['contact.consent_changed'],
      filter: { channels: ['sms'] },
    });
    const contact = await s.api('POST', '/v1/contacts', { phones: ['+12025550177'] });
    expect(contact.status, JSON.stringify(contact.body)).toBe(201);
    const state = async (body: Record<string, unknown>) => {
      const r = await s.api('POST', `/v1/contacts/${contact.body.id}/consent`, body);
      expect(r.status, JSON.stringify(r.body)).toBe(200);
    };
    const before = Date.now();
    await state({ channel: 'sms', purpose: 'marketing', status: 'opted_out', evidence: { ip: '203.0.113.9' } });
    await state({ channel: 'email', purpose: 'marketing', status: 'opted_in' });
    await state({ channel: '*', purpose: '*', status: 'opted_in', source: 'import' });
    await eventually(async () => receiver.at(path).length >= 2);
    await new Promise((r) => setTimeout(r, 300));
    const got = receiver.at(path);
    expect(got.map((r) => r.type)).toEqual(['contact.consent_changed', 'contact.consent_changed']);
    expect(got.map((r) => r.data)).toEqual([
      {
        contactId: contact.body.id,
        channel: 'sms',
        purpose: 'marketing',
        sender: null,
        status: 'opted_out',
        source: 'api',
        at: expect.any(String),
      },
      {
        contactId: contact.body.id,
        channel: null,
        purpose: null,
        sender: null,
        status: 'opted_in',
        source: 'import',
        at: expect.any(String),
      },
    ]);
    const at = Date.parse(got[0]?.data.at as string);
    expect(at).toBeGreaterThanOrEqual(before - 1000);
    expect(at).toBeLessThanOrEqual(Date.now());
  });

  it('signs with both secrets while a rotated-out one overlaps, then with the new one alone', async () => {
    const { path, id, secret: old } = await subscribe('rotation');
    const rotated = await s.api('POST', `/v1/webhook-endpoints/${id}/rotate-secret`, { overlapSeconds: 3600 });
    expect(rotated.status).toBe(200);
    const fresh = rotated.body.secret as string;
    expect(fresh).not.toBe(old);
    expect(Date.parse(rotated.body.previousSecretExpiresAt) - Date.now()).toBeGreaterThan(3_500_000);
    receiver.set(path, { secrets: [old, fresh] });
    const t1 = await s.api('POST', `/v1/webhook-endpoints/${id}/test`);
    await eventually(async () => receiver.at(path).find((r) => r.id === t1.body.eventId));
    const during = receiver.at(path).find((r) => r.id === t1.body.eventId) as Received;
    expect(String(during.headers['webhook-signature']).split(' ')).toHaveLength(2);
    expect(during.verifiedBy.sort()).toEqual([old, fresh].sort());

    const ended = await s.api('POST', `/v1/webhook-endpoints/${id}/rotate-secret`, { overlapSeconds: 0 });
    expect(ended.body.previousSecretExpiresAt).toBeNull();
    receiver.set(path, { secrets: [old, fresh, ended.body.secret] });
    const t2 = await s.api('POST', `/v1/webhook-endpoints/${id}/test`);
    await eventually(async () => receiver.at(path).find((r) => r.id === t2.body.eventId));
    const after = receiver.at(path).find((r) => r.id === t2.body.eventId) as Received;
    expect(after.verifiedBy).toEqual([ended.body.secret]);
    expect((await s.api('GET', `/v1/webhook-endpoints/${id}`)).body.previousSecretExpiresAt).toBeNull();
  });
});

describe('the webhook endpoints API', () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startTestServer(WEBHOOK_ENV);
  });
  afterAll(async () => {
    await s.stop();
  });

  const create = (body: Record<string, unknown>) =>
    s.api('POST', '/v1/webhook-endpoints', {
      url: 'https://hooks.example.com/omni',
      eventTypes: ['message.sent'],
      ...body,
    });

  it('answers precise errors for bad input', async () => {
    const cases: [Record<string, unknown>, string, string][] = [
      [{ eventTypes: ['message.sent', 'message.bogus'] }, 'unknown_event_type', 'eventTypes[1]'],
      [{ eventTypes: [] }, 'invalid_value', 'eventTypes'],
      [{ url: 'ftp://hooks.example.com/' }, 'invalid_webhook_url', 'url'],
      [{ url: 'not a url' }, 'invalid_webhook_url', 'url'],
      [{ filter: { channels: ['fax'] } }, 'unknown_channel', 'filter.channels[0]'],
      [{ filter: { colour: 'red' } }, 'unknown_field', 'filter.colour'],
      [{ secret: 'mine' }, 'unknown_field', 'secret'],
    ];
    for (const [body, code, field] of cases) {
      const r = await create(body);
      expect(r.status, JSON.stringify(body)).toBe(400);
      expect(r.body.error, JSON.stringify(body)).toMatchObject({ code, field });
    }
    const missing = await s.api('POST', '/v1/webhook-endpoints', { eventTypes: ['message.sent'] });
    expect(missing.body.error).toMatchObject({ code: 'missing_field', field: 'url' });
    const unknown = await s.api('GET', '/v1/webhook-endpoints/whk_nope');
    expect(unknown.status).toBe(404);
    expect(unknown.body.error.code).toBe('webhook_endpoint_not_found');
    const noAuth = await fetch(`${s.url}/v1/webhook-endpoints`);
    expect(noAuth.status).toBe(401);
  });

  it('lists, changes and deletes endpoints; a test send to a disabled one is refused', async () => {
    const a = await create({ filter: { channels: ['sms', 'sms'], metadata: { tier: 'gold' } } });
    expect(a.body.filter).toEqual({ channels: ['sms'], metadata: { tier: 'gold' } });
    const list = await s.api('GET', '/v1/webhook-endpoints');
    expect(list.body.data.map((e: { id: string }) => e.id)).toContain(a.body.id);
    expect(list.body.data.every((e: Record<string, unknown>) => !('secret' in e))).toBe(true);
    const patched = await s.api('PATCH', `/v1/webhook-endpoints/${a.body.id}`, {
      enabled: false,
      filter: null,
      eventTypes: ['message.read', 'contact.opted_out'],
    });
    expect(patched.status).toBe(200);
    expect(patched.body).toMatchObject({
      enabled: false,
      filter: null,
      eventTypes: ['message.read', 'contact.opted_out'],
    });
    const test = await s.api('POST', `/v1/webhook-endpoints/${a.body.id}/test`);
    expect(test.status).toBe(409);
    expect(test.body.error.code).toBe('webhook_endpoint_disabled');
    expect((await s.api('PATCH', `/v1/webhook-endpoints/${a.body.id}`, {})).body.error.code).toBe('invalid_value');
    expect((await s.api('DELETE', `/v1/webhook-endpoints/${a.body.id}`)).status).toBe(204);
    expect((await s.api('GET', `/v1/webhook-endpoints/${a.body.id}`)).status).toBe(404);
    expect((await s.api('DELETE', `/v1/webhook-endpoints/${a.body.id}`)).status).toBe(404);
  });
});

describe('the SSRF guard (private addresses not allowed)', () => {
  let s: TestServer;
  let receiver: Receiver;
  beforeAll(async () => {
    receiver = await new Receiver().start();
    s = await startTestServer({ OMNI_WEBHOOK_TIMEOUT_MS: String(TIMEOUT_MS) });
  });
  afterAll(async () => {
    await s.stop();
    await receiver.stop();
  });

  it('refuses URLs with a loopback, private, link-local or unique-local address when they are saved', async () => {
    const port = new URL(receiver.url).port;
    for (const url of [
      `http://127.0.0.1:${port}/hooks/x`,
      'http://[::1]/',
      'http://169.254.169.254/latest/meta-data/',
      'http://10.0.0.7/',
      'http://192.168.1.20/',
      'http://[fd00::1]/',
      'http://0.0.0.0/',
      'http://[::ffff:127.0.0.1]/',
    ]) {
      const r = await s.api('POST', '/v1/webhook-endpoints', { url, eventTypes: ['message.sent'] });
      expect(r.status, url).toBe(400);
      expect(r.body.error, url).toMatchObject({ code: 'webhook_url_not_allowed', field: 'url' });
    }
  });

  it('refuses, when connecting, a name that resolves to a loopback address (no request is made)', async () => {
    const path = receiver.path('ssrf');
    const port = new URL(receiver.url).port;
    const created = await s.api('POST', '/v1/webhook-endpoints', {
      url: `http://localhost:${port}${path}`,
      eventTypes: ['message.sent'],
    });
    expect(created.status).toBe(201);
    const test = await s.api('POST', `/v1/webhook-endpoints/${created.body.id}/test`);
    expect(test.status).toBe(202);
    const log = await eventually(async () => {
      const r = await s.api('GET', `/v1/webhook-endpoints/${created.body.id}/deliveries`);
      return r.body.items[0]?.attemptLog.length > 0 ? r.body.items[0] : undefined;
    });
    expect(log.status).toBe('pending');
    expect(log.attemptLog[0]).toMatchObject({ statusCode: null });
    expect(log.attemptLog[0].error).toMatch(/localhost resolves to .* loopback address/);
    expect(receiver.at(path)).toEqual([]);
  });
});

// --- The delivery service over days, with a manual clock -----------------------------------------------------------

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

const plainBox: SecretBox = { seal: (s) => `sealed:${s}`, open: (s) => s.slice('sealed:'.length) };

/** A transport answering per URL; records every call with the clock's time. */
class ScriptedTransport implements WebhookTransport {
  readonly calls: { url: string; at: number; type: string; data: Record<string, unknown> }[] = [];
  constructor(
    private readonly clock: ManualClock,
    private readonly answer: (url: string) => Promise<number>,
  ) {}
  refusal(): string | undefined {
    return undefined;
  }
  async post(url: string, _headers: Record<string, string>, body: string): Promise<WebhookResponse> {
    const parsed = JSON.parse(body) as { type: string; data: Record<string, unknown> };
    this.calls.push({ url, at: this.clock.now(), type: parsed.type, data: parsed.data });
    const statusCode = await this.answer(url);
    return { statusCode, retryAfter: null, body: null, latencyMs: 1, error: null };
  }
  async close(): Promise<void> {}
}

describe('webhook delivery over days (manual clock)', () => {
  let dir: string;
  let h: SqliteHandle;
  let clock: ManualClock;
  let messages: SqliteStore;
  let webhooks: SqliteWebhookStore;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'omni-webhook-days-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  async function open(name: string) {
    h = openSqlite(join(dir, `${name}.db`));
    await migrateToLatest(h.kysely);
    clock = new ManualClock(Date.UTC(2026, 0, 5));
    messages = new SqliteStore(h);
    webhooks = new SqliteWebhookStore(h);
  }

  function message(orgId: string): NewMessage {
    return {
      id: newId('msg'),
      orgId,
      channel: 'sms',
      to: '+12025550123',
      from: null,
      body: 'hi',
      subject: null,
      templateId: null,
      metadata: null,
      sendAt: null,
      priority: 1,
      createdAt: clock.now(),
    };
  }
  const accept = (m: NewMessage) =>
    messages.acceptMessages([m], () => [
      { id: `send:${m.id}`, queue: 'send', payload: m.id, orgId: m.orgId, priority: 1, runAt: m.createdAt },
    ]);

  it('retries a delivery for three days, disables an endpoint failing for five and tells the others', async () => {
    await open('disable');
    const org = newId('org');
    const transport = new ScriptedTransport(clock, async (url) => (url.includes('down') ? 503 : 200));
    const endpoints = new WebhookEndpoints(webhooks, plainBox, transport, clock);
    const down = await endpoints.create(org, { url: 'https://down.example.com/', eventTypes: ['message.queued'] });
    const watcher = await endpoints.create(org, { url: 'https://ops.example.com/', eventTypes: ['endpoint.disabled'] });
    const attempts = { delivered: 0, retry: 0, failed: 0 };
    const delivery = new WebhookDelivery(webhooks, transport, plainBox, clock, {
      concurrency: 8,
      perEndpoint: 4,
      leaseMs: 60_000,
      retry: DEFAULT_WEBHOOK_RETRY,
      disableAfterMs: 5 * DAY,
      metrics: { ...noMetrics, webhookAttempt: (result) => void attempts[result]++ },
    });
    const start = clock.now();
    const firstMessage = message(org);
    for (let hour = 0; hour <= 6 * 24; hour++) {
      if (hour % 12 === 0) await accept(hour === 0 ? firstMessage : message(org));
      while ((await delivery.fanOut()) > 0);
      while ((await delivery.deliver()) > 0) await delivery.drain();
      clock.advance(HOUR);
    }
    const got = await endpoints.get(org, down.id);
    expect(got.enabled).toBe(false);
    expect(got.disabledReason).toBe('every delivery failed for 5 days');
    const disabledAt = Date.parse(got.disabledAt as string);
    expect(disabledAt - start).toBeGreaterThanOrEqual(5 * DAY);
    expect(disabledAt - start).toBeLessThanOrEqual(5 * DAY + HOUR);
    // Nothing was tried after it was disabled, and the other endpoint heard about it.
    const toDown = transport.calls.filter((c) => c.url.includes('down'));
    expect(Math.max(...toDown.map((c) => c.at))).toBeLessThanOrEqual(disabledAt);
    const notices = transport.calls.filter((c) => c.type === 'endpoint.disabled');
    expect(notices).toHaveLength(1);
    expect(notices[0]?.url).toBe('https://ops.example.com/');
    expect(notices[0]?.data).toMatchObject({
      endpointId: down.id,
      reason: 'every delivery failed for 5 days',
      failingSince: new Date(start).toISOString(),
    });
    // The first delivery was retried with growing gaps until the three-day mark, then failed for good.
    const firstCalls = toDown.filter((c) => c.data.id === firstMessage.id).map((c) => c.at);
    expect(firstCalls.length).toBeGreaterThanOrEqual(8);
    expect(Math.max(...firstCalls) - start).toBeLessThanOrEqual(3 * DAY + HOUR);
    expect(Math.max(...firstCalls) - start).toBeGreaterThanOrEqual(3 * DAY);
    const log = await endpoints.deliveries(org, down.id, { limit: 500 });
    const first = log.items.find((d) => d.messageId === firstMessage.id);
    expect(first?.status).toBe('failed');
    expect(first?.attempts).toBe(firstCalls.length);
    expect(watcher.enabled).toBe(true);
    // Every request was counted by result: the watcher's notice delivered, the down endpoint's retried or failed.
    expect(attempts.delivered).toBe(1);
    expect(attempts.failed).toBeGreaterThanOrEqual(1);
    expect(attempts.retry + attempts.failed).toBe(toDown.length);

    // Enabling it again clears the reason; its pending deliveries resume.
    const again = await endpoints.update(org, down.id, { enabled: true });
    expect(again).toMatchObject({ enabled: true, disabledReason: null, disabledAt: null });
    h.close();
  });

  it('keeps other endpoints flowing while one endpoint hangs', async () => {
    await open('isolation');
    const slowOrg = newId('org');
    const fastOrg = newId('org');
    const hanging: (() => void)[] = [];
    const transport = new ScriptedTransport(clock, (url) =>
      url.includes('slow') ? new Promise<number>((resolve) => hanging.push(() => resolve(200))) : Promise.resolve(200),
    );
    const endpoints = new WebhookEndpoints(webhooks, plainBox, transport, clock);
    const slow = await endpoints.create(slowOrg, { url: 'https://slow.example.com/', eventTypes: ['message.queued'] });
    await endpoints.create(fastOrg, { url: 'https://fast.example.com/', eventTypes: ['message.queued'] });
    for (let i = 0; i < 20; i++) {
      await accept(message(slowOrg));
      await accept(message(fastOrg));
    }
    const delivery = new WebhookDelivery(webhooks, transport, plainBox, clock, {
      concurrency: 6,
      perEndpoint: 2,
      leaseMs: 60_000,
      retry: DEFAULT_WEBHOOK_RETRY,
      disableAfterMs: 5 * DAY,
    });
    while ((await delivery.fanOut()) > 0);
    const fast = () => transport.calls.filter((c) => c.url.includes('fast')).length;
    for (let i = 0; i < 200 && fast() < 20; i++) {
      await delivery.deliver();
      await new Promise((resolve) => setImmediate(resolve));
    }
    expect(fast()).toBe(20);
    expect(hanging.length).toBeLessThanOrEqual(2);
    // Once the fast endpoint's last outcomes are stored, only the hanging requests hold slots.
    for (let i = 0; i < 20 && delivery.inFlightCount > hanging.length; i++)
      await new Promise((resolve) => setImmediate(resolve));
    expect(delivery.inFlightCount).toBe(hanging.length);
    for (const release of hanging.splice(0)) release();
    await delivery.drain();
    while ((await delivery.deliver()) > 0) {
      for (const release of hanging.splice(0)) release();
      await delivery.drain();
    }
    const log = await endpoints.deliveries(slowOrg, slow.id, { limit: 100 });
    expect(log.items.map((d) => d.status)).toEqual(Array(20).fill('delivered'));
    h.close();
  });
});
