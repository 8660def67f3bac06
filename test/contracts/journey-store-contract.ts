/**
 * The JourneyStore contract: what every journey store adapter (SQLite, PostgreSQL) must do. A runner per adapter
 * calls `journeyStoreContract(name, make)`; `make` returns a fresh, empty, migrated store (and, where the database
 * is shared, a second store on it, as another process would have).
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { JourneyRecord, JourneyStore, NewRun, RunSave } from '../../src/ports/journey-store.ts';

export interface JourneyStoreContext {
  store: JourneyStore;
  /** A second store on the same database (another process), when the adapter has one. */
  other?: JourneyStore;
  cleanup(): Promise<void>;
}

const T = 1_767_225_600_000; // 2026-01-01
const MIN = 60_000;
let seq = 0;
const uid = (p: string) => `${p}_${String(++seq).padStart(8, '0')}_${Math.random().toString(36).slice(2, 8)}`;

export function journeyStoreContract(name: string, make: () => Promise<JourneyStoreContext>): void {
  describe(name, () => {
    let ctx: JourneyStoreContext;
    let store: JourneyStore;
    let org: string;

    beforeEach(async () => {
      ctx = await make();
      store = ctx.store;
      org = uid('org');
    });
    afterEach(async () => {
      await ctx.cleanup();
    });

    function journey(overrides: Partial<JourneyRecord> = {}): JourneyRecord {
      return {
        id: uid('jny'),
        orgId: org,
        name: 'Welcome',
        status: 'draft',
        draft: '{"steps":{}}',
        publishedVersion: null,
        createdAt: T,
        updatedAt: T,
        ...overrides,
      };
    }

    function run(overrides: Partial<NewRun> = {}): NewRun {
      return {
        id: uid('run'),
        orgId: org,
        journeyId: 'jny_1',
        version: 1,
        contactId: uid('ctc'),
        stepId: 's1',
        state: '{"phase":null}',
        keys: [],
        dedupeKey: null,
        reentry: { mode: 'always' },
        startedAt: T,
        ...overrides,
      };
    }

    function save(runId: string, token: string, overrides: Partial<RunSave> = {}): RunSave {
      return {
        runId,
        token,
        status: 'waiting',
        stepId: 's2',
        state: '{"phase":"w"}',
        attempts: 0,
        keys: [],
        dueAt: T + 10 * MIN,
        error: null,
        consumedSignalsUpTo: null,
        history: [],
        messages: [],
        at: T + 1,
        ...overrides,
      };
    }

    async function startOne(overrides: Partial<NewRun> = {}): Promise<string> {
      const [o] = await store.startRuns([run(overrides)]);
      if (o?.kind !== 'started') throw new Error(`not started: ${JSON.stringify(o)}`);
      return o.runId;
    }

    describe('journeys and versions', () => {
      it('creates, reads, lists newest first and updates a journey, per organization', async () => {
        const a = journey();
        const b = journey({ name: 'Second' });
        await store.createJourney(a);
        await store.createJourney(b);
        await store.createJourney(journey({ orgId: 'org_other' }));
        expect(await store.getJourney(org, a.id)).toEqual(a);
        expect(await store.getJourney('org_other', a.id)).toBeUndefined();
        expect((await store.listJourneys(org, { limit: 10 })).map((j) => j.id)).toEqual([b.id, a.id]);
        expect((await store.listJourneys(org, { limit: 10, before: b.id })).map((j) => j.id)).toEqual([a.id]);
        expect(
          await store.updateJourney({ orgId: org, id: a.id, name: 'Renamed', draft: '{"x":1}', updatedAt: T + 5 }),
        ).toBe(true);
        expect(await store.getJourney(org, a.id)).toMatchObject({
          name: 'Renamed',
          draft: '{"x":1}',
          updatedAt: T + 5,
        });
        expect(await store.updateJourney({ orgId: 'org_other', id: a.id, name: 'x', draft: '{}', updatedAt: T })).toBe(
          false,
        );
      });

      it('publishes numbered, immutable versions and finds active journeys by trigger', async () => {
        const j = journey();
        await store.createJourney(j);
        const v1 = await store.publishJourney(org, j.id, {
          definition: '{"v":1}',
          triggerType: 'event',
          triggerKey: 'order.paid',
          at: T + 1,
        });
        expect(v1).toMatchObject({ version: 1, definition: '{"v":1}' });
        const v2 = await store.publishJourney(org, j.id, {
          definition: '{"v":2}',
          triggerType: 'event',
          triggerKey: 'order.shipped',
          at: T + 2,
        });
        expect(v2?.version).toBe(2);
        expect(await store.getJourney(org, j.id)).toMatchObject({ status: 'active', publishedVersion: 2 });
        expect((await store.getVersion(j.id, 1))?.definition).toBe('{"v":1}');
        expect((await store.listVersions(org, j.id)).map((v) => v.version)).toEqual([1, 2]);
        expect(await store.listVersions('org_other', j.id)).toEqual([]);
        expect(await store.findTriggered(org, 'event', 'order.shipped')).toEqual([{ journeyId: j.id, version: 2 }]);
        expect(await store.findTriggered(org, 'event', 'order.paid')).toEqual([]);
        expect(await store.findTriggered('org_other', 'event', 'order.shipped')).toEqual([]);

        const api = journey();
        await store.createJourney(api);
        await store.publishJourney(org, api.id, { definition: '{}', triggerType: 'api', triggerKey: null, at: T });
        expect(await store.findTriggered(org, 'api', null)).toEqual([{ journeyId: api.id, version: 1 }]);

        expect(await store.archiveJourney(org, j.id, T + 3)).toBe(true);
        expect(await store.findTriggered(org, 'event', 'order.shipped')).toEqual([]);
        expect(
          await store.publishJourney(org, j.id, { definition: '{}', triggerType: 'api', triggerKey: null, at: T }),
        ).toBeUndefined();
        expect(
          await store.publishJourney(org, 'jny_missing', {
            definition: '{}',
            triggerType: 'api',
            triggerKey: null,
            at: T,
          }),
        ).toBeUndefined();
        expect(await store.archiveJourney(org, 'jny_missing', T)).toBe(false);
      });
    });

    describe('starting runs', () => {
      it('starts a run due at once, with its history and waits', async () => {
        const id = await startOne({ keys: ['reply:c1'] });
        const r = await store.getRun(org, id);
        expect(r).toMatchObject({ status: 'running', stepId: 's1', dueAt: T, attempts: 0, keys: ['reply:c1'] });
        expect(await store.getRun('org_other', id)).toBeUndefined();
        expect(await store.getRunHistory(id)).toEqual([
          { stepId: null, type: 'run', outcome: 'started', at: T, detail: { version: 1 } },
        ]);
        expect(await store.nextDueAt()).toBe(T);
      });

      it('starts one run per dedupe key and journey', async () => {
        const first = run({ dedupeKey: 'evt_1' });
        const out = await store.startRuns([first, run({ dedupeKey: 'evt_1' }), run({ dedupeKey: 'evt_2' })]);
        expect(out[0]).toEqual({ kind: 'started', runId: first.id });
        expect(out[1]).toEqual({ kind: 'duplicate', runId: first.id });
        expect(out[2]?.kind).toBe('started');
        expect((await store.startRuns([run({ dedupeKey: 'evt_1' })]))[0]).toEqual({
          kind: 'duplicate',
          runId: first.id,
        });
        expect((await store.startRuns([run({ dedupeKey: 'evt_1', journeyId: 'jny_2' })]))[0]?.kind).toBe('started');
      });

      it('applies the re-entry rule of the journey per contact', async () => {
        const contact = 'ctc_reentry';
        const never = { reentry: { mode: 'never' as const }, contactId: contact, journeyId: 'jny_never' };
        expect(
          (await store.startRuns([run(never), run({ ...never, startedAt: T + 100 * MIN })])).map((o) => o.kind),
        ).toEqual(['started', 'reentry_blocked']);
        // Another contact, another journey: independent.
        expect((await store.startRuns([run({ ...never, contactId: 'ctc_x' })]))[0]?.kind).toBe('started');

        const cool = {
          reentry: { mode: 'cooldown' as const, cooldownMs: 60 * MIN },
          contactId: contact,
          journeyId: 'jny_c',
        };
        expect((await store.startRuns([run(cool)]))[0]?.kind).toBe('started');
        expect((await store.startRuns([run({ ...cool, startedAt: T + 59 * MIN })]))[0]?.kind).toBe('reentry_blocked');
        expect((await store.startRuns([run({ ...cool, startedAt: T + 60 * MIN })]))[0]?.kind).toBe('started');
        expect((await store.startRuns([run({ ...cool, startedAt: T + 61 * MIN })]))[0]?.kind).toBe('reentry_blocked');

        const always = { reentry: { mode: 'always' as const }, contactId: contact, journeyId: 'jny_a' };
        expect((await store.startRuns([run(always), run(always), run(always)])).map((o) => o.kind)).toEqual([
          'started',
          'started',
          'started',
        ]);
        // A blocked start leaves no run behind.
        expect((await store.listRuns(org, { journeyId: 'jny_never', limit: 10 })).length).toBe(2);
      });
    });

    describe('claiming and saving', () => {
      it('claims due runs earliest first, leases them, and hands them out again when the lease ends', async () => {
        const late = await startOne({ startedAt: T + 2 });
        const early = await startOne({ startedAt: T + 1 });
        await startOne({ startedAt: T + 10 * MIN });
        const claimed = await store.claimDueRuns(T + 5, 10, 30_000);
        expect(claimed.map((c) => c.run.id)).toEqual([early, late]);
        expect(claimed[0]?.dueAt).toBe(T + 1);
        expect(await store.claimDueRuns(T + 5, 10, 30_000)).toEqual([]);
        const again = await store.claimDueRuns(T + 5 + 30_000, 10, 30_000);
        expect(again.map((c) => c.run.id)).toEqual([early, late]);
        expect(again[0]?.token).not.toBe(claimed[0]?.token);
        expect((await store.claimDueRuns(T + 40_000, 1, 30_000)).length).toBe(0);
      });

      it('respects the limit', async () => {
        for (let i = 0; i < 5; i++) await startOne({ startedAt: T + i });
        expect((await store.claimDueRuns(T + 10, 3, 1000)).length).toBe(3);
        expect((await store.claimDueRuns(T + 10, 3, 1000)).length).toBe(2);
      });

      it('saves a run under its lease: state, timer, waits, history and messages', async () => {
        const id = await startOne({ keys: ['reply:c1'] });
        const [c] = await store.claimDueRuns(T, 10, 30_000);
        const ok = await store.saveRuns([
          save(id, c?.token as string, {
            keys: ['msg:m1', 'reply:c1'],
            attempts: 2,
            history: [{ stepId: 's1', type: 'send', outcome: 'sent', at: T + 1, detail: { messageId: 'm1' } }],
            messages: [{ messageId: 'm1', stepId: 's1' }],
          }),
        ]);
        expect(ok).toEqual([true]);
        const r = await store.getRun(org, id);
        expect(r).toMatchObject({
          status: 'waiting',
          stepId: 's2',
          state: '{"phase":"w"}',
          attempts: 2,
          keys: ['msg:m1', 'reply:c1'],
          dueAt: T + 10 * MIN,
          updatedAt: T + 1,
        });
        expect((await store.getRunHistory(id)).map((h) => h.outcome)).toEqual(['started', 'sent']);
        // Not due before its timer; due after.
        expect(await store.claimDueRuns(T + 10 * MIN - 1, 10, 1000)).toEqual([]);
        const [due] = await store.claimDueRuns(T + 10 * MIN, 10, 1000);
        expect(due?.dueAt).toBe(T + 10 * MIN);
        expect(due?.statuses).toEqual(new Map([['m1', 'queued']]));
        expect(await store.nextDueAt()).toBeNull();
      });

      it('refuses a save whose lease was lost, writing nothing of it', async () => {
        const id = await startOne();
        const [first] = await store.claimDueRuns(T, 10, 1000);
        const [second] = await store.claimDueRuns(T + 1000, 10, 1000);
        const other = await startOne({ startedAt: T + 1000 });
        const [third] = await store.claimDueRuns(T + 1000, 10, 1000);
        const out = await store.saveRuns([
          save(id, first?.token as string, {
            history: [{ stepId: 's1', type: 'send', outcome: 'sent', at: T, detail: null }],
            messages: [{ messageId: 'm_lost', stepId: 's1' }],
          }),
          save(other, third?.token as string),
        ]);
        expect(out).toEqual([false, true]);
        expect((await store.getRun(org, id))?.stepId).toBe('s1');
        expect((await store.getRunHistory(id)).map((h) => h.outcome)).toEqual(['started']);
        expect(await store.recordMessageStatuses([{ messageId: 'm_lost', status: 'delivered' }], T)).toBe(0);
        expect(await store.saveRuns([save(id, second?.token as string)])).toEqual([true]);
      });

      it('ends a run: no timer, no waits', async () => {
        const id = await startOne({ keys: ['reply:c9'] });
        const [c] = await store.claimDueRuns(T, 10, 1000);
        await store.saveRuns([save(id, c?.token as string, { status: 'completed', keys: [], dueAt: null, at: T + 7 })]);
        expect(await store.getRun(org, id)).toMatchObject({
          status: 'completed',
          dueAt: null,
          endedAt: T + 7,
          keys: [],
        });
        expect(await store.signalRuns(['reply:c9'], { kind: 'reply', payload: {}, receivedAt: T + 8 })).toBe(0);
      });
    });

    describe('signals and message statuses', () => {
      it('queues a signal for each waiting run once and makes it due; a save consumes what it read', async () => {
        const a = await startOne({ keys: ['reply:c1', 'addr:o:+1'] });
        const b = await startOne({ keys: ['reply:c2'] });
        const claimed = await store.claimDueRuns(T, 10, 60_000);
        await store.saveRuns(claimed.map((c) => save(c.run.id, c.token, { keys: c.run.keys, dueAt: T + 60 * MIN })));
        expect(await store.claimDueRuns(T + MIN, 10, 60_000)).toEqual([]);

        const n = await store.signalRuns(['reply:c1', 'addr:o:+1', 'reply:nobody'], {
          kind: 'reply',
          payload: { text: 'YES' },
          receivedAt: T + 2 * MIN,
        });
        expect(n).toBe(1);
        const [c] = await store.claimDueRuns(T + 2 * MIN, 10, 60_000);
        expect(c?.run.id).toBe(a);
        expect(c?.signals).toHaveLength(1);
        expect(c?.signals[0]).toMatchObject({ kind: 'reply', payload: { text: 'YES' }, receivedAt: T + 2 * MIN });
        // A signal arriving after the claim read the inbox: the save leaves it and keeps the run due.
        await store.signalRuns(['reply:c1'], { kind: 'reply', payload: { text: 'again' }, receivedAt: T + 3 * MIN });
        await store.saveRuns([
          save(a, c?.token as string, {
            keys: ['reply:c1'],
            consumedSignalsUpTo: c?.signals[0]?.id as number,
            dueAt: T + 60 * MIN,
            at: T + 3 * MIN,
          }),
        ]);
        const [next] = await store.claimDueRuns(T + 3 * MIN, 10, 60_000);
        expect(next?.run.id).toBe(a);
        expect(next?.signals.map((s) => s.payload.text)).toEqual(['again']);
        expect(b).not.toBe(a);
      });

      it('records message statuses upward only and wakes the runs waiting on them', async () => {
        const id = await startOne();
        const other = await startOne();
        const claimed = await store.claimDueRuns(T, 10, 60_000);
        const token = (r: string) => claimed.find((c) => c.run.id === r)?.token as string;
        await store.saveRuns([
          save(id, token(id), { keys: ['msg:m1'], messages: [{ messageId: 'm1', stepId: 's1' }], dueAt: T + 60 * MIN }),
          save(other, token(other), { keys: [], messages: [{ messageId: 'm2', stepId: 's1' }], dueAt: T + 60 * MIN }),
        ]);
        expect(await store.recordMessageStatuses([{ messageId: 'm2', status: 'delivered' }], T + MIN)).toBe(0);
        expect(await store.recordMessageStatuses([{ messageId: 'm1', status: 'sent' }], T + MIN)).toBe(1);
        const [c] = await store.claimDueRuns(T + MIN, 10, 60_000);
        expect(c?.run.id).toBe(id);
        expect(c?.statuses.get('m1')).toBe('sent');
        await store.saveRuns([save(id, c?.token as string, { keys: ['msg:m1'], dueAt: T + 60 * MIN })]);
        expect(
          await store.recordMessageStatuses(
            [
              { messageId: 'm1', status: 'delivered' },
              { messageId: 'm1', status: 'sent' },
            ],
            T + 2 * MIN,
          ),
        ).toBe(1);
        expect(await store.recordMessageStatuses([{ messageId: 'm1', status: 'sent' }], T + 3 * MIN)).toBe(0);
        expect(await store.recordMessageStatuses([{ messageId: 'unknown', status: 'read' }], T)).toBe(0);
        const [d] = await store.claimDueRuns(T + 3 * MIN, 10, 60_000);
        expect(d?.statuses.get('m1')).toBe('delivered');
      });
    });

    describe('operator commands', () => {
      it('cancels a live run (its lease, waits and timer go) but not an ended one', async () => {
        const id = await startOne({ keys: ['reply:c5'] });
        const [c] = await store.claimDueRuns(T, 10, 60_000);
        const out = await store.cancelRun(org, id, T + 5);
        expect(out.kind).toBe('ok');
        expect(out.kind === 'ok' && out.run).toMatchObject({ status: 'canceled', dueAt: null, endedAt: T + 5 });
        expect(await store.saveRuns([save(id, c?.token as string)])).toEqual([false]);
        expect(await store.signalRuns(['reply:c5'], { kind: 'reply', payload: {}, receivedAt: T })).toBe(0);
        expect(await store.cancelRun(org, id, T + 6)).toEqual({ kind: 'conflict', status: 'canceled' });
        expect(await store.cancelRun('org_other', id, T)).toEqual({ kind: 'not_found' });
        expect((await store.getRunHistory(id)).map((h) => h.outcome)).toEqual(['started', 'canceled']);
      });

      it('retries a failed run at its step, attempts reset', async () => {
        const id = await startOne();
        expect(await store.retryRun(org, id, T)).toEqual({ kind: 'conflict', status: 'running' });
        const [c] = await store.claimDueRuns(T, 10, 60_000);
        await store.saveRuns([
          save(id, c?.token as string, {
            status: 'failed',
            attempts: 5,
            dueAt: null,
            error: { code: 'webhook_failed', message: '500' },
          }),
        ]);
        expect(await store.getRun(org, id)).toMatchObject({
          status: 'failed',
          error: { code: 'webhook_failed', message: '500' },
          attempts: 5,
        });
        const out = await store.retryRun(org, id, T + MIN);
        expect(out.kind === 'ok' && out.run).toMatchObject({
          status: 'running',
          attempts: 0,
          error: null,
          dueAt: T + MIN,
          endedAt: null,
          stepId: 's2',
        });
        expect((await store.claimDueRuns(T + MIN, 10, 1000)).map((x) => x.run.id)).toEqual([id]);
        expect(await store.retryRun('org_other', id, T)).toEqual({ kind: 'not_found' });
      });

      it('lists runs newest first, by journey, status and contact', async () => {
        const a = await startOne({ journeyId: 'jny_l', contactId: 'ctc_a' });
        const b = await startOne({ journeyId: 'jny_l', contactId: 'ctc_b' });
        await startOne({ journeyId: 'jny_other' });
        expect((await store.listRuns(org, { journeyId: 'jny_l', limit: 10 })).map((r) => r.id)).toEqual([b, a]);
        expect((await store.listRuns(org, { journeyId: 'jny_l', limit: 1 })).map((r) => r.id)).toEqual([b]);
        expect((await store.listRuns(org, { journeyId: 'jny_l', before: b, limit: 10 })).map((r) => r.id)).toEqual([a]);
        expect((await store.listRuns(org, { contactId: 'ctc_a', limit: 10 })).map((r) => r.id)).toEqual([a]);
        expect(await store.listRuns(org, { journeyId: 'jny_l', status: 'completed', limit: 10 })).toEqual([]);
        expect(await store.listRuns('org_other', { limit: 10 })).toEqual([]);
      });
    });

    it('hands each due run to one of two concurrent claimers', async () => {
      const other = ctx.other ?? store;
      for (let i = 0; i < 40; i++) await startOne({ startedAt: T + i });
      const [x, y] = await Promise.all([
        store.claimDueRuns(T + 100, 25, 60_000),
        other.claimDueRuns(T + 100, 25, 60_000),
      ]);
      const ids = [...(x ?? []), ...(y ?? [])].map((c) => c.run.id);
      expect(ids.length).toBe(40);
      expect(new Set(ids).size).toBe(40);
    });
  });
}
