/**
 * The webhook store adapters against their shared contract: SQLite on a fresh temporary file, PostgreSQL on a fresh
 * schema (skipped with a warning when PostgreSQL is unreachable, except under CI=true).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { openPostgres } from '../../src/adapters/postgres/database.ts';
import { PgStore } from '../../src/adapters/postgres/pg-store.ts';
import { PgWebhookStore } from '../../src/adapters/postgres/pg-webhook-store.ts';
import { migrateToLatest } from '../../src/adapters/sql/migrations.ts';
import { openSqlite } from '../../src/adapters/sqlite/database.ts';
import { SqliteStore } from '../../src/adapters/sqlite/sqlite-store.ts';
import { SqliteWebhookStore } from '../../src/adapters/sqlite/sqlite-webhook-store.ts';
import { newId } from '../../src/domain/ids.ts';
import { dropSchema, newSchemaName, PG_URL, postgresForTests } from '../support/postgres.ts';
import { webhookStoreContract } from './webhook-store-contract.ts';

webhookStoreContract('SqliteWebhookStore', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'omni-webhooks-'));
  const h = openSqlite(join(dir, 'omni.db'));
  await migrateToLatest(h.kysely);
  return {
    webhooks: new SqliteWebhookStore(h),
    messages: new SqliteStore(h),
    cleanup: async () => {
      h.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
});

const pg = await postgresForTests();
if (pg.run) {
  async function freshSchema(pools = 1) {
    const schema = newSchemaName();
    const handles = Array.from({ length: pools }, () => openPostgres(PG_URL, { schema, max: 4 }));
    await handles[0]?.pool.query(`create schema ${schema}`);
    await migrateToLatest(handles[0]!.kysely);
    return {
      handles,
      cleanup: async () => {
        for (const h of handles) await h.close();
        await dropSchema(schema);
      },
    };
  }

  webhookStoreContract('PgWebhookStore', async () => {
    const { handles, cleanup } = await freshSchema();
    const h = handles[0]!;
    return { webhooks: new PgWebhookStore(h), messages: new PgStore(h), cleanup };
  });

  describe('PgWebhookStore across processes', () => {
    it('hands each delivery to one of several concurrent claimers, and fans out in one process at a time', async () => {
      const { handles, cleanup } = await freshSchema(4);
      try {
        const stores = handles.map((h) => new PgWebhookStore(h));
        const messages = new PgStore(handles[0]!);
        const org = newId('org');
        const t0 = Date.now() - 60_000;
        await stores[0]!.createEndpoint({
          id: 'whk_concurrent',
          orgId: org,
          url: 'https://hooks.example.com/',
          description: null,
          eventTypes: ['message.queued'],
          filter: null,
          enabled: true,
          sealedSecret: 's',
          sealedPreviousSecret: null,
          previousSecretExpiresAt: null,
          disabledReason: null,
          disabledAt: null,
          failingSince: null,
          createdAt: t0,
          updatedAt: t0,
          deletedAt: null,
        });
        const ms = Array.from({ length: 200 }, () => ({
          id: newId('msg'),
          orgId: org,
          channel: 'sms' as const,
          to: '+12025550123',
          from: null,
          body: 'hi',
          subject: null,
          templateId: null,
          metadata: null,
          sendAt: null,
          priority: 1,
          createdAt: t0,
        }));
        await messages.acceptMessages(ms, (acc) =>
          acc.map((m) => ({ id: `send:${m.id}`, queue: 'send', payload: m.id, orgId: org, priority: 1, runAt: t0 })),
        );
        const plan = (input: Parameters<Parameters<PgWebhookStore['dispatchEvents']>[2]>[0]) => ({
          payloads: new Map(input.events.map((e) => [e.id, '{}'])),
          deliveries: input.events.map((e) => ({ eventId: e.id, endpointId: 'whk_concurrent' })),
        });
        let dispatched = 0;
        await Promise.all(
          stores.map(async (s) => {
            for (let i = 0; i < 20; i++) {
              const n = await s.dispatchEvents(7, t0, plan);
              dispatched += n;
            }
          }),
        );
        // Whatever the fan-outs did at once, each event was dispatched once.
        for (;;) {
          const n = await stores[0]!.dispatchEvents(50, t0, plan);
          if (n === 0) break;
          dispatched += n;
        }
        expect(dispatched).toBe(ms.length);
        const claimed: number[] = [];
        await Promise.all(
          stores.map(async (s) => {
            for (;;) {
              const batch = await s.claimDeliveries({
                limit: 9,
                perEndpoint: 9,
                now: t0,
                leaseUntil: t0 + 60_000,
                skipEndpoints: [],
              });
              if (batch.length === 0) return;
              claimed.push(...batch.map((d) => d.id));
            }
          }),
        );
        expect(claimed).toHaveLength(ms.length);
        expect(new Set(claimed).size).toBe(ms.length);
      } finally {
        await cleanup();
      }
    });

    it('keeps per-message order while processes fan out, claim, finish deliveries and change messages at once', async () => {
      const { handles, cleanup } = await freshSchema(4);
      try {
        const stores = handles.map((h) => new PgWebhookStore(h));
        const msgStores = handles.map((h) => new PgStore(h));
        const org = newId('org');
        const t0 = Date.now() - 60_000;
        await msgStores[0]!.createOrganization({ id: org, name: 'Org', createdAt: t0 });
        const sender = {
          id: newId('snd'),
          orgId: org,
          provider: 'sandbox',
          config: {},
          channels: ['sms' as const],
          from: null,
          priority: 0,
          sealedSecrets: null,
          createdAt: t0,
          updatedAt: t0,
          deletedAt: null,
        };
        await msgStores[0]!.createSender(sender);
        await stores[0]!.createEndpoint({
          id: 'whk_order',
          orgId: org,
          url: 'https://hooks.example.com/',
          description: null,
          eventTypes: ['message.queued', 'message.sent', 'message.delivered'],
          filter: null,
          enabled: true,
          sealedSecret: 's',
          sealedPreviousSecret: null,
          previousSecretExpiresAt: null,
          disabledReason: null,
          disabledAt: null,
          failingSince: null,
          createdAt: t0,
          updatedAt: t0,
          deletedAt: null,
        });
        const ms = Array.from({ length: 40 }, () => ({
          id: newId('msg'),
          orgId: org,
          channel: 'sms' as const,
          to: '+12025550123',
          from: null,
          body: 'hi',
          subject: null,
          templateId: null,
          metadata: null,
          sendAt: null,
          priority: 1,
          createdAt: t0,
        }));
        await msgStores[0]!.acceptMessages(ms, (acc) =>
          acc.map((m) => ({ id: `send:${m.id}`, queue: 'send', payload: m.id, orgId: org, priority: 1, runAt: t0 })),
        );
        const plan = (input: Parameters<Parameters<PgWebhookStore['dispatchEvents']>[2]>[0]) => ({
          payloads: new Map(input.events.map((e) => [e.id, '{}'])),
          deliveries: input.events.map((e) => ({ eventId: e.id, endpointId: 'whk_order' })),
        });
        const opts = (now: number) => ({
          now,
          disableFailingSince: 0,
          disabledReason: 'x',
          disabledEvent: () => ({ orgId: org, type: 'endpoint.disabled', payload: '{}', at: now }),
        });
        // Status changes keep coming (sent, then delivered) while the workers run.
        const changes = (async () => {
          for (const [i, m] of ms.entries()) {
            const st = msgStores[i % 4]!;
            await st.claimForSending([m.id], t0 + 1, t0 + 60_000);
            await st.recordSendOutcomes([
              {
                messageId: m.id,
                kind: 'sent',
                senderId: sender.id,
                provider: 'sandbox',
                from: null,
                providerMessageId: `SM-${m.id}`,
                cost: null,
                at: t0 + 2,
              },
            ]);
            const ids = await st.storeCarrierEvents(
              sender,
              [
                {
                  kind: 'status',
                  eventKey: m.id,
                  providerMessageId: null,
                  reference: m.id,
                  status: 'delivered',
                  occurredAt: t0 + 3,
                },
              ],
              (got) => ({
                id: `ev:${got[0]}`,
                queue: 'carrier-events',
                payload: '',
                orgId: org,
                priority: 0,
                runAt: t0,
              }),
              t0 + 3,
            );
            await st.applyCarrierEvents(await st.loadCarrierEvents(ids), t0 + 3, () => newId('msg'));
          }
        })();
        const claimedOrder: { messageId: string; eventId: number }[] = [];
        let finished = 0;
        let changesDone = false;
        void changes.then(() => {
          changesDone = true;
        });
        await Promise.all(
          stores.map(async (s, i) => {
            let idle = 0;
            while (idle < 5) {
              await s.dispatchEvents(5, t0, plan);
              const batch = await s.claimDeliveries({
                limit: 6,
                perEndpoint: 6,
                now: t0,
                leaseUntil: t0 + 60_000,
                skipEndpoints: [],
              });
              for (const d of batch) claimedOrder.push({ messageId: d.messageId as string, eventId: d.eventId });
              if (batch.length > 0) {
                // Some finish for now and come back (a retry due at once), most are delivered.
                await s.recordDeliveryOutcomes(
                  batch.map((d, k) => ({
                    deliveryId: d.id,
                    endpointId: d.endpointId,
                    attempt: { at: t0, statusCode: 200, latencyMs: 1, response: null, error: null },
                    result:
                      (k + i) % 5 === 0 && d.attempts === 0
                        ? { kind: 'retry' as const, nextAttemptAt: t0 }
                        : { kind: 'delivered' as const },
                  })),
                  opts(t0),
                );
              }
              finished += batch.length;
              idle = batch.length === 0 && changesDone ? idle + 1 : 0;
              await new Promise((resolve) => setTimeout(resolve, 1));
            }
          }),
        );
        await changes;
        // Everything was delivered, nothing is left waiting, and each message's events went out in order.
        const left = await stores[0]!.listDeliveries(org, 'whk_order', { limit: 500 });
        expect(left.filter((d) => d.status !== 'delivered')).toEqual([]);
        expect(left).toHaveLength(ms.length * 3);
        for (const m of ms) {
          const order = claimedOrder.filter((c) => c.messageId === m.id).map((c) => c.eventId);
          expect(order).toEqual([...order].sort((a, b) => a - b));
        }
        expect(finished).toBeGreaterThan(ms.length * 3);
      } finally {
        await cleanup();
      }
    });
  });
}
