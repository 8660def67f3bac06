/** Starts the whole product in-process on a temporary data directory and an ephemeral port. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../src/entry/config.ts';
import { type Mode, type Runtime, startRuntime } from '../../src/entry/runtime.ts';

export const TEST_API_KEY = 'omni_sk_test_key_for_the_suite_000000000000';
/** Seals carrier credentials in tests (scale-out processes must share one key). */
export const TEST_SECRET_KEY = '6f6d6e692d746573742d7365637265742d6b65792d3235362d62697473212121';

export interface TestServer {
  runtime: Runtime;
  url: string;
  apiKey: string;
  dataDir: string;
  /** JSON request with the API key; returns status and parsed body. */
  api<T = any>(
    method: string,
    path: string,
    body?: unknown,
    headers?: Record<string, string>,
  ): Promise<{ status: number; body: T }>;
  stop(): Promise<void>;
}

export async function startTestServer(env: Record<string, string> = {}, mode: Mode = 'all'): Promise<TestServer> {
  const dataDir = env.OMNI_DATA_DIR ?? mkdtempSync(join(tmpdir(), 'omni-test-'));
  const config = loadConfig({
    OMNI_PORT: '0',
    OMNI_HOST: '127.0.0.1',
    OMNI_DATA_DIR: dataDir,
    OMNI_BOOTSTRAP_API_KEY: TEST_API_KEY,
    OMNI_SECRET_KEY: TEST_SECRET_KEY,
    OMNI_LOG_LEVEL: 'error',
    OMNI_SANDBOX_DELAY_MS: '20',
    OMNI_RETRY_BASE_MS: '100',
    OMNI_POLL_MS: '20',
    ...env,
  });
  const runtime = await startRuntime(config, mode);
  const url = runtime.url ?? '';
  return {
    runtime,
    url,
    apiKey: TEST_API_KEY,
    dataDir,
    async api(method, path, body, headers = {}) {
      const res = await fetch(url + path, {
        method,
        headers: {
          authorization: `Bearer ${TEST_API_KEY}`,
          ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
          ...headers,
        },
        ...(body !== undefined ? { body: typeof body === 'string' ? body : JSON.stringify(body) } : {}),
      });
      const text = await res.text();
      return { status: res.status, body: text ? JSON.parse(text) : undefined };
    },
    async stop() {
      await runtime.stop();
      if (!env.OMNI_DATA_DIR) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/**
 * Creates a sandbox sender through the API with a known token (so a test can sign sandbox callbacks), placed
 * before the bootstrap sender (priority 100) unless `settings` say otherwise. Returns its id and token.
 */
export async function createSandboxSender(
  server: Pick<TestServer, 'api'>,
  settings: Record<string, unknown> = {},
): Promise<{ id: string; token: string }> {
  const token = `sandbox-test-token-${Math.random().toString(36).slice(2)}`;
  const r = await server.api('POST', '/v1/senders', {
    name: 'Test sandbox',
    provider: 'sandbox',
    channels: ['sms', 'mms', 'whatsapp', 'email', 'voice', 'push', 'chat', 'print', 'rcs'],
    config: { token },
    priority: 10,
    ...settings,
  });
  if (r.status !== 201) throw new Error(`creating a sandbox sender failed: ${r.status} ${JSON.stringify(r.body)}`);
  return { id: r.body.id as string, token };
}

/** Polls `fn` until it returns a truthy value or `timeoutMs` passes. */
export async function eventually<T>(
  fn: () => Promise<T | undefined | false>,
  timeoutMs = 15_000,
  everyMs = 50,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
  throw new Error(`condition not met within ${timeoutMs} ms${last ? `: ${String(last)}` : ''}`);
}
