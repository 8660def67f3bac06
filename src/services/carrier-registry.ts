/**
 * Senders and their carriers: which sender serves an organization's channel, and one live Carrier per sender,
 * built by the factory registered for its provider (the composition root registers them).
 */
import type { Channel } from '../domain/channels.ts';
import { NotFoundError } from '../domain/errors.ts';
import type { Carrier, CarrierFactory, SenderRecord } from '../ports/carrier.ts';
import type { MessageStore } from '../ports/store.ts';

export class CarrierRegistry {
  private readonly carriers = new Map<string, Carrier>();
  private readonly sendersByOrg = new Map<string, Promise<SenderRecord[]>>();
  private readonly senders = new Map<string, SenderRecord>();

  constructor(
    private readonly store: MessageStore,
    private readonly factories: Record<string, CarrierFactory>,
    private readonly webhookUrl: (sender: SenderRecord) => string,
  ) {}

  /** The sender that sends `channel` for `orgId` (lowest priority value first), or undefined. */
  async senderFor(orgId: string, channel: Channel): Promise<SenderRecord | undefined> {
    let list = this.sendersByOrg.get(orgId);
    if (!list) {
      list = this.store.listSenders(orgId);
      this.sendersByOrg.set(orgId, list);
    }
    return (await list).find((s) => s.channels.includes(channel) && this.factories[s.provider] !== undefined);
  }

  async sender(id: string): Promise<SenderRecord | undefined> {
    const known = this.senders.get(id);
    if (known) return known;
    const s = await this.store.getSender(id);
    if (s) this.senders.set(id, s);
    return s;
  }

  carrier(sender: SenderRecord): Carrier {
    let c = this.carriers.get(sender.id);
    if (!c) {
      const factory = this.factories[sender.provider];
      if (!factory)
        throw new NotFoundError('provider_not_supported', `no carrier adapter for provider '${sender.provider}'`);
      c = factory(sender, { webhookUrl: this.webhookUrl(sender) });
      this.carriers.set(sender.id, c);
      this.senders.set(sender.id, sender);
    }
    return c;
  }

  /** Forget cached senders of an organization (after a sender is added or changed). */
  invalidate(orgId: string): void {
    this.sendersByOrg.delete(orgId);
  }

  async close(): Promise<void> {
    await Promise.all([...this.carriers.values()].map((c) => c.close?.()));
    this.carriers.clear();
  }
}
