/** Starts the whole product in-process on a temporary data directory and an ephemeral port. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../src/entry/config.ts';
import { type Mode, type Runtime, startRuntime } from '../../src/entry/runtime.ts';

export const TEST_API_KEY = 'omni_sk_test_key_for_the_suite_000000000000';

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
