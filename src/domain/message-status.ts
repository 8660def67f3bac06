/**
 * The message status machine. Pure: `(state, event) → (state, history entry)`.
 *
 * Statuses carry ranks. Carrier reports (sent, delivered, read, undelivered, failed) only ever move a
 * message up in rank: a late or repeated report is kept in the history with `applied: false` and changes
 * nothing. Pipeline commands (claim, retry, cancel, suppress) have explicit source states instead.
 * The sanctioned steps down are `retry`, a send attempt that failed with a retryable error, which returns the
 * message from `sending` to `queued`, and `defer` (quiet hours, a frequency cap), which returns it to `scheduled`:
 * in both cases it was never handed to a carrier.
 */

export const STATUSES = [
  'scheduled',
  'queued',
  'sending',
  'sent',
  'delivered',
  'read',
  'failed',
  'undelivered',
  'canceled',
  'suppressed',
  'received',
] as const;
export type MessageStatus = (typeof STATUSES)[number];

/** Outbound statuses from which nothing further can happen. */
export const TERMINAL_STATUSES: ReadonlySet<MessageStatus> = new Set([
  'failed',
  'undelivered',
  'canceled',
  'suppressed',
]);

const RANK: Record<MessageStatus, number> = {
  scheduled: 0,
  queued: 1,
  sending: 2,
  sent: 3,
  // Outcomes share a rank: the first outcome a carrier reports wins.
  delivered: 4,
  undelivered: 4,
  failed: 4,
  read: 5,
  canceled: 6,
  suppressed: 6,
  received: 0,
};

export function rankOf(status: MessageStatus): number {
  return RANK[status];
}

export function isTerminal(status: MessageStatus): boolean {
  return TERMINAL_STATUSES.has(status);
}

/** True when the message will not change again by itself (terminal, or delivered/read). */
export function isSettled(status: MessageStatus): boolean {
  return isTerminal(status) || status === 'delivered' || status === 'read' || status === 'received';
}

/** Statuses a message may be claimed for sending from (the conditional claim of the worker). */
export const CLAIMABLE_STATUSES: readonly MessageStatus[] = ['queued', 'scheduled'];
/** Statuses a cancel applies to: not yet handed to a carrier. */
export const CANCELABLE_STATUSES: readonly MessageStatus[] = ['queued', 'scheduled'];

export interface MessageError {
  code: string;
  class: string;
  message: string;
}

export type StatusEvent =
  /** A carrier (or the carrier's synchronous answer) reports a status. */
  | {
      kind: 'report';
      status: 'sent' | 'delivered' | 'read' | 'undelivered' | 'failed';
      error?: MessageError;
      detail?: Record<string, unknown>;
    }
  /** The pipeline gives up on the message (permanent error or attempts exhausted). */
  | { kind: 'fail'; error: MessageError; detail?: Record<string, unknown> }
  | { kind: 'retry'; error: MessageError; detail?: Record<string, unknown> }
  | { kind: 'cancel'; detail?: Record<string, unknown> }
  | { kind: 'suppress'; reason: string; detail?: Record<string, unknown> }
  /** Compliance holds a message back until `until` (quiet hours, a frequency cap): it becomes scheduled again. */
  | { kind: 'defer'; until: number; reason: string; detail?: Record<string, unknown> };

export interface Transition {
  /** The status after the event (equal to the current one when not applied). */
  status: MessageStatus;
  /** Whether the event changed the message. */
  applied: boolean;
  /** The status the history entry records (what the event said). */
  recorded: MessageStatus;
  /** Error to store on the message, when the event sets one. */
  error?: MessageError;
}

/** Decides what an event does to a message in `current`. Never throws; unapplied events are still recorded. */
export function applyStatusEvent(current: MessageStatus, event: StatusEvent): Transition {
  switch (event.kind) {
    case 'report': {
      // Inbound messages are not tracked by carrier reports.
      const applied = current !== 'received' && !isTerminal(current) && rankOf(event.status) > rankOf(current);
      const error = applied && (event.status === 'failed' || event.status === 'undelivered') ? event.error : undefined;
      return { status: applied ? event.status : current, applied, recorded: event.status, ...(error ? { error } : {}) };
    }
    case 'fail': {
      const applied = current === 'sending' || current === 'queued' || current === 'scheduled';
      return {
        status: applied ? 'failed' : current,
        applied,
        recorded: 'failed',
        ...(applied ? { error: event.error } : {}),
      };
    }
    case 'retry': {
      const applied = current === 'sending';
      return {
        status: applied ? 'queued' : current,
        applied,
        recorded: 'queued',
        ...(applied ? { error: event.error } : {}),
      };
    }
    case 'cancel': {
      const applied = CANCELABLE_STATUSES.includes(current);
      return { status: applied ? 'canceled' : current, applied, recorded: 'canceled' };
    }
    case 'suppress': {
      // Also from `sending`: the worker checks consent after claiming, before anything reaches a carrier.
      const applied = CANCELABLE_STATUSES.includes(current) || current === 'sending';
      return { status: applied ? 'suppressed' : current, applied, recorded: 'suppressed' };
    }
    case 'defer': {
      const applied = current === 'sending' || current === 'queued';
      return { status: applied ? 'scheduled' : current, applied, recorded: 'scheduled' };
    }
  }
}
