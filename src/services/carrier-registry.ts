/**
 * Senders and their carriers: an organization's senders with their secrets opened, and one live Carrier per
 * sender (rebuilt when the sender changes), built by its provider's definition. Sender lists are cached for a few
 * seconds, so a change made through another process's API reaches every worker within `cacheMs`.
 */
import { createHash } from 'node:crypto';
import type { Channel } from '../domain/channels.ts';
import { NotFoundError } from '../domain/errors.ts';
import type { Carrier, ProviderDefinition } from '../ports/carrier.ts';
import type { Clock } from '../ports/clock.ts';
import type { SecretBox } from '../ports/secrets.ts';
import type { MessageStore, StoredSender } from '../ports/store.ts';

export interface RegistryOptions {
  /** How long a sender list read from the store is trusted. */
  cacheMs?: number;
  /** URLs taken from messages may point at private addresses (OMNI_MESSAGE_URLS_ALLOW_PRIVATE). */
  allowPrivateUrls?: boolean;
}

interface Cached<T> {
  at: number;
  value: Promise<T>;
}

export class CarrierRegistry {
  private readonly carriers = new Map<string, { version: number; carrier: Carrier }>();
  private readonly byOrg = new Map<string, Cached<StoredSender[]>>();
  private readonly byId = new Map<string, Cached<StoredSender | undefined>>();
  private readonly accountKeys = new Map<string, string>();
  private readonly cacheMs: number;
  private readonly allowPrivateUrls: boolean;

  constructor(
    private readonly store: MessageStore,
    private readonly secrets: SecretBox,
    readonly providers: ReadonlyMap<string, ProviderDefinition>,
    private readonly webhookUrlOf: (sender: { id: string; provider: string }) => string,
    private readonly clock: Clock,
    opts: RegistryOptions = {},
  ) {
    this.cacheMs = opts.cacheMs ?? 5000;
    this.allowPrivateUrls = opts.allowPrivateUrls ?? false;
  }

  webhookUrl(sender: { id: string; provider: string }): string {
    return this.webhookUrlOf(sender);
  }

  /** A sender's config with its sealed secrets opened into it. */
  open(stored: StoredSender): StoredSender {
    if (!stored.sealedSecrets) return stored;
    const secrets = JSON.parse(this.secrets.open(stored.sealedSecrets)) as Record<string, unknown>;
    return { ...stored, config: { ...stored.config, ...secrets } };
  }

  /** The organization's enabled senders of `channel` whose provider we have, in routing order. */
  async sendersFor(orgId: string, channel: Channel): Promise<StoredSender[]> {
    const now = this.clock.now();
    let cached = this.byOrg.get(orgId);
    if (!cached || now - cached.at > this.cacheMs) {
      const value = this.store.listSenders(orgId).then((list) => list.map((s) => this.open(s)));
      cached = { at: now, value };
      this.byOrg.set(orgId, cached);
      value.catch(() => this.byOrg.get(orgId) === cached && this.byOrg.delete(orgId));
    }
    return (await cached.value).filter(
      (s) => s.enabled !== false && s.channels.includes(channel) && this.providers.has(s.provider),
    );
  }

  /** A sender by id (deleted ones too: their callbacks still arrive), secrets opened. */
  async sender(id: string): Promise<StoredSender | undefined> {
    const now = this.clock.now();
    let cached = this.byId.get(id);
    if (!cached || now - cached.at > this.cacheMs) {
      const value = this.store.getSender(id).then((s) => (s ? this.open(s) : undefined));
      cached = { at: now, value };
      this.byId.set(id, cached);
      value.catch(() => this.byId.get(id) === cached && this.byId.delete(id));
    }
    return cached.value;
  }

  carrier(sender: StoredSender): Carrier {
    const known = this.carriers.get(sender.id);
    if (known && known.version >= sender.updatedAt) return known.carrier;
    const definition = this.providers.get(sender.provider);
    if (!definition)
      throw new NotFoundError('provider_not_supported', `no carrier adapter for provider '${sender.provider}'`);
    const carrier = definition.create(sender, {
      webhookUrl: this.webhookUrlOf(sender),
      allowPrivateUrls: this.allowPrivateUrls,
    });
    if (known) void known.carrier.close?.();
    this.carriers.set(sender.id, { version: sender.updatedAt, carrier });
    return carrier;
  }

  /**
   * The provider account a sender belongs to: senders with the same provider and the same credentials share it
   * (and its account-wide rate limit).
   */
  accountKey(sender: StoredSender): string {
    let key = this.accountKeys.get(sender.id);
    if (!key) {
      const definition = this.providers.get(sender.provider);
      const fields = [...(definition?.secretFields ?? [])].sort();
      const creds = fields.map((f) => [f, sender.config[f]]);
      key = `${sender.provider}:${createHash('sha256').update(JSON.stringify(creds)).digest('hex').slice(0, 16)}`;
      this.accountKeys.set(sender.id, key);
    }
    return key;
  }

  /** Forget cached senders of an organization (after one of them is added or changed here). */
  invalidate(orgId: string, senderId?: string): void {
    this.byOrg.delete(orgId);
    if (senderId) {
      this.byId.delete(senderId);
      this.accountKeys.delete(senderId);
    }
  }

  async close(): Promise<void> {
    await Promise.all([...this.carriers.values()].map((c) => c.carrier.close?.()));
    this.carriers.clear();
  }
}
