import { describe, expect, it } from 'vitest';
import { type JourneyDefinition, validateDefinition } from './journey-definition.ts';
import {
  type Decision,
  type Effect,
  initialState,
  nextLocalTime,
  type RunState,
  type Signal,
  stableFraction,
  type World,
  wakeKeys,
} from './journey-run-state.ts';
import { advance, afterEffect } from './journey-steps.ts';
import type { MessageStatus } from './message-status.ts';

const T = Date.UTC(2026, 2, 2, 12, 0, 0); // a Monday, 12:00 UTC
const MIN = 60_000;
const RETRY = { maxAttempts: 3, baseDelayMs: 1000, maxDelayMs: 60_000 };

function def(steps: Record<string, unknown>, entry = 'a'): JourneyDefinition {
  return validateDefinition({ trigger: { type: 'api' }, entry, reentry: { mode: 'always' }, steps });
}

function world(over: Partial<World> = {}): World {
  return {
    runId: 'jrun_1',
    journeyId: 'jny_1',
    contactId: 'ctc_1',
    now: T,
    statuses: new Map(),
    signals: [],
    contact: undefined,
    retry: RETRY,
    random: () => 0.5,
    ...over,
  };
}

const start = (d: JourneyDefinition): RunState => initialState(d, { kind: 'api', input: {} });

function expectKind<K extends Decision['kind']>(d: Decision, kind: K): Extract<Decision, { kind: K }> {
  expect(d.kind).toBe(kind);
  return d as Extract<Decision, { kind: K }>;
}

function perform(d: Decision): Effect {
  return expectKind(d, 'perform').effect;
}

const fallback = def({
  a: {
    type: 'send',
    fallback: [
      { channel: 'whatsapp', within: '10m' },
      { channel: 'sms', within: '10m' },
      { channel: 'email', subject: 'Hello' },
    ],
    body: 'Hi',
    next: 'done',
    onFailure: 'failed',
  },
  done: { type: 'exit' },
  failed: { type: 'exit' },
});

describe('send', () => {
  it('asks for a message with an idempotency key of run, step, visit and leg, then moves on', () => {
    const d = def({ a: { type: 'send', channel: 'sms', body: 'Hi', next: 'b' }, b: { type: 'exit' } });
    const s = start(d);
    const e = perform(advance(d, s, world()));
    expect(e).toMatchObject({ kind: 'send', channel: 'sms', leg: 0, idempotencyKey: 'journey:jrun_1:a:1:0' });
    const after = expectKind(afterEffect(d, s, world(), e, { ok: true, messageId: 'msg_1', to: '+1' }), 'continue');
    expect(after.state.stepId).toBe('b');
    expect(after.state.context.messages.a).toMatchObject({ messageId: 'msg_1', channel: 'sms' });
    expect(after.state.context.lastMessageStep).toBe('a');
    expect(after.state.context.addresses).toEqual(['+1']);
    expect(after.history.map((h) => h.outcome)).toEqual(['sent', 'completed']);
    expectKind(advance(d, after.state, world()), 'complete');
  });

  it('falls back to the next channel when one is not delivered within its window', () => {
    let s = start(fallback);
    const e0 = perform(advance(fallback, s, world()));
    expect(e0).toMatchObject({ channel: 'whatsapp', idempotencyKey: 'journey:jrun_1:a:1:0' });
    s = expectKind(afterEffect(fallback, s, world(), e0, { ok: true, messageId: 'm_wa' }), 'continue').state;
    expect(s.phase).toEqual({ kind: 'send', leg: 0, messageId: 'm_wa', deadline: T + 10 * MIN });
    expect(wakeKeys(fallback, s, 'org_1', 'ctc_1')).toContain('msg:m_wa');
    // Sent but not delivered yet: wait for the deadline.
    const sent = new Map<string, MessageStatus>([['m_wa', 'sent']]);
    const b = expectKind(advance(fallback, s, world({ now: T + MIN, statuses: sent })), 'block');
    expect(b.dueAt).toBe(T + 10 * MIN);
    // The deadline passes: SMS.
    const next = expectKind(advance(fallback, s, world({ now: T + 10 * MIN, statuses: sent })), 'continue');
    expect(next.history[0]).toMatchObject({
      outcome: 'leg_failed',
      detail: { error: { code: 'not_delivered_in_time' } },
    });
    const e1 = perform(advance(fallback, next.state, world({ now: T + 10 * MIN })));
    expect(e1).toMatchObject({ channel: 'sms', leg: 1, idempotencyKey: 'journey:jrun_1:a:1:1' });
    s = expectKind(afterEffect(fallback, next.state, world(), e1, { ok: true, messageId: 'm_sms' }), 'continue').state;
    expect(s.context.messages.a?.legs.map((l) => l.channel)).toEqual(['whatsapp', 'sms']);
    const done = expectKind(advance(fallback, s, world({ statuses: new Map([['m_sms', 'delivered']]) })), 'continue');
    expect(done.state.stepId).toBe('done');
  });

  it('falls over at once on a failed status or a channel that cannot be used, and takes onFailure at the end', () => {
    let s = start(fallback);
    const e0 = perform(advance(fallback, s, world()));
    s = expectKind(afterEffect(fallback, s, world(), e0, { ok: true, messageId: 'm_wa' }), 'continue').state;
    s = expectKind(advance(fallback, s, world({ statuses: new Map([['m_wa', 'undelivered']]) })), 'continue').state;
    const e1 = perform(advance(fallback, s, world()));
    const noPhone = { ok: false as const, retryable: false, error: { code: 'no_address', message: 'no phone' } };
    s = expectKind(afterEffect(fallback, s, world(), e1, noPhone), 'continue').state;
    const e2 = perform(advance(fallback, s, world()));
    expect(e2).toMatchObject({ channel: 'email', content: { body: 'Hi', subject: 'Hello' } });
    const last = expectKind(afterEffect(fallback, s, world(), e2, noPhone), 'continue');
    expect(last.state.stepId).toBe('failed');
    expect(last.history.map((h) => h.outcome)).toEqual(['leg_failed', 'failed']);
  });

  it('retries a retryable failure with back-off, then fails the run', () => {
    const d = def({ a: { type: 'send', channel: 'sms', body: 'Hi', next: 'b' }, b: { type: 'exit' } });
    let s = start(d);
    const down = { ok: false as const, retryable: true, error: { code: 'db_down', message: 'x' } };
    const e = perform(advance(d, s, world()));
    const r1 = expectKind(afterEffect(d, s, world(), e, down), 'block');
    expect(r1.dueAt).toBe(T + 750); // half fixed, half random(0.5) of 1 s
    s = r1.state;
    expect(s.attempts).toBe(1);
    // The retry asks for the same message.
    expect(perform(advance(d, s, world()))).toMatchObject({ kind: 'send', idempotencyKey: 'journey:jrun_1:a:1:0' });
    s = expectKind(afterEffect(d, s, world(), e, down), 'block').state;
    const f = expectKind(afterEffect(d, s, world(), e, down), 'fail');
    expect(f.error.code).toBe('db_down');
  });
});

describe('wait', () => {
  it('waits a duration', () => {
    const d = def({ a: { type: 'wait', duration: '60s', next: 'b' }, b: { type: 'exit' } });
    const b = expectKind(advance(d, start(d), world()), 'block');
    expect(b.dueAt).toBe(T + 60_000);
    expectKind(advance(d, b.state, world({ now: T + 59_999 })), 'block');
    expect(expectKind(advance(d, b.state, world({ now: T + 60_000 })), 'continue').state.stepId).toBe('b');
  });

  it("waits until a local time of day in the contact's time zone, else the step's", () => {
    const d = def({ a: { type: 'wait', until: '09:00', timeZone: 'Asia/Tokyo', next: 'b' }, b: { type: 'exit' } });
    const ny = { id: 'ctc_1', attributes: {}, tags: [], timeZone: 'America/New_York' };
    // 12:00 UTC = 07:00 in New York (EST): 09:00 the same day = 14:00 UTC.
    expect(expectKind(advance(d, start(d), world({ contact: ny })), 'block').dueAt).toBe(Date.UTC(2026, 2, 2, 14));
    // No time zone on the contact: Tokyo, where it is 21:00: tomorrow 09:00 JST = 00:00 UTC.
    expect(expectKind(advance(d, start(d), world()), 'block').dueAt).toBe(Date.UTC(2026, 2, 3, 0));
  });

  it('finds the next local time across a daylight-saving change', () => {
    // 2026-03-08: New York springs forward at 02:00. 09:00 EDT = 13:00 UTC.
    expect(nextLocalTime(Date.UTC(2026, 2, 7, 20), 9, 0, 'America/New_York')).toBe(Date.UTC(2026, 2, 8, 13));
    // 02:30 does not exist that day: the moment after the gap.
    expect(nextLocalTime(Date.UTC(2026, 2, 8, 5), 2, 30, 'America/New_York')).toBe(Date.UTC(2026, 2, 8, 7, 30));
  });
});

describe('wait_for', () => {
  const replyDef = def({
    a: { type: 'wait_for', reply: { match: ['yes'] }, timeout: '1h', next: 'yes', onTimeout: 'late' },
    yes: { type: 'exit' },
    late: { type: 'exit' },
  });
  const reply = (text: string, receivedAt: number, id = 1): Signal => ({
    id,
    kind: 'reply',
    receivedAt,
    reply: { text, channel: 'sms', from: '+1', at: receivedAt, receivedAt },
  });

  it('takes a matching reply received during the wait, ignoring others', () => {
    const b = expectKind(advance(replyDef, start(replyDef), world()), 'block');
    expect(b.dueAt).toBe(T + 60 * MIN);
    expect(b.history[0]).toMatchObject({ outcome: 'waiting', detail: { for: 'reply' } });
    expect(wakeKeys(replyDef, b.state, 'org_1', 'ctc_1')).toEqual(['reply:ctc_1']);
    // Before the wait began, or not matching: keep waiting (no new history).
    const w = world({ now: T + MIN, signals: [reply(' YES ', T - 1), reply('maybe', T + 1, 2)] });
    expect(expectKind(advance(replyDef, b.state, w), 'block').history).toEqual([]);
    const hit = expectKind(
      advance(
        replyDef,
        b.state,
        world({ now: T + MIN, signals: [reply('maybe', T + 1, 2), reply(' Yes ', T + 2, 3)] }),
      ),
      'continue',
    );
    expect(hit.state.stepId).toBe('yes');
    expect(hit.state.context.reply?.text).toBe(' Yes ');
  });

  it('counts a reply to the last message that came before the wait began, not one older than that message', () => {
    const s = start(replyDef);
    const answered = (replyAt: number): RunState => ({
      ...s,
      context: {
        ...s.context,
        lastSentAt: T - 10 * MIN,
        reply: { text: 'Yes', channel: 'sms', from: '+1', at: replyAt, receivedAt: replyAt },
      },
    });
    expect(expectKind(advance(replyDef, answered(T - 5 * MIN), world()), 'continue').state.stepId).toBe('yes');
    expectKind(advance(replyDef, answered(T - 11 * MIN), world()), 'block');
  });

  it('times out', () => {
    const b = expectKind(advance(replyDef, start(replyDef), world()), 'block');
    const t = expectKind(advance(replyDef, b.state, world({ now: T + 60 * MIN })), 'continue');
    expect(t.state.stepId).toBe('late');
    expect(t.history[0]?.outcome).toBe('timed_out');
  });

  it('takes an event of the name matching the filter', () => {
    const d = def({
      a: {
        type: 'wait_for',
        event: { name: 'order.paid', filter: { path: 'event.properties.total', op: 'gte', value: 100 } },
        timeout: '1d',
        next: 'paid',
        onTimeout: 'late',
      },
      paid: { type: 'exit' },
      late: { type: 'exit' },
    });
    const b = expectKind(advance(d, start(d), world()), 'block');
    expect(wakeKeys(d, b.state, 'org_1', 'ctc_1')).toEqual(['event:ctc_1:order.paid']);
    const ev = (total: number, id: number): Signal => ({
      id,
      kind: 'event',
      receivedAt: T + 1,
      event: { name: 'order.paid', properties: { total }, occurredAt: T },
    });
    expectKind(advance(d, b.state, world({ signals: [ev(50, 1)] })), 'block');
    const hit = expectKind(advance(d, b.state, world({ signals: [ev(50, 1), ev(150, 2)] })), 'continue');
    expect(hit.state.stepId).toBe('paid');
    expect(hit.state.context.event?.properties.total).toBe(150);
  });

  it('waits for a status of an earlier send, and gives up when it can no longer come', () => {
    const d = def(
      {
        s: { type: 'send', channel: 'sms', body: 'x', next: 'a' },
        a: {
          type: 'wait_for',
          messageStatus: { step: 's', status: ['delivered'] },
          timeout: '1h',
          next: 'ok',
          onTimeout: 'no',
        },
        ok: { type: 'exit' },
        no: { type: 'exit' },
      },
      's',
    );
    const s0 = start(d);
    const e = perform(advance(d, s0, world()));
    const s = expectKind(afterEffect(d, s0, world(), e, { ok: true, messageId: 'm1' }), 'continue').state;
    const b = expectKind(advance(d, s, world({ statuses: new Map([['m1', 'sent']]) })), 'block');
    expect(wakeKeys(d, b.state, 'o', 'c')).toEqual(['msg:m1']);
    expect(
      expectKind(advance(d, b.state, world({ statuses: new Map([['m1', 'read']]) })), 'continue').state.stepId,
    ).toBe('ok');
    expect(
      expectKind(advance(d, b.state, world({ statuses: new Map([['m1', 'failed']]) })), 'continue').state.stepId,
    ).toBe('no');
  });
});

describe('branch and split', () => {
  it('branches on the last message and the reply, in order, with a default', () => {
    const d = def({
      a: {
        type: 'branch',
        branches: [
          { when: { path: 'reply.text', op: 'eq', value: 'yes', ignoreCase: true }, next: 'yes' },
          { when: { path: 'message.delivered', op: 'eq', value: true }, next: 'delivered' },
        ],
        otherwise: 'other',
      },
      yes: { type: 'exit' },
      delivered: { type: 'exit' },
      other: { type: 'exit' },
    });
    const s = start(d);
    expect(expectKind(advance(d, s, world()), 'continue').state.stepId).toBe('other');
    const withMsg: RunState = {
      ...s,
      context: {
        ...s.context,
        lastMessageStep: 'x',
        messages: { x: { leg: 0, channel: 'sms', messageId: 'm', legs: [] } },
      },
    };
    expect(
      expectKind(advance(d, withMsg, world({ statuses: new Map([['m', 'read']]) })), 'continue').state.stepId,
    ).toBe('delivered');
    const withReply = {
      ...withMsg,
      context: { ...withMsg.context, reply: { text: 'YES', channel: 'sms', from: '+1', at: T, receivedAt: T } },
    };
    expect(expectKind(advance(d, withReply, world()), 'continue').state.stepId).toBe('yes');
  });

  it('splits deterministically per run, by weight', () => {
    const d = def({
      a: {
        type: 'split',
        variants: [
          { weight: 80, next: 'b' },
          { name: 'control', weight: 20, next: 'c' },
        ],
      },
      b: { type: 'exit' },
      c: { type: 'exit' },
    });
    const pick = (runId: string) => expectKind(advance(d, start(d), world({ runId })), 'continue').state;
    expect(pick('jrun_x').stepId).toBe(pick('jrun_x').stepId);
    let control = 0;
    for (let i = 0; i < 2000; i++) {
      const s = pick(`jrun_${i}`);
      if (s.stepId === 'c') {
        control++;
        expect(s.context.splits.a).toBe('control');
      } else expect(s.context.splits.a).toBe('A');
    }
    expect(control).toBeGreaterThan(320);
    expect(control).toBeLessThan(480);
    expect(stableFraction('a')).not.toBe(stableFraction('b'));
  });
});

describe('webhook and update_contact', () => {
  const d = def({
    a: { type: 'webhook', url: 'https://example.com/h', maxAttempts: 2, next: 'b', onFailure: 'c' },
    b: { type: 'exit' },
    c: { type: 'exit' },
  });

  it('posts the run, retries a retryable answer, then takes onFailure', () => {
    const s = start(d);
    const e = perform(advance(d, s, world()));
    expect(e).toMatchObject({
      kind: 'webhook',
      url: 'https://example.com/h',
      idempotencyKey: 'jrun_1:a:1',
      attempt: 1,
    });
    expect(e.kind === 'webhook' && e.body).toMatchObject({ runId: 'jrun_1', stepId: 'a', contactId: 'ctc_1' });
    const busy = {
      ok: false as const,
      retryable: true,
      httpStatus: 503,
      error: { code: 'webhook_failed', message: '503' },
    };
    const r = expectKind(afterEffect(d, s, world(), e, busy), 'block');
    const f = expectKind(afterEffect(d, r.state, world(), e, busy), 'continue');
    expect(f.state.stepId).toBe('c');
    expect(f.state.context.webhooks.a).toEqual({ status: 503, ok: false });
    const bad = {
      ok: false as const,
      retryable: false,
      httpStatus: 400,
      error: { code: 'webhook_failed', message: '400' },
    };
    expect(expectKind(afterEffect(d, s, world(), e, bad), 'continue').state.stepId).toBe('c');
    expect(expectKind(afterEffect(d, s, world(), e, { ok: true, httpStatus: 204 }), 'continue').state.stepId).toBe('b');
  });

  it('updates the contact', () => {
    const u = def({
      a: { type: 'update_contact', set: { plan: 'gold' }, addTags: ['vip'], next: 'b' },
      b: { type: 'exit' },
    });
    const e = perform(advance(u, start(u), world()));
    expect(e).toEqual({ kind: 'update_contact', stepId: 'a', patch: { set: { plan: 'gold' }, addTags: ['vip'] } });
    expect(expectKind(afterEffect(u, start(u), world(), e, { ok: true }), 'continue').state.stepId).toBe('b');
    const gone = { ok: false as const, retryable: false, error: { code: 'contact_not_found', message: 'x' } };
    expectKind(afterEffect(u, start(u), world(), e, gone), 'fail');
  });
});

describe('visits', () => {
  it('counts each entry into a step, so a loop sends again under a new key', () => {
    const d = def({
      a: { type: 'send', channel: 'sms', body: 'x', next: 'w' },
      w: { type: 'wait', duration: '1d', next: 'br' },
      br: { type: 'branch', branches: [{ when: { path: 'reply.text', op: 'exists' }, next: 'end' }], otherwise: 'a' },
      end: { type: 'exit' },
    });
    let s = start(d);
    const e1 = perform(advance(d, s, world()));
    s = expectKind(afterEffect(d, s, world(), e1, { ok: true, messageId: 'm1' }), 'continue').state;
    s = expectKind(advance(d, s, world()), 'block').state;
    s = expectKind(advance(d, s, world({ now: T + 86_400_000 })), 'continue').state;
    s = expectKind(advance(d, s, world()), 'continue').state;
    expect(s.stepId).toBe('a');
    expect(perform(advance(d, s, world()))).toMatchObject({ idempotencyKey: 'journey:jrun_1:a:2:0' });
  });
});
