/**
 * Crash safety: the product is killed with SIGKILL, repeatedly, while thousands of messages are in flight
 * (queued, leased by a worker, handed to the sandbox, or waiting for callbacks). After each restart the
 * pipeline resumes; in the end every accepted message has reached its final status and none is lost.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually, TEST_SECRET_KEY } from './support/harness.ts';
import { dropSchema, newSchemaName, PG_URL, postgresForTests } from './support/postgres.ts';
import { freePort, killHard } from './support/processes.ts';

const KEY = 'omni_sk_crash_test_key_0000000000000000000';
let dataDir = '';
let backendEnv: Record<string, string> = {};
let child: ChildProcess | undefined;

afterAll(() => {
  child?.kill('SIGKILL');
});

async function start(port: number): Promise<void> {
  child = spawn(process.execPath, ['--import', 'tsx', 'src/entry/cli.ts', 'start'], {
    env: {
      ...process.env,
      OMNI_PORT: String(port),
      OMNI_HOST: '127.0.0.1',
      OMNI_DATA_DIR: dataDir,
      ...backendEnv,
      OMNI_BOOTSTRAP_API_KEY: KEY,
      OMNI_LOG_LEVEL: 'error',
      OMNI_SANDBOX_DELAY_MS: '30',
      OMNI_RETRY_BASE_MS: '100',
      OMNI_LEASE_MS: '1500',
      OMNI_POLL_MS: '50',
      OMNI_SEND_BATCH: '200',
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  await eventually(async () => (await fetch(`http://127.0.0.1:${port}/health`)).ok, 30_000, 50);
}

const DESTINATIONS = [
  ['+12025550100', 'delivered'],
  ['+12025550123', 'delivered'],
  ['+12025550190', 'failed'],
  ['+12025550191', 'delivered'],
  ['+12025550192', 'undelivered'],
] as const;

/** Submits batches until killed; returns the ids the API acknowledged, with the status each must end in. */
async function submitWhileRunning(
  port: number,
  batches: number,
  size: number,
  expected: Map<string, string>,
): Promise<void> {
  const post = async (b: number) => {
    const messages = Array.from({ length: size }, (_, i) => {
      const [to] = DESTINATIONS[(b * size + i) % DESTINATIONS.length] as (typeof DESTINATIONS)[number];
      return { to, channel: 'sms', body: `crash test ${b}/${i}` };
    });
    try {
      const res = await fetch(`http://127.0.0.1:${port}/v1/messages/batch`, {
        method: 'POST',
        headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
        body: JSON.stringify({ messages }),
      });
      if (!res.ok) return;
      const body = (await res.json()) as { items: { id?: string }[] };
      body.items.forEach((item, i) => {
        const dest = DESTINATIONS[(b * size + i) % DESTINATIONS.length] as (typeof DESTINATIONS)[number];
        if (item.id) expected.set(item.id, dest[1]);
      });
    } catch {
      // The process was killed mid-request: an unacknowledged request promises nothing.
    }
  };
  await Promise.all(Array.from({ length: batches }, (_, b) => post(b + expected.size)));
}

async function allStatuses(port: number): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  let cursor: string | null = null;
  do {
    const res = await fetch(
      `http://127.0.0.1:${port}/v1/messages?direction=outbound&limit=500${cursor ? `&cursor=${cursor}` : ''}`,
      {
        headers: { authorization: `Bearer ${KEY}` },
      },
    );
    const body = (await res.json()) as { items: { id: string; status: string }[]; nextCursor: string | null };
    for (const m of body.items) out.set(m.id, m.status);
    cursor = body.nextCursor;
  } while (cursor);
  return out;
}

const pgTests = await postgresForTests();
const backends = [
  { name: 'sqlite', env: (): Record<string, string> => ({}) },
  ...(pgTests.run
    ? [
        {
          name: 'postgres',
          env: () => ({
            OMNI_DATABASE_URL: PG_URL,
            OMNI_DATABASE_SCHEMA: newSchemaName(),
            OMNI_SECRET_KEY: TEST_SECRET_KEY,
          }),
        },
      ]
    : []),
];

describe.each(backends)('on $name', (backend) => {
  beforeAll(() => {
    dataDir = mkdtempSync(join(tmpdir(), 'omni-crash-'));
    backendEnv = backend.env();
  });
  afterAll(async () => {
    child?.kill('SIGKILL');
    rmSync(dataDir, { recursive: true, force: true });
    if (backendEnv.OMNI_DATABASE_SCHEMA) await dropSchema(backendEnv.OMNI_DATABASE_SCHEMA);
  });

  it('loses no accepted message across repeated SIGKILLs with thousands in flight', async () => {
    const port = await freePort();
    const expected = new Map<string, string>();
    const rounds = 4;
    for (let round = 0; round < rounds; round++) {
      await start(port);
      const before = expected.size;
      const submitting = submitWhileRunning(port, 6, 250, expected);
      // Kill once two batches of this round are acknowledged (however slow the machine), then a little later each
      // round: during submission, during sending, while callbacks are pending.
      const deadline = Date.now() + 10_000;
      while (expected.size < before + 500 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
      await new Promise((r) => setTimeout(r, round * 120));
      await killHard(child);
      await submitting;
    }
    expect(expected.size).toBeGreaterThanOrEqual(2000);
    await start(port);
    const final = await eventually(
      async () => {
        const st = await allStatuses(port);
        for (const [id, want] of expected) if (st.get(id) !== want) return undefined;
        return st;
      },
      120_000,
      500,
    );
    for (const [id, want] of expected) expect(final.get(id), id).toBe(want);
    const stats = (await (await fetch(`http://127.0.0.1:${port}/sandbox/v1/stats`)).json()) as {
      sends: number;
      duplicateSends: number;
    };
    // A send in flight at the moment of a kill may reach the carrier twice (at-least-once hand-off); report it.
    console.log(
      `crash test (${backend.name}): ${expected.size} accepted, ${stats.sends} sandbox sends, ${stats.duplicateSends} duplicate sends`,
    );
    await killHard(child);
  }, 240_000);
});
