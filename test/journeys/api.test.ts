/**
 * The journeys API (`/v1/journeys`, `/v1/journey-runs`) on a Fastify instance set up like the product's (the same
 * validator compilers, error handler and error schema), with the engine on SQLite and fake ports.
 */

import { Ajv } from 'ajv';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { handleError } from '../../src/http/errors.ts';
import { journeyRoutes } from '../../src/http/routes/journeys.ts';
import { ErrorSchema } from '../../src/http/schemas.ts';
import type { ApiKeyRecord } from '../../src/ports/store.ts';
import { bodyAjv } from '../../src/services/validation.ts';
import { type Engine, ORG, openEngine } from './fakes.ts';

let e: Engine;
let app: FastifyInstance;

async function buildTestApp(engine: Engine): Promise<FastifyInstance> {
  const a = Fastify({ logger: false });
  const queryAjv = new Ajv({ coerceTypes: 'array', useDefaults: true, strict: false });
  a.setValidatorCompiler(({ schema, httpPart }) =>
    httpPart === 'body' ? bodyAjv.compile(schema) : queryAjv.compile(schema),
  );
  a.setErrorHandler(handleError);
  a.addSchema(ErrorSchema);
  a.decorateRequest('auth', null as unknown as ApiKeyRecord);
  a.addHook('onRequest', async (request) => {
    request.auth = { id: 'key_1', orgId: ORG, name: 'test' };
  });
  journeyRoutes(a, { journeys: engine.journeys, journeyRuns: engine.runs, runner: engine.runner });
  await a.ready();
  return a;
}

beforeEach(async () => {
  e = await openEngine();
  e.contacts.add('ctc_ada');
  app = await buildTestApp(e);
});
afterEach(async () => {
  await app.close();
  e.close();
});

async function call(method: string, url: string, body?: unknown, headers: Record<string, string> = {}) {
  const res = await app.inject({
    method: method as 'GET',
    url,
    ...(body !== undefined ? { payload: body as object } : {}),
    headers,
  });
  return { status: res.statusCode, body: res.body ? JSON.parse(res.body) : undefined };
}

const definition = {
  trigger: { type: 'api' },
  entry: 'hello',
  reentry: { mode: 'always' },
  steps: {
    hello: { type: 'send', channel: 'sms', body: 'Hello', next: 'wait' },
    wait: { type: 'wait', duration: '1h', next: 'done' },
    done: { type: 'exit' },
  },
};

describe('/v1/journeys', () => {
  it('creates, reads, updates, publishes, lists and archives a journey', async () => {
    const created = await call('POST', '/v1/journeys', { name: 'Welcome', definition });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ name: 'Welcome', status: 'draft', publishedVersion: null, definition });
    const id = created.body.id as string;
    expect(id).toMatch(/^jny_/);

    const renamed = await call('PATCH', `/v1/journeys/${id}`, { name: 'Welcome series' });
    expect(renamed.body).toMatchObject({ name: 'Welcome series', status: 'draft' });

    const published = await call('POST', `/v1/journeys/${id}/publish`);
    expect(published.status).toBe(200);
    expect(published.body).toMatchObject({ status: 'active', publishedVersion: 1, versions: [{ version: 1 }] });
    await call('PATCH', `/v1/journeys/${id}`, {
      definition: {
        ...definition,
        steps: { ...definition.steps, wait: { type: 'wait', duration: '2h', next: 'done' } },
      },
    });
    expect((await call('POST', `/v1/journeys/${id}/publish`)).body.publishedVersion).toBe(2);
    const v1 = await call('GET', `/v1/journeys/${id}/versions/1`);
    expect(v1.body).toMatchObject({ version: 1, definition: { steps: { wait: { duration: '1h' } } } });
    expect((await call('GET', `/v1/journeys/${id}/versions/3`)).body.error.code).toBe('journey_version_not_found');
    const got = await call('GET', `/v1/journeys/${id}`);
    expect(got.body.versions.map((v: { version: number }) => v.version)).toEqual([1, 2]);

    await call('POST', '/v1/journeys', { name: 'Other', definition });
    const list = await call('GET', '/v1/journeys?limit=1');
    expect(list.body.items).toHaveLength(1);
    const rest = await call('GET', `/v1/journeys?limit=5&cursor=${list.body.nextCursor}`);
    expect(rest.body.items.map((j: { id: string }) => j.id)).toEqual([id]);
    expect((await call('GET', '/v1/journeys?status=active')).body.items.map((j: { id: string }) => j.id)).toEqual([id]);

    expect((await call('POST', `/v1/journeys/${id}/archive`)).body.status).toBe('archived');
    const locked = await call('PATCH', `/v1/journeys/${id}`, { name: 'x' });
    expect(locked).toMatchObject({ status: 409, body: { error: { code: 'journey_archived' } } });
    expect((await call('POST', `/v1/journeys/${id}/publish`)).status).toBe(409);
  });

  it('answers a definition error with its code and the field inside the definition', async () => {
    const bad = {
      ...definition,
      steps: { ...definition.steps, wait: { type: 'wait', duration: '1h', next: 'nowhere' } },
    };
    const r = await call('POST', '/v1/journeys', { name: 'Broken', definition: bad });
    expect(r.status).toBe(400);
    expect(r.body.error).toMatchObject({ code: 'dangling_edge', field: 'definition.steps.wait.next' });
    expect(r.body.error.message).toContain("'definition.steps.wait.next'");

    const liquid = {
      ...definition,
      steps: { ...definition.steps, hello: { type: 'send', channel: 'sms', body: 'Hi {{ name', next: 'wait' } },
    };
    expect((await call('POST', '/v1/journeys', { name: 'x', definition: liquid })).body.error).toMatchObject({
      code: 'template_syntax_error',
      field: 'definition.steps.hello.body',
    });
    expect((await call('POST', '/v1/journeys', { name: 'x' })).body.error).toMatchObject({
      code: 'missing_field',
      field: 'definition',
    });
    expect((await call('POST', '/v1/journeys', { name: 'x', definition: [] })).body.error.code).toBe('invalid_type');
    expect((await call('GET', '/v1/journeys/jny_missing')).status).toBe(404);
  });
});

describe('starting and operating runs', () => {
  it('starts a run by API (once per Idempotency-Key), lists it, shows its history, cancels it', async () => {
    const id = (await call('POST', '/v1/journeys', { name: 'W', definition })).body.id as string;
    const early = await call('POST', `/v1/journeys/${id}/start`, { contactId: 'ctc_ada' });
    expect(early).toMatchObject({ status: 409, body: { error: { code: 'journey_not_active' } } });
    await call('POST', `/v1/journeys/${id}/publish`);

    const key = { 'idempotency-key': 'signup-42' };
    const started = await call(
      'POST',
      `/v1/journeys/${id}/start`,
      { contactId: 'ctc_ada', payload: { plan: 'pro' } },
      key,
    );
    expect(started.status).toBe(201);
    expect(started.body).toMatchObject({ status: 'started' });
    const again = await call('POST', `/v1/journeys/${id}/start`, { contactId: 'ctc_ada' }, key);
    expect(again).toMatchObject({ status: 200, body: { status: 'duplicate', runId: started.body.runId } });
    const unknown = await call('POST', `/v1/journeys/${id}/start`, { contactId: 'ctc_nobody' });
    expect(unknown).toMatchObject({ status: 404, body: { error: { code: 'contact_not_found', field: 'contactId' } } });

    await e.drain();
    const runs = await call('GET', `/v1/journeys/${id}/runs?status=waiting`);
    expect(runs.body.items).toHaveLength(1);
    const runId = runs.body.items[0].id as string;
    const detail = await call('GET', `/v1/journey-runs/${runId}`);
    expect(detail.body).toMatchObject({
      id: runId,
      journeyId: id,
      version: 1,
      contactId: 'ctc_ada',
      status: 'waiting',
      stepId: 'wait',
      context: { trigger: { kind: 'api', input: { plan: 'pro' } }, messages: { hello: { channel: 'sms' } } },
    });
    expect(detail.body.history.map((h: { outcome: string }) => h.outcome)).toEqual([
      'started',
      'sent',
      'completed',
      'waiting',
    ]);
    expect((await call('POST', `/v1/journey-runs/${runId}/retry`)).body.error.code).toBe('run_not_retryable');
    const canceled = await call('POST', `/v1/journey-runs/${runId}/cancel`);
    expect(canceled).toMatchObject({ status: 200, body: { status: 'canceled', dueAt: null } });
    expect((await call('POST', `/v1/journey-runs/${runId}/cancel`)).status).toBe(409);
    expect((await call('GET', '/v1/journey-runs/jrun_missing')).body.error.code).toBe('run_not_found');
    expect((await call('GET', '/v1/journeys/jny_missing/runs')).body.error.code).toBe('journey_not_found');
  });

  it('retries a failed run', async () => {
    const hook = {
      ...definition,
      entry: 'hook',
      steps: {
        hook: { type: 'webhook', url: 'https://example.com/h', maxAttempts: 1, next: 'done' },
        done: { type: 'exit' },
      },
    };
    const id = (await call('POST', '/v1/journeys', { name: 'H', definition: hook })).body.id as string;
    await call('POST', `/v1/journeys/${id}/publish`);
    e.webhooks.answers = [500, 200];
    const { runId } = (await call('POST', `/v1/journeys/${id}/start`, { contactId: 'ctc_ada' })).body;
    await e.drain();
    expect((await call('GET', `/v1/journey-runs/${runId}`)).body).toMatchObject({
      status: 'failed',
      error: { code: 'webhook_failed' },
    });
    const retried = await call('POST', `/v1/journey-runs/${runId}/retry`);
    expect(retried.body).toMatchObject({ status: 'running', attempts: 0, error: null });
    await e.drain();
    expect((await call('GET', `/v1/journey-runs/${runId}`)).body.status).toBe('completed');
  });
});
