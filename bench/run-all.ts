/**
 * `npm run bench [-- echo ingest batch webhooks e2e scaleout webhookdelivery journeys]`: the performance bench. Every server runs as its own child process on a
 * fresh temp data directory; the load generator (autocannon) runs here, so client and server use different cores.
 * Prints machine info and a table of figures marked PASS/MISS against their targets, and writes
 * bench/results/latest.json. It never asserts: the exit code is 0 even when a target is missed (1 only when a
 * section could not run at all, 2 on bad arguments).
 *
 * Environment (all optional):
 *   BENCH_DURATION=10            seconds per autocannon measurement (echo, ingest, batch)
 *   BENCH_WARMUP=2               seconds of warm-up before each measurement (not counted)
 *   BENCH_CONNECTIONS=100        connections for echo and ingest
 *   BENCH_BATCH_CONNECTIONS=20   connections for batch
 *   BENCH_BATCH_SIZE=1000        messages per batch (batch and e2e)
 *   BENCH_E2E_MESSAGES=100000    messages submitted end to end
 *   BENCH_E2E_CONCURRENCY=4      batches in flight during the e2e submit
 *   BENCH_E2E_TIMEOUT_S=600      give up waiting for delivery after this long
 *   BENCH_SANDBOX_DELAY_MS=0     OMNI_SANDBOX_DELAY_MS for the e2e server and the scaleout sandbox
 *   BENCH_SCALEOUT_MESSAGES=100000 messages per scaleout run (as many as the e2e section, so the two compare)
 *   BENCH_SCALEOUT_WORKERS=1,2,4 worker processes of the scaleout runs, one run each
 *   BENCH_SCALEOUT_TIMEOUT_S=300 give up waiting for delivery in a scaleout run after this long
 *   BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test  PostgreSQL for scaleout (a fresh schema per run)
 *   BENCH_REDIS_URL=redis://127.0.0.1:6379  Redis for scaleout (a fresh key prefix per run)
 *   BENCH_CPU_PROF=<dir>         run every server child with `--cpu-prof --cpu-prof-dir=<dir>`
 *   BENCH_WEBHOOK_EVENTS=100000  status events delivered in webhookdelivery (3 per message: queued, sent, delivered)
 *   BENCH_WEBHOOK_TIMEOUT_S=600  give up waiting for webhook deliveries after this long
 *   BENCH_WEBHOOK_RETRY_BASE_MS=200 / BENCH_WEBHOOK_RETRY_MAX_MS=2000  back-off of the failing endpoint's retries
 * OMNI_SEND_BATCH / OMNI_SEND_CONCURRENCY and other OMNI_* settings are passed through to the servers.
 *
 * webhookdelivery: outbound webhooks. One `start` process sends messages through the sandbox with two webhook
 * endpoints subscribed to their status events, both on a receiver in this process: one always answers 204, the other
 * fails half its requests (500, at random). Events/s and the lag from status change (the event's time) to its
 * successful delivery, p50/p99, per endpoint. The back-off is shortened (BENCH_WEBHOOK_RETRY_*) so the failing
 * endpoint's unlucky streaks end within the run; with the default (5 s doubling) the tail would take hours.
 *
 * scaleout: the e2e measurement on the scaled-out deployment: PostgreSQL + Redis, one `api`, one `sandbox` and 1,
 * 2 and 4 `worker` processes (three runs); the target applies to the best of them, the others show how the
 * figure grows with processes. Skipped, with a note, when PostgreSQL or Redis does not answer.
 */
import { execFile, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import autocannon from 'autocannon';
import { Redis } from 'ioredis';
import pg from 'pg';
import { Pool } from 'undici';
import { computeTwilioSignature } from '../src/adapters/carriers/twilio/twilio-signature.ts';
import { benchJourneys } from './journeys.ts';
import {
  cpuMeter,
  killAllSync,
  procMemory,
  RssSampler,
  type ServerHandle,
  spawnChild,
  spawnServer,
  systemBusySeconds,
} from './lib/child.ts';
import { machineInfo, notApplicable, type Row, renderMachine, renderTable, row } from './lib/report.ts';

const SECTIONS = ['echo', 'ingest', 'batch', 'webhooks', 'e2e', 'scaleout', 'webhookdelivery', 'journeys'] as const;
type Section = (typeof SECTIONS)[number];

const benchDir = dirname(fileURLToPath(import.meta.url));
const repoDir = resolve(benchDir, '..');
const execFileAsync = promisify(execFile);

function envInt(name: string, fallback: number, min = 1): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min) {
    console.error(`${name} must be an integer >= ${min} (got '${raw}')`);
    process.exit(2);
  }
  return n;
}

const settings = {
  durationS: envInt('BENCH_DURATION', 10),
  warmupS: envInt('BENCH_WARMUP', 2, 0),
  connections: envInt('BENCH_CONNECTIONS', 100),
  batchConnections: envInt('BENCH_BATCH_CONNECTIONS', 20),
  batchSize: envInt('BENCH_BATCH_SIZE', 1000),
  e2eMessages: envInt('BENCH_E2E_MESSAGES', 100_000),
  e2eConcurrency: envInt('BENCH_E2E_CONCURRENCY', 4),
  e2eTimeoutS: envInt('BENCH_E2E_TIMEOUT_S', 600),
  sandboxDelayMs: envInt('BENCH_SANDBOX_DELAY_MS', 0, 0),
  cpuProfDir: process.env.BENCH_CPU_PROF ? resolve(process.env.BENCH_CPU_PROF) : undefined,
  pipelining: 1,
};

const scaleout = {
  messages: envInt('BENCH_SCALEOUT_MESSAGES', 100_000),
  timeoutS: envInt('BENCH_SCALEOUT_TIMEOUT_S', 300),
  databaseUrl: process.env.BENCH_DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/test',
  redisUrl: process.env.BENCH_REDIS_URL || 'redis://127.0.0.1:6379',
};
const webhookDelivery = {
  events: envInt('BENCH_WEBHOOK_EVENTS', 100_000),
  timeoutS: envInt('BENCH_WEBHOOK_TIMEOUT_S', 600),
  retryBaseMs: envInt('BENCH_WEBHOOK_RETRY_BASE_MS', 200),
  retryMaxMs: envInt('BENCH_WEBHOOK_RETRY_MAX_MS', 2000),
};
/** Worker processes of the scaleout runs (BENCH_SCALEOUT_WORKERS=1,2,4 by default). */
const SCALEOUT_WORKERS = (process.env.BENCH_SCALEOUT_WORKERS || '1,2,4')
  .split(',')
  .map((s) => Number.parseInt(s, 10))
  .filter((n) => Number.isInteger(n) && n > 0);

const TARGETS = {
  ingestRps: { op: '>=', value: 15_000 },
  ingestP99: { op: '<=', value: 15 },
  ingestRatio: { op: '>=', value: 0.3 },
  batchMsgs: { op: '>=', value: 100_000 },
  e2eMsgs: { op: '>=', value: 5_000 },
  e2eRss: { op: '<=', value: 400 },
  webhookP99: { op: '<=', value: 50 },
} as const;

const API_KEY = 'bench_admin_key_0123456789abcdef';
const AUTH = { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' };
const SINGLE_BODY = JSON.stringify({ to: '+12025550100', channel: 'sms', body: 'Your code is 123456' });
const MB = 2 ** 20;

// ---------------------------------------------------------------------------------------------------------------

function productServer(name: string, mode: 'api' | 'start', extraEnv: Record<string, string> = {}) {
  return spawnServer({
    name,
    args: ['src/entry/cli.ts', mode],
    cwd: repoDir,
    ...(settings.cpuProfDir ? { nodeFlags: ['--cpu-prof', `--cpu-prof-dir=${settings.cpuProfDir}`] } : {}),
    env: ({ port, dataDir }) => ({
      OMNI_PORT: String(port),
      OMNI_HOST: '127.0.0.1',
      OMNI_DATA_DIR: dataDir,
      OMNI_PUBLIC_URL: `http://127.0.0.1:${port}`,
      OMNI_BOOTSTRAP_API_KEY: API_KEY,
      OMNI_LOG_LEVEL: 'warn',
      ...extraEnv,
    }),
  });
}

function echoServer() {
  return spawnServer({
    name: 'echo',
    args: ['bench/echo-server.ts'],
    cwd: repoDir,
    ...(settings.cpuProfDir ? { nodeFlags: ['--cpu-prof', `--cpu-prof-dir=${settings.cpuProfDir}`] } : {}),
    env: ({ port }) => ({ ECHO_PORT: String(port), ECHO_HOST: '127.0.0.1' }),
  });
}

/** The US numbers +12025550100..+12025550189 (valid, fictional, and not sandbox special destinations). */
function phone(i: number): string {
  return `+120255501${String(i % 90).padStart(2, '0')}`;
}

function batchBody(first: number, size: number): string {
  const messages = [];
  for (let i = first; i < first + size; i++) {
    messages.push({ to: phone(i), channel: 'sms', body: `Your code is ${String(100000 + (i % 900000))}` });
  }
  return JSON.stringify({ messages });
}

interface LoadResult {
  result: autocannon.Result;
  /** 2xx responses per second over the measured run. */
  okPerSec: number;
  serverCpuCores: number | undefined;
  clientCpuCores: number;
  /** CPU used by everything else on the machine during the run (other processes, kernel threads: noise), in cores. */
  otherCpuCores: number | undefined;
  serverRssMB: number | undefined;
}

/** A warm-up run (discarded), then the measured run, with the server's and our own CPU use measured. */
async function load(
  server: ServerHandle,
  path: string,
  opts: Omit<autocannon.Options, 'url' | 'duration'>,
  beforeMeasure?: () => Promise<void>,
): Promise<LoadResult> {
  // autocannon takes the path from the URL (a top-level `path` option is ignored).
  const base: autocannon.Options = { url: `${server.url}${path}`, pipelining: settings.pipelining, ...opts };
  if (settings.warmupS > 0) await autocannon({ ...base, duration: settings.warmupS });
  await beforeMeasure?.();
  const server0 = cpuMeter(server.pid);
  const client0 = process.cpuUsage();
  const system0 = systemBusySeconds();
  const t0 = performance.now();
  const result = await autocannon({ ...base, duration: settings.durationS });
  const wallS = (performance.now() - t0) / 1000;
  const client = process.cpuUsage(client0);
  const serverCpuCores = server0.stop();
  const system1 = systemBusySeconds();
  const clientCpuCores = (client.user + client.system) / 1e6 / wallS;
  const otherCpuCores =
    system0 === undefined || system1 === undefined || serverCpuCores === undefined
      ? undefined
      : Math.max(0, (system1 - system0) / wallS - serverCpuCores - clientCpuCores);
  if (server.exited()) throw new Error(`${server.name} server died during the run:\n${server.logTail()}`);
  const mem = procMemory(server.pid);
  return {
    result,
    okPerSec: result['2xx'] / (result.duration || settings.durationS),
    serverCpuCores,
    clientCpuCores,
    otherCpuCores,
    serverRssMB: mem ? mem.hwm / MB : undefined,
  };
}

function failures(r: autocannon.Result): { count: number; note: string } {
  const codes = Object.entries(r.statusCodeStats)
    .filter(([code]) => !code.startsWith('2'))
    .map(([code, s]) => `${code}×${s.count}`);
  const parts = [...codes];
  if (r.errors) parts.push(`errors×${r.errors}`);
  if (r.timeouts) parts.push(`timeouts×${r.timeouts}`);
  return { count: r.non2xx + r.errors, note: parts.join(', ') };
}

function loadRows(section: string, l: LoadResult): Row[] {
  const f = failures(l.result);
  return [
    row(section, 'non-2xx responses + socket errors', f.count, '', undefined, f.note || undefined),
    row(section, 'server CPU (1.00 = one core busy)', l.serverCpuCores, 'cores'),
    row(section, 'client CPU (autocannon, this process)', l.clientCpuCores, 'cores'),
    row(section, 'rest of machine CPU (other processes, kernel)', l.otherCpuCores, 'cores'),
    row(section, 'server peak RSS', l.serverRssMB, 'MB'),
  ];
}

async function scrape(url: string): Promise<Map<string, number>> {
  const res = await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(30_000) });
  if (!res.ok) throw new Error(`GET /metrics: ${res.status}`);
  const text = await res.text();
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const sp = line.lastIndexOf(' ');
    out.set(line.slice(0, sp), Number(line.slice(sp + 1)));
  }
  return out;
}

function sumMetric(m: Map<string, number>, name: string): number {
  let total = 0;
  for (const [k, v] of m) if (k === name || k.startsWith(`${name}{`)) total += v;
  return total;
}

function byLabel(m: Map<string, number>, name: string, label: string): Record<string, number> {
  const out: Record<string, number> = {};
  const re = new RegExp(`^${name}\\{.*${label}="([^"]*)"`);
  for (const [k, v] of m) {
    const hit = re.exec(k);
    if (hit?.[1] !== undefined) out[hit[1]] = v;
  }
  return out;
}

async function post(url: string, path: string, body: string): Promise<{ status: number; json: unknown }> {
  const res = await fetch(`${url}${path}`, {
    method: 'POST',
    headers: AUTH,
    body,
    signal: AbortSignal.timeout(60_000),
  });
  const text = await res.text();
  let json: unknown = text;
  try {
    json = JSON.parse(text);
  } catch {
    // keep the text
  }
  return { status: res.status, json };
}

// --- sections --------------------------------------------------------------------------------------------------

interface Context {
  rows: Row[];
  raw: Record<string, unknown>;
  echoRps?: number;
  /** Delivered msgs/s of the e2e section (embedded), for the scaleout comparison. */
  e2eMsgsPerSec?: number;
}

async function benchEcho(ctx: Context): Promise<void> {
  const server = await echoServer();
  try {
    const l = await load(server, '/echo', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ hello: 'world', n: 42 }),
      connections: settings.connections,
    });
    ctx.echoRps = l.okPerSec;
    const r = l.result;
    ctx.rows.push(
      row('echo', `req/s (2xx, ${settings.connections} conns)`, l.okPerSec, 'req/s'),
      row('echo', 'latency p50', r.latency.p50, 'ms'),
      row('echo', 'latency p99', r.latency.p99, 'ms'),
      ...loadRows('echo', l),
    );
    ctx.raw.echo = summary(l);
  } finally {
    await server.stop();
  }
}

async function benchIngest(ctx: Context): Promise<void> {
  const server = await productServer('ingest', 'api');
  try {
    const probe = await post(server.url, '/v1/messages', SINGLE_BODY);
    if (probe.status !== 202)
      throw new Error(`POST /v1/messages answered ${probe.status}: ${JSON.stringify(probe.json)}`);
    const l = await load(server, '/v1/messages', {
      method: 'POST',
      headers: AUTH,
      body: SINGLE_BODY,
      connections: settings.connections,
    });
    const r = l.result;
    ctx.rows.push(
      row(
        'ingest',
        `POST /v1/messages req/s (2xx, ${settings.connections} conns)`,
        l.okPerSec,
        'req/s',
        TARGETS.ingestRps,
      ),
      row('ingest', 'latency p50', r.latency.p50, 'ms'),
      row('ingest', 'latency p99', r.latency.p99, 'ms', TARGETS.ingestP99),
      ctx.echoRps
        ? row('ingest', 'ratio product / echo req/s', l.okPerSec / ctx.echoRps, 'x', TARGETS.ingestRatio)
        : notApplicable('ingest', 'ratio product / echo req/s', 'x', TARGETS.ingestRatio, 'run the echo section too'),
      ...loadRows('ingest', l),
    );
    ctx.raw.ingest = summary(l);
  } finally {
    await server.stop();
  }
}

/**
 * Carrier webhooks are answered within 50 ms (issue "Real carriers"): distinct signed Twilio status callbacks,
 * 16 in flight, against an API process; each is verified, stored with its job and answered (no work inline).
 */
async function benchWebhooks(ctx: Context): Promise<void> {
  const server = await productServer('webhooks', 'api');
  const total = envInt('BENCH_WEBHOOKS', 20_000);
  const inFlight = 16;
  try {
    const authToken = 'bench0auth0token000000000000000a';
    const created = await post(
      server.url,
      '/v1/senders',
      JSON.stringify({
        name: 'bench twilio',
        provider: 'twilio',
        channels: ['sms'],
        config: { accountSid: `AC${'0'.repeat(32)}`, authToken, baseUrl: 'http://127.0.0.1:9' },
        from: '+15005550006',
      }),
    );
    const sender = created.json as { id?: string; webhookUrl?: string };
    if (created.status !== 201 || !sender.webhookUrl)
      throw new Error(`creating a sender: ${JSON.stringify(created.json)}`);
    const webhookUrl = sender.webhookUrl;
    const path = new URL(webhookUrl).pathname;
    const bodies = Array.from({ length: total }, (_, i) => {
      const params = {
        MessageSid: `SM${i.toString(16).padStart(32, '0')}`,
        MessageStatus: 'delivered',
        AccountSid: `AC${'0'.repeat(32)}`,
        From: '+15005550006',
        To: phone(i),
      };
      return {
        body: new URLSearchParams(params).toString(),
        signature: computeTwilioSignature(authToken, webhookUrl, params),
      };
    });
    const pool = new Pool(server.url, { connections: inFlight });
    const latencies: number[] = [];
    let failed = 0;
    let next = 0;
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: inFlight }, async () => {
        while (next < bodies.length) {
          const b = bodies[next++] as { body: string; signature: string };
          const start = performance.now();
          const res = await pool.request({
            method: 'POST',
            path,
            headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-twilio-signature': b.signature },
            body: b.body,
          });
          await res.body.text();
          latencies.push(performance.now() - start);
          if (res.statusCode !== 200) failed++;
        }
      }),
    );
    const seconds = (performance.now() - t0) / 1000;
    await pool.close();
    latencies.sort((a, b) => a - b);
    const pct = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? 0;
    ctx.rows.push(
      row('webhooks', `signed Twilio callbacks/s (${inFlight} in flight)`, total / seconds, 'req/s'),
      row('webhooks', 'answer latency p50', pct(0.5), 'ms'),
      row('webhooks', 'answer latency p99', pct(0.99), 'ms', TARGETS.webhookP99),
      row('webhooks', 'non-200 answers', failed, 'count', { op: '<=', value: 0 }),
    );
    ctx.raw.webhooks = { total, seconds, p50: pct(0.5), p99: pct(0.99), max: latencies.at(-1), failed };
  } finally {
    await server.stop();
  }
}

async function benchBatch(ctx: Context): Promise<void> {
  const size = settings.batchSize;
  const server = await productServer('batch', 'api');
  try {
    // Sixteen different batches, cycled by every connection; each one is checked to be accepted in full first.
    const bodies = Array.from({ length: 16 }, (_, i) => batchBody(i * size, size));
    const probe = await post(server.url, '/v1/messages/batch', bodies[0] ?? '');
    const items = (probe.json as { items?: { id?: string; error?: unknown }[] }).items;
    const rejected = items?.filter((it) => !it.id) ?? [];
    if (probe.status !== 200 || items?.length !== size || rejected.length > 0)
      throw new Error(
        `POST /v1/messages/batch answered ${probe.status}; ${rejected.length} item(s) rejected: ${JSON.stringify(rejected[0] ?? probe.json).slice(0, 300)}`,
      );
    let before = 0;
    const l = await load(
      server,
      '/v1/messages/batch',
      {
        method: 'POST',
        headers: AUTH,
        requests: bodies.map((body) => ({ body })),
        connections: settings.batchConnections,
        timeout: 60,
      },
      async () => {
        before = sumMetric(await scrape(server.url), 'omni_messages_accepted_total');
      },
    );
    const after = sumMetric(await scrape(server.url), 'omni_messages_accepted_total');
    const r = l.result;
    // The server's counter also includes batches the warm-up left in flight and those cut off at the end.
    const counted = (after - before) / (r.duration || settings.durationS);
    ctx.rows.push(
      row(
        'batch',
        `accepted msgs/s (${size}/batch × 2xx/s, ${settings.batchConnections} conns)`,
        l.okPerSec * size,
        'msg/s',
        TARGETS.batchMsgs,
      ),
      row('batch', 'batches/s (2xx)', l.okPerSec, 'req/s'),
      row('batch', 'latency per batch p50', r.latency.p50, 'ms'),
      row('batch', 'latency per batch p99', r.latency.p99, 'ms'),
      row('batch', 'accepted msgs/s (server counter)', counted, 'msg/s'),
      ...loadRows('batch', l),
    );
    ctx.raw.batch = { ...summary(l), acceptedCounterPerSec: counted };
  } finally {
    await server.stop();
  }
}

interface DeliveryRun {
  accepted: number;
  rejected: number;
  submitDoneAt: number | undefined;
  deliveredAt: number | undefined;
  delivered: number;
  statuses: Record<string, number>;
  queues: Record<string, number>;
  /** Wall time from the first submit to the end of the run (last delivered, or time-out). */
  wall: number;
  /** CPU of the measured processes, summed (1.00 = one core busy). */
  serverCpu: number | undefined;
  otherCpu: number | undefined;
  /** Peak RSS of each measured process (VmRSS every 200 ms and VmHWM), in MB. */
  peakRssMB: number[];
}

/**
 * The end-to-end measurement: submits `total` messages as batches of BENCH_BATCH_SIZE to `apiUrl`
 * (`e2eConcurrency` in flight) and polls the API's delivered gauge until every accepted message is delivered or
 * `timeoutS` passes. CPU and memory are measured over the processes `pids`.
 */
async function runDelivery(opts: {
  label: string;
  apiUrl: string;
  total: number;
  timeoutS: number;
  pids: number[];
  /** Throws when a process of the run has died. */
  checkAlive: () => void;
}): Promise<DeliveryRun> {
  const { total } = opts;
  const size = Math.min(settings.batchSize, total);
  const bodies: string[] = [];
  for (let first = 0; first < total; first += size) bodies.push(batchBody(first, Math.min(size, total - first)));

  const rss = opts.pids.map((pid) => new RssSampler(pid, 200));
  const cpu = opts.pids.map((pid) => cpuMeter(pid));
  const system0 = systemBusySeconds();
  const client0 = process.cpuUsage();
  const log = (msg: string) => console.error(`  [${opts.label}] ${msg}`);
  try {
    let accepted = 0;
    let rejected = 0;
    let submitDoneAt: number | undefined;
    const t0 = performance.now();
    const elapsed = () => (performance.now() - t0) / 1000;

    // Submit: `e2eConcurrency` batches in flight.
    let next = 0;
    const submitter = async () => {
      while (next < bodies.length) {
        const body = bodies[next++] ?? '';
        const res = await post(opts.apiUrl, '/v1/messages/batch', body);
        const items = (res.json as { items?: { id?: string }[] }).items;
        if (res.status !== 200 || !items) throw new Error(`batch answered ${res.status}: ${JSON.stringify(res.json)}`);
        for (const it of items) if (it.id) accepted++;
        rejected += items.length - items.filter((it) => it.id).length;
      }
    };
    const submitting = Promise.all(Array.from({ length: settings.e2eConcurrency }, submitter)).then(() => {
      submitDoneAt = elapsed();
      log(
        `submitted ${accepted.toLocaleString('en-US')} accepted (${rejected} rejected) in ${submitDoneAt.toFixed(2)} s`,
      );
    });
    let submitError: unknown;
    submitting.catch((err) => {
      submitError = err;
    });

    // Poll the delivered gauge until every message is delivered (or time runs out).
    let delivered = 0;
    let deliveredAt: number | undefined;
    let statuses: Record<string, number> = {};
    let queues: Record<string, number> = {};
    let lastLog = 0;
    while (elapsed() < opts.timeoutS) {
      const tick = performance.now();
      if (submitError) throw submitError;
      opts.checkAlive();
      try {
        const m = await scrape(opts.apiUrl);
        statuses = byLabel(m, 'omni_messages', 'status');
        queues = byLabel(m, 'omni_queue_jobs', 'queue');
        delivered = statuses.delivered ?? 0;
      } catch (err) {
        log(`metrics scrape failed: ${(err as Error).message}`);
      }
      if (submitDoneAt !== undefined && delivered >= accepted) {
        deliveredAt = elapsed();
        break;
      }
      if (elapsed() - lastLog >= 5) {
        lastLog = elapsed();
        log(
          `${lastLog.toFixed(0).padStart(4)} s: accepted ${accepted.toLocaleString('en-US')}, delivered ${delivered.toLocaleString('en-US')}, statuses ${JSON.stringify(statuses)}, queues ${JSON.stringify(queues)}`,
        );
      }
      await sleep(Math.max(0, 200 - (performance.now() - tick)));
    }
    await submitting.catch(() => undefined);
    const cpus = cpu.map((c) => c.stop());
    const serverCpu = cpus.some((c) => c === undefined) ? undefined : cpus.reduce((a = 0, b = 0) => a + b, 0);
    const system1 = systemBusySeconds();
    const client = process.cpuUsage(client0);
    const otherCpu =
      system0 === undefined || system1 === undefined || serverCpu === undefined
        ? undefined
        : Math.max(0, (system1 - system0) / elapsed() - serverCpu - (client.user + client.system) / 1e6 / elapsed());
    const peakRssMB = rss.map((r) => r.stop() / MB);
    log(
      deliveredAt !== undefined
        ? `all ${delivered.toLocaleString('en-US')} delivered after ${deliveredAt.toFixed(2)} s`
        : `TIMEOUT after ${opts.timeoutS} s: ${delivered.toLocaleString('en-US')} of ${accepted.toLocaleString('en-US')} delivered`,
    );
    return {
      accepted,
      rejected,
      submitDoneAt,
      deliveredAt,
      delivered,
      statuses,
      queues,
      wall: deliveredAt ?? elapsed(),
      serverCpu,
      otherCpu,
      peakRssMB,
    };
  } finally {
    for (const r of rss) r.stop();
  }
}

/** Delivered msgs/s of a run (and a note when it is not a clean figure). */
function deliveryRate(r: DeliveryRun, total: number, timeoutS: number): { value: number | undefined; note?: string } {
  const done = r.deliveredAt !== undefined && r.accepted === total;
  if (r.deliveredAt === undefined)
    return {
      value: r.delivered / r.wall,
      note: `TIMEOUT after ${timeoutS} s: ${r.delivered.toLocaleString('en-US')} of ${r.accepted.toLocaleString('en-US')} delivered; statuses ${JSON.stringify(r.statuses)}`,
    };
  if (!done) return { value: undefined, note: `only ${r.accepted} of ${total} accepted (${r.rejected} rejected)` };
  return { value: total / r.wall };
}

async function benchE2e(ctx: Context): Promise<void> {
  const total = settings.e2eMessages;
  const server = await productServer('e2e', 'start', { OMNI_SANDBOX_DELAY_MS: String(settings.sandboxDelayMs) });
  try {
    const r = await runDelivery({
      label: 'e2e',
      apiUrl: server.url,
      total,
      timeoutS: settings.e2eTimeoutS,
      pids: [server.pid],
      checkAlive: () => {
        if (server.exited()) throw new Error(`e2e server died:\n${server.logTail()}`);
      },
    });
    const rate = deliveryRate(r, total, settings.e2eTimeoutS);
    if (rate.value !== undefined && r.deliveredAt !== undefined) ctx.e2eMsgsPerSec = rate.value;
    ctx.rows.push(
      row(
        'e2e',
        `delivered msgs/s (${total.toLocaleString('en-US')} msgs, first submit → last delivered)`,
        rate.value,
        'msg/s',
        TARGETS.e2eMsgs,
        rate.note,
      ),
      row('e2e', 'server peak RSS (VmRSS every 200 ms, VmHWM)', r.peakRssMB[0], 'MB', TARGETS.e2eRss),
      row('e2e', 'time to submit all (batches via HTTP)', r.submitDoneAt, 's'),
      row('e2e', 'submit rate (accepted msgs/s)', r.submitDoneAt ? r.accepted / r.submitDoneAt : undefined, 'msg/s'),
      row('e2e', 'time to last delivered', r.deliveredAt, 's'),
      row('e2e', 'server CPU, whole run (1.00 = one core busy)', r.serverCpu, 'cores'),
      row('e2e', 'rest of machine CPU (other processes, kernel)', r.otherCpu, 'cores'),
    );
    ctx.raw.e2e = {
      messages: total,
      accepted: r.accepted,
      rejected: r.rejected,
      submitSeconds: r.submitDoneAt,
      deliveredSeconds: r.deliveredAt,
      delivered: r.delivered,
      finalStatuses: r.statuses,
      finalQueues: r.queues,
      peakRssMB: r.peakRssMB[0],
      serverCpuCores: r.serverCpu,
      otherCpuCores: r.otherCpu,
      sandboxDelayMs: settings.sandboxDelayMs,
    };
  } finally {
    await server.stop();
  }
}

// --- scaleout: PostgreSQL + Redis, one API, one sandbox, 1/2/4 workers ------------------------------------------

interface WorkerHandle {
  pid: number;
  exited(): boolean;
  logTail(): string;
  stop(): Promise<void>;
}

/** Starts `omni worker`; resolves once it reports running (the runtime is up and its loops started). */
async function spawnWorker(name: string, env: Record<string, string>): Promise<WorkerHandle> {
  let running = false;
  const child = spawnChild({
    args: ['src/entry/cli.ts', 'worker'],
    ...(settings.cpuProfDir ? { nodeFlags: ['--cpu-prof', `--cpu-prof-dir=${settings.cpuProfDir}`] } : {}),
    env,
    cwd: repoDir,
    onLine: (line) => {
      if (line.includes('worker running')) running = true;
    },
  });
  const handle: WorkerHandle = {
    pid: child.pid,
    exited: () => child.exitInfo() !== undefined,
    logTail: child.logTail,
    stop: child.stop,
  };
  const deadline = Date.now() + 30_000;
  while (!running) {
    const exitInfo = child.exitInfo();
    if (exitInfo !== undefined) throw new Error(`${name} ${exitInfo} before it was running:\n${handle.logTail()}`);
    if (Date.now() > deadline) {
      await handle.stop();
      throw new Error(`${name} not running after 30 s:\n${handle.logTail()}`);
    }
    await sleep(50);
  }
  return handle;
}

/** Null when PostgreSQL and Redis both answer, else why not. */
async function probeScaleoutBackends(): Promise<string | null> {
  const client = new pg.Client({ connectionString: scaleout.databaseUrl, connectionTimeoutMillis: 3000 });
  try {
    await client.connect();
    await client.query('select 1');
  } catch (err) {
    return `PostgreSQL at ${redact(scaleout.databaseUrl)} is unreachable (${(err as Error).message || String(err)})`;
  } finally {
    await client.end().catch(() => undefined);
  }
  const redis = new Redis(scaleout.redisUrl, {
    lazyConnect: true,
    connectTimeout: 3000,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  });
  let cause: string | undefined;
  redis.on('error', (err: Error) => {
    cause ??= err.message;
  });
  try {
    await redis.connect();
    await redis.ping();
    return null;
  } catch (err) {
    return `Redis at ${redact(scaleout.redisUrl)} is unreachable (${cause ?? (err as Error).message})`;
  } finally {
    redis.disconnect();
  }
}

function redact(url: string): string {
  return url.replace(/\/\/[^@/]*@/, '//…@');
}

/** Drops the run's schema and deletes its Redis keys (best effort: a failure is reported, not thrown). */
async function cleanScaleoutRun(schema: string, prefix: string): Promise<void> {
  const client = new pg.Client({ connectionString: scaleout.databaseUrl });
  try {
    await client.connect();
    await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  } catch (err) {
    console.error(`  [scaleout] could not drop schema ${schema}: ${(err as Error).message}`);
  } finally {
    await client.end().catch(() => undefined);
  }
  const redis = new Redis(scaleout.redisUrl, { maxRetriesPerRequest: 1, retryStrategy: () => null });
  redis.on('error', () => undefined);
  try {
    let cursor = '0';
    do {
      const [nextCursor, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
      cursor = nextCursor;
      if (keys.length > 0) await redis.del(...keys);
    } while (cursor !== '0');
  } catch (err) {
    console.error(`  [scaleout] could not delete Redis keys ${prefix}:*: ${(err as Error).message}`);
  } finally {
    redis.disconnect();
  }
}

/**
 * Vacuums the system catalogs that creating and dropping a run's schema leaves dead rows in. With autovacuum off
 * (as on the CI machine) they pile up from run to run (and from the test suite's schemas), and every process got
 * slower: 4,400 msg/s before a catalog vacuum, 5,050–5,280 right after, on the same commit. Best effort.
 */
async function vacuumCatalogs(): Promise<void> {
  const client = new pg.Client({ connectionString: scaleout.databaseUrl });
  try {
    await client.connect();
    const { rows } = await client.query<{ name: string }>(
      `select quote_ident(relname) as name from pg_stat_sys_tables where schemaname = 'pg_catalog' and n_dead_tup > 0`,
    );
    if (rows.length > 0) await client.query(`VACUUM ${rows.map((r) => `pg_catalog.${r.name}`).join(', ')}`);
  } catch (err) {
    console.error(`  [scaleout] could not vacuum the catalogs: ${(err as Error).message}`);
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** One scale-out run with `workers` worker processes, on a fresh schema and Redis prefix. */
async function scaleoutRun(workers: number): Promise<DeliveryRun> {
  await vacuumCatalogs();
  const label = `scaleout ${workers}w`;
  const suffix = randomBytes(6).toString('hex');
  const schema = `bench_${suffix}`;
  const prefix = `omni-bench-${suffix}`;
  const backend = {
    OMNI_DATABASE_URL: scaleout.databaseUrl,
    OMNI_SECRET_KEY: 'be9c4a0c3d3f4b6e8a1d2c3b4a5f6e7d8c9b0a1f2e3d4c5b6a79808182838485',
    OMNI_DATABASE_SCHEMA: schema,
    OMNI_REDIS_URL: scaleout.redisUrl,
    OMNI_REDIS_PREFIX: prefix,
    OMNI_BOOTSTRAP_API_KEY: API_KEY,
    OMNI_LOG_LEVEL: 'warn',
  };
  const stops: (() => Promise<void>)[] = [];
  try {
    // The schema and the organization with our key, once, before the API starts (as `omni migrate` in production).
    await execFileAsync(process.execPath, ['--import', 'tsx', 'src/entry/cli.ts', 'migrate'], {
      cwd: repoDir,
      env: { ...process.env, ...backend },
      timeout: 60_000,
    });
    const sandbox = await spawnServer({
      name: `${label} sandbox`,
      args: ['src/entry/cli.ts', 'sandbox'],
      cwd: repoDir,
      env: ({ port, dataDir }) => ({
        OMNI_PORT: String(port),
        OMNI_HOST: '127.0.0.1',
        OMNI_DATA_DIR: dataDir,
        OMNI_LOG_LEVEL: 'warn',
        OMNI_SANDBOX_DELAY_MS: String(settings.sandboxDelayMs),
      }),
    });
    stops.push(() => sandbox.stop());
    const api = await productServer(`${label} api`, 'api', { ...backend, OMNI_SANDBOX_URL: sandbox.url });
    stops.push(() => api.stop());
    const started = await Promise.all(
      Array.from({ length: workers }, (_, i) =>
        spawnWorker(`${label} worker ${i + 1}`, {
          ...backend,
          OMNI_SANDBOX_URL: sandbox.url,
          // The sandbox posts its callbacks to the API process.
          OMNI_PUBLIC_URL: api.url,
        }),
      ),
    );
    for (const w of started) stops.push(() => w.stop());
    const procs = [
      { name: 'api', exited: api.exited, logTail: api.logTail },
      { name: 'sandbox', exited: sandbox.exited, logTail: sandbox.logTail },
      ...started.map((w, i) => ({ name: `worker ${i + 1}`, exited: w.exited, logTail: w.logTail })),
    ];
    return await runDelivery({
      label,
      apiUrl: api.url,
      total: scaleout.messages,
      timeoutS: scaleout.timeoutS,
      pids: [api.pid, sandbox.pid, ...started.map((w) => w.pid)],
      checkAlive: () => {
        for (const p of procs) if (p.exited()) throw new Error(`${label}: ${p.name} died:\n${p.logTail()}`);
      },
    });
  } finally {
    for (const stop of stops.reverse()) await stop().catch(() => undefined);
    await cleanScaleoutRun(schema, prefix);
  }
}

async function benchScaleout(ctx: Context): Promise<void> {
  const total = scaleout.messages;
  const e2e = ctx.e2eMsgsPerSec;
  const e2eNote = (v: number | undefined) =>
    e2e === undefined || v === undefined ? undefined : `${(v / e2e).toFixed(2)}× the embedded e2e figure`;
  const unreachable = await probeScaleoutBackends();
  if (unreachable) {
    const note = `skipped: ${unreachable} (set BENCH_DATABASE_URL / BENCH_REDIS_URL)`;
    console.error(`  [scaleout] ${note}`);
    ctx.rows.push(notApplicable('scaleout', 'delivered msgs/s (PostgreSQL + Redis)', 'msg/s', TARGETS.e2eMsgs, note));
    ctx.raw.scaleout = { skipped: unreachable };
    return;
  }
  ctx.rows.push(
    e2e === undefined
      ? row(
          'scaleout',
          'embedded e2e delivered msgs/s (one process, SQLite), for comparison',
          undefined,
          'msg/s',
          undefined,
          'run the e2e section too',
        )
      : row('scaleout', 'embedded e2e delivered msgs/s (one process, SQLite), for comparison', e2e, 'msg/s'),
  );
  const runs: Record<string, unknown> = {};
  // The issue's target is the deployment's: the best process count on this machine; the others show how it grows.
  let best: { workers: number; rate: number } | undefined;
  for (const workers of SCALEOUT_WORKERS) {
    const name = `${workers} worker${workers > 1 ? 's' : ''}`;
    try {
      const r = await scaleoutRun(workers);
      const rate = deliveryRate(r, total, scaleout.timeoutS);
      if (rate.value !== undefined && (best === undefined || rate.value > best.rate))
        best = { workers, rate: rate.value };
      const rssSum = r.peakRssMB.reduce((a, b) => a + b, 0);
      ctx.rows.push(
        row(
          'scaleout',
          `${name}: delivered msgs/s (${total.toLocaleString('en-US')} msgs, 1 api + 1 sandbox + ${name})`,
          rate.value,
          'msg/s',
          undefined,
          rate.note ?? e2eNote(rate.value),
        ),
        row(
          'scaleout',
          `${name}: peak RSS summed over the ${r.peakRssMB.length} processes`,
          rssSum,
          'MB',
          undefined,
          r.peakRssMB.map((m) => m.toFixed(0)).join(' + '),
        ),
        row('scaleout', `${name}: product CPU, all processes (1.00 = one core busy)`, r.serverCpu, 'cores'),
        row('scaleout', `${name}: rest of machine CPU (PostgreSQL, Redis, other)`, r.otherCpu, 'cores'),
      );
      runs[String(workers)] = {
        accepted: r.accepted,
        rejected: r.rejected,
        submitSeconds: r.submitDoneAt,
        deliveredSeconds: r.deliveredAt,
        delivered: r.delivered,
        finalStatuses: r.statuses,
        finalQueues: r.queues,
        peakRssMB: r.peakRssMB,
        peakRssSumMB: rssSum,
        productCpuCores: r.serverCpu,
        otherCpuCores: r.otherCpu,
      };
    } catch (err) {
      const msg = err instanceof Error ? err.message : String(err);
      console.error(`  [scaleout] ${name} failed: ${msg}`);
      ctx.rows.push(row('scaleout', `${name}: delivered msgs/s`, undefined, 'msg/s', undefined, msg.split('\n')[0]));
      runs[String(workers)] = { error: msg };
    }
  }
  ctx.rows.push(
    row(
      'scaleout',
      `best: delivered msgs/s${best ? ` (${best.workers} worker${best.workers > 1 ? 's' : ''})` : ''}`,
      best?.rate,
      'msg/s',
      TARGETS.e2eMsgs,
      best ? e2eNote(best.rate) : 'every run failed',
    ),
  );
  ctx.raw.scaleout = {
    messages: total,
    sandboxDelayMs: settings.sandboxDelayMs,
    embeddedE2eMsgsPerSec: e2e,
    runs,
  };
  const failed = Object.values(runs).filter((r) => (r as { error?: string }).error).length;
  if (failed === SCALEOUT_WORKERS.length) throw new Error('every scale-out run failed');
}

// --- webhookdelivery: outbound webhooks to a local receiver, one endpoint failing half the time -------------------

interface ReceiverEndpoint {
  /** Event ids answered 2xx (a second 2xx for one id is a duplicate delivery). */
  delivered: Set<string>;
  /** Messages whose last event (`message.delivered`) was answered 2xx: all of theirs are in (order per message). */
  finished: Set<string>;
  duplicates: number;
  failed: number;
  /** Status change (the event's `timestamp`) → successful delivery, ms. */
  lags: number[];
  lastAt: number;
}

/** The customer's receiver: `/ok` always answers 204, `/flaky` answers 500 to half the requests at random. */
async function webhookReceiver(): Promise<{
  url: string;
  ok: ReceiverEndpoint;
  flaky: ReceiverEndpoint;
  close(): Promise<void>;
}> {
  const fresh = (): ReceiverEndpoint => ({
    delivered: new Set(),
    finished: new Set(),
    duplicates: 0,
    failed: 0,
    lags: [],
    lastAt: 0,
  });
  const ok = fresh();
  const flaky = fresh();
  const server = createHttpServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const ep = req.url === '/flaky' ? flaky : ok;
      if (ep === flaky && Math.random() < 0.5) {
        ep.failed++;
        res.writeHead(500).end();
        return;
      }
      const now = Date.now();
      const id = String(req.headers['webhook-id']);
      const { type, timestamp, data } = JSON.parse(Buffer.concat(chunks).toString('utf8')) as {
        type: string;
        timestamp: string;
        data: { id: string };
      };
      if (type === 'message.delivered') ep.finished.add(data.id);
      if (ep.delivered.has(id)) ep.duplicates++;
      else {
        ep.delivered.add(id);
        ep.lags.push(now - Date.parse(timestamp));
      }
      ep.lastAt = performance.now();
      res.writeHead(204).end();
    });
  });
  server.keepAliveTimeout = 30_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    ok,
    flaky,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

async function benchWebhookDelivery(ctx: Context): Promise<void> {
  const messages = Math.ceil(webhookDelivery.events / 3);
  const receiver = await webhookReceiver();
  const server = await productServer('webhookdelivery', 'start', {
    OMNI_SANDBOX_DELAY_MS: String(settings.sandboxDelayMs),
    OMNI_WEBHOOK_ALLOW_PRIVATE: 'true',
    OMNI_WEBHOOK_RETRY_BASE_MS: String(webhookDelivery.retryBaseMs),
    OMNI_WEBHOOK_RETRY_MAX_MS: String(webhookDelivery.retryMaxMs),
  });
  const log = (msg: string) => console.error(`  [webhookdelivery] ${msg}`);
  const rss = new RssSampler(server.pid, 200);
  try {
    for (const path of ['/ok', '/flaky']) {
      const r = await post(
        server.url,
        '/v1/webhook-endpoints',
        JSON.stringify({
          url: `${receiver.url}${path}`,
          eventTypes: ['message.queued', 'message.sent', 'message.delivered'],
        }),
      );
      if (r.status !== 201) throw new Error(`creating a webhook endpoint: ${r.status} ${JSON.stringify(r.json)}`);
    }
    const size = Math.min(settings.batchSize, messages);
    const bodies: string[] = [];
    for (let first = 0; first < messages; first += size)
      bodies.push(batchBody(first, Math.min(size, messages - first)));
    const cpu = cpuMeter(server.pid);
    const client0 = process.cpuUsage();
    const t0 = performance.now();
    const elapsed = () => (performance.now() - t0) / 1000;
    let next = 0;
    let accepted = 0;
    await Promise.all(
      Array.from({ length: settings.e2eConcurrency }, async () => {
        while (next < bodies.length) {
          const res = await post(server.url, '/v1/messages/batch', bodies[next++] ?? '');
          const items = (res.json as { items?: { id?: string }[] }).items;
          if (res.status !== 200 || !items)
            throw new Error(`batch answered ${res.status}: ${JSON.stringify(res.json)}`);
          accepted += items.filter((it) => it.id).length;
        }
      }),
    );
    const submitS = elapsed();
    log(`submitted ${accepted.toLocaleString('en-US')} messages in ${submitS.toFixed(2)} s`);
    let lastLog = 0;
    // A message whose receipt overtook the send outcome has no applied `sent` (no message.sent event): a message is
    // complete when its `message.delivered` has arrived.
    const done = (ep: ReceiverEndpoint) => ep.finished.size >= accepted;
    while (elapsed() < webhookDelivery.timeoutS) {
      if (server.exited()) throw new Error(`webhookdelivery server died:\n${server.logTail()}`);
      if (done(receiver.ok) && done(receiver.flaky)) break;
      if (elapsed() - lastLog >= 5) {
        lastLog = elapsed();
        log(
          `${lastLog.toFixed(0).padStart(4)} s: events delivered: healthy ${receiver.ok.delivered.size.toLocaleString('en-US')}, failing-half ${receiver.flaky.delivered.size.toLocaleString('en-US')} (${receiver.flaky.failed.toLocaleString('en-US')} answered 500); messages complete ${receiver.ok.finished.size.toLocaleString('en-US')} / ${receiver.flaky.finished.size.toLocaleString('en-US')} of ${accepted.toLocaleString('en-US')}`,
        );
      }
      await sleep(100);
    }
    const serverCpu = cpu.stop();
    const client = process.cpuUsage(client0);
    const receiverCpu = (client.user + client.system) / 1e6 / elapsed();
    const rate = (ep: ReceiverEndpoint) => (ep.delivered.size > 0 ? ep.delivered.size / ((ep.lastAt - t0) / 1000) : 0);
    const pct = (xs: number[], q: number) => {
      const sorted = [...xs].sort((a, b) => a - b);
      return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
    };
    const note = (ep: ReceiverEndpoint) =>
      done(ep)
        ? undefined
        : `TIMEOUT after ${webhookDelivery.timeoutS} s: ${ep.finished.size.toLocaleString('en-US')} of ${accepted.toLocaleString('en-US')} messages complete`;
    const label = `${receiver.ok.delivered.size.toLocaleString('en-US')} events of ${accepted.toLocaleString('en-US')} msgs`;
    ctx.rows.push(
      row(
        'webhookdelivery',
        `healthy endpoint: events/s (${label}, first submit → last delivered)`,
        rate(receiver.ok),
        'ev/s',
        undefined,
        note(receiver.ok),
      ),
      row('webhookdelivery', 'healthy endpoint: lag status change → delivered p50', pct(receiver.ok.lags, 0.5), 'ms'),
      row('webhookdelivery', 'healthy endpoint: lag status change → delivered p99', pct(receiver.ok.lags, 0.99), 'ms'),
      row(
        'webhookdelivery',
        `endpoint failing half the time: events/s (${label})`,
        rate(receiver.flaky),
        'ev/s',
        undefined,
        note(receiver.flaky),
      ),
      row('webhookdelivery', 'endpoint failing half the time: lag p50', pct(receiver.flaky.lags, 0.5), 'ms'),
      row('webhookdelivery', 'endpoint failing half the time: lag p99', pct(receiver.flaky.lags, 0.99), 'ms'),
      row(
        'webhookdelivery',
        'events delivered twice (2xx for a webhook-id already answered 2xx)',
        receiver.ok.duplicates + receiver.flaky.duplicates,
        'count',
        { op: '<=', value: 0 },
      ),
      row('webhookdelivery', 'server CPU, whole run (1.00 = one core busy)', serverCpu, 'cores'),
      row('webhookdelivery', 'server peak RSS', rss.stop() / MB, 'MB'),
      row('webhookdelivery', 'receiver and submitter CPU (this process)', receiverCpu, 'cores'),
    );
    ctx.raw.webhookdelivery = {
      messages: accepted,
      eventsDelivered: { healthy: receiver.ok.delivered.size, failingHalf: receiver.flaky.delivered.size },
      submitSeconds: submitS,
      retry: { baseMs: webhookDelivery.retryBaseMs, maxMs: webhookDelivery.retryMaxMs },
      healthy: {
        delivered: receiver.ok.delivered.size,
        seconds: (receiver.ok.lastAt - t0) / 1000,
        p50: pct(receiver.ok.lags, 0.5),
        p99: pct(receiver.ok.lags, 0.99),
        duplicates: receiver.ok.duplicates,
      },
      failingHalf: {
        delivered: receiver.flaky.delivered.size,
        answered500: receiver.flaky.failed,
        seconds: (receiver.flaky.lastAt - t0) / 1000,
        p50: pct(receiver.flaky.lags, 0.5),
        p99: pct(receiver.flaky.lags, 0.99),
        duplicates: receiver.flaky.duplicates,
      },
      serverCpuCores: serverCpu,
      sandboxDelayMs: settings.sandboxDelayMs,
    };
  } finally {
    rss.stop();
    await server.stop();
    await receiver.close();
  }
}

function summary(l: LoadResult) {
  const r = l.result;
  return {
    okPerSec: l.okPerSec,
    requestsAverage: r.requests.average,
    latencyMs: { p50: r.latency.p50, p90: r.latency.p90, p99: r.latency.p99, max: r.latency.max, mean: r.latency.mean },
    responses2xx: r['2xx'],
    non2xx: r.non2xx,
    errors: r.errors,
    timeouts: r.timeouts,
    statusCodes: Object.fromEntries(Object.entries(r.statusCodeStats).map(([k, v]) => [k, v.count])),
    durationS: r.duration,
    serverCpuCores: l.serverCpuCores,
    clientCpuCores: l.clientCpuCores,
    otherCpuCores: l.otherCpuCores,
    serverRssMB: l.serverRssMB,
  };
}

// --- main ------------------------------------------------------------------------------------------------------

const RUNNERS: Record<Section, (ctx: Context) => Promise<void>> = {
  webhooks: benchWebhooks,
  echo: benchEcho,
  ingest: benchIngest,
  batch: benchBatch,
  e2e: benchE2e,
  scaleout: benchScaleout,
  webhookdelivery: benchWebhookDelivery,
  journeys: async (ctx) => {
    const r = await benchJourneys();
    ctx.rows.push(...r.rows);
    ctx.raw.journeys = r.raw;
  },
};

async function main(): Promise<number> {
  const args = process.argv.slice(2).filter((a) => a !== '--');
  const unknown = args.filter((a) => !(SECTIONS as readonly string[]).includes(a));
  if (unknown.length) {
    console.error(`unknown section(s): ${unknown.join(', ')}\nusage: npm run bench [-- ${SECTIONS.join(' ')}]`);
    return 2;
  }
  const selected = SECTIONS.filter((s) => args.length === 0 || args.includes(s));

  const machine = machineInfo(repoDir);
  console.log('Omnichannel bench\n');
  console.log(renderMachine(machine));
  console.log(
    `Settings duration ${settings.durationS} s (+${settings.warmupS} s warm-up), ${settings.connections} conns (batch ${settings.batchConnections}), pipelining ${settings.pipelining}, batch ${settings.batchSize}, e2e ${settings.e2eMessages.toLocaleString('en-US')} msgs × ${settings.e2eConcurrency} in flight, scaleout ${scaleout.messages.toLocaleString('en-US')} msgs × ${SCALEOUT_WORKERS.join('/')} workers, sandbox delay ${settings.sandboxDelayMs} ms`,
  );
  console.log(`Sections ${selected.join(' ')}\n`);

  const ctx: Context = { rows: [], raw: {} };
  const errors: Record<string, string> = {};
  const started = new Date();
  for (const s of selected) {
    const t = performance.now();
    console.error(`» ${s} …`);
    try {
      await RUNNERS[s](ctx);
    } catch (err) {
      const msg = err instanceof Error ? err.message : String(err);
      errors[s] = msg;
      console.error(`  ${s} failed: ${msg}`);
      ctx.rows.push(row(s, 'section failed', undefined, '', { op: '>=', value: 0 }, msg.split('\n')[0]));
    }
    console.error(`  ${s} done in ${((performance.now() - t) / 1000).toFixed(1)} s`);
  }

  console.log(`\n${renderTable(ctx.rows)}\n`);
  const misses = ctx.rows.filter((r) => r.verdict === 'MISS').length;
  const passes = ctx.rows.filter((r) => r.verdict === 'PASS').length;
  console.log(`${passes} PASS, ${misses} MISS`);
  const noise = ctx.rows.filter((r) => r.metric.startsWith('rest of machine CPU') && (r.value ?? 0) > 0.25);
  if (noise.length > 0)
    console.log(
      `WARNING: other work on the machine used up to ${Math.max(...noise.map((r) => r.value ?? 0)).toFixed(2)} cores during ${noise.map((r) => r.section).join(', ')}; on a busy machine those figures read low.`,
    );

  const out = join(benchDir, 'results', 'latest.json');
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(
    out,
    `${JSON.stringify({ startedAt: started.toISOString(), machine, settings, sections: selected, rows: ctx.rows, raw: ctx.raw, errors }, null, 2)}\n`,
  );
  // Written in the shape `biome check bench` expects, so the file can be committed as is.
  try {
    execFileSync(process.execPath, [join(repoDir, 'node_modules/@biomejs/biome/bin/biome'), 'format', '--write', out], {
      stdio: 'ignore',
    });
  } catch {
    // formatting is cosmetic
  }
  console.log(`results written to ${out}`);
  return Object.keys(errors).length > 0 ? 1 : 0;
}

function killEverythingSync(): void {
  killAllSync();
}

process.on('exit', killEverythingSync);
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    killEverythingSync();
    process.exit(130);
  });
}

main().then(
  (code) => {
    killEverythingSync();
    process.exit(code);
  },
  (err) => {
    console.error(err);
    killEverythingSync();
    process.exit(1);
  },
);
