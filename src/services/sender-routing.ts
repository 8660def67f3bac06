/**
 * Which senders may carry a message, in the order to try them: the organization's enabled senders of the channel
 * that serve the recipient's country, the recipient's sticky sender first (so a conversation keeps its number),
 * then by priority and cost. Senders whose circuit is open are passed over; when every one is open the message
 * waits until the first of them lets a probe through. Circuits live in the worker process that sends.
 */
import { parsePhoneNumberFromString } from 'libphonenumber-js/max';
import { ADDRESS_KIND, type Channel } from '../domain/channels.ts';
import { CircuitBreaker, type CircuitOptions, DEFAULT_CIRCUIT } from '../domain/circuit-breaker.ts';
import { memoize } from '../domain/memo.ts';
import type { Clock } from '../ports/clock.ts';
import type { MessageRecord, MessageStore, StoredSender } from '../ports/store.ts';
import type { CarrierRegistry } from './carrier-registry.ts';

export type Route =
  | { kind: 'send'; senders: StoredSender[] }
  | { kind: 'none' }
  /** Every eligible sender's circuit is open: try again at `retryAt`. */
  | { kind: 'wait'; retryAt: number };

export class SenderRouting {
  private readonly circuits = new Map<string, CircuitBreaker>();

  constructor(
    private readonly store: MessageStore,
    private readonly registry: CarrierRegistry,
    private readonly clock: Clock,
    private readonly circuit: CircuitOptions = DEFAULT_CIRCUIT,
  ) {}

  /** Routes for a batch of messages (one affinity lookup per organization and channel). */
  async route(messages: readonly MessageRecord[]): Promise<Map<string, Route>> {
    const routes = new Map<string, Route>();
    const groups = new Map<string, MessageRecord[]>();
    for (const m of messages) {
      const k = `${m.orgId}\u0000${m.channel}`;
      const g = groups.get(k);
      if (g) g.push(m);
      else groups.set(k, [m]);
    }
    const now = this.clock.now();
    for (const list of groups.values()) {
      const first = list[0] as MessageRecord;
      const senders = await this.registry.sendersFor(first.orgId, first.channel);
      if (senders.length === 0) {
        for (const m of list) routes.set(m.id, { kind: 'none' });
        continue;
      }
      const affinity =
        senders.length > 1
          ? await this.store.getSenderAffinity(
              first.orgId,
              first.channel,
              list.map((m) => m.to),
            )
          : new Map<string, string>();
      for (const m of list) routes.set(m.id, this.order(senders, m, affinity.get(m.to), now));
    }
    return routes;
  }

  private order(senders: StoredSender[], m: MessageRecord, sticky: string | undefined, now: number): Route {
    const country = ADDRESS_KIND[m.channel] === 'phone' ? countryOf(m.to) : undefined;
    const eligible = senders.filter(
      (s) => !country || !s.countries || s.countries.length === 0 || s.countries.includes(country),
    );
    if (eligible.length === 0) return { kind: 'none' };
    const ordered = [...eligible].sort(
      (a, b) =>
        Number(b.id === sticky) - Number(a.id === sticky) ||
        a.priority - b.priority ||
        (a.costPerMessage ?? 0) - (b.costPerMessage ?? 0) ||
        (a.id < b.id ? -1 : 1),
    );
    const open = ordered.filter((s) => this.breaker(s.id).available(now));
    if (open.length > 0) return { kind: 'send', senders: open };
    const retryAt = Math.min(...ordered.map((s) => this.breaker(s.id).nextProbeAt(now)));
    return { kind: 'wait', retryAt };
  }

  /** Takes the sender's probe slot when its circuit is half-open; false when it may not send now. */
  allow(senderId: string): boolean {
    return this.breaker(senderId).allow(this.clock.now());
  }

  succeeded(senderId: string): void {
    this.breaker(senderId).success();
  }

  failed(senderId: string): void {
    this.breaker(senderId).failure(this.clock.now());
  }

  circuitState(senderId: string): string {
    return this.breaker(senderId).state(this.clock.now());
  }

  /** Remembers which sender served each recipient, for organizations with a choice of senders. */
  async remember(entries: { orgId: string; channel: Channel; recipient: string; senderId: string }[]): Promise<void> {
    if (entries.length > 0) await this.store.setSenderAffinity(entries, this.clock.now());
  }

  private breaker(senderId: string): CircuitBreaker {
    let b = this.circuits.get(senderId);
    if (!b) {
      b = new CircuitBreaker(this.circuit);
      this.circuits.set(senderId, b);
    }
    return b;
  }
}

/** ISO country of an E.164 number (memoized; numbers repeat). */
export const countryOf = memoize((phone): string | undefined => parsePhoneNumberFromString(phone)?.country, 50_000);
