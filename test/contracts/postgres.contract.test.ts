/**
 * The PostgreSQL adapters against the shared port contracts, plus what only a shared database can show: several
 * processes (here: several pools) claiming, reporting and notifying concurrently.
 *
 * Each test gets a fresh schema (`t_<random>`, migrated, dropped afterwards) reached through the connections'
 * `search_path`, so tests are isolated from each other and from other runs on the same database.
 *
 * Database: `OMNI_TEST_DATABASE_URL` (default postgres://postgres@127.0.0.1:5432/test). When it cannot be reached
 * the suite is skipped with a warning, except under CI (`CI=true`), where that is a failure.
 */
import { randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import pg from 'pg';
import { afterAll, afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ManualClock } from '../../src/adapters/clock/system-clock.ts';
import { openPostgres, type PgHandle } from '../../src/adapters/postgres/database.ts';
import { PgJobQueue } from '../../src/adapters/postgres/pg-job-queue.ts';
import { PgStore } from '../../src/adapters/postgres/pg-store.ts';
import { migrateToLatest } from '../../src/adapters/sql/migrations.ts';
import { foldStatusCountShards } from '../../src/adapters/sql/migrations-status-counts.ts';
import { newId } from '../../src/domain/ids.ts';
import { rankOf } from '../../src/domain/message-status.ts';
import type { CarrierEvent } from '../../src/ports/carrier.ts';
import { type NewJob, PRIORITY_VALUE } from '../../src/ports/queue.ts';
import type { NewMessage, StoredSender } from '../../src/ports/store.ts';
import { PG_URL, probePostgres } from '../support/postgres.ts';
import { queueContract } from './queue-contract.ts';
import { storeContract } from './store-contract.ts';

const URL = PG_URL;

const unreachable = await probePostgres();

if (unreachable !== null) {
  const reason = `PostgreSQL at ${URL.replace(/\/\/[^@/]*@/, '//…@')} is unreachable (${unreachable})`;
  if (process.env.CI === 'true') {
    describe('PostgreSQL adapters', () => {
      it('reach the test database (required under CI)', () => {
        throw new Error(`${reason}; set OMNI_TEST_DATABASE_URL or start PostgreSQL`);
      });
    });
  } else {
    console.warn(`[postgres.contract] skipped: ${reason}. Set OMNI_TEST_DATABASE_URL to run it.`);
    describe.skip(`PostgreSQL adapters (skipped: ${reason})`, () => {
      it('run against PostgreSQL', () => undefined);
    });
  }
} else {
  postgresSuites();
}

function postgresSuites(): void {
  const admin = new pg.Pool({ connectionString: URL, max: 2 });
  afterAll(() => admin.end());

  /** A fresh, migrated schema and `n` handles on it (each its own pool, like separate processes). */
  async function freshSchema(n = 1): Promise<{ handles: PgHandle[]; cleanup(): Promise<void> }> {
    const schema = `t_${randomBytes(8).toString('hex')}`;
    await admin.query(`create schema ${schema}`);
    const handles = Array.from({ length: n }, () => openPostgres(URL, { schema, max: 4 }));
    await migrateToLatest(handles[0]!.kysely);
    return {
      handles,
      async cleanup() {
        for (const h of handles) {
          h.jobsWritten.removeAllListeners();
          await h.close();
        }
        await admin.query(`drop schema ${schema} cascade`);
      },
    };
  }

  storeContract('PgStore', async () => {
    const { handles, cleanup } = await freshSchema();
    const h = handles[0]!;
    return { store: new PgStore(h), queue: new PgJobQueue(h), cleanup };
  });

  queueContract('PgJobQueue (manual clock)', async () => {
    const { handles, cleanup } = await freshSchema();
    const clock = new ManualClock();
    return { queue: new PgJobQueue(handles[0]!, () => clock.now()), clock, cleanup };
  });

  queueContract('PgJobQueue (wall clock)', async () => {
    const { handles, cleanup } = await freshSchema();
    return { queue: new PgJobQueue(handles[0]!), clock: null, cleanup };
  });

  describe('PostgreSQL specifics', () => {
    const PROCESSES = 4;
    let handles: PgHandle[];
    let cleanup: () => Promise<void>;
    let stores: PgStore[];
    let queues: PgJobQueue[];
    let org: string;
    const t0 = Date.now() - 3_600_000;

    beforeEach(async () => {
      ({ handles, cleanup } = await freshSchema(PROCESSES));
      stores = handles.map((h) => new PgStore(h));
      queues = handles.map((h) => new PgJobQueue(h));
      org = newId('org');
    });
    afterEach(async () => {
      await cleanup();
    });

    const store = () => stores[0]!;

    function outbound(overrides: Partial<NewMessage> = {}): NewMessage {
      return {
        id: newId('msg'),
        orgId: org,
        channel: 'sms',
        to: '+12025550123',
        from: null,
        body: 'hello',
        subject: null,
        templateId: null,
        metadata: null,
        sendAt: null,
        priority: PRIORITY_VALUE.normal,
        createdAt: t0,
        ...overrides,
      };
    }
    const sendJob = (m: NewMessage): NewJob => ({
      id: `send:${m.id}`,
      queue: 'send',
      payload: m.id,
      orgId: m.orgId,
      priority: m.priority,
      runAt: m.createdAt,
    });
    async function sender(): Promise<StoredSender> {
      await store().createOrganization({ id: org, name: 'Org', createdAt: t0 });
      const s: StoredSender = {
        id: newId('snd'),
        orgId: org,
        provider: 'sandbox',
        config: {},
        channels: ['sms'],
        from: '+12025550100',
        priority: 0,
        sealedSecrets: null,
        createdAt: t0,
        updatedAt: t0,
        deletedAt: null,
      };
      await store().createSender(s);
      return s;
    }

    it('reads bigint columns back as numbers and a cost as the exact double', async () => {
      const m = outbound({ createdAt: 1_767_225_600_123 });
      await store().acceptMessages([m], (acc) => acc.map(sendJob));
      await store().claimForSending([m.id], m.createdAt + 1, m.createdAt + 2);
      const cost = 0.1 + 0.2;
      await store().recordSendOutcomes([
        {
          messageId: m.id,
          kind: 'sent',
          senderId: 'snd_x',
          provider: 'sandbox',
          from: null,
          providerMessageId: 'SM1',
          cost,
          at: m.createdAt + 3,
        },
      ]);
      const stored = await store().getMessage(org, m.id);
      expect(stored?.createdAt).toBe(1_767_225_600_123);
      expect(stored?.cost).toBe(cost);
      expect(await store().countByStatus()).toEqual({ sent: 1 });
    });

    it('wakes listeners of other processes with NOTIFY, and its own process once', async () => {
      const mine: string[] = [];
      const theirs: string[] = [];
      queues[0]!.onEnqueue((q) => mine.push(q));
      queues[1]!.onEnqueue((q) => theirs.push(q));
      await handles[1]!.listen();
      await handles[0]!.listen();

      await queues[0]!.enqueue([{ ...sendJob(outbound()), queue: 'send' }]);
      await vi.waitFor(() => expect(theirs).toEqual(['send']));
      const m = outbound();
      await stores[0]!.acceptMessages([m], (acc) => acc.map(sendJob));
      const s = await sender();
      await stores[0]!.storeCarrierEvents(
        s,
        [
          {
            kind: 'status',
            eventKey: 'k1',
            providerMessageId: 'SM1',
            reference: null,
            status: 'delivered',
            occurredAt: t0,
          },
        ],
        (ids) => ({
          id: `events:${ids[0]}`,
          queue: 'carrier-events',
          payload: '{}',
          orgId: org,
          priority: 0,
          runAt: t0,
        }),
        Date.now(),
      );
      await vi.waitFor(() => expect(theirs).toEqual(['send', 'send', 'carrier-events']));
      // Our own NOTIFYs come back on our LISTEN connection too; they are not delivered a second time.
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(mine).toEqual(['send', 'send', 'carrier-events']);
    });

    it('hands every job to exactly one of several concurrent claimers', async () => {
      const jobs = Array.from({ length: 300 }, () => sendJob(outbound()));
      await queues[0]!.enqueue(jobs);
      const claimed: string[] = [];
      await Promise.all(
        queues.flatMap((q) =>
          [0, 1].map(async () => {
            for (;;) {
              const batch = await q.claim('send', 7, 60_000);
              if (batch.length === 0) return;
              claimed.push(...batch.map((j) => j.id));
              await q.ack(batch.map((j) => j.id));
            }
          }),
        ),
      );
      expect(claimed).toHaveLength(jobs.length);
      expect(new Set(claimed).size).toBe(jobs.length);
      expect(await queues[0]!.depth()).toEqual({});
    });

    it('claims each message for exactly one of several concurrent workers', async () => {
      const ms = Array.from({ length: 60 }, () => outbound());
      await store().acceptMessages(ms, (acc) => acc.map(sendJob));
      const ids = ms.map((m) => m.id);
      const now = t0 + 1000;
      // Every worker asks for all of them, in a different order.
      const results = await Promise.all(
        stores.map((s, i) =>
          s.claimForSending(i % 2 ? [...ids].reverse() : ids.slice(i).concat(ids.slice(0, i)), now, now + 60_000),
        ),
      );
      const claimed = results.flat().map((m) => m.id);
      expect(claimed.sort()).toEqual([...ids].sort());
      for (const id of ids.slice(0, 5)) {
        expect((await store().getMessage(org, id))?.attempts).toBe(1);
        expect((await store().getHistory(id)).map((h) => [h.status, h.applied])).toEqual([
          ['queued', true],
          ['sending', true],
        ]);
      }
    });

    it('never lowers a status when processes report on the same messages concurrently', async () => {
      const s = await sender();
      const ms = Array.from({ length: 20 }, () => outbound());
      await store().acceptMessages(ms, (acc) => acc.map(sendJob));
      await store().claimForSending(
        ms.map((m) => m.id),
        t0 + 1,
        t0 + 60_000,
      );
      const report = (status: 'sent' | 'delivered' | 'read', m: NewMessage, n: number): CarrierEvent => ({
        kind: 'status',
        eventKey: `${m.id}:${status}:${n}`,
        providerMessageId: null,
        reference: m.id,
        status,
        occurredAt: t0 + n,
      });
      // Each process gets all reports for all messages, in its own order, plus the synchronous 'sent' answers.
      const statuses = ['read', 'delivered', 'sent'] as const;
      await Promise.all(
        stores.map(async (st, i) => {
          const events = ms.flatMap((m) => statuses.map((_, k) => report(statuses[(k + i) % 3]!, m, i * 10 + k)));
          const ids = await st.storeCarrierEvents(
            s,
            events,
            (got) => ({ id: `ev:${got[0]}`, queue: 'carrier-events', payload: '', orgId: org, priority: 0, runAt: t0 }),
            Date.now(),
          );
          await st.recordSendOutcomes(
            ms.map((m) => ({
              messageId: m.id,
              kind: 'sent' as const,
              senderId: s.id,
              provider: 'sandbox',
              from: null,
              providerMessageId: `SM-${m.id}`,
              cost: null,
              at: t0 + 5,
            })),
          );
          await st.applyCarrierEvents(await st.loadCarrierEvents(ids), Date.now(), () => newId('msg'));
        }),
      );
      for (const m of ms) {
        expect((await store().getMessage(org, m.id))?.status).toBe('read');
        const applied = (await store().getHistory(m.id)).filter((h) => h.applied).map((h) => rankOf(h.status));
        // Whatever the interleaving, each applied entry (in insertion order) raised the rank.
        expect(applied.length).toBeGreaterThanOrEqual(3);
        for (let i = 1; i < applied.length; i++) expect(applied[i]).toBeGreaterThan(applied[i - 1]!);
      }
    });

    it('keeps the counts by status exact under concurrent writers, and folds the rows of ended backends', async () => {
      const ms = Array.from({ length: 80 }, () => outbound());
      await Promise.all(
        stores.map((st, i) => st.acceptMessages(ms.slice(i * 20, i * 20 + 20), (acc) => acc.map(sendJob))),
      );
      const ids = ms.map((m) => m.id);
      // Every process claims overlapping halves, then cancels what it can of another slice.
      await Promise.all(
        stores.map((st, i) => st.claimForSending(i % 2 ? ids.slice(0, 40) : ids.slice(20, 60), t0 + 1, t0 + 60_000)),
      );
      await Promise.all(
        stores.map(async (st, i) => {
          for (const id of ids.slice(50 + i * 5, 60 + i * 5))
            await st.applyCommand(org, id, { kind: 'cancel' }, t0 + 2);
        }),
      );
      const counted = async () => {
        const { rows } = await admin.query<{ status: string; n: string }>(
          `select status, count(*) as n from ${handles[0]!.schema}.messages group by status`,
        );
        return Object.fromEntries(rows.map((r) => [r.status, Number(r.n)]));
      };
      const truth = await counted();
      expect(truth.sending).toBe(60);
      expect(await store().countByStatus()).toEqual(truth);
      // A process that wrote and ended leaves its backend's counter rows behind; folding moves them to shard 0.
      const schema = handles[0]!.schema as string;
      const gone = openPostgres(URL, { schema, max: 1 });
      const pid = (await sql<{ pid: number }>`select pg_backend_pid() as pid`.execute(gone.kysely)).rows[0]!.pid;
      await new PgStore(gone).acceptMessages([outbound(), outbound()], (acc) => acc.map(sendJob));
      await gone.close();
      const shards = async () =>
        (await admin.query<{ shard: number }>(`select distinct shard from ${schema}.message_status_counts`)).rows.map(
          (r) => r.shard,
        );
      expect(await shards()).toContain(pid);
      // The backend exits a moment after its client hangs up.
      await vi.waitFor(
        async () => {
          const { rows } = await admin.query('select 1 from pg_stat_activity where pid = $1', [pid]);
          expect(rows).toHaveLength(0);
        },
        { timeout: 5000, interval: 20 },
      );
      await foldStatusCountShards(handles[0]!.kysely);
      expect(await shards()).not.toContain(pid);
      expect(await store().countByStatus()).toEqual({ ...truth, queued: (truth.queued ?? 0) + 2 });
    });

    it('stores a carrier event once when the same webhook arrives at several processes at once', async () => {
      const s = await sender();
      const events: CarrierEvent[] = Array.from({ length: 30 }, (_, i) => ({
        kind: 'status',
        eventKey: `dup-${i}`,
        providerMessageId: `SM-${i}`,
        reference: null,
        status: 'delivered',
        occurredAt: t0,
      }));
      const results = await Promise.all(
        stores.map((st) =>
          st.storeCarrierEvents(
            s,
            events,
            (ids) => ({ id: `ev:${ids[0]}`, queue: 'carrier-events', payload: '', orgId: org, priority: 0, runAt: t0 }),
            Date.now(),
          ),
        ),
      );
      expect(results.flat()).toHaveLength(30);
      expect(new Set(results.flat()).size).toBe(30);
    });

    it('gives an idempotency key to exactly one of several concurrent requests', async () => {
      const attempts = stores.map((st, i) => {
        const m = outbound({
          idempotency: { key: 'race-key', requestHash: `h${i}`, response: `{"n":${i}}` },
        });
        return st.acceptMessages([m], (acc) => acc.map(sendJob));
      });
      const outcomes = (await Promise.all(attempts)).flat();
      expect(outcomes.filter((o) => o.ok)).toHaveLength(1);
      expect(outcomes.filter((o) => !o.ok)).toEqual(
        Array.from({ length: PROCESSES - 1 }, () => ({ ok: false, reason: 'idempotency_key_taken' })),
      );
      expect((await store().listMessages(org, { limit: 10 })).length).toBe(1);
      expect((await queues[0]!.depth()).send).toBe(1);
    });
  });
}
