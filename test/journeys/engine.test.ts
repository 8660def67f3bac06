/**
 * The journey engine end to end on SQLite, with fake messaging, contacts and webhooks and a clock moved by hand:
 * triggers, every kind of step, re-entry, versions, operator commands, and crashes.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { RunRecord } from '../../src/ports/journey-store.ts';
import { JourneyRunner } from '../../src/services/journey-runner.ts';
import { postgresForTests } from '../support/postgres.ts';
import { type Backend, type Engine, ORG, openEngine } from './fakes.ts';

const MIN = 60_000;
let e: Engine;

const postgres = await postgresForTests();
const backends: Backend[] = postgres.run ? ['sqlite', 'postgres'] : ['sqlite'];

describe.each(backends)('the journey engine on %s', (backend) => {
  beforeEach(async () => {
    e = await openEngine({}, backend);
    e.contacts.add('ctc_ada', { attributes: { firstName: 'Ada', plan: 'basic' } });
  });
  afterEach(() => e.close());

  const event = (name: string, properties: Record<string, unknown> = {}, id?: string) => ({
    name,
    properties,
    occurredAt: e.clock.now(),
    ...(id ? { id } : {}),
  });

  async function onlyRun(journeyId: string): Promise<RunRecord> {
    const runs = await e.store.listRuns(ORG, { journeyId, limit: 10 });
    expect(runs).toHaveLength(1);
    return runs[0] as RunRecord;
  }

  async function outcomes(runId: string): Promise<string[]> {
    return (await e.store.getRunHistory(runId)).map((h) => `${h.stepId ?? 'run'}:${h.outcome}`);
  }

  describe('a journey triggered by an event', () => {
    const confirm = {
      trigger: { type: 'event', event: 'appointment.booked' },
      entry: 'ask',
      reentry: { mode: 'always' },
      steps: {
        ask: { type: 'send', channel: 'sms', body: 'Hi {{ contact.firstName }}, reply YES to confirm', next: 'pause' },
        pause: { type: 'wait', duration: '60s', next: 'answer' },
        answer: { type: 'wait_for', reply: {}, timeout: '1h', next: 'check', onTimeout: 'nudge' },
        check: {
          type: 'branch',
          branches: [{ when: { path: 'reply.text', op: 'eq', value: 'yes', ignoreCase: true }, next: 'thanks' }],
          otherwise: 'nudge',
        },
        thanks: { type: 'send', channel: 'sms', body: 'Confirmed, thank you', next: 'done' },
        nudge: { type: 'send', channel: 'email', subject: 'Your appointment', body: 'Please confirm', next: 'done' },
        done: { type: 'exit' },
      },
    };

    it('sends, waits, and branches on a reply YES', async () => {
      const id = await e.publish(confirm);
      expect(await e.runner.onEvent(ORG, 'ctc_ada', event('appointment.booked'))).toEqual({ started: 1, signaled: 0 });
      await e.drain();
      expect(e.messaging.sent.map((m) => m.body)).toEqual(['Hi Ada, reply YES to confirm']);
      expect(e.messaging.sent[0]).toMatchObject({
        channel: 'sms',
        purpose: 'transactional',
        metadata: { journeyId: id, stepId: 'ask' },
      });
      const run = await onlyRun(id);
      expect(run).toMatchObject({ status: 'waiting', stepId: 'pause', dueAt: e.clock.now() + MIN });

      e.clock.advance(MIN);
      await e.drain();
      expect((await onlyRun(id)).stepId).toBe('answer');
      e.clock.advance(5 * MIN);
      expect(await e.runner.onInbound(ORG, 'ctc_ada', 'sms', '+12025550100', ' Yes ', e.clock.now())).toBe(1);
      await e.drain();
      expect(e.messaging.sent.map((m) => m.body)).toEqual(['Hi Ada, reply YES to confirm', 'Confirmed, thank you']);
      expect(await onlyRun(id)).toMatchObject({ status: 'completed', stepId: 'done', dueAt: null });
      expect(await outcomes(run.id)).toEqual([
        'run:started',
        'ask:sent',
        'ask:completed',
        'pause:waiting',
        'pause:completed',
        'answer:waiting',
        'answer:matched',
        'check:completed',
        'thanks:sent',
        'thanks:completed',
        'done:completed',
      ]);
    });

    it('takes the time-out branch when no reply comes, and reaches a reply sent from the address alone', async () => {
      const id = await e.publish(confirm);
      await e.runner.onEvent(ORG, 'ctc_ada', event('appointment.booked'));
      await e.drain();
      e.clock.advance(MIN);
      await e.drain();
      e.clock.advance(60 * MIN - 1);
      expect(await e.drain()).toBe(0);
      e.clock.advance(1);
      await e.drain();
      expect(e.messaging.channels()).toEqual(['sms', 'email']);
      const run = await onlyRun(id);
      expect(run.status).toBe('completed');
      expect(await outcomes(run.id)).toContain('answer:timed_out');

      // A reply from the number the run sent to, with no contact matched, reaches a run waiting on it.
      const again = await e.publish({ ...confirm, trigger: { type: 'event', event: 'again' } });
      await e.runner.onEvent(ORG, 'ctc_ada', event('again'));
      await e.drain();
      e.clock.advance(MIN);
      await e.drain();
      expect(await e.runner.onInbound(ORG, null, 'sms', '+12025550100', 'YES', e.clock.now())).toBe(1);
      await e.drain();
      expect(e.messaging.sent.at(-1)?.body).toBe('Confirmed, thank you');
      expect((await onlyRun(again)).status).toBe('completed');
    });

    it('starts only for events matching the filter, once per event id', async () => {
      const id = await e.publish({
        trigger: {
          type: 'event',
          event: 'order.paid',
          filter: { path: 'event.properties.total', op: 'gte', value: 100 },
        },
        entry: 's',
        reentry: { mode: 'always' },
        steps: {
          s: { type: 'send', channel: 'sms', body: 'Thanks for {{ event.total }}', next: 'x' },
          x: { type: 'exit' },
        },
      });
      expect((await e.runner.onEvent(ORG, 'ctc_ada', event('order.paid', { total: 20 }))).started).toBe(0);
      expect((await e.runner.onEvent(ORG, 'ctc_ada', event('order.paid', { total: 120 }, 'evt_1'))).started).toBe(1);
      expect((await e.runner.onEvent(ORG, 'ctc_ada', event('order.paid', { total: 120 }, 'evt_1'))).started).toBe(0);
      expect((await e.runner.onEvent(ORG, 'ctc_ada', event('order.shipped', { total: 120 }))).started).toBe(0);
      await e.drain();
      expect(e.messaging.sent.map((m) => m.body)).toEqual(['Thanks for 120']);
      expect((await onlyRun(id)).status).toBe('completed');
    });
  });

  describe('fallback between channels', () => {
    const chain = {
      trigger: { type: 'api' },
      entry: 'notify',
      reentry: { mode: 'always' },
      steps: {
        notify: {
          type: 'send',
          fallback: [
            { channel: 'whatsapp', within: '10m' },
            { channel: 'sms', within: '10m' },
            { channel: 'email', subject: 'Your bill' },
          ],
          body: 'Your bill is ready',
          next: 'done',
        },
        done: { type: 'exit' },
      },
    };

    it('falls back from WhatsApp to SMS when WhatsApp is not delivered within the window', async () => {
      const id = await e.publish(chain);
      const { runId } = await e.runner.start(ORG, id, 'ctc_ada');
      await e.drain();
      expect(e.messaging.channels()).toEqual(['whatsapp']);
      const wa = e.messaging.sent[0]?.messageId as string;
      await e.runner.onMessageStatus(wa, 'sent', e.clock.now());
      await e.drain();
      e.clock.advance(10 * MIN - 1);
      expect(await e.drain()).toBe(0);
      e.clock.advance(1);
      await e.drain();
      expect(e.messaging.channels()).toEqual(['whatsapp', 'sms']);
      const sms = e.messaging.sent[1]?.messageId as string;
      // Delivered: the step is done; email is never sent.
      await e.runner.onMessageStatus(sms, 'delivered', e.clock.now());
      await e.drain();
      expect(e.messaging.channels()).toEqual(['whatsapp', 'sms']);
      const run = await e.store.getRun(ORG, runId);
      expect(run?.status).toBe('completed');
      expect(await outcomes(runId)).toEqual([
        'run:started',
        'notify:sent',
        'notify:leg_failed',
        'notify:sent',
        'notify:delivered',
        'done:completed',
      ]);
    });

    it('moves on at once when WhatsApp fails, and skips a channel the contact has no address for', async () => {
      e.contacts.add('ctc_nophone', { identifiers: { whatsapp: '+12025550192', email: 'x@example.com' } });
      const id = await e.publish(chain);
      await e.runner.start(ORG, id, 'ctc_nophone');
      await e.drain();
      await e.runner.onMessageStatus(e.messaging.sent[0]?.messageId as string, 'undelivered', e.clock.now());
      await e.drain();
      // No SMS address: straight to email, the last channel, after which the step is done.
      expect(e.messaging.channels()).toEqual(['whatsapp', 'email']);
      expect(e.messaging.sent[1]).toMatchObject({ subject: 'Your bill', to: 'x@example.com' });
      expect((await onlyRun(id)).status).toBe('completed');
    });

    it('does not miss a delivery reported before the run had saved its message', async () => {
      const id = await e.publish(chain);
      await e.runner.start(ORG, id, 'ctc_ada');
      // The fake pipeline delivers at once: the status is already there when the run saves.
      const send = e.messaging.send.bind(e.messaging);
      e.messaging.send = async (r) => {
        const out = await send(r);
        e.messaging.statusOf.set(out.messageId, 'delivered');
        await e.runner.onMessageStatus(out.messageId, 'delivered', e.clock.now());
        return out;
      };
      await e.drain();
      expect(e.messaging.channels()).toEqual(['whatsapp']);
      expect((await onlyRun(id)).status).toBe('completed');
    });
  });

  describe('other steps', () => {
    it('waits for an event with a time-out branch', async () => {
      const id = await e.publish({
        trigger: { type: 'api' },
        entry: 'w',
        reentry: { mode: 'always' },
        steps: {
          w: { type: 'wait_for', event: { name: 'cart.checkout' }, timeout: '1d', next: 'paid', onTimeout: 'remind' },
          paid: { type: 'send', channel: 'sms', body: 'Thanks, {{ event.orderId }}', next: 'x' },
          remind: { type: 'send', channel: 'sms', body: 'Forgot something?', next: 'x' },
          x: { type: 'exit' },
        },
      });
      await e.runner.start(ORG, id, 'ctc_ada');
      await e.runner.start(ORG, id, 'ctc_ada');
      await e.drain();
      const [second, first] = await e.store.listRuns(ORG, { journeyId: id, limit: 10 });
      // The first contact's run sees the event; the other run (same contact!) does too: both wait on it.
      expect((await e.runner.onEvent(ORG, 'ctc_ada', event('cart.checkout', { orderId: 'A1' }))).signaled).toBe(2);
      await e.drain();
      expect(e.messaging.sent.map((m) => m.body)).toEqual(['Thanks, A1', 'Thanks, A1']);
      expect((await e.store.getRun(ORG, first?.id as string))?.status).toBe('completed');
      expect((await e.store.getRun(ORG, second?.id as string))?.status).toBe('completed');

      await e.runner.start(ORG, id, 'ctc_ada');
      await e.drain();
      e.clock.advance(24 * 60 * MIN);
      await e.drain();
      expect(e.messaging.sent.at(-1)?.body).toBe('Forgot something?');
    });

    it('splits deterministically: a re-executed split takes the same branch', async () => {
      const id = await e.publish({
        trigger: { type: 'api' },
        entry: 'ab',
        reentry: { mode: 'always' },
        steps: {
          ab: {
            type: 'split',
            variants: [
              { name: 'A', weight: 1, next: 'a' },
              { name: 'B', weight: 1, next: 'b' },
            ],
          },
          a: { type: 'send', channel: 'sms', body: 'variant A', next: 'x' },
          b: { type: 'send', channel: 'sms', body: 'variant B', next: 'x' },
          x: { type: 'exit' },
        },
      });
      const { runId } = await e.runner.start(ORG, id, 'ctc_ada');
      // The first execution dies before saving (its save is lost): a later one starts over at the split.
      const lost = e.newRunner();
      const save = e.store.saveRuns.bind(e.store);
      e.store.saveRuns = async () => {
        throw new Error('worker killed');
      };
      await expect(lost.runOnce()).rejects.toThrow('worker killed');
      e.store.saveRuns = save;
      expect(e.messaging.sent).toHaveLength(1);
      const first = e.messaging.sent[0]?.body;
      e.clock.advance(60_000);
      await e.drain();
      expect(e.messaging.sent).toHaveLength(1);
      const run = await e.store.getRun(ORG, runId);
      expect(run?.status).toBe('completed');
      const variant = (JSON.parse(run?.state as string) as { context: { splits: Record<string, string> } }).context
        .splits.ab;
      expect(first).toBe(`variant ${variant}`);

      // Across runs both variants occur, each run always the same.
      for (let i = 0; i < 40; i++) await e.runner.start(ORG, id, 'ctc_ada');
      await e.drain();
      const bodies = new Set(e.messaging.sent.map((m) => m.body));
      expect(bodies).toEqual(new Set(['variant A', 'variant B']));
    });

    it('updates the contact and reads the new attributes afterwards', async () => {
      const id = await e.publish({
        trigger: { type: 'api' },
        entry: 'up',
        reentry: { mode: 'always' },
        steps: {
          up: { type: 'update_contact', set: { plan: 'gold', trial: null }, addTags: ['upgraded'], next: 'br' },
          br: {
            type: 'branch',
            branches: [{ when: { path: 'contact.attributes.plan', op: 'eq', value: 'gold' }, next: 'gold' }],
            otherwise: 'x',
          },
          gold: { type: 'send', channel: 'sms', body: 'Welcome to {{ contact.plan }}', next: 'x' },
          x: { type: 'exit' },
        },
      });
      e.contacts.add('ctc_trial', { attributes: { plan: 'basic', trial: true } });
      await e.runner.start(ORG, id, 'ctc_trial');
      await e.drain();
      expect(e.contacts.byId.get('ctc_trial')).toMatchObject({ attributes: { plan: 'gold' }, tags: ['upgraded'] });
      expect(e.contacts.patches).toEqual([
        { contactId: 'ctc_trial', patch: { set: { plan: 'gold', trial: null }, addTags: ['upgraded'] } },
      ]);
      expect(e.messaging.sent.map((m) => m.body)).toEqual(['Welcome to gold']);
    });

    it('retries a webhook with back-off, fails the run when it keeps failing, and resumes there on retry', async () => {
      const id = await e.publish({
        trigger: { type: 'api' },
        entry: 'hook',
        reentry: { mode: 'always' },
        steps: {
          hook: { type: 'webhook', url: 'https://crm.example.com/hook', maxAttempts: 3, timeout: '5s', next: 'x' },
          x: { type: 'exit' },
        },
      });
      e.webhooks.answers = [503, 'timeout', 503, 503, 200];
      const { runId } = await e.runner.start(ORG, id, 'ctc_ada', { payload: { orderId: 'A1' } });
      await e.drain();
      expect(e.webhooks.calls).toHaveLength(1);
      expect(e.webhooks.calls[0]).toMatchObject({
        url: 'https://crm.example.com/hook',
        timeoutMs: 5000,
        idempotencyKey: `${runId}:hook:1`,
        body: { runId, stepId: 'hook', contactId: 'ctc_ada', trigger: { kind: 'api', input: { orderId: 'A1' } } },
      });
      expect((await e.store.getRun(ORG, runId))?.attempts).toBe(1);
      // Back-off: 1 s after the first failure (half fixed + half of 0.5 random = 750 ms), 2 s after the second.
      e.clock.advance(749);
      expect(await e.drain()).toBe(0);
      e.clock.advance(1);
      await e.drain();
      expect(e.webhooks.calls).toHaveLength(2);
      e.clock.advance(1500);
      await e.drain();
      expect(e.webhooks.calls).toHaveLength(3);
      const failed = await e.store.getRun(ORG, runId);
      expect(failed).toMatchObject({ status: 'failed', stepId: 'hook', error: { code: 'webhook_failed' } });
      expect(await outcomes(runId)).toEqual(['run:started', 'hook:retrying', 'hook:retrying', 'hook:failed']);
      // The operator retries: the same step runs again, with the same idempotency key.
      await e.runs.retry(ORG, runId);
      await e.drain();
      expect(e.webhooks.calls).toHaveLength(4);
      e.clock.advance(750);
      await e.drain();
      expect(e.webhooks.calls.map((c) => c.idempotencyKey)).toEqual(Array(5).fill(`${runId}:hook:1`));
      expect((await e.store.getRun(ORG, runId))?.status).toBe('completed');
    });
  });

  describe('re-entry', () => {
    const journey = (reentry: unknown) => ({
      trigger: { type: 'event', event: 'visited' },
      entry: 's',
      reentry,
      steps: { s: { type: 'send', channel: 'sms', body: 'Hello', next: 'x' }, x: { type: 'exit' } },
    });

    it('never: one run per contact', async () => {
      await e.publish(journey({ mode: 'never' }));
      expect((await e.runner.onEvent(ORG, 'ctc_ada', event('visited'))).started).toBe(1);
      await e.drain();
      e.clock.advance(365 * 24 * 60 * MIN);
      expect((await e.runner.onEvent(ORG, 'ctc_ada', event('visited'))).started).toBe(0);
      e.contacts.add('ctc_bob');
      expect((await e.runner.onEvent(ORG, 'ctc_bob', event('visited'))).started).toBe(1);
    });

    it('cooldown: again only after the cooldown', async () => {
      await e.publish(journey({ mode: 'cooldown', cooldown: '7d' }));
      expect((await e.runner.onEvent(ORG, 'ctc_ada', event('visited'))).started).toBe(1);
      e.clock.advance(7 * 24 * 60 * MIN - 1);
      expect((await e.runner.onEvent(ORG, 'ctc_ada', event('visited'))).started).toBe(0);
      e.clock.advance(1);
      expect((await e.runner.onEvent(ORG, 'ctc_ada', event('visited'))).started).toBe(1);
    });

    it('always: every time', async () => {
      await e.publish(journey({ mode: 'always' }));
      for (let i = 0; i < 3; i++) expect((await e.runner.onEvent(ORG, 'ctc_ada', event('visited'))).started).toBe(1);
      await e.drain();
      expect(e.messaging.sent).toHaveLength(3);
    });

    it('refuses an API start the rule forbids', async () => {
      const id = await e.publish({ ...journey({ mode: 'never' }), trigger: { type: 'api' } });
      await e.runner.start(ORG, id, 'ctc_ada');
      await expect(e.runner.start(ORG, id, 'ctc_ada')).rejects.toMatchObject({ code: 'reentry_not_allowed' });
    });
  });

  describe('versions', () => {
    it('keeps running runs on their version when a new one is published', async () => {
      const v1 = {
        trigger: { type: 'api' },
        entry: 'w',
        reentry: { mode: 'always' },
        steps: {
          w: { type: 'wait', duration: '1h', next: 's' },
          s: { type: 'send', channel: 'sms', body: 'v1', next: 'x' },
          x: { type: 'exit' },
        },
      };
      const id = await e.publish(v1);
      const { runId: old } = await e.runner.start(ORG, id, 'ctc_ada');
      await e.drain();
      await e.journeys.update(ORG, id, {
        definition: { ...v1, steps: { ...v1.steps, s: { type: 'send', channel: 'sms', body: 'v2', next: 'x' } } },
      });
      await e.journeys.publish(ORG, id);
      const { runId: fresh } = await e.runner.start(ORG, id, 'ctc_ada');
      await e.drain();
      e.clock.advance(60 * MIN);
      await e.drain();
      expect(e.messaging.sent.map((m) => [m.metadata.journeyRunId, m.body])).toEqual([
        [old, 'v1'],
        [fresh, 'v2'],
      ]);
      expect((await e.store.getRun(ORG, old))?.version).toBe(1);
      expect((await e.store.getRun(ORG, fresh))?.version).toBe(2);
    });

    it('starts nothing from an archived journey, and refuses API starts of other triggers', async () => {
      const id = await e.publish({
        trigger: { type: 'event', event: 'x' },
        entry: 'x',
        reentry: { mode: 'always' },
        steps: { x: { type: 'exit' } },
      });
      await expect(e.runner.start(ORG, id, 'ctc_ada')).rejects.toMatchObject({ code: 'journey_not_api_triggered' });
      await e.journeys.archive(ORG, id);
      expect((await e.runner.onEvent(ORG, 'ctc_ada', event('x'))).started).toBe(0);
      await expect(e.runner.start(ORG, id, 'ctc_ada')).rejects.toMatchObject({ code: 'journey_not_active' });
      await expect(e.runner.start(ORG, 'jny_missing', 'ctc_ada')).rejects.toMatchObject({ code: 'journey_not_found' });
    });
  });

  describe('durability', () => {
    const twoSends = {
      trigger: { type: 'api' },
      entry: 'first',
      reentry: { mode: 'always' },
      steps: {
        first: { type: 'send', channel: 'sms', body: 'one', next: 'w' },
        w: { type: 'wait', duration: '10m', next: 'second' },
        second: { type: 'send', channel: 'sms', body: 'two', next: 'x' },
        x: { type: 'exit' },
      },
    };

    it('resumes a run mid-journey in a new runner on the same database, sending nothing twice', async () => {
      const id = await e.publish(twoSends);
      const { runId } = await e.runner.start(ORG, id, 'ctc_ada');
      await e.drain();
      expect(e.messaging.sent.map((m) => m.body)).toEqual(['one']);
      // The worker process goes away; a new one (new connection, new store, new runner) carries on.
      const restarted = await e.reopen();
      try {
        const next = new JourneyRunner(
          restarted.store,
          { messaging: e.messaging, contacts: e.contacts, webhooks: e.webhooks },
          e.clock,
        );
        e.clock.advance(10 * MIN);
        expect(await next.runOnce()).toBe(1);
        expect(await next.runOnce()).toBe(0);
      } finally {
        await restarted.close();
      }
      expect(e.messaging.sent.map((m) => m.body)).toEqual(['one', 'two']);
      expect((await e.store.getRun(ORG, runId))?.status).toBe('completed');
    });

    it('re-executes a run whose worker died after sending, and the same message is not sent again', async () => {
      const id = await e.publish(twoSends);
      const { runId } = await e.runner.start(ORG, id, 'ctc_ada');
      const dying = e.newRunner({ leaseMs: 30_000 });
      const save = e.store.saveRuns.bind(e.store);
      e.store.saveRuns = async () => {
        throw new Error('SIGKILL');
      };
      await expect(dying.runOnce()).rejects.toThrow('SIGKILL');
      e.store.saveRuns = save;
      expect(e.messaging.sent).toHaveLength(1);
      // Leased: nobody takes it until the lease ends.
      expect(await e.drain()).toBe(0);
      e.clock.advance(30_000);
      await e.drain();
      expect(e.messaging.sent).toHaveLength(1);
      const run = await e.store.getRun(ORG, runId);
      expect(run).toMatchObject({ status: 'waiting', stepId: 'w' });
      e.clock.advance(10 * MIN);
      await e.drain();
      expect(e.messaging.sent.map((m) => m.body)).toEqual(['one', 'two']);
    });

    it('retries a step whose send fails for a while, then goes on', async () => {
      const id = await e.publish(twoSends);
      e.messaging.outage = 2;
      const { runId } = await e.runner.start(ORG, id, 'ctc_ada');
      await e.drain();
      expect((await e.store.getRun(ORG, runId))?.attempts).toBe(1);
      e.clock.advance(750);
      await e.drain();
      e.clock.advance(1500);
      await e.drain();
      expect(e.messaging.sent.map((m) => m.body)).toEqual(['one']);
      expect((await e.store.getRun(ORG, runId))?.stepId).toBe('w');
      expect(await outcomes(runId)).toEqual([
        'run:started',
        'first:retrying',
        'first:retrying',
        'first:sent',
        'first:completed',
        'w:waiting',
      ]);
    });

    it('lets an operator cancel a waiting run: its timer never fires', async () => {
      const id = await e.publish(twoSends);
      const { runId } = await e.runner.start(ORG, id, 'ctc_ada');
      await e.drain();
      const canceled = await e.runs.cancel(ORG, runId);
      expect(canceled.status).toBe('canceled');
      e.clock.advance(10 * MIN);
      expect(await e.drain()).toBe(0);
      expect(e.messaging.sent).toHaveLength(1);
      await expect(e.runs.cancel(ORG, runId)).rejects.toMatchObject({ code: 'run_not_cancelable' });
      await expect(e.runs.retry(ORG, runId)).rejects.toMatchObject({ code: 'run_not_retryable' });
      await expect(e.runs.get(ORG, 'jrun_missing')).rejects.toMatchObject({ code: 'run_not_found' });
    });
  });
});
