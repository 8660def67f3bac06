/**
 * In-process pub/sub: the embedded deployment's broker. Clients created on one `MemoryBroker` see each other's
 * messages the way separate processes do through Redis; a client created without a broker gets its own.
 */
import type { MessageHandler, PubSub } from '../../ports/pubsub.ts';

interface Subscription {
  handler: MessageHandler;
  active: boolean;
  onError: (err: unknown) => void;
}

/** The channels and their subscriptions, shared by the clients made on it. */
export class MemoryBroker {
  readonly channels = new Map<string, Set<Subscription>>();
}

const warn = (err: unknown): void => {
  process.emitWarning(`pub/sub handler failed: ${err instanceof Error ? err.message : String(err)}`);
};

export class MemoryPubSub implements PubSub {
  private readonly mine = new Map<Subscription, string>();
  private closed = false;

  constructor(
    private readonly broker: MemoryBroker = new MemoryBroker(),
    private readonly onError: (err: unknown) => void = warn,
  ) {}

  async publish(channel: string, message: string): Promise<void> {
    this.assertOpen();
    const subs = this.broker.channels.get(channel);
    if (!subs) return;
    for (const s of subs) {
      // Asynchronous like a real broker; queued in publish order, so order per publisher holds.
      queueMicrotask(() => {
        if (!s.active) return;
        try {
          s.handler(message);
        } catch (err) {
          s.onError(err);
        }
      });
    }
  }

  async subscribe(channel: string, handler: MessageHandler): Promise<() => Promise<void>> {
    this.assertOpen();
    const sub: Subscription = { handler, active: true, onError: this.onError };
    let subs = this.broker.channels.get(channel);
    if (!subs) {
      subs = new Set();
      this.broker.channels.set(channel, subs);
    }
    subs.add(sub);
    this.mine.set(sub, channel);
    return async () => this.end(sub);
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const sub of [...this.mine.keys()]) this.end(sub);
  }

  private end(sub: Subscription): void {
    const channel = this.mine.get(sub);
    sub.active = false;
    if (channel === undefined) return;
    this.mine.delete(sub);
    const subs = this.broker.channels.get(channel);
    subs?.delete(sub);
    if (subs?.size === 0) this.broker.channels.delete(channel);
  }

  private assertOpen(): void {
    if (this.closed) throw new Error('pub/sub client is closed');
  }
}
