/**
 * Pub/sub on Redis PUBLISH/SUBSCRIBE (ioredis). Publishing uses the regular connection; subscriptions use a
 * second connection of their own (a subscribed Redis connection can run nothing else), opened on the first
 * subscribe. Redis channels ignore the database number, so every channel is namespaced by `prefix`.
 */
import { Redis } from 'ioredis';
import type { MessageHandler, PubSub } from '../../ports/pubsub.ts';

export interface RedisPubSubOptions {
  /** A Redis URL (the adapter opens and closes its connections) or a client to share (left open on close). */
  connection: string | Redis;
  /** Namespace of the Redis channels; default `omni:`. */
  prefix?: string;
  /** Where errors go that no call can reject with (a throwing handler, a connection error); default a warning. */
  onError?: (err: unknown) => void;
}

interface Subscription {
  handler: MessageHandler;
  active: boolean;
}

export class RedisPubSub implements PubSub {
  private readonly pub: Redis;
  private readonly ownsPub: boolean;
  private sub: Redis | null = null;
  private readonly prefix: string;
  private readonly onError: (err: unknown) => void;
  /** Subscriptions per Redis channel; a channel is in this map exactly while we want Redis to send it. */
  private readonly channels = new Map<string, Set<Subscription>>();
  /** The SUBSCRIBE in flight (or done) for each channel of `channels`. */
  private readonly subscribing = new Map<string, Promise<unknown>>();
  private closed = false;

  constructor(opts: RedisPubSubOptions) {
    this.ownsPub = typeof opts.connection === 'string';
    this.pub = typeof opts.connection === 'string' ? new Redis(opts.connection) : opts.connection;
    this.prefix = opts.prefix ?? 'omni:';
    this.onError =
      opts.onError ?? ((err) => process.emitWarning(`pub/sub: ${err instanceof Error ? err.message : String(err)}`));
    if (this.ownsPub) this.pub.on('error', (err) => this.onError(err));
  }

  async publish(channel: string, message: string): Promise<void> {
    this.assertOpen();
    await this.pub.publish(this.prefix + channel, message);
  }

  async subscribe(channel: string, handler: MessageHandler): Promise<() => Promise<void>> {
    this.assertOpen();
    const key = this.prefix + channel;
    const sub: Subscription = { handler, active: true };
    let subs = this.channels.get(key);
    if (!subs) {
      subs = new Set();
      this.channels.set(key, subs);
      this.subscribing.set(key, this.subscriber().subscribe(key));
    }
    subs.add(sub);
    try {
      await this.subscribing.get(key);
    } catch (err) {
      await this.end(key, sub);
      throw err;
    }
    return () => this.end(key, sub);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const subs of this.channels.values()) for (const s of subs) s.active = false;
    this.channels.clear();
    this.subscribing.clear();
    await Promise.all([this.sub?.quit(), this.ownsPub ? this.pub.quit() : undefined]);
  }

  private subscriber(): Redis {
    if (!this.sub) {
      const sub = this.pub.duplicate();
      sub.on('message', (key: string, message: string) => this.deliver(key, message));
      sub.on('error', (err) => this.onError(err));
      this.sub = sub;
    }
    return this.sub;
  }

  private deliver(key: string, message: string): void {
    const subs = this.channels.get(key);
    if (!subs) return;
    for (const s of [...subs]) {
      if (!s.active) continue;
      try {
        s.handler(message);
      } catch (err) {
        this.onError(err);
      }
    }
  }

  private async end(key: string, sub: Subscription): Promise<void> {
    if (!sub.active) return;
    sub.active = false;
    const subs = this.channels.get(key);
    if (!subs?.delete(sub) || subs.size > 0) return;
    // Last subscription of the channel. A later subscribe sends its SUBSCRIBE after this UNSUBSCRIBE on the same
    // connection, so Redis ends up subscribed again.
    this.channels.delete(key);
    this.subscribing.delete(key);
    if (!this.closed) await this.sub?.unsubscribe(key);
  }

  private assertOpen(): void {
    if (this.closed) throw new Error('pub/sub client is closed');
  }
}
