/**
 * Journeys bench: 100,000 runs of "event → send → wait 60 s → branch on delivered → send" through the journey
 * engine in this process, on its SQLite store (a fresh temp file), with a messaging fake that records every send and
 * reports it `delivered` at once, and the runner in a WorkerLoop polling like production's (`OMNI_POLL_MS`, 250 ms).
 *
 * Events arrive at a steady rate (BENCH_JOURNEY_RATE, 2,000/s: 100,000 runs over 50 s), so the timers come due at
 * that rate 60 s later, as in a deployment taking that many events per second; an arrival rate above what the engine
 * sustains would measure the growing backlog rather than the timers.
 *
 * Measured: how late each 60-second timer fires (claim time − due time; p50/p99/max; target p99 ≤ 1 s), how late a
 * run's first step runs after its event, runs completed per second as the timers fire (the arrival rate when the
 * engine keeps up) and per busy core (runs ÷ CPU seconds of the process: the engine's capacity for the whole journey),
 * and that every run sent exactly two messages.
 *
 * The clock: real time plus an offset that jumps forward only while nothing is due (every run waiting on its
 * 60-second timer), and only up to the next due time, never past it. Timers then come due in real time, spread
 * exactly as their runs were started, so the engine fires them under the same load as with a real 60-second wait;
 * only the idle gap is skipped (here 10 s of a minute).
 *
 * `npm run bench -- journeys` once the lead adds the section; alone: `node --import tsx bench/journeys.ts`.
 * Environment: BENCH_JOURNEY_RUNS (100000), BENCH_JOURNEY_RATE (2000 events/s), BENCH_JOURNEY_WAIT_S (60),
 * BENCH_JOURNEY_POLL_MS (250), BENCH_JOURNEY_BATCH (500: runs per claim).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep, setImmediate as turn } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';
import { migrateToLatest } from '../src/adapters/sql/migrations.ts';
import { openSqlite } from '../src/adapters/sqlite/database.ts';
import { SqliteJourneyStore } from '../src/adapters/sqlite/sqlite-journey-store.ts';
import type { MessageStatus } from '../src/domain/message-status.ts';
import type { Clock } from '../src/ports/clock.ts';
import type {
  JourneyContact,
  JourneyContacts,
  JourneyMessaging,
  JourneySendRequest,
  JourneyWebhookClient,
} from '../src/ports/journey-deps.ts';
import { JourneyContent } from '../src/services/journey-content.ts';
import { JourneyRunner } from '../src/services/journey-runner.ts';
import { Journeys } from '../src/services/journeys.ts';
import { WorkerLoop } from '../src/workers/worker-loop.ts';
import { type Row, renderTable, row } from './lib/report.ts';

const SECTION = 'journeys';
const ORG = 'org_bench';

export interface JourneyBenchOptions {
  runs?: number;
  waitS?: number;
  pollMs?: number;
  batchSize?: number;
  /** Events per second (default 2,000). */
  rate?: number;
}

function envInt(name: string, fallback: number): number {
  const v = Number(process.env[name]);
  return Number.isInteger(v) && v > 0 ? v : fallback;
}

/** Real time plus an offset that only moves forward. */
class WarpClock implements Clock {
  offset = 0;
  now(): number {
    return Date.now() + this.offset;
  }
  jumpTo(t: number): void {
    const d = t - this.now();
    if (d > 0) this.offset += d;
  }
}

class RecordingMessaging implements JourneyMessaging {
  sent = 0;
  readonly perRun = new Map<string, number>();
  private readonly byKey = new Map<string, string>();
  private pending: { messageId: string; status: MessageStatus }[] = [];
  private flushing = false;
  report: (updates: { messageId: string; status: MessageStatus }[]) => Promise<unknown> = async () => undefined;

  async send(r: JourneySendRequest): Promise<{ messageId: string; to: string }> {
    const earlier = this.byKey.get(r.idempotencyKey);
    if (earlier) return { messageId: earlier, to: '+12025550100' };
    const messageId = `msg_${++this.sent}`;
    this.byKey.set(r.idempotencyKey, messageId);
    this.perRun.set(r.metadata.journeyRunId, (this.perRun.get(r.metadata.journeyRunId) ?? 0) + 1);
    // The carrier's receipt, reported like the carrier-event worker would: right after, in batches.
    this.pending.push({ messageId, status: 'delivered' });
    if (!this.flushing) {
      this.flushing = true;
      setImmediate(() => {
        const batch = this.pending;
        this.pending = [];
        this.flushing = false;
        void this.report(batch);
      });
    }
    return { messageId, to: '+12025550100' };
  }

  async statuses(_orgId: string, ids: readonly string[]): Promise<Map<string, MessageStatus>> {
    return new Map(ids.map((id) => [id, 'delivered' as MessageStatus]));
  }
}

/** Every contact exists, with a phone and an email. */
const contacts: JourneyContacts = {
  async get(_orgId: string, id: string): Promise<JourneyContact> {
    return {
      id,
      attributes: { firstName: 'Ada' },
      tags: [],
      identifiers: { sms: '+12025550100', email: 'ada@example.com' },
      timeZone: null,
    };
  },
  async update() {},
};
const webhooks: JourneyWebhookClient = {
  async post() {
    return { status: 200 };
  },
};

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] as number;
}

export async function benchJourneys(
  options: JourneyBenchOptions = {},
): Promise<{ rows: Row[]; raw: Record<string, unknown> }> {
  const runs = options.runs ?? envInt('BENCH_JOURNEY_RUNS', 100_000);
  const waitS = options.waitS ?? envInt('BENCH_JOURNEY_WAIT_S', 60);
  const pollMs = options.pollMs ?? envInt('BENCH_JOURNEY_POLL_MS', 250);
  const batchSize = options.batchSize ?? envInt('BENCH_JOURNEY_BATCH', 500);
  const rate = options.rate ?? envInt('BENCH_JOURNEY_RATE', 2000);
  const dir = mkdtempSync(join(tmpdir(), 'omni-bench-journeys-'));
  const h = openSqlite(join(dir, 'omni.db'));
  try {
    await migrateToLatest(h.kysely);
    const store = new SqliteJourneyStore(h);
    const clock = new WarpClock();
    const messaging = new RecordingMessaging();
    const content = new JourneyContent();
    const journeys = new Journeys(store, content, clock);
    const timerLags = new Float64Array(runs);
    let timers = 0;
    const startLags = new Float64Array(runs);
    let starts = 0;
    const runner = new JourneyRunner(store, { messaging, contacts, webhooks, content }, clock, {
      batchSize,
      onFired(lag, kind) {
        if (kind === 'timer' && timers < runs) timerLags[timers++] = lag;
        else if (kind === 'start' && starts < runs) startLags[starts++] = lag;
      },
    });
    messaging.report = (updates) => runner.onMessageStatuses(updates, clock.now());

    const j = await journeys.create(ORG, {
      name: 'Order follow-up',
      definition: {
        trigger: { type: 'event', event: 'order.placed' },
        entry: 'confirm',
        reentry: { mode: 'always' },
        steps: {
          confirm: { type: 'send', channel: 'sms', body: 'Order {{ event.orderId }} confirmed', next: 'wait' },
          wait: { type: 'wait', duration: `${waitS}s`, next: 'check' },
          check: {
            type: 'branch',
            branches: [{ when: { path: 'message.delivered', op: 'eq', value: true }, next: 'thanks' }],
            otherwise: 'email',
          },
          thanks: { type: 'send', channel: 'sms', body: 'Thanks, {{ contact.firstName }}!', next: 'done' },
          email: { type: 'send', channel: 'email', subject: 'Your order', body: 'Thanks!', next: 'done' },
          done: { type: 'exit' },
        },
      },
    });
    await journeys.publish(ORG, j.id);

    let loopError: unknown;
    const loop = new WorkerLoop(() => runner.runOnce(), {
      name: 'journeys',
      concurrency: 1,
      pollMs,
      onError: (err) => {
        loopError ??= err;
      },
    });
    runner.onDue(() => loop.wake());
    loop.start();

    const completed = () =>
      h.stmt("SELECT count(*) FROM journey_runs WHERE status = 'completed'").pluck().get() as number;
    // Cheap progress: the second message of a run is its last step before the exit.
    const finishing = () => messaging.sent - runs;
    // Events arrive at `rate` per second (in slices, as concurrent requests would), so the timers come due at that
    // rate 60 s later: the steady state of a deployment taking that many events per second.
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    let fed = 0;
    const feeding = (async () => {
      while (fed < runs) {
        const due = Math.min(runs, Math.floor(((performance.now() - t0) / 1000) * rate) + 1);
        const slice: Promise<unknown>[] = [];
        for (; fed < due; fed++) {
          slice.push(
            runner.onEvent(ORG, `ctc_${fed}`, {
              name: 'order.placed',
              properties: { orderId: `A${fed}` },
              occurredAt: clock.now(),
              id: `evt_${fed}`,
            }),
          );
        }
        await Promise.all(slice);
        await sleep(5);
      }
    })();
    let tFed: number | undefined;
    void feeding.then(() => {
      tFed = performance.now();
    });
    let skippedMs = 0;
    let tFirstTimer: number | undefined;
    const deadline = Date.now() + 30 * 60_000;
    for (;;) {
      if (loopError) throw loopError;
      if (Date.now() > deadline) throw new Error(`journeys bench timed out (${completed()} of ${runs} runs done)`);
      if (timers > 0) tFirstTimer ??= performance.now();
      if (finishing() >= runs && completed() >= runs) break;
      if (tFed !== undefined && timers === 0 && messaging.sent >= runs) {
        const next = await store.nextDueAt();
        if (next !== null && next - clock.now() > 1000) {
          // Every run waits on its timer and none is due for more than a second: skip to the first one.
          const before = clock.offset;
          clock.jumpTo(next);
          skippedMs += clock.offset - before;
          loop.wake();
        }
      }
      await sleep(5);
    }
    const tEnd = performance.now();
    const cpu = process.cpuUsage(cpu0);
    await feeding;
    await loop.stop();
    runner.close();
    messaging.report = async () => undefined;
    await turn();

    const lags = timerLags.subarray(0, timers).sort();
    const startLag = startLags.subarray(0, starts).sort();
    const perRun = [...messaging.perRun.values()];
    const wrongSends = Math.abs(messaging.sent - 2 * runs) + perRun.filter((n) => n !== 2).length;
    const secs = (a: number, b: number) => (b - a) / 1000;
    const timerPhase = secs(tFirstTimer ?? tEnd, tEnd);
    const cpuSeconds = (cpu.user + cpu.system) / 1e6;
    const note = `${runs.toLocaleString('en-US')} runs arriving at ${rate.toLocaleString('en-US')}/s, wait ${waitS} s (${(skippedMs / 1000).toFixed(0)} s idle skipped), SQLite, poll ${pollMs} ms`;
    const rows: Row[] = [
      row(SECTION, 'timer lag p50', percentile(lags, 0.5), 'ms', undefined, note),
      row(SECTION, 'timer lag p99', percentile(lags, 0.99), 'ms', { op: '<=', value: 1000 }),
      row(SECTION, 'timer lag max', lags.length ? (lags[lags.length - 1] as number) : Number.NaN, 'ms'),
      row(SECTION, 'timers fired', timers, 'count', { op: '>=', value: runs }),
      row(SECTION, 'runs completed/s as timers fire', timerPhase > 0 ? runs / timerPhase : Number.NaN, 'runs/s'),
      row(
        SECTION,
        'runs completed/s per busy core',
        runs / cpuSeconds,
        'runs/s',
        undefined,
        'capacity: runs ÷ CPU seconds of the whole run (start, send, timer, branch, send, statuses)',
      ),
      row(SECTION, 'event → first step p50', percentile(startLag, 0.5), 'ms'),
      row(SECTION, 'event → first step p99', percentile(startLag, 0.99), 'ms'),
      row(SECTION, 'runs not sending exactly 2 messages', wrongSends, 'count', { op: '<=', value: 0 }),
      row(SECTION, 'peak RSS', process.resourceUsage().maxRSS / 1024, 'MB'),
    ];
    return {
      rows,
      raw: {
        runs,
        waitS,
        pollMs,
        batchSize,
        rate,
        timers,
        sent: messaging.sent,
        completed: completed(),
        timerLagMs: {
          p50: percentile(lags, 0.5),
          p90: percentile(lags, 0.9),
          p99: percentile(lags, 0.99),
          max: lags[lags.length - 1],
        },
        startLagMs: { p50: percentile(startLag, 0.5), p99: percentile(startLag, 0.99) },
        seconds: {
          total: secs(t0, tEnd),
          feed: secs(t0, tFed ?? tEnd),
          timerPhase,
          skipped: skippedMs / 1000,
          cpu: cpuSeconds,
        },
      },
    };
  } finally {
    h.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { rows, raw } = await benchJourneys();
  console.log(renderTable(rows));
  console.log(JSON.stringify(raw, null, 2));
}
