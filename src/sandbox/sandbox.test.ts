import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSandboxCarrier } from '../adapters/carriers/sandbox-carrier.ts';
import { AuthenticationError, ValidationError } from '../domain/errors.ts';
import { newId } from '../domain/ids.ts';
import type { Carrier, CarrierEvent, SendRequest, SendResult } from '../ports/carrier.ts';
import { SandboxServer, sandboxPlugin } from './sandbox-server.ts';
import { SANDBOX_SIGNATURE_HEADER, signSandboxPayload, verifySandboxSignature } from './signature.ts';

interface Received {
  headers: Record<string, string | string[] | undefined>;
  raw: Buffer;
  answered: number;
}

const TOKEN = 'tok_sandbox_test';
const SENDER_FROM = '+12025550100';

let dir: string;
let server: SandboxServer;
let app: FastifyInstance;
let base: string;
const received = new Map<string, Received[]>();
/** Per receiver case: how many callback requests to answer with 500 before accepting. */
const failFirst = new Map<string, number>();
const carriers: Carrier[] = [];

function makeCarrier(hookCase: string, opts: { token?: string; baseUrl?: string } = {}): Carrier {
  const carrier = createSandboxCarrier(
    {
      id: 'snd_test',
      orgId: 'org_test',
      provider: 'sandbox',
      config: { baseUrl: opts.baseUrl ?? base, token: opts.token ?? TOKEN },
      channels: ['sms', 'email'],
      from: SENDER_FROM,
      priority: 0,
    },
    { webhookUrl: `${base}/hook?case=${hookCase}` },
  );
  carriers.push(carrier);
  return carrier;
}

function msg(to: string, over: Partial<SendRequest> = {}): SendRequest {
  return {
    messageId: newId('msg'),
    channel: to.includes('@') ? 'email' : 'sms',
    to,
    from: null,
    body: 'hello',
    subject: null,
    attempt: 1,
    ...over,
  };
}

/** Callback requests of a case that the receiver accepted, parsed through the adapter. */
function eventsOf(hookCase: string, carrier: Carrier): CarrierEvent[] {
  return (received.get(hookCase) ?? [])
    .filter((r) => r.answered < 300)
    .flatMap((r) => carrier.parseWebhook({ method: 'POST', url: '/hook', headers: r.headers, rawBody: r.raw }));
}

async function waitFor(check: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 10));
  }
}

function accepted(result: SendResult | undefined): string {
  if (!result?.ok) throw new Error(`expected an accepted send, got ${JSON.stringify(result)}`);
  return result.providerMessageId;
}

async function buildApp(sandbox: SandboxServer | null): Promise<{ app: FastifyInstance; base: string }> {
  const instance = Fastify({ logger: false });
  if (sandbox) await instance.register(sandboxPlugin, { server: sandbox });
  await instance.register(async (scope) => {
    scope.addContentTypeParser('application/json', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));
    scope.post('/hook', async (req, reply) => {
      const hookCase = (req.query as { case?: string }).case ?? 'default';
      const remaining = failFirst.get(hookCase) ?? 0;
      const answered = remaining > 0 ? 500 : 204;
      if (remaining > 0) failFirst.set(hookCase, remaining - 1);
      const list = received.get(hookCase) ?? [];
      list.push({ headers: req.headers, raw: req.body as Buffer, answered });
      received.set(hookCase, list);
      return reply.code(answered).send();
    });
  });
  const address = await instance.listen({ port: 0, host: '127.0.0.1' });
  return { app: instance, base: address };
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'sandbox-test-'));
  server = new SandboxServer({ dbPath: join(dir, 'main.db'), delayMs: 20 });
  ({ app, base } = await buildApp(server));
  server.start();
});

afterAll(async () => {
  await Promise.all(carriers.map((c) => c.close?.()));
  await server.stop();
  await app.close();
  await server.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('sandbox destination rules', () => {
  it('answers synchronously and calls back per the documented rules', async () => {
    const carrier = makeCarrier('rules');
    const invalid = msg('+12025550190');
    const flaky = msg('+12025550191');
    const unreachable = msg('+12025550192');
    const stop = msg('+12025550193', { from: '+14155550123' });
    const yes = msg('+12025550194');
    const bounce = msg('someone@FAIL.Sandbox');
    const okSms = msg('+14155550100');
    const okEmail = msg('someone@example.com', { subject: 'Hi' });
    const batch = [invalid, flaky, unreachable, stop, yes, bounce, okSms, okEmail];

    const results = await carrier.send(batch);
    expect(results).toHaveLength(batch.length);
    expect(results[0]).toEqual({
      ok: false,
      retryable: false,
      error: { code: 'invalid_number', class: 'PermanentError', message: expect.any(String) },
    });
    expect(results[1]).toEqual({
      ok: false,
      retryable: true,
      error: { code: 'carrier_unavailable', class: 'ResourceError', message: expect.any(String) },
    });
    for (const r of results.slice(2)) {
      expect(r).toEqual({ ok: true, providerMessageId: expect.stringMatching(/^sbx_[0-9A-Z]{26}$/), cost: 0 });
    }

    // The second attempt of +12025550191 is accepted (and later delivered).
    const [retried] = await carrier.send([{ ...flaky, attempt: 2 }]);
    const flakyId = accepted(retried);

    const idOf = new Map<string, string>([[flaky.messageId, flakyId]]);
    batch.slice(2).forEach((m, i) => {
      idOf.set(m.messageId, accepted(results[i + 2]));
    });

    await waitFor(() => eventsOf('rules', carrier).length >= 9);
    await new Promise((r) => setTimeout(r, 100)); // nothing more arrives
    const events = eventsOf('rules', carrier);
    expect(events).toHaveLength(9);

    const statuses = events.filter((e) => e.kind === 'status');
    const inbound = events.filter((e) => e.kind === 'inbound');
    expect(statuses).toHaveLength(7);
    expect(inbound).toHaveLength(2);
    expect(new Set(events.map((e) => e.eventKey)).size).toBe(9);

    const statusOf = (m: SendRequest) => {
      const found = statuses.filter((e) => e.reference === m.messageId);
      expect(found).toHaveLength(1);
      expect(found[0]!.providerMessageId).toBe(idOf.get(m.messageId));
      return found[0]!;
    };
    for (const m of [flaky, stop, yes, okSms, okEmail]) {
      const e = statusOf(m);
      expect(e.status).toBe('delivered');
      expect(e.error).toBeUndefined();
    }
    expect(statusOf(unreachable)).toMatchObject({
      status: 'undelivered',
      error: { code: 'unreachable_handset', class: 'PermanentError', message: expect.any(String) },
    });
    expect(statusOf(bounce)).toMatchObject({
      status: 'undelivered',
      error: { code: 'email_bounced', class: 'PermanentError', message: expect.any(String) },
    });
    expect(statuses.some((e) => e.reference === invalid.messageId)).toBe(false);

    const stopReply = inbound.find((e) => e.from === '+12025550193');
    const yesReply = inbound.find((e) => e.from === '+12025550194');
    expect(stopReply).toMatchObject({ kind: 'inbound', channel: 'sms', body: 'STOP', to: '+14155550123' });
    expect(yesReply).toMatchObject({ kind: 'inbound', channel: 'sms', body: 'YES', to: SENDER_FROM });
    expect(stopReply!.providerMessageId).toMatch(/^sbx_/);
    expect(stopReply!.providerMessageId).not.toBe(idOf.get(stop.messageId));
    expect(stopReply!.occurredAt).toBeGreaterThan(statusOf(stop).occurredAt);

    // The raw wire format carries inReplyTo.
    const raw = (received.get('rules') ?? []).flatMap((r) => JSON.parse(r.raw.toString()) as Record<string, unknown>[]);
    expect(raw.find((e) => e.from === '+12025550193')).toMatchObject({
      type: 'message.inbound',
      inReplyTo: stop.messageId,
      timestamp: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
    });
  });
});

describe('sandbox callback signatures', () => {
  let sample: Received;

  beforeAll(async () => {
    const carrier = makeCarrier('sig');
    accepted((await carrier.send([msg('+14155550101')]))[0]);
    await waitFor(() => (received.get('sig') ?? []).length > 0);
    sample = received.get('sig')![0]!;
  });

  it('accepts a genuine callback', () => {
    const header = sample.headers[SANDBOX_SIGNATURE_HEADER];
    expect(header).toMatch(/^t=\d+,v1=[0-9a-f]{64}$/);
    expect(sample.headers['content-type']).toBe('application/json');
    const events = makeCarrier('sig').parseWebhook({
      method: 'POST',
      url: '/hook',
      headers: sample.headers,
      rawBody: sample.raw,
    });
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ kind: 'status', status: 'delivered' });
  });

  it('rejects a tampered body, a wrong token, a stale timestamp and a missing header', () => {
    const carrier = makeCarrier('sig');
    const tampered = Buffer.from(sample.raw.toString().replace('delivered', 'undelivered'));
    const parse = (c: Carrier, headers: Record<string, string | string[] | undefined>, rawBody: Buffer) => () =>
      c.parseWebhook({ method: 'POST', url: '/hook', headers, rawBody });
    const codeOf = (fn: () => unknown): string | undefined => {
      try {
        fn();
      } catch (err) {
        expect(err).toBeInstanceOf(AuthenticationError);
        return (err as AuthenticationError).code;
      }
      return undefined;
    };

    expect(codeOf(parse(carrier, sample.headers, tampered))).toBe('webhook_signature_invalid');
    expect(codeOf(parse(makeCarrier('sig', { token: 'someone_else' }), sample.headers, sample.raw))).toBe(
      'webhook_signature_invalid',
    );
    const stale = signSandboxPayload(TOKEN, sample.raw, Math.floor(Date.now() / 1000) - 3600);
    expect(codeOf(parse(carrier, { [SANDBOX_SIGNATURE_HEADER]: stale }, sample.raw))).toBe('webhook_signature_invalid');
    const { [SANDBOX_SIGNATURE_HEADER]: _omit, ...unsigned } = sample.headers;
    expect(codeOf(parse(carrier, unsigned, sample.raw))).toBe('webhook_signature_missing');
    // Header names are matched case-insensitively.
    expect(
      parse(carrier, { 'X-Omni-Sandbox-Signature': sample.headers[SANDBOX_SIGNATURE_HEADER] }, sample.raw)(),
    ).toHaveLength(1);
  });

  it('rejects malformed payloads and skips unknown event types', () => {
    const carrier = makeCarrier('sig');
    const signed = (body: string) => ({
      method: 'POST',
      url: '/hook',
      headers: { [SANDBOX_SIGNATURE_HEADER]: signSandboxPayload(TOKEN, body, Math.floor(Date.now() / 1000)) },
      rawBody: Buffer.from(body),
    });
    expect(() => carrier.parseWebhook(signed('{not json'))).toThrow(ValidationError);
    expect(() => carrier.parseWebhook(signed('{"type":"message.status"}'))).toThrow(ValidationError);
    expect(() => carrier.parseWebhook(signed('[{"type":"message.status","eventId":"e1"}]'))).toThrow(ValidationError);
    expect(carrier.parseWebhook(signed('[{"type":"account.updated","eventId":"e2"}]'))).toEqual([]);
  });

  it('verifies signatures as a pure function', () => {
    const now = Date.UTC(2026, 0, 1);
    const t = now / 1000;
    const header = signSandboxPayload('k', 'body', t);
    expect(header).toMatch(/^t=\d+,v1=[0-9a-f]{64}$/);
    expect(verifySandboxSignature('k', 'body', header, now)).toBe(true);
    expect(verifySandboxSignature('k', Buffer.from('body'), header, now + 299_000)).toBe(true);
    expect(verifySandboxSignature('k', 'body', header, now + 301_000)).toBe(false);
    expect(verifySandboxSignature('k', 'body', header, now - 301_000)).toBe(false);
    expect(verifySandboxSignature('k', 'body', header, now + 10_000, 5)).toBe(false);
    expect(verifySandboxSignature('k', 'body!', header, now)).toBe(false);
    expect(verifySandboxSignature('x', 'body', header, now)).toBe(false);
    expect(verifySandboxSignature('k', 'body', undefined, now)).toBe(false);
    expect(verifySandboxSignature('k', 'body', header.replace(/v1=.*/, 'v1=zz'), now)).toBe(false);
    expect(verifySandboxSignature('k', 'body', header.replace(/^t=\d+,/, ''), now)).toBe(false);
    expect(verifySandboxSignature('k', 'body', `${header},v1=${'0'.repeat(64)}`, now)).toBe(true);
  });
});

describe('sandbox callback delivery', () => {
  it('retries callbacks the receiver refused, with the same events', async () => {
    failFirst.set('retry', 1);
    const carrier = makeCarrier('retry');
    const results = await carrier.send([msg('+14155550102'), msg('+14155550103')]);
    results.forEach(accepted);

    await waitFor(() => eventsOf('retry', carrier).length >= 2, 10_000);
    const requests = received.get('retry')!;
    expect(requests[0]!.answered).toBe(500);
    const firstIds = (JSON.parse(requests[0]!.raw.toString()) as { eventId: string }[]).map((e) => e.eventId).sort();
    const deliveredIds = eventsOf('retry', carrier)
      .map((e) => e.eventKey)
      .sort();
    expect(deliveredIds).toEqual(firstIds);
    await waitFor(() => server.stats().pendingCallbacks === 0);
  });

  it('keeps callbacks across a restart (durable outbox)', async () => {
    const dbPath = join(dir, 'durable.db');
    const first = new SandboxServer({ dbPath, delayMs: 300 });
    const sandboxApp = await buildApp(first);
    first.start();
    const carrier = makeCarrier('durable', { baseUrl: sandboxApp.base });
    const results = await carrier.send([msg('+14155550104'), msg('+12025550193')]);
    results.forEach(accepted);
    expect(first.stats().pendingCallbacks).toBe(3);

    // "Crash" before anything is due.
    await first.close();
    await sandboxApp.app.close();
    await new Promise((r) => setTimeout(r, 400));
    expect(received.get('durable') ?? []).toHaveLength(0);

    const second = new SandboxServer({ dbPath, delayMs: 300 });
    try {
      expect(second.stats()).toMatchObject({ sends: 2, pendingCallbacks: 3 });
      second.start();
      await waitFor(() => eventsOf('durable', carrier).length >= 3);
      const events = eventsOf('durable', carrier);
      expect(events.filter((e) => e.kind === 'status' && e.status === 'delivered')).toHaveLength(2);
      expect(events.filter((e) => e.kind === 'inbound' && e.body === 'STOP')).toHaveLength(1);
      await waitFor(() => second.stats().pendingCallbacks === 0);
    } finally {
      await second.close();
    }
  });

  it('batches many callbacks into few signed requests', async () => {
    const carrier = makeCarrier('bulk');
    const batch = Array.from({ length: 2500 }, (_, i) => msg(`+1415555${String(i).padStart(4, '0')}`));
    const results = await carrier.send(batch);
    expect(results).toHaveLength(2500);
    expect(new Set(results.map(accepted)).size).toBe(2500);
    await waitFor(() => eventsOf('bulk', carrier).length >= 2500, 10_000);
    const requests = received.get('bulk')!;
    expect(requests.length).toBeLessThanOrEqual(10);
    const refs = new Set(eventsOf('bulk', carrier).map((e) => (e.kind === 'status' ? e.reference : null)));
    expect(refs.size).toBe(2500);
  });
});

describe('sandbox HTTP API', () => {
  async function stats(): Promise<{ sends: number; duplicateSends: number }> {
    const res = await request(`${base}/sandbox/v1/stats`);
    expect(res.statusCode).toBe(200);
    return (await res.body.json()) as { sends: number; duplicateSends: number };
  }

  it('counts duplicate accepted sends, not retries after a retryable rejection', async () => {
    const carrier = makeCarrier('dup');
    const before = await stats();
    const once = msg('+14155550105');
    const flaky = msg('+12025550191');
    accepted((await carrier.send([once]))[0]);
    expect((await carrier.send([flaky]))[0]!.ok).toBe(false);
    accepted((await carrier.send([flaky]))[0]);
    let after = await stats();
    expect(after.sends - before.sends).toBe(2);
    expect(after.duplicateSends - before.duplicateSends).toBe(0);

    accepted((await carrier.send([once]))[0]);
    after = await stats();
    expect(after.sends - before.sends).toBe(3);
    expect(after.duplicateSends - before.duplicateSends).toBe(1);
    expect(server.stats().duplicateSends).toBe(after.duplicateSends);
  });

  it('requires a bearer token and validates the body', async () => {
    const post = async (body: unknown, headers: Record<string, string> = { authorization: `Bearer ${TOKEN}` }) => {
      const res = await request(`${base}/sandbox/v1/messages`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers },
        body: JSON.stringify(body),
      });
      return { status: res.statusCode, body: (await res.body.json()) as Record<string, unknown> };
    };
    const one = { reference: 'ref_1', channel: 'sms', to: '+14155550106' };
    const cb = `${base}/hook?case=api`;

    const unauth = await post({ callbackUrl: cb, messages: [one] }, {});
    expect(unauth).toEqual({ status: 401, body: { error: { code: 'unauthorized', message: expect.any(String) } } });
    expect((await post({ callbackUrl: cb, messages: [one] }, { authorization: 'Bearer ' })).status).toBe(401);
    expect((await post({ callbackUrl: cb, messages: [] })).body).toMatchObject({ error: { code: 'invalid_request' } });
    expect((await post({ callbackUrl: cb, messages: [{ channel: 'sms', to: '+1' }] })).status).toBe(400);
    expect((await post({ callbackUrl: 'ftp://x', messages: [one] })).status).toBe(400);
    const tooMany = Array.from({ length: 1001 }, (_, i) => ({ ...one, reference: `r${i}` }));
    expect((await post({ callbackUrl: cb, messages: tooMany })).status).toBe(400);

    const ok = await post({
      callbackUrl: cb,
      messages: [one, { reference: 'ref_2', channel: 'sms', to: '+12025550190' }],
    });
    expect(ok).toEqual({
      status: 200,
      body: {
        results: [
          { reference: 'ref_1', id: expect.stringMatching(/^sbx_/), status: 'accepted' },
          { reference: 'ref_2', error: { code: 'invalid_number', message: expect.any(String), retryable: false } },
        ],
      },
    });
  });
});

describe('sandbox adapter failure mapping', () => {
  let fake: FastifyInstance;
  let fakeBase: string;

  beforeAll(async () => {
    fake = Fastify({ logger: false });
    fake.post('/s503/sandbox/v1/messages', async (_req, reply) => reply.code(503).send({ error: 'down' }));
    fake.post('/s429/sandbox/v1/messages', async (_req, reply) =>
      reply.code(429).header('retry-after', '7').send({ error: 'slow down' }),
    );
    fake.post('/s401/sandbox/v1/messages', async (_req, reply) =>
      reply.code(401).send({ error: { code: 'unauthorized', message: 'bad token' } }),
    );
    fake.post('/s200/sandbox/v1/messages', async () => ({ results: [] }));
    fakeBase = await fake.listen({ port: 0, host: '127.0.0.1' });
  });

  afterAll(async () => {
    await fake.close();
  });

  it('maps HTTP and network failures to per-message results without throwing', async () => {
    const two = [msg('+14155550107'), msg('+14155550108')];
    const at = (path: string) => makeCarrier('unused', { baseUrl: `${fakeBase}/${path}` });

    const unavailable = await at('s503').send(two);
    expect(unavailable).toEqual(
      two.map(() => ({
        ok: false,
        retryable: true,
        error: { code: 'carrier_unavailable', class: 'ResourceError', message: expect.any(String) },
      })),
    );
    const limited = await at('s429').send(two);
    expect(limited[1]).toEqual({
      ok: false,
      retryable: true,
      retryAfterMs: 7000,
      error: { code: 'carrier_rate_limited', class: 'ResourceError', message: expect.any(String) },
    });
    const auth = await at('s401').send(two);
    expect(auth[0]).toEqual({
      ok: false,
      retryable: false,
      error: { code: 'carrier_auth_failed', class: 'PermanentError', message: expect.stringContaining('bad token') },
    });
    const missing = await at('s200').send(two);
    expect(missing[0]).toMatchObject({ ok: false, retryable: true, error: { code: 'carrier_invalid_response' } });

    const down = makeCarrier('unused', { baseUrl: 'http://127.0.0.1:1' });
    const refused = await down.send(two);
    expect(refused[0]).toMatchObject({ ok: false, retryable: true, error: { code: 'carrier_unavailable' } });
    expect(await down.send([])).toEqual([]);
  });

  it('rejects a sender without a usable config', () => {
    expect(() => makeCarrier('unused', { token: '' })).toThrow(ValidationError);
    expect(() => makeCarrier('unused', { baseUrl: 'not a url' })).toThrow(ValidationError);
  });
});
