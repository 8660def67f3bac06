/**
 * Outage test (issue 3, item 4): while PostgreSQL is unreachable `/ready` is false and requests that need the
 * database get `503 service_unavailable` within a bounded time instead of hanging; `/health` stays up; when the
 * database returns the process recovers by itself: ready again, new messages are accepted and delivered, and the
 * messages accepted before the outage are not lost. (Redis restarts are covered by test/fault.test.ts.)
 *
 * The product runs in-process (mode `all`) on a private PostgreSQL cluster of this test's own
 * (test/support/private-postgres.ts), which the test stops and starts; the shared test PostgreSQL is not touched.
 * Without the PostgreSQL server binaries the test is skipped with the reason, except under CI=true, where it fails.
 */
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually, startTestServer, TEST_SECRET_KEY, type TestServer } from './support/harness.ts';
import { createPrivatePostgres, type PrivatePostgres, privatePostgresForTests } from './support/private-postgres.ts';

/** The product's PostgreSQL connect time-out is 5 s: an answer must come well before a client would give up. */
const ANSWER_WITHIN_MS = 10_000;
/** A request that has not answered by then is a hang (the fetch is aborted, the test fails with this). */
const HANG_MS = 20_000;
/** Concurrent submitters while the database stops. */
const LOAD_CLIENTS = 8;

const availability = privatePostgresForTests(); // throws under CI=true when a private cluster cannot be run
const TITLE = 'PostgreSQL outage: not ready, 503s, recovery';

interface Answer {
  status: number;
  body: any;
  headers: Headers;
  ms: number;
}

const suite = (body: () => void) =>
  availability.run ? describe(TITLE, body) : describe.skip(`${TITLE} [skipped: ${availability.reason}]`, body);

suite(() => {
  let cluster: PrivatePostgres | undefined;
  let server: TestServer | undefined;
  /** Errors nothing handled: in a real process each of them would have killed it. */
  const crashes: unknown[] = [];
  const onCrash = (err: unknown) => {
    crashes.push(err);
  };

  beforeAll(async () => {
    process.on('uncaughtException', onCrash);
    process.on('unhandledRejection', onCrash);
    cluster = await createPrivatePostgres();
    await cluster.start();
    server = await startTestServer(
      {
        OMNI_DATABASE_URL: cluster.url,
        OMNI_DATABASE_SCHEMA: `outage_${randomBytes(6).toString('hex')}`,
        OMNI_SECRET_KEY: TEST_SECRET_KEY,
        // The worker loops log every failed poll during the outage; keep the test output readable.
        OMNI_LOG_LEVEL: 'fatal',
        // Slow enough that a message accepted just before the outage is still in flight when it starts.
        OMNI_SANDBOX_DELAY_MS: '300',
        // A send job claimed just before the outage whose worker then failed is taken again when its lease ends
        // (default 30 s); a short lease keeps the test short and still proves that such messages are not lost.
        OMNI_LEASE_MS: '3000',
      },
      'all',
    );
  });

  afterAll(async () => {
    try {
      if (cluster && !cluster.running) await cluster.start().catch(() => undefined); // lets the product stop cleanly
      await server?.stop();
    } finally {
      await cluster?.cleanup();
      process.off('uncaughtException', onCrash);
      process.off('unhandledRejection', onCrash);
    }
  });

  /** One request with the API key, timed; a request still unanswered after HANG_MS fails the test as a hang. */
  async function call(method: string, path: string, body?: unknown): Promise<Answer> {
    const s = server!;
    const started = performance.now();
    let res: Response;
    try {
      res = await fetch(s.url + path, {
        method,
        headers: {
          authorization: `Bearer ${s.apiKey}`,
          ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
        },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        signal: AbortSignal.timeout(HANG_MS),
      });
    } catch (err) {
      throw new Error(`${method} ${path} did not answer within ${HANG_MS} ms (it hangs): ${String(err)}`);
    }
    const text = await res.text();
    const ms = performance.now() - started;
    return { status: res.status, body: text ? JSON.parse(text) : undefined, headers: res.headers, ms };
  }

  const describeAnswer = (a: Answer) => `${a.status} after ${Math.round(a.ms)} ms: ${JSON.stringify(a.body)}`;

  async function send(to: string, text: string): Promise<string> {
    const r = await call('POST', '/v1/messages', { to, channel: 'sms', body: text });
    expect(r.status, describeAnswer(r)).toBe(202);
    return r.body.id as string;
  }

  async function delivered(id: string, timeoutMs: number): Promise<void> {
    await eventually(
      async () => {
        const r = await call('GET', `/v1/messages/${id}`);
        return r.status === 200 && r.body.status === 'delivered';
      },
      timeoutMs,
      100,
    );
  }

  function expectUnavailable(a: Answer, what: string): void {
    expect(a.status, `${what}: ${describeAnswer(a)}`).toBe(503);
    expect(a.body?.error?.code, `${what}: ${describeAnswer(a)}`).toBe('service_unavailable');
    expect(a.ms, `${what} answered, but only after ${Math.round(a.ms)} ms`).toBeLessThan(ANSWER_WITHIN_MS);
  }

  it('is not ready and answers 503 while PostgreSQL is down, and recovers by itself when it returns', async () => {
    const pgCluster = cluster!;

    // --- healthy ----------------------------------------------------------------------------------------------
    const ready = await call('GET', '/ready');
    expect(ready.status, describeAnswer(ready)).toBe(200);
    expect(ready.body.checks).toMatchObject({ database: true, workers: true });
    const before = await send('+12025550100', 'before the outage');
    await delivered(before, 15_000);

    // A message accepted just before the database goes away: still in the pipeline when the outage starts.
    const inFlight = await send('+12025550101', 'in flight when the outage starts');

    // --- outage -----------------------------------------------------------------------------------------------
    // The database goes away under load: clients submit messages concurrently while it stops, so requests, their
    // transactions and the worker loops' transactions are in the middle of their work when the sessions end.
    const load = { stopped: false, answers: [] as Answer[], accepted: [] as string[] };
    const submitters = Array.from({ length: LOAD_CLIENTS }, async (_, c) => {
      for (let i = 0; !load.stopped; i++) {
        const a = await call('POST', '/v1/messages', { to: '+12025550105', channel: 'sms', body: `load ${c}.${i}` });
        load.answers.push(a);
        if (a.status === 202) load.accepted.push(a.body.id as string);
        else await sleep(50);
      }
    });
    await sleep(300);
    await pgCluster.stop();
    const downAt = performance.now();
    await sleep(500);
    load.stopped = true;
    await Promise.all(submitters);
    // Each request answered promptly: accepted (before the outage) or 503 (during it); none failed otherwise.
    // (Soft: the rest of the test still runs, so one failure shows every finding.)
    const wrong = load.answers.filter(
      (a) =>
        a.ms >= ANSWER_WITHIN_MS ||
        (a.status !== 202 && (a.status !== 503 || a.body?.error?.code !== 'service_unavailable')),
    );
    expect
      .soft(wrong.map(describeAnswer), 'POSTs while the database stopped must answer 202 or 503 service_unavailable')
      .toEqual([]);
    expect(load.accepted.length, 'no message was accepted before the outage').toBeGreaterThan(0);
    expect(load.answers.length - load.accepted.length, 'no request met the outage').toBeGreaterThan(0);

    // /ready turns false within a few seconds (its database check has a 2 s time-out), and each answer is quick.
    const notReady = await eventually(
      async () => {
        const r = await call('GET', '/ready');
        expect(r.ms, `/ready took ${Math.round(r.ms)} ms`).toBeLessThan(ANSWER_WITHIN_MS);
        return r.status === 503 ? r : undefined;
      },
      5_000,
      100,
    );
    expect(performance.now() - downAt, '/ready noticed the outage late').toBeLessThan(5_000);
    expect(notReady.body).toMatchObject({ status: 'not_ready', checks: { database: false } });
    // The workers keep running through the outage (their failed polls are retried, nothing crashed).
    expect(notReady.body.checks.workers, JSON.stringify(notReady.body)).toBe(true);

    // Requests that need the database: 503 service_unavailable, promptly.
    expectUnavailable(
      await call('POST', '/v1/messages', { to: '+12025550102', channel: 'sms', body: 'during the outage' }),
      'POST /v1/messages',
    );
    expectUnavailable(await call('GET', `/v1/messages/${before}`), `GET /v1/messages/${before}`);
    expectUnavailable(await call('GET', `/v1/messages/${inFlight}`), `GET /v1/messages/${inFlight}`);

    // More requests at once than the pool has connections (10): none of them queues forever behind the others.
    const burst = await Promise.all(
      Array.from({ length: 25 }, (_, i) =>
        i % 2 === 0
          ? call('POST', '/v1/messages', { to: '+12025550103', channel: 'sms', body: `burst ${i}` })
          : call('GET', `/v1/messages/${before}`),
      ),
    );
    for (const [i, a] of burst.entries()) expectUnavailable(a, `burst request ${i}`);

    // Liveness does not depend on the database: the orchestrator must not kill a process that will recover.
    const health = await call('GET', '/health');
    expect(health.status, describeAnswer(health)).toBe(200);

    // Stay down a little longer, so the worker loops go through several failed polls.
    await sleep(1_000);
    const stillDown = await call('GET', '/ready');
    expect(stillDown.status, describeAnswer(stillDown)).toBe(503);
    expect(stillDown.body.checks.workers, JSON.stringify(stillDown.body)).toBe(true);

    // Nothing went unhandled while the sessions ended (in a real process each such error would kill it).
    const crashesInOutage = crashes.length;
    expect
      .soft(crashes.map(String), 'errors nothing handled while the database went away (each would crash the process)')
      .toEqual([]);

    // --- recovery ---------------------------------------------------------------------------------------------
    await pgCluster.start();
    const readyAgain = await eventually(
      async () => {
        const r = await call('GET', '/ready');
        return r.status === 200 ? r : undefined;
      },
      15_000,
      200,
    );
    expect(readyAgain.body.checks).toMatchObject({ database: true, workers: true });

    const after = await send('+12025550104', 'after the outage');
    await delivered(after, 15_000);
    // Nothing accepted before the outage was lost: the delivered message is intact, and the messages still in the
    // pipeline when the sessions ended (claimed send jobs, refused sandbox callbacks) are all delivered.
    await delivered(inFlight, 30_000);
    for (const id of load.accepted) await delivered(id, 30_000);
    const old = await call('GET', `/v1/messages/${before}`);
    expect(old.status, describeAnswer(old)).toBe(200);
    expect(old.body).toMatchObject({ id: before, status: 'delivered', body: 'before the outage' });

    expect((await call('GET', '/health')).status).toBe(200);
    expect(
      crashes.slice(crashesInOutage).map(String),
      'errors nothing handled during the recovery (each would crash the process)',
    ).toEqual([]);
  }, 75_000);
});
