/**
 * A push service that answers 410 Gone (the user agent unsubscribed) fails the message for good, and the send worker
 * tells the product, which forgets that subscription. The real send worker, SQLite store and queue; the carrier is
 * a scripted one (push endpoints must be https, which the push-service emulator does not serve).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ManualClock } from '../src/adapters/clock/system-clock.ts';
import { migrateToLatest } from '../src/adapters/sql/migrations.ts';
import { openSqlite, type SqliteHandle } from '../src/adapters/sqlite/database.ts';
import { SqliteJobQueue } from '../src/adapters/sqlite/sqlite-job-queue.ts';
import { SqliteStore } from '../src/adapters/sqlite/sqlite-store.ts';
import { DEFAULT_RETRY_POLICY } from '../src/domain/retry-policy.ts';
import { type ProviderDefinition, PUSH_SUBSCRIPTION_GONE, type SendRequest } from '../src/ports/carrier.ts';
import { noMetrics } from '../src/ports/metrics.ts';
import type { SecretBox } from '../src/ports/secrets.ts';
import { sendJobs } from '../src/services/accept-messages.ts';
import { CarrierRegistry } from '../src/services/carrier-registry.ts';
import { DispatchMessages } from '../src/services/dispatch-messages.ts';
import { SenderRouting } from '../src/services/sender-routing.ts';

const ORG = 'org_push_gone';
const GONE = 'https://push.example.com/send/gone';
const KEPT = 'https://push.example.com/send/kept';
const keys = { p256dh: 'BP-key', auth: 'auth-secret' };
const plainBox: SecretBox = { seal: (s) => s, open: (s) => s };

let dir: string;
let h: SqliteHandle;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'omni-push-gone-'));
  h = openSqlite(join(dir, 'omni.db'));
  await migrateToLatest(h.kysely);
});
afterAll(() => {
  h.close();
  rmSync(dir, { recursive: true, force: true });
});

it('a subscription the push service says is gone fails its message for good and is reported once per batch', async () => {
  const clock = new ManualClock(Date.parse('2026-11-23T12:00:00Z'));
  const store = new SqliteStore(h);
  const queue = new SqliteJobQueue(h, () => clock.now());
  const sent: SendRequest[] = [];
  const provider: ProviderDefinition = {
    id: 'scripted-push',
    displayName: 'Scripted push service',
    channels: ['push'],
    configSchema: { type: 'object' },
    secretFields: [],
    create: () => ({
      provider: 'scripted-push',
      async send(requests) {
        sent.push(...requests);
        return requests.map((r) =>
          r.to === GONE
            ? {
                ok: false as const,
                retryable: false,
                error: { code: PUSH_SUBSCRIPTION_GONE, class: 'PermanentError', message: 'HTTP 410' },
              }
            : { ok: true as const, providerMessageId: `p-${r.messageId}` },
        );
      },
      parseWebhook: () => [],
    }),
  };
  const registry = new CarrierRegistry(
    store,
    plainBox,
    new Map([[provider.id, provider]]),
    () => 'https://omni.test/webhooks',
    clock,
  );
  await store.createOrganization({ id: ORG, name: 'Push', createdAt: clock.now() });
  await store.createSender({
    id: 'snd_push',
    orgId: ORG,
    provider: provider.id,
    config: {},
    channels: ['push'],
    from: null,
    priority: 0,
    sealedSecrets: null,
    createdAt: clock.now(),
    updatedAt: clock.now(),
    deletedAt: null,
  });
  const gone: { orgId: string; endpoint: string }[][] = [];
  const dispatch = new DispatchMessages(
    store,
    queue,
    registry,
    new SenderRouting(store, registry, clock),
    clock,
    noMetrics,
    {
      batchSize: 50,
      leaseMs: 30_000,
      retry: DEFAULT_RETRY_POLICY,
      onPushSubscriptionsGone: async (g) => void gone.push(g),
    },
  );
  const message = (id: string, to: string) => ({
    id,
    orgId: ORG,
    channel: 'push' as const,
    to,
    from: null,
    body: 'Your order shipped',
    subject: null,
    templateId: null,
    metadata: null,
    sendAt: null,
    priority: 1,
    createdAt: clock.now(),
    options: { push: { keys } },
  });
  const batch = [message('msg_gone_1', GONE), message('msg_kept_1', KEPT), message('msg_gone_2', GONE)];
  await store.acceptMessages(batch, (accepted) => sendJobs(accepted));
  expect(await dispatch.runOnce()).toBe(1);

  expect(sent.map((r) => r.to).sort()).toEqual([GONE, GONE, KEPT]);
  const statuses = await Promise.all(batch.map(async (m) => (await store.getMessage(ORG, m.id))?.status));
  expect(statuses).toEqual(['failed', 'sent', 'failed']);
  expect((await store.getMessage(ORG, 'msg_gone_1'))?.error?.code).toBe(PUSH_SUBSCRIPTION_GONE);
  // Told once, after the batch, of each failure (the product forgets the subscription; repeats are harmless).
  expect(gone).toEqual([
    [
      { orgId: ORG, endpoint: GONE },
      { orgId: ORG, endpoint: GONE },
    ],
  ]);
  // Nothing is retried.
  clock.advance(60 * 60_000);
  expect(await dispatch.runOnce()).toBe(0);
});
