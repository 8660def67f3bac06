/**
 * Fakes of the journey engine's ports for tests and the bench: a messaging pipeline that records sends and honours
 * idempotency keys like the real one, contacts in memory, and a webhook receiver with scripted answers.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { ManualClock } from '../../src/adapters/clock/system-clock.ts';
import { openPostgres } from '../../src/adapters/postgres/database.ts';
import { PgJourneyStore } from '../../src/adapters/postgres/pg-journey-store.ts';
import { migrateToLatest } from '../../src/adapters/sql/migrations.ts';
import { openSqlite } from '../../src/adapters/sqlite/database.ts';
import { SqliteJourneyStore } from '../../src/adapters/sqlite/sqlite-journey-store.ts';
import type { Channel } from '../../src/domain/channels.ts';
import { NotFoundError, ResourceError, ValidationError } from '../../src/domain/errors.ts';
import type { MessageStatus } from '../../src/domain/message-status.ts';
import type {
  JourneyContact,
  JourneyContactPatch,
  JourneyContacts,
  JourneyMessaging,
  JourneySendRequest,
  JourneyWebhookClient,
  JourneyWebhookRequest,
} from '../../src/ports/journey-deps.ts';
import type { JourneyStore } from '../../src/ports/journey-store.ts';
import { JourneyContent } from '../../src/services/journey-content.ts';
import { JourneyRunner, type JourneyRunnerOptions } from '../../src/services/journey-runner.ts';
import { JourneyRuns } from '../../src/services/journey-runs.ts';
import { Journeys } from '../../src/services/journeys.ts';
import { newSchemaName, PG_URL } from '../support/postgres.ts';

export interface SentMessage extends JourneySendRequest {
  messageId: string;
  to: string;
}

export class FakeMessaging implements JourneyMessaging {
  readonly sent: SentMessage[] = [];
  readonly statusOf = new Map<string, MessageStatus>();
  private readonly byKey = new Map<string, SentMessage>();
  private next = 0;
  /** Throw a retryable error for the next N sends. */
  outage = 0;

  constructor(private readonly contacts: FakeContacts) {}

  async send(r: JourneySendRequest): Promise<{ messageId: string; to: string }> {
    const earlier = this.byKey.get(r.idempotencyKey);
    if (earlier) return { messageId: earlier.messageId, to: earlier.to };
    if (this.outage > 0) {
      this.outage--;
      throw new ResourceError('database_unavailable', 'the message store did not answer');
    }
    const contact = this.contacts.byId.get(r.contactId);
    const to = r.to ?? contact?.identifiers[r.channel];
    if (!to) throw new ValidationError('contact_address_missing', `no ${r.channel} address`, { field: 'contactId' });
    const m: SentMessage = { ...r, messageId: `msg_${String(++this.next).padStart(6, '0')}`, to };
    this.byKey.set(r.idempotencyKey, m);
    this.sent.push(m);
    this.statusOf.set(m.messageId, 'queued');
    return { messageId: m.messageId, to };
  }

  async statuses(_orgId: string, ids: readonly string[]): Promise<Map<string, MessageStatus>> {
    const out = new Map<string, MessageStatus>();
    for (const id of ids) {
      const s = this.statusOf.get(id);
      if (s) out.set(id, s);
    }
    return out;
  }

  channels(): Channel[] {
    return this.sent.map((m) => m.channel);
  }
}

export class FakeContacts implements JourneyContacts {
  readonly byId = new Map<string, JourneyContact>();
  readonly patches: { contactId: string; patch: JourneyContactPatch }[] = [];

  add(id: string, over: Partial<JourneyContact> = {}): JourneyContact {
    const c: JourneyContact = {
      id,
      attributes: {},
      tags: [],
      identifiers: { sms: '+12025550100', whatsapp: '+12025550100', email: 'ada@example.com' },
      timeZone: null,
      ...over,
    };
    this.byId.set(id, c);
    return c;
  }

  async get(_orgId: string, id: string): Promise<JourneyContact | undefined> {
    const c = this.byId.get(id);
    return c ? structuredClone(c) : undefined;
  }

  async update(_orgId: string, id: string, patch: JourneyContactPatch): Promise<void> {
    const c = this.byId.get(id);
    if (!c) throw new NotFoundError('contact_not_found', `contact '${id}' does not exist`);
    this.patches.push({ contactId: id, patch });
    for (const [k, v] of Object.entries(patch.set ?? {})) {
      if (v === null) delete c.attributes[k];
      else c.attributes[k] = v;
    }
    c.tags = [...new Set([...c.tags, ...(patch.addTags ?? [])])].filter((t) => !patch.removeTags?.includes(t));
  }
}

export class FakeWebhooks implements JourneyWebhookClient {
  readonly calls: JourneyWebhookRequest[] = [];
  /** Answers in order (a number: that status; 'timeout': throws); the last repeats. */
  answers: (number | 'timeout')[] = [200];

  async post(r: JourneyWebhookRequest): Promise<{ status: number }> {
    this.calls.push(r);
    const a = this.answers.length > 1 ? (this.answers.shift() as number | 'timeout') : (this.answers[0] ?? 200);
    if (a === 'timeout') throw new Error('the webhook did not answer within the time-out');
    return { status: a };
  }
}

export type Backend = 'sqlite' | 'postgres';

export interface Engine {
  backend: Backend;
  store: JourneyStore;
  clock: ManualClock;
  messaging: FakeMessaging;
  contacts: FakeContacts;
  webhooks: FakeWebhooks;
  journeys: Journeys;
  runs: JourneyRuns;
  runner: JourneyRunner;
  /** Another runner on the same store (a worker that replaces one that died). */
  newRunner(opts?: JourneyRunnerOptions): JourneyRunner;
  /** A new connection to the same database, as a restarted process would open (close it after use). */
  reopen(): Promise<{ store: JourneyStore; close(): Promise<void> }>;
  /** Runs the runner until nothing is due. */
  drain(runner?: JourneyRunner): Promise<number>;
  /** Creates and publishes a journey; returns its id. */
  publish(definition: unknown, name?: string): Promise<string>;
  close(): Promise<void>;
}

export const ORG = 'org_test';
export const TEST_RETRY = { maxAttempts: 3, baseDelayMs: 1000, maxDelayMs: 60_000 };

/** A fresh, migrated database for the journey store, and a way to open it again. */
async function openDatabase(backend: Backend): Promise<{
  store: JourneyStore;
  reopen(): Promise<{ store: JourneyStore; close(): Promise<void> }>;
  close(): Promise<void>;
}> {
  if (backend === 'sqlite') {
    const dir = mkdtempSync(join(tmpdir(), 'omni-journey-engine-'));
    const file = join(dir, 'omni.db');
    const h = openSqlite(file);
    await migrateToLatest(h.kysely);
    return {
      store: new SqliteJourneyStore(h),
      async reopen() {
        const again = openSqlite(file);
        return { store: new SqliteJourneyStore(again), close: async () => again.close() };
      },
      async close() {
        h.close();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  }
  const schema = newSchemaName();
  const admin = new pg.Client({ connectionString: PG_URL });
  await admin.connect();
  await admin.query(`create schema ${schema}`);
  const h = openPostgres(PG_URL, { schema, max: 4 });
  await migrateToLatest(h.kysely);
  return {
    store: new PgJourneyStore(h),
    async reopen() {
      const again = openPostgres(PG_URL, { schema, max: 2 });
      return { store: new PgJourneyStore(again), close: () => again.close() };
    },
    async close() {
      await h.close();
      await admin.query(`drop schema ${schema} cascade`);
      await admin.end();
    },
  };
}

export async function openEngine(opts: JourneyRunnerOptions = {}, backend: Backend = 'sqlite'): Promise<Engine> {
  const db = await openDatabase(backend);
  const store = db.store;
  const clock = new ManualClock(Date.UTC(2026, 2, 2, 12));
  const contacts = new FakeContacts();
  const messaging = new FakeMessaging(contacts);
  const webhooks = new FakeWebhooks();
  const content = new JourneyContent();
  const journeys = new Journeys(store, content, clock);
  const newRunner = (o: JourneyRunnerOptions = {}) =>
    new JourneyRunner(store, { messaging, contacts, webhooks, content }, clock, {
      retry: TEST_RETRY,
      random: () => 0.5,
      ...opts,
      ...o,
    });
  const runner = newRunner();
  const runs = new JourneyRuns(store, clock, () => runner.notifyDue());
  return {
    backend,
    store,
    clock,
    messaging,
    contacts,
    webhooks,
    journeys,
    runs,
    runner,
    newRunner,
    reopen: db.reopen,
    async drain(r = runner) {
      let total = 0;
      for (let i = 0; i < 100; i++) {
        const n = await r.runOnce();
        if (n === 0) return total;
        total += n;
      }
      throw new Error('the runner kept finding work');
    },
    async publish(definition, name = 'Test journey') {
      const j = await journeys.create(ORG, { name, definition });
      await journeys.publish(ORG, j.id);
      return j.id;
    },
    async close() {
      runner.close();
      await db.close();
    },
  };
}
