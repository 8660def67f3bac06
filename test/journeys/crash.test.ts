/**
 * A journey run survives a SIGKILL: the product process is killed while a run waits between two sends, started
 * again on the same data, and the run finishes — with each send made exactly once.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { eventually } from '../support/harness.ts';
import { freePort, killHard } from '../support/processes.ts';

const KEY = 'omni_sk_journey_crash_key_000000000000000';
const dataDir = mkdtempSync(join(tmpdir(), 'omni-journey-crash-'));
let child: ChildProcess | undefined;

afterAll(() => {
  child?.kill('SIGKILL');
  rmSync(dataDir, { recursive: true, force: true });
});

async function start(port: number): Promise<void> {
  child = spawn(process.execPath, ['--import', 'tsx', 'src/entry/cli.ts', 'start'], {
    env: {
      ...process.env,
      OMNI_PORT: String(port),
      OMNI_HOST: '127.0.0.1',
      OMNI_DATA_DIR: dataDir,
      OMNI_BOOTSTRAP_API_KEY: KEY,
      OMNI_LOG_LEVEL: 'error',
      OMNI_SANDBOX_DELAY_MS: '20',
      OMNI_LEASE_MS: '1500',
      OMNI_POLL_MS: '50',
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  await eventually(async () => (await fetch(`http://127.0.0.1:${port}/health`)).ok, 30_000, 50);
}

async function api<T = any>(port: number, method: string, path: string, body?: unknown): Promise<T> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, {
    method,
    headers: { authorization: `Bearer ${KEY}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path} → ${res.status} ${text}`);
  return (text ? JSON.parse(text) : undefined) as T;
}

it('finishes a journey run after the process is killed in the middle of it, sending each step once', async () => {
  const port = await freePort();
  await start(port);
  const contact = await api(port, 'POST', '/v1/contacts', { phones: ['+12025550123'] });
  const journey = await api(port, 'POST', '/v1/journeys', {
    name: 'crash',
    definition: {
      trigger: { type: 'api' },
      entry: 'first',
      reentry: { mode: 'always' },
      steps: {
        first: { type: 'send', channel: 'sms', body: 'Step one', next: 'pause' },
        pause: { type: 'wait', duration: '3s', next: 'second' },
        second: { type: 'send', channel: 'sms', body: 'Step two', next: 'done' },
        done: { type: 'exit' },
      },
    },
  });
  await api(port, 'POST', `/v1/journeys/${journey.id}/publish`);
  const started = await api(port, 'POST', `/v1/journeys/${journey.id}/start`, { contactId: contact.id });
  const runId: string = started.runId;
  // Killed while the run waits between its two sends.
  await eventually(async () => {
    const run = await api(port, 'GET', `/v1/journey-runs/${runId}`);
    return run.stepId === 'pause' ? run : undefined;
  });
  await killHard(child);
  await start(port);
  const run = await eventually(async () => {
    const r = await api(port, 'GET', `/v1/journey-runs/${runId}`);
    return r.status === 'completed' ? r : undefined;
  }, 30_000);
  expect(run.status).toBe('completed');
  const page = await api(port, 'GET', '/v1/messages?direction=outbound&limit=100');
  const bodies = (page.items as { body: string; metadata: { journeyRunId?: string } | null }[])
    .filter((m) => m.metadata?.journeyRunId === runId)
    .map((m) => m.body)
    .sort();
  expect(bodies).toEqual(['Step one', 'Step two']);
  await killHard(child);
}, 90_000);
