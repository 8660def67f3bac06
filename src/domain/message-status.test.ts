import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  applyStatusEvent,
  CANCELABLE_STATUSES,
  CLAIMABLE_STATUSES,
  isSettled,
  isTerminal,
  type MessageError,
  type MessageStatus,
  rankOf,
  STATUSES,
  type StatusEvent,
  TERMINAL_STATUSES,
} from './message-status.ts';

type ReportEvent = Extract<StatusEvent, { kind: 'report' }>;
type Reported = ReportEvent['status'];
const REPORTED: readonly Reported[] = ['sent', 'delivered', 'read', 'undelivered', 'failed'];
const TERMINALS: readonly MessageStatus[] = ['failed', 'undelivered', 'canceled', 'suppressed'];
const OUTBOUND: readonly MessageStatus[] = STATUSES.filter((s) => s !== 'received');

const ERR: MessageError = { code: 'unreachable_destination', class: 'PermanentError', message: 'handset unreachable' };
const TIMEOUT: MessageError = { code: 'carrier_timeout', class: 'ResourceError', message: 'carrier did not answer' };

const report = (status: Reported, error?: MessageError): ReportEvent =>
  error ? { kind: 'report', status, error } : { kind: 'report', status };

const ALL_EVENTS: readonly StatusEvent[] = [
  ...REPORTED.map((s) => report(s, ERR)),
  { kind: 'fail', error: ERR },
  { kind: 'retry', error: TIMEOUT },
  { kind: 'cancel' },
  { kind: 'suppress', reason: 'unsubscribed' },
  { kind: 'defer', until: 1, reason: 'quiet_hours' },
];

describe('ranks and classes', () => {
  it('orders the outbound lifecycle', () => {
    const lifecycle: MessageStatus[] = ['scheduled', 'queued', 'sending', 'sent', 'delivered', 'read'];
    for (let i = 1; i < lifecycle.length; i++) {
      expect(rankOf(lifecycle[i]!)).toBeGreaterThan(rankOf(lifecycle[i - 1]!));
    }
  });

  it('gives the carrier outcomes one rank, so the first one reported wins', () => {
    expect(rankOf('delivered')).toBe(rankOf('undelivered'));
    expect(rankOf('delivered')).toBe(rankOf('failed'));
    expect(rankOf('read')).toBeGreaterThan(rankOf('delivered'));
  });

  it('knows the terminal and settled statuses', () => {
    expect([...TERMINAL_STATUSES].sort()).toEqual([...TERMINALS].sort());
    for (const s of STATUSES) expect(isTerminal(s)).toBe(TERMINALS.includes(s));
    const settled = STATUSES.filter(isSettled).sort();
    expect(settled).toEqual(['canceled', 'delivered', 'failed', 'read', 'received', 'suppressed', 'undelivered']);
  });

  it('claims and cancels only before a message reaches a carrier', () => {
    expect([...CLAIMABLE_STATUSES].sort()).toEqual(['queued', 'scheduled']);
    expect([...CANCELABLE_STATUSES].sort()).toEqual(['queued', 'scheduled']);
  });
});

describe('carrier reports', () => {
  it.each([
    ['queued', 'sent'],
    ['sending', 'sent'],
    ['sending', 'delivered'],
    ['sending', 'failed'],
    ['sent', 'delivered'],
    ['sent', 'undelivered'],
    ['sent', 'read'],
    ['delivered', 'read'],
  ] as const)('moves %s up to %s', (from, to) => {
    const t = applyStatusEvent(from, report(to));
    expect(t).toMatchObject({ status: to, applied: true, recorded: to });
  });

  it.each([
    ['delivered', 'sent'],
    ['read', 'delivered'],
    ['read', 'sent'],
    ['sent', 'sent'],
    ['delivered', 'delivered'],
    ['delivered', 'undelivered'],
    ['delivered', 'failed'],
    ['undelivered', 'delivered'],
  ] as const)('keeps %s when %s arrives (never lowered, first outcome wins)', (from, to) => {
    const t = applyStatusEvent(from, report(to, ERR));
    expect(t).toEqual({ status: from, applied: false, recorded: to });
  });

  it('stores the error of a failure report that applies, and only then', () => {
    expect(applyStatusEvent('sent', report('undelivered', ERR))).toEqual({
      status: 'undelivered',
      applied: true,
      recorded: 'undelivered',
      error: ERR,
    });
    expect(applyStatusEvent('sending', report('failed', ERR)).error).toEqual(ERR);
    expect(applyStatusEvent('sent', report('delivered', ERR)).error).toBeUndefined();
    expect(applyStatusEvent('delivered', report('failed', ERR)).error).toBeUndefined();
  });
});

describe('pipeline commands', () => {
  it("'fail' applies while the message is still ours to send", () => {
    for (const s of ['scheduled', 'queued', 'sending'] as const) {
      expect(applyStatusEvent(s, { kind: 'fail', error: ERR })).toEqual({
        status: 'failed',
        applied: true,
        recorded: 'failed',
        error: ERR,
      });
    }
    for (const s of ['sent', 'delivered', 'read', 'undelivered', 'canceled', 'suppressed', 'failed'] as const) {
      expect(applyStatusEvent(s, { kind: 'fail', error: ERR })).toEqual({
        status: s,
        applied: false,
        recorded: 'failed',
      });
    }
  });

  it("'retry' applies only from sending, back to queued with the error", () => {
    expect(applyStatusEvent('sending', { kind: 'retry', error: TIMEOUT })).toEqual({
      status: 'queued',
      applied: true,
      recorded: 'queued',
      error: TIMEOUT,
    });
    for (const s of STATUSES.filter((x) => x !== 'sending')) {
      expect(applyStatusEvent(s, { kind: 'retry', error: TIMEOUT })).toEqual({
        status: s,
        applied: false,
        recorded: 'queued',
      });
    }
  });

  it("'cancel' applies only from queued or scheduled; 'suppress' also while the worker holds it (sending)", () => {
    for (const s of STATUSES) {
      const before = s === 'queued' || s === 'scheduled';
      expect(applyStatusEvent(s, { kind: 'cancel' })).toEqual({
        status: before ? 'canceled' : s,
        applied: before,
        recorded: 'canceled',
      });
      const suppressible = before || s === 'sending';
      expect(applyStatusEvent(s, { kind: 'suppress', reason: 'unsubscribed' })).toEqual({
        status: suppressible ? 'suppressed' : s,
        applied: suppressible,
        recorded: 'suppressed',
      });
    }
  });

  it("'defer' returns a queued or claimed message to scheduled", () => {
    for (const s of STATUSES) {
      const applies = s === 'queued' || s === 'sending';
      expect(applyStatusEvent(s, { kind: 'defer', until: 5, reason: 'quiet_hours' })).toEqual({
        status: applies ? 'scheduled' : s,
        applied: applies,
        recorded: 'scheduled',
      });
    }
  });
});

describe('invariants over every status and event', () => {
  const cases = STATUSES.flatMap((s) => ALL_EVENTS.map((e) => [s, e] as const));

  it('terminal statuses absorb every event', () => {
    for (const s of TERMINALS) {
      for (const e of ALL_EVENTS) {
        const t = applyStatusEvent(s, e);
        expect(t.applied, `${s} + ${e.kind}`).toBe(false);
        expect(t.status).toBe(s);
        expect(t.error).toBeUndefined();
      }
    }
  });

  it('an unapplied event changes nothing; an applied one changes the status', () => {
    for (const [s, e] of cases) {
      const t = applyStatusEvent(s, e);
      if (t.applied) expect(t.status, `${s} + ${e.kind}`).not.toBe(s);
      else expect(t.status, `${s} + ${e.kind}`).toBe(s);
    }
  });

  it('records what the event said, applied or not', () => {
    const said = (e: StatusEvent): MessageStatus =>
      e.kind === 'report'
        ? e.status
        : (
            { fail: 'failed', retry: 'queued', cancel: 'canceled', suppress: 'suppressed', defer: 'scheduled' } as const
          )[e.kind];
    for (const [s, e] of cases) expect(applyStatusEvent(s, e).recorded).toBe(said(e));
  });

  it('never lowers the rank of an outbound message, except a retry from sending', () => {
    for (const s of OUTBOUND) {
      for (const e of ALL_EVENTS) {
        const t = applyStatusEvent(s, e);
        if (e.kind === 'retry' && s === 'sending') {
          expect(t.status).toBe('queued');
          continue;
        }
        if (e.kind === 'defer' && (s === 'sending' || s === 'queued')) {
          expect(t.status).toBe('scheduled');
          continue;
        }
        expect(rankOf(t.status), `${s} + ${e.kind}`).toBeGreaterThanOrEqual(rankOf(s));
      }
    }
  });
});

describe('properties', () => {
  const reportArb = fc.constantFrom(...REPORTED).map((s) => report(s, ERR));
  const startArb = fc.constantFrom<MessageStatus>('scheduled', 'queued', 'sending', 'sent', 'delivered', 'read');

  it('after any sequence of reports the rank is the highest reached, unless a terminal status came first', () => {
    fc.assert(
      fc.property(startArb, fc.array(reportArb, { maxLength: 30 }), (start, events) => {
        let status = start;
        for (const e of events) status = applyStatusEvent(status, e).status;

        // Walk the reports: the running maximum rank, until a failure outcome becomes the status.
        let best = rankOf(start);
        let terminal: MessageStatus | undefined;
        for (const e of events) {
          const r = rankOf(e.status);
          if (r <= best) continue;
          best = r;
          if (isTerminal(e.status)) {
            terminal = e.status;
            break;
          }
        }
        if (terminal) expect(status).toBe(terminal);
        else expect(rankOf(status)).toBe(Math.max(rankOf(start), ...events.map((e) => rankOf(e.status))));
      }),
      { numRuns: 2000 },
    );
  });

  it('the rank never drops along the way, and a terminal status stays put', () => {
    fc.assert(
      fc.property(startArb, fc.array(reportArb, { maxLength: 30 }), (start, events) => {
        let status = start;
        for (const e of events) {
          const t = applyStatusEvent(status, e);
          expect(rankOf(t.status)).toBeGreaterThanOrEqual(rankOf(status));
          if (isTerminal(status)) expect(t.status).toBe(status);
          status = t.status;
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('any mix of events never leaves a terminal status, and only retry and defer step down', () => {
    const eventArb = fc.constantFrom(...ALL_EVENTS);
    fc.assert(
      fc.property(fc.constantFrom(...OUTBOUND), fc.array(eventArb, { maxLength: 40 }), (start, events) => {
        let status = start;
        for (const e of events) {
          const t = applyStatusEvent(status, e);
          if (isTerminal(status)) expect(t.status).toBe(status);
          if (rankOf(t.status) < rankOf(status)) {
            expect(['retry', 'defer']).toContain(e.kind);
            if (e.kind === 'retry') expect([status, t.status]).toEqual(['sending', 'queued']);
            else expect(t.status).toBe('scheduled');
          }
          status = t.status;
        }
      }),
      { numRuns: 2000 },
    );
  });
});
