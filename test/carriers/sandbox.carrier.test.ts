/** The sandbox carrier's adapter against the sandbox server itself, through the shared carrier contract. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Fastify from 'fastify';
import { createSandboxCarrier } from '../../src/adapters/carriers/sandbox-carrier.ts';
import { SANDBOX_NUMBERS, SandboxServer } from '../../src/sandbox/sandbox-server.ts';
import { carrierContract } from './carrier-contract.ts';

carrierContract({
  provider: 'sandbox',
  channel: 'sms',
  from: '+12025550100',
  destinations: {
    delivered: '+14155550123',
    rejected: SANDBOX_NUMBERS.invalidNumber,
    unavailable: SANDBOX_NUMBERS.unavailableOnce,
    undeliverable: SANDBOX_NUMBERS.unreachable,
  },
  async startEmulator() {
    const dir = mkdtempSync(join(tmpdir(), 'omni-sandbox-contract-'));
    const server = new SandboxServer({ dbPath: join(dir, 'sandbox.db'), delayMs: 5 });
    const app = Fastify({ bodyLimit: 32 * 1024 * 1024 });
    server.registerRoutes(app);
    await app.listen({ port: 0, host: '127.0.0.1' });
    server.start();
    const address = app.server.address();
    const port = typeof address === 'object' && address ? address.port : 0;
    return {
      senderConfig: { baseUrl: `http://127.0.0.1:${port}`, token: 'contract-token' },
      violations: [],
      acceptedCount: () => server.stats().sends,
      async close() {
        await server.stop();
        await app.close();
        await server.close();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  },
  createCarrier: (sender, ctx) => createSandboxCarrier(sender, ctx),
});
