/**
 * `omni sandbox`: the sandbox carrier alone, for scale-out deployments where API and worker processes are
 * separate (point them at it with OMNI_SANDBOX_URL). It keeps its own database under the data directory.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import Fastify from 'fastify';
import pino from 'pino';
import { SandboxServer } from '../sandbox/sandbox-server.ts';
import type { Config } from './config.ts';
import { packageVersion } from './runtime.ts';

export async function startSandboxProcess(config: Config): Promise<{ url: string; stop(): Promise<void> }> {
  const logger = pino({ level: config.logLevel });
  mkdirSync(config.dataDir, { recursive: true });
  const sandbox = new SandboxServer({
    dbPath: join(config.dataDir, 'sandbox.db'),
    delayMs: config.sandboxDelayMs,
    logger,
  });
  const app = Fastify({ logger: { level: config.logLevel }, bodyLimit: 32 * 1024 * 1024 });
  app.get('/health', async () => ({ status: 'ok', version: packageVersion(), timestamp: new Date().toISOString() }));
  sandbox.registerRoutes(app);
  await app.listen({ port: config.port, host: config.host });
  sandbox.start();
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  return {
    url: `http://127.0.0.1:${port}`,
    async stop() {
      await sandbox.stop();
      await app.close();
      await sandbox.close();
    },
  };
}
