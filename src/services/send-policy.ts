/**
 * What may be sent, decided by the worker after it claims messages and before any reaches a carrier: consent
 * (opted out → suppressed), quiet hours and frequency caps (→ deferred to the next allowed moment, never dropped).
 * The compliance service implements it; without one everything is allowed.
 */
import type { MessageRecord } from '../ports/store.ts';

export type SendDecision =
  | { kind: 'allow' }
  | { kind: 'suppress'; reason: string; code: string }
  | { kind: 'defer'; until: number; reason: string };

export interface SendPolicy {
  /** A decision per message id; a message missing from the map is allowed. */
  decide(messages: readonly MessageRecord[], now: number): Promise<Map<string, SendDecision>>;
  /** Messages handed to a carrier (frequency caps count them). */
  sent(messages: readonly MessageRecord[], at: number): Promise<void>;
}

export const ALLOW_ALL: SendPolicy = {
  decide: async () => new Map(),
  sent: async () => undefined,
};
