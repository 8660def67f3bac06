/**
 * The journey engine against the real message pipeline: the whole product runs in-process (SQLite, workers, the
 * sandbox carrier), the engine sends through `POST /v1/messages` (its idempotency keys as `Idempotency-Key`), and a
 * small bridge feeds it the statuses and inbound messages the pipeline records, as the composition root will from
 * its carrier-event worker. The sandbox's `+12025550194` replies YES; `+12025550192` is never delivered.
 */

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemClock } from '../../src/adapters/clock/system-clock.ts';
import { migrateToLatest } from '../../src/adapters/sql/migrations.ts';
import { openSqlite, type SqliteHandle } from '../../src/adapters/sqlite/database.ts';
import { SqliteJourneyStore } from '../../src/adapters/sqlite/sqlite-journey-store.ts';
import { ResourceError, ValidationError } from '../../src/domain/errors.ts';
import type { MessageStatus } from '../../src/domain/message-status.ts';
import type { JourneyMessaging, JourneySendRequest } from '../../src/ports/journey-deps.ts';
import { JourneyContent } from '../../src/services/journey-content.ts';
import { JourneyRunner } from '../../src/services/journey-runner.ts';
import { Journeys } from '../../src/services/journeys.ts';
import { WorkerLoop } from '../../src/workers/worker-loop.ts';
import { eventually, startTestServer, type TestServer } from '../support/harness.ts';
import { FakeContacts, FakeWebhooks, ORG } from './fakes.ts';

/** JourneyMessaging over the public API, the way the composition root adapts AcceptMessages. */
class ApiMessaging implements JourneyMessaging {
  readonly ids: string[] = [];
  constructor(
    private readonly server: TestServer,
    private readonly contacts: FakeContacts,
  ) {}

  async send(r: JourneySendRequest): Promise<{ messageId: string; to: string }> {
    const to = this.contacts.byId.get(r.contactId)?.identifiers[r.channel];
    if (!to) throw new ValidationError('contact_address_missing', `no ${r.channel} address`);
    const res = await this.server.api(
      'POST',
      '/v1/messages',
      {
        to,
        channel: r.channel,
        purpose: r.purpose,
        metadata: r.metadata,
        ...(r.body !== undefined ? { body: r.body } : {}),
        ...(r.subject !== undefined ? { subject: r.subject } : {}),
      },
      { 'idempotency-key': r.idempotencyKey },
    );
    if (res.status >= 500) throw new ResourceError('pipeline_unavailable', JSON.stringify(res.body));
    if (res.status !== 202) throw new ValidationError(res.body.error.code, res.body.error.message);
    if (!this.ids.includes(res.body.id)) this.ids.push(res.body.id);
    return { messageId: res.body.id, to };
  }

  async statuses(_org: string, ids: readonly string[]): Promise<Map<string, MessageStatus>> {
    const out = new Map<string, MessageStatus>();
    for (const id of ids) out.set(id, (await this.server.api('GET', `/v1/messages/${id}`)).body.status);
    return out;
  }
}

let server: TestServer;
let dir: string;
let h: SqliteHandle;
let contacts: FakeContacts;
let messaging: ApiMessaging;
let runner: JourneyRunner;
let journeys: Journeys;
let loop: WorkerLoop;
let bridge: NodeJS.Timeout;
const seenStatus = new Map<string, string>();
const seenInbound = new Set<string>();
let pumping: Promise<void> | undefined;

/** Polls the pipeline for what the carrier-event worker would report to the engine. */
async function pump(): Promise<void> {
  for (const id of messaging.ids) {
    const m = (await server.api('GET', `/v1/messages/${id}`)).body;
    if (seenStatus.get(id) !== m.status) {
      seenStatus.set(id, m.status);
      await runner.onMessageStatus(id, m.status, Date.now());
    }
  }
  const inbound = (await server.api('GET', '/v1/messages?direction=inbound&limit=50')).body.items as {
    id: string;
    from: string;
    channel: string;
    body: string;
  }[];
  for (const m of inbound) {
    if (seenInbound.has(m.id)) continue;
    seenInbound.add(m.id);
    const contact = [...contacts.byId.values()].find((c) => Object.values(c.identifiers).includes(m.from));
    await runner.onInbound(ORG, contact?.id ?? null, m.channel, m.from, m.body, Date.now());
  }
}

beforeAll(async () => {
  server = await startTestServer();
  dir = mkdtempSync(join(tmpdir(), 'omni-journey-pipeline-'));
  h = openSqlite(join(dir, 'journeys.db'));
  await migrateToLatest(h.kysely);
  const store = new SqliteJourneyStore(h);
  contacts = new FakeContacts();
  messaging = new ApiMessaging(server, contacts);
  const content = new JourneyContent();
  journeys = new Journeys(store, content, systemClock);
  runner = new JourneyRunner(store, { messaging, contacts, webhooks: new FakeWebhooks(), content }, systemClock, {
    onError: (err) => console.error(err),
  });
  loop = new WorkerLoop(() => runner.runOnce(), {
    name: 'journeys',
    concurrency: 1,
    pollMs: 20,
    onError: console.error,
  });
  runner.onDue(() => loop.wake());
  loop.start();
  bridge = setInterval(() => {
    if (pumping) return;
    pumping = pump()
      .catch(console.error)
      .finally(() => {
        pumping = undefined;
      });
  }, 25);
});

afterAll(async () => {
  clearInterval(bridge);
  await pumping;
  await loop.stop();
  h.close();
  rmSync(dir, { recursive: true, force: true });
  await server.stop();
});

async function publish(definition: unknown): Promise<string> {
  const j = await journeys.create(ORG, { name: 'pipeline', definition });
  await journeys.publish(ORG, j.id);
  return j.id;
}

async function messagesOf(runId: string) {
  const all = (await server.api('GET', '/v1/messages?direction=outbound&limit=500')).body.items as {
    id: string;
    channel: string;
    to: string;
    body: string;
    metadata: { journeyRunId?: string } | null;
  }[];
  return all.filter((m) => m.metadata?.journeyRunId === runId).reverse();
}

describe('journeys over the message pipeline and the sandbox carrier', () => {
  it('sends, waits, and branches on the YES the sandbox replies with', async () => {
    contacts.add('ctc_yes', { identifiers: { sms: '+12025550194' } });
    const id = await publish({
      trigger: { type: 'event', event: 'appointment.booked' },
      entry: 'ask',
      reentry: { mode: 'always' },
      steps: {
        ask: { type: 'send', channel: 'sms', body: 'Reply YES to confirm {{ event.when }}', next: 'pause' },
        pause: { type: 'wait', duration: '200ms', next: 'answer' },
        answer: { type: 'wait_for', reply: { match: ['yes'] }, timeout: '20s', next: 'thanks', onTimeout: 'late' },
        thanks: { type: 'send', channel: 'sms', body: 'Confirmed', next: 'done' },
        late: { type: 'send', channel: 'sms', body: 'No answer', next: 'done' },
        done: { type: 'exit' },
      },
    });
    await runner.onEvent(ORG, 'ctc_yes', {
      name: 'appointment.booked',
      properties: { when: 'Tuesday 10:00' },
      occurredAt: Date.now(),
    });
    const run = await eventually(async () => {
      const [r] = await new SqliteJourneyStore(h).listRuns(ORG, { journeyId: id, limit: 1 });
      return r?.status === 'completed' ? r : undefined;
    }, 20_000);
    const sent = await messagesOf(run.id);
    expect(sent.map((m) => m.body)).toEqual(['Reply YES to confirm Tuesday 10:00', 'Confirmed']);
    expect(sent.every((m) => m.to === '+12025550194')).toBe(true);
  });

  it('falls back from WhatsApp to SMS when WhatsApp is not delivered', async () => {
    contacts.add('ctc_wa', { identifiers: { whatsapp: '+12025550192', sms: '+12025550100' } });
    const id = await publish({
      trigger: { type: 'api' },
      entry: 'notify',
      reentry: { mode: 'always' },
      steps: {
        notify: {
          type: 'send',
          fallback: [
            { channel: 'whatsapp', within: '10m' },
            { channel: 'sms', within: '10m' },
          ],
          body: 'Your bill is ready',
          next: 'ok',
          onFailure: 'ko',
        },
        ok: { type: 'exit' },
        ko: { type: 'exit' },
      },
    });
    const { runId } = await runner.start(ORG, id, 'ctc_wa');
    const run = await eventually(async () => {
      const r = await new SqliteJourneyStore(h).getRun(ORG, runId);
      return r?.status === 'completed' ? r : undefined;
    }, 20_000);
    expect(run.stepId).toBe('ok');
    const sent = await messagesOf(runId);
    expect(sent.map((m) => [m.channel, m.to])).toEqual([
      ['whatsapp', '+12025550192'],
      ['sms', '+12025550100'],
    ]);
    const wa = (await server.api('GET', `/v1/messages/${sent[0]?.id}`)).body;
    expect(wa.status).toBe('undelivered');
  });
});
