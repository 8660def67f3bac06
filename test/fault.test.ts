/**
 * Fault test: the scaled-out deployment (2 `api`, 2 `worker` and 1 `sandbox` process on PostgreSQL and a Redis of
 * the test's own) takes 20,000 messages, submitted in batches spread over both API processes, while it is hurt:
 * one worker and one API process are killed with SIGKILL and restarted on the same ports, and Redis is killed and
 * started again (no persistence: every BullMQ job is lost, which the outbox sweeper must make up for). In the
 * end every accepted message has exactly one final status, the one its destination calls for, and none is lost.
 *
 * Needs PostgreSQL (OMNI_TEST_DATABASE_URL) and the `redis-server` binary: without them the test is skipped with
 * the reason, except under CI=true, where it fails.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { TEST_SECRET_KEY } from './support/harness.ts';
import { dropSchema, newSchemaName, PG_URL, postgresForTests } from './support/postgres.ts';
import { freePort } from './support/processes.ts';
import { deleteKeys, testPrefix } from './support/redis.ts';

const KEY = 'omni_sk_fault_test_key_0000000000000000000';
const TOTAL = 20_000;
const BATCH = 500;
/** A batch is started every this many ms (alternating API processes), so the faults hit a busy pipeline. */
const SUBMIT_EVERY_MS = 300;
const SETTLE_TIMEOUT_MS = 100_000;
const TEST_TIMEOUT_MS = 175_000;
const FINAL = new Set(['delivered', 'failed', 'undelivered']);

/** Destination of message `i` and the status it must end in: mostly delivered numbers, 5% each special one. */
function destination(i: number): [to: string, expected: string] {
  switch (i % 20) {
    case 0:
      return ['+12025550190', 'failed'];
    case 1:
      return ['+12025550191', 'delivered'];
    case 2:
      return ['+12025550192', 'undelivered'];
    default:
      return [`+120255501${String(i % 90).padStart(2, '0')}`, 'delivered'];
  }
}

// --- prerequisites ----------------------------------------------------------------------------------------------

/** Null when `redis-server` can be run, else why not. */
function probeRedisServer(): string | null {
  const r = spawnSync('redis-server', ['--version'], { encoding: 'utf8', timeout: 5000 });
  if (r.error) return `redis-server cannot be run (${r.error.message})`;
  if (r.status !== 0) return `redis-server --version exited with ${r.status}`;
  return null;
}

const pgTests = await postgresForTests(); // throws under CI=true when PostgreSQL is unreachable
const redisMissing = probeRedisServer();
if (redisMissing && process.env.CI === 'true') throw new Error(`${redisMissing}; CI requires it`);
const skipReason = !pgTests.run ? pgTests.reason : redisMissing;
if (skipReason) console.warn(`[tests] skipped the fault test: ${skipReason}`);

// --- processes --------------------------------------------------------------------------------------------------

interface Proc {
  name: string;
  child: ChildProcess;
  exited: Promise<void>;
  /** Last lines of its output, for failure messages. */
  tail: string[];
}

const live = new Set<Proc>();

function launch(name: string, command: string, args: string[], env: Record<string, string> = {}): Proc {
  const child = spawn(command, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const tail: string[] = [];
  const keep = (chunk: Buffer) => {
    for (const line of chunk.toString('utf8').split('\n')) if (line.trim()) tail.push(line.slice(0, 500));
    if (tail.length > 30) tail.splice(0, tail.length - 30);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const proc: Proc = {
    name,
    child,
    tail,
    exited: new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) resolve();
      else child.once('exit', () => resolve());
    }),
  };
  live.add(proc);
  proc.exited.then(() => live.delete(proc));
  return proc;
}

function isRunning(p: Proc): boolean {
  return p.child.exitCode === null && p.child.signalCode === null;
}

async function sigkill(p: Proc | undefined): Promise<void> {
  if (!p || !isRunning(p)) return;
  p.child.kill('SIGKILL');
  await p.exited;
}

/** Polls `check` every `everyMs` until it returns true; throws after `timeoutMs` (with `what` and `proc`'s output). */
async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs: number, proc?: Proc): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (proc && !isRunning(proc))
      throw new Error(`${proc.name} exited while waiting for ${what}:\n${proc.tail.join('\n')}`);
    try {
      if (await check()) return;
    } catch {
      // not yet
    }
    if (Date.now() > deadline) {
      throw new Error(`${what}: not within ${timeoutMs} ms${proc ? `\n${proc.tail.join('\n')}` : ''}`);
    }
    await sleep(100);
  }
}

async function httpOk(url: string): Promise<boolean> {
  const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
  await res.arrayBuffer();
  return res.ok;
}

async function redisPing(url: string): Promise<boolean> {
  const client = new Redis(url, {
    lazyConnect: true,
    connectTimeout: 1000,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  });
  client.on('error', () => undefined);
  try {
    await client.connect();
    return (await client.ping()) === 'PONG';
  } finally {
    client.disconnect();
  }
}

// --- the deployment ---------------------------------------------------------------------------------------------

interface Deployment {
  schema: string;
  prefix: string;
  dataDir: string;
  redisPort: number;
  sandboxPort: number;
  apiPorts: [number, number];
  redis?: Proc;
  sandbox?: Proc;
  apis: (Proc | undefined)[];
  workers: (Proc | undefined)[];
}

let dep: Deployment | undefined;

function redisUrl(d: Deployment): string {
  return `redis://127.0.0.1:${d.redisPort}`;
}

function productEnv(d: Deployment, extra: Record<string, string>): Record<string, string> {
  return {
    OMNI_HOST: '127.0.0.1',
    OMNI_DATA_DIR: d.dataDir,
    OMNI_DATABASE_URL: PG_URL,
    OMNI_SECRET_KEY: TEST_SECRET_KEY,
    OMNI_DATABASE_SCHEMA: d.schema,
    OMNI_REDIS_URL: redisUrl(d),
    OMNI_REDIS_PREFIX: d.prefix,
    OMNI_BOOTSTRAP_API_KEY: KEY,
    OMNI_SANDBOX_URL: `http://127.0.0.1:${d.sandboxPort}`,
    OMNI_LOG_LEVEL: 'warn',
    OMNI_SANDBOX_DELAY_MS: '100',
    OMNI_SWEEP_GRACE_MS: '3000',
    OMNI_LEASE_MS: '3000',
    OMNI_RETRY_BASE_MS: '100',
    OMNI_POLL_MS: '50',
    ...extra,
  };
}

function product(d: Deployment, name: string, command: string, extra: Record<string, string>): Proc {
  return launch(name, process.execPath, ['--import', 'tsx', 'src/entry/cli.ts', command], productEnv(d, extra));
}

async function startRedis(d: Deployment): Promise<void> {
  const args = ['--port', String(d.redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'];
  d.redis = launch('redis', 'redis-server', [...args, '--daemonize', 'no']);
  await waitFor('redis-server to answer', () => redisPing(redisUrl(d)), 10_000, d.redis);
}

async function startApi(d: Deployment, n: 0 | 1): Promise<void> {
  const port = d.apiPorts[n];
  const p = product(d, `api${n + 1}`, 'api', { OMNI_PORT: String(port), OMNI_PUBLIC_URL: `http://127.0.0.1:${port}` });
  d.apis[n] = p;
  await waitFor(`api${n + 1} ready`, () => httpOk(`http://127.0.0.1:${port}/ready`), 30_000, p);
}

function startWorker(d: Deployment, n: 0 | 1): Proc {
  // Each worker has the sandbox post its callbacks to "its" API process: both take webhooks.
  const port = d.apiPorts[n];
  const p = product(d, `worker${n + 1}`, 'worker', { OMNI_PUBLIC_URL: `http://127.0.0.1:${port}` });
  d.workers[n] = p;
  return p;
}

async function migrate(d: Deployment): Promise<void> {
  const p = product(d, 'migrate', 'migrate', {});
  await Promise.race([p.exited, sleep(30_000)]);
  if (isRunning(p)) {
    await sigkill(p);
    throw new Error(`omni migrate did not finish:\n${p.tail.join('\n')}`);
  }
  if (p.child.exitCode !== 0) throw new Error(`omni migrate exited with ${p.child.exitCode}:\n${p.tail.join('\n')}`);
}

async function teardown(): Promise<void> {
  const d = dep;
  dep = undefined;
  for (const p of [...live]) if (p.name !== 'redis') await sigkill(p);
  if (!d) return;
  const errors: unknown[] = [];
  if (d.redis && isRunning(d.redis)) {
    const client = new Redis(redisUrl(d), { maxRetriesPerRequest: 1, retryStrategy: () => null });
    client.on('error', () => undefined);
    await deleteKeys(client, d.prefix).catch((err) => errors.push(err));
    client.disconnect();
  }
  for (const p of [...live]) await sigkill(p);
  await dropSchema(d.schema).catch((err) => errors.push(err));
  rmSync(d.dataDir, { recursive: true, force: true });
  if (errors.length > 0) throw errors[0];
}

afterAll(teardown, 30_000);
// Should the test runner itself go away, take the children with it.
process.once('exit', () => {
  for (const p of live) p.child.kill('SIGKILL');
});

/** Jobs of each queue in our Redis (waiting, prioritized, delayed or active), keys as BullMQ lays them out. */
async function jobCounts(client: Redis, prefix: string): Promise<{ send: number; events: number }> {
  const count = async (queue: string) => {
    const k = (s: string) => `${prefix}:${queue}:${s}`;
    const [wait, prio, delayed, active] = await Promise.all([
      client.llen(k('wait')),
      client.zcard(k('prioritized')),
      client.zcard(k('delayed')),
      client.llen(k('active')),
    ]);
    return wait + prio + delayed + active;
  };
  const [send, events] = await Promise.all([count('send'), count('carrier-events')]);
  return { send, events };
}

/** Waits (at most `timeoutMs`) until Redis holds send and carrier-event jobs both; returns the last counts. */
async function jobsHeld(d: Deployment, timeoutMs: number): Promise<{ send: number; events: number }> {
  const client = new Redis(redisUrl(d), { maxRetriesPerRequest: 1 });
  client.on('error', () => undefined);
  const deadline = Date.now() + timeoutMs;
  try {
    for (;;) {
      const c = await jobCounts(client, d.prefix);
      if ((c.send > 0 && c.events > 0) || Date.now() > deadline) return c;
      await sleep(10);
    }
  } finally {
    client.disconnect();
  }
}

// --- traffic ----------------------------------------------------------------------------------------------------

interface SubmitLog {
  /** Accepted message id → the status it must end in. */
  expected: Map<string, string>;
  /** Requests that failed (connection refused or reset, 5xx) and were tried again on the other API. */
  failedRequests: number;
  byApi: [number, number];
}

/** POSTs one batch; null when the request failed (no answer, or a 503/5xx). */
async function postBatch(port: number, body: string): Promise<{ id?: string }[] | null> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}/v1/messages/batch`, {
      method: 'POST',
      headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
      body,
      signal: AbortSignal.timeout(30_000),
    });
    const text = await res.text();
    if (res.status >= 500) return null;
    if (res.status !== 200) throw new Error(`batch answered ${res.status}: ${text.slice(0, 300)}`);
    return (JSON.parse(text) as { items: { id?: string }[] }).items;
  } catch (err) {
    if (err instanceof Error && err.message.startsWith('batch answered')) throw err;
    // Killed mid-request (or not listening): an unanswered request promises nothing.
    return null;
  }
}

/** Batch `b` goes to API `b % 2`; a failed request is sent again (new message ids) to the other, then back. */
async function submitBatch(d: Deployment, b: number, log: SubmitLog): Promise<void> {
  const first = b * BATCH;
  const messages = Array.from({ length: BATCH }, (_, k) => {
    const [to] = destination(first + k);
    return { to, channel: 'sms', body: `fault test ${first + k}` };
  });
  const body = JSON.stringify({ messages });
  for (let attempt = 0; attempt < 12; attempt++) {
    const api = (b + attempt) % 2;
    const items = await postBatch(d.apiPorts[api] as number, body);
    if (items === null) {
      log.failedRequests++;
      await sleep(Math.min(2000, 200 * (attempt + 1)));
      continue;
    }
    items.forEach((item, k) => {
      if (item.id) log.expected.set(item.id, destination(first + k)[1]);
    });
    log.byApi[api as 0 | 1] += items.filter((i) => i.id).length;
    return;
  }
  throw new Error(`batch ${b} was not accepted by either API process`);
}

// --- checks -----------------------------------------------------------------------------------------------------

async function statusCounts(db: pg.Client, schema: string): Promise<Record<string, number>> {
  const { rows } = await db.query<{ status: string; n: string }>(
    `select status, count(*) as n from "${schema}".messages where direction = 'outbound' group by status`,
  );
  return Object.fromEntries(rows.map((r) => [r.status, Number(r.n)]));
}

/** Every outbound message of the deployment, from the API (paged), as id → status; ids seen twice are counted. */
async function listAll(port: number): Promise<{ statuses: Map<string, string>; repeats: number }> {
  const statuses = new Map<string, string>();
  let repeats = 0;
  let cursor: string | null = null;
  do {
    const res = await fetch(
      `http://127.0.0.1:${port}/v1/messages?direction=outbound&limit=500${cursor ? `&cursor=${cursor}` : ''}`,
      { headers: { authorization: `Bearer ${KEY}` }, signal: AbortSignal.timeout(30_000) },
    );
    if (!res.ok) throw new Error(`GET /v1/messages answered ${res.status}`);
    const body = (await res.json()) as { items: { id: string; status: string }[]; nextCursor: string | null };
    for (const m of body.items) {
      if (statuses.has(m.id)) repeats++;
      statuses.set(m.id, m.status);
    }
    cursor = body.nextCursor;
  } while (cursor);
  return { statuses, repeats };
}

describe.skipIf(skipReason !== null)(`fault test${skipReason ? ` [skipped: ${skipReason}]` : ''}`, () => {
  it(
    'loses no message and settles each exactly once across SIGKILLed worker and API processes and a Redis restart',
    async () => {
      const t0 = performance.now();
      const at = () => `${((performance.now() - t0) / 1000).toFixed(1)} s`;
      const events: string[] = [];
      const note = (what: string) => events.push(`${at()} ${what}`);
      const [redisPort, sandboxPort, api1Port, api2Port] = await Promise.all([
        freePort(),
        freePort(),
        freePort(),
        freePort(),
      ]);
      const d: Deployment = {
        schema: newSchemaName(),
        prefix: testPrefix(),
        dataDir: mkdtempSync(join(tmpdir(), 'omni-fault-')),
        redisPort: redisPort as number,
        sandboxPort: sandboxPort as number,
        apiPorts: [api1Port as number, api2Port as number],
        apis: [],
        workers: [],
      };
      dep = d;
      const db = new pg.Client({ connectionString: PG_URL });
      await db.connect();
      try {
        // 1. Redis, the schema (and the bootstrap organization with our key), then the five processes.
        await startRedis(d);
        await migrate(d);
        d.sandbox = product(d, 'sandbox', 'sandbox', { OMNI_PORT: String(d.sandboxPort) });
        const sandboxUrl = `http://127.0.0.1:${d.sandboxPort}`;
        await Promise.all([
          waitFor('sandbox up', () => httpOk(`${sandboxUrl}/health`), 30_000, d.sandbox),
          startApi(d, 0),
          startApi(d, 1),
        ]);
        startWorker(d, 0);
        startWorker(d, 1);
        note('deployment up');

        // 2. Submit: a batch every SUBMIT_EVERY_MS, alternating API processes, while the faults happen.
        const log: SubmitLog = { expected: new Map(), failedRequests: 0, byApi: [0, 0] };
        const batches = TOTAL / BATCH;
        const tSubmit = performance.now();
        const submitting = (async () => {
          const inFlight: Promise<void>[] = [];
          for (let b = 0; b < batches; b++) {
            inFlight.push(submitBatch(d, b, log));
            await sleep(SUBMIT_EVERY_MS);
          }
          await Promise.all(inFlight);
          note(`submitted: ${log.expected.size} accepted, ${log.failedRequests} failed requests retried`);
        })();
        const faults = (async () => {
          const since = (ms: number) => sleep(Math.max(0, ms - (performance.now() - tSubmit)));
          await since(2500);
          await sigkill(d.workers[0]);
          note('worker1 SIGKILLed');
          await sleep(1000);
          startWorker(d, 0);
          note('worker1 restarted');
          await since(4500);
          await sigkill(d.apis[0]);
          note('api1 SIGKILLed');
          await sleep(500);
          await startApi(d, 0);
          note('api1 restarted and ready');
          await since(11_000);
          // Kill Redis while it holds jobs of both queues (carrier-event jobs are short-lived: wait for some).
          const held = await jobsHeld(d, 8000);
          await sigkill(d.redis);
          note(`redis SIGKILLed, losing ${held.send} send and ${held.events} carrier-event jobs`);
          await sleep(1500);
          await startRedis(d);
          note('redis restarted (empty)');
        })();
        const [submitted, faulted] = await Promise.allSettled([submitting, faults]);
        if (submitted.status === 'rejected') throw submitted.reason;
        if (faulted.status === 'rejected') throw faulted.reason;
        expect(log.expected.size, 'every batch is accepted by one API process or the other').toBe(TOTAL);
        for (const api of [0, 1] as const) {
          await waitFor(`api${api + 1} ready again`, () => httpOk(`http://127.0.0.1:${d.apiPorts[api]}/ready`), 30_000);
        }

        // 3. Wait until no outbound message is on its way any more (submissions cut off by a kill count too).
        let counts: Record<string, number> = {};
        const settleDeadline = Date.now() + SETTLE_TIMEOUT_MS;
        let lastNote = 0;
        for (;;) {
          counts = await statusCounts(db, d.schema);
          const unsettled = Object.entries(counts).filter(([s]) => !FINAL.has(s));
          if (unsettled.length === 0) break;
          if (Date.now() > settleDeadline) break;
          if (Date.now() - lastNote > 10_000) {
            lastNote = Date.now();
            note(`waiting: ${JSON.stringify(counts)}`);
          }
          for (const p of [d.sandbox, ...d.apis, ...d.workers])
            if (p && !isRunning(p)) throw new Error(`${p.name} died:\n${p.tail.join('\n')}`);
          await sleep(500);
        }
        note(`settled: ${JSON.stringify(counts)}`);
        const wallS = (performance.now() - t0) / 1000;

        // 4. Every accepted message, read back through the API: there, once, with its destination's status.
        const { statuses, repeats } = await listAll(d.apiPorts[1]);
        const wrong = new Map<string, number>();
        for (const [id, want] of log.expected) {
          const got = statuses.get(id) ?? 'missing';
          if (got !== want) wrong.set(`${want}→${got}`, (wrong.get(`${want}→${got}`) ?? 0) + 1);
        }
        // ... and in its history, exactly one applied final status.
        const { rows: finals } = await db.query<{ message_id: string; n: string }>(
          `select message_id, count(*) filter (where applied = 1 and status in ('delivered', 'failed', 'undelivered')) as n
           from "${d.schema}".message_history group by message_id`,
        );
        const finalCount = new Map(finals.map((r) => [r.message_id, Number(r.n)]));
        let notOnce = 0;
        for (const id of log.expected.keys()) if (finalCount.get(id) !== 1) notOnce++;

        const stats = (await (await fetch(`${sandboxUrl}/sandbox/v1/stats`)).json()) as {
          sends: number;
          duplicateSends: number;
          rejected: number;
          pendingCallbacks: number;
        };
        console.log(
          [
            `fault test: ${log.expected.size} accepted (api1 ${log.byApi[0]}, api2 ${log.byApi[1]}; ${log.failedRequests} failed requests retried on the other API), ${statuses.size} outbound messages in all`,
            `  final statuses ${JSON.stringify(counts)}; wrong ${JSON.stringify(Object.fromEntries(wrong))}; not exactly one final status: ${notOnce}`,
            `  sandbox: ${stats.sends} sends, ${stats.duplicateSends} duplicate sends, ${stats.rejected} rejected, ${stats.pendingCallbacks} pending callbacks`,
            `  wall time ${wallS.toFixed(1)} s (first process start → all settled)`,
            ...events.map((e) => `  ${e}`),
          ].join('\n'),
        );
        expect(Object.fromEntries(wrong), 'accepted messages whose status is not the expected final one').toEqual({});
        expect(repeats, 'messages listed twice').toBe(0);
        expect(notOnce, 'accepted messages without exactly one applied final status').toBe(0);
        expect(
          Object.keys(counts).filter((s) => !FINAL.has(s)),
          'outbound messages still on their way',
        ).toEqual([]);
      } finally {
        await db.end().catch(() => undefined);
        await teardown();
      }
    },
    TEST_TIMEOUT_MS,
  );
});
