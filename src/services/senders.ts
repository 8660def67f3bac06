/**
 * Senders: an organization's connections to carriers. A sender names its provider, the channels it carries, its
 * config (checked against the provider's schema, then by building the carrier once), identities, countries,
 * priority, rate limits and cost. Credential fields are sealed with the secret box before they are stored and
 * never leave the API; the answer lists which are set and the webhook URL to paste into the provider's console.
 */
import { type Channel, isChannel } from '../domain/channels.ts';
import { NotFoundError, ValidationError } from '../domain/errors.ts';
import { newId } from '../domain/ids.ts';
import type { ProviderDefinition } from '../ports/carrier.ts';
import type { Clock } from '../ports/clock.ts';
import type { SecretBox } from '../ports/secrets.ts';
import type { MessageStore, StoredSender } from '../ports/store.ts';
import type { CarrierRegistry } from './carrier-registry.ts';
import { compileChecker } from './validation.ts';

export interface SenderInput {
  name: string;
  provider: string;
  channels: string[];
  config: Record<string, unknown>;
  from?: string | null;
  identities?: string[];
  countries?: string[];
  priority?: number;
  rateLimitPerSecond?: number | null;
  accountRateLimitPerSecond?: number | null;
  costPerMessage?: number | null;
  enabled?: boolean;
}

export type SenderPatch = Partial<Omit<SenderInput, 'provider'>>;

export interface SenderView {
  id: string;
  name: string | null;
  provider: string;
  channels: Channel[];
  from: string | null;
  identities: string[];
  countries: string[];
  priority: number;
  rateLimitPerSecond: number | null;
  accountRateLimitPerSecond: number | null;
  costPerMessage: number | null;
  enabled: boolean;
  /** The config without its secrets. */
  config: Record<string, unknown>;
  /** Names of the secret config fields that are set (their values are never returned). */
  secrets: string[];
  /** Paste this into the provider's console as the status-callback and inbound-message URL. */
  webhookUrl: string;
  createdAt: string;
  updatedAt: string;
}

export class Senders {
  private readonly checkers = new Map<string, ReturnType<typeof compileChecker>>();

  constructor(
    private readonly store: MessageStore,
    private readonly registry: CarrierRegistry,
    private readonly secrets: SecretBox,
    private readonly clock: Clock,
  ) {}

  providers(): ProviderDefinition[] {
    return [...this.registry.providers.values()];
  }

  async create(orgId: string, input: SenderInput): Promise<SenderView> {
    const provider = this.provider(input.provider);
    const now = this.clock.now();
    const channels = this.channels(provider, input.channels);
    const { plain, secret } = this.split(provider, this.checkConfig(provider, input.config));
    const sender: StoredSender = {
      id: newId('snd'),
      orgId,
      provider: provider.id,
      name: input.name,
      config: plain,
      sealedSecrets: Object.keys(secret).length > 0 ? this.secrets.seal(JSON.stringify(secret)) : null,
      channels,
      from: input.from ?? input.identities?.[0] ?? null,
      identities: input.identities ?? [],
      countries: normalizeCountries(input.countries),
      priority: input.priority ?? 0,
      rateLimitPerSecond: input.rateLimitPerSecond ?? null,
      accountRateLimitPerSecond: input.accountRateLimitPerSecond ?? null,
      costPerMessage: input.costPerMessage ?? null,
      enabled: input.enabled ?? true,
      createdAt: now,
      updatedAt: now,
      deletedAt: null,
    };
    await this.tryCarrier(provider, sender, secret);
    await this.store.createSender(sender);
    this.registry.invalidate(orgId, sender.id);
    return this.present(sender);
  }

  async list(orgId: string): Promise<SenderView[]> {
    return (await this.store.listSenders(orgId)).map((s) => this.present(s));
  }

  async get(orgId: string, id: string): Promise<SenderView> {
    return this.present(await this.find(orgId, id));
  }

  /** Changes settings; `config` fields given replace those stored (a secret given is re-sealed: rotation). */
  async update(orgId: string, id: string, patch: SenderPatch): Promise<SenderView> {
    const current = await this.find(orgId, id);
    const provider = this.provider(current.provider);
    const opened = this.registry.open(current);
    let plain = current.config;
    let secret: Record<string, unknown> = Object.fromEntries(
      provider.secretFields.filter((f) => opened.config[f] !== undefined).map((f) => [f, opened.config[f]]),
    );
    if (patch.config) {
      const merged = this.checkConfig(provider, { ...opened.config, ...patch.config });
      ({ plain, secret } = this.split(provider, merged));
    }
    const now = Math.max(this.clock.now(), current.updatedAt + 1);
    const next: StoredSender = {
      ...current,
      config: plain,
      sealedSecrets: Object.keys(secret).length > 0 ? this.secrets.seal(JSON.stringify(secret)) : null,
      ...(patch.name !== undefined ? { name: patch.name } : {}),
      ...(patch.channels !== undefined ? { channels: this.channels(provider, patch.channels) } : {}),
      ...(patch.from !== undefined ? { from: patch.from } : {}),
      ...(patch.identities !== undefined ? { identities: patch.identities } : {}),
      ...(patch.countries !== undefined ? { countries: normalizeCountries(patch.countries) } : {}),
      ...(patch.priority !== undefined ? { priority: patch.priority } : {}),
      ...(patch.rateLimitPerSecond !== undefined ? { rateLimitPerSecond: patch.rateLimitPerSecond } : {}),
      ...(patch.accountRateLimitPerSecond !== undefined
        ? { accountRateLimitPerSecond: patch.accountRateLimitPerSecond }
        : {}),
      ...(patch.costPerMessage !== undefined ? { costPerMessage: patch.costPerMessage } : {}),
      ...(patch.enabled !== undefined ? { enabled: patch.enabled } : {}),
      updatedAt: now,
    };
    if (patch.config) await this.tryCarrier(provider, next, secret);
    await this.store.updateSender(next);
    this.registry.invalidate(orgId, id);
    return this.present(next);
  }

  /** Removes a sender from routing; its id stays valid for callbacks about messages it already sent. */
  async remove(orgId: string, id: string): Promise<void> {
    const current = await this.find(orgId, id);
    const now = Math.max(this.clock.now(), current.updatedAt + 1);
    await this.store.updateSender({ ...current, enabled: false, deletedAt: now, updatedAt: now });
    this.registry.invalidate(orgId, id);
  }

  private async find(orgId: string, id: string): Promise<StoredSender> {
    const s = await this.store.getSender(id);
    if (!s || s.orgId !== orgId || s.deletedAt !== null) {
      throw new NotFoundError('sender_not_found', `no sender '${id}'`);
    }
    return s;
  }

  private provider(id: string): ProviderDefinition {
    const p = this.registry.providers.get(id);
    if (!p) {
      const known = [...this.registry.providers.keys()].join(', ');
      throw new ValidationError('unknown_provider', `provider '${id}' is not supported; one of: ${known}`, {
        field: 'provider',
      });
    }
    return p;
  }

  private channels(provider: ProviderDefinition, channels: string[]): Channel[] {
    const out: Channel[] = [];
    channels.forEach((c, i) => {
      if (!isChannel(c) || !provider.channels.includes(c)) {
        throw new ValidationError(
          'channel_not_supported',
          `provider '${provider.id}' does not carry channel '${c}'; it carries: ${provider.channels.join(', ')}`,
          { field: `channels[${i}]` },
        );
      }
      if (!out.includes(c)) out.push(c);
    });
    if (out.length === 0)
      throw new ValidationError('missing_field', "'channels' must name at least one channel", { field: 'channels' });
    return out;
  }

  private checkConfig(provider: ProviderDefinition, config: Record<string, unknown>): Record<string, unknown> {
    let checker = this.checkers.get(provider.id);
    if (!checker) {
      checker = compileChecker(provider.configSchema);
      this.checkers.set(provider.id, checker);
    }
    return checker.check(config, 'config') as Record<string, unknown>;
  }

  private split(
    provider: ProviderDefinition,
    config: Record<string, unknown>,
  ): { plain: Record<string, unknown>; secret: Record<string, unknown> } {
    const plain: Record<string, unknown> = {};
    const secret: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(config)) {
      if (provider.secretFields.includes(k)) secret[k] = v;
      else plain[k] = v;
    }
    return { plain, secret };
  }

  /** Builds the carrier once, so a config its adapter refuses is a 400 now rather than failed sends later. */
  private async tryCarrier(
    provider: ProviderDefinition,
    sender: StoredSender,
    secret: Record<string, unknown>,
  ): Promise<void> {
    const carrier = provider.create(
      { ...sender, config: { ...sender.config, ...secret } },
      { webhookUrl: this.registry.webhookUrl(sender) },
    );
    await carrier.close?.();
  }

  private present(s: StoredSender): SenderView {
    const provider = this.registry.providers.get(s.provider);
    const secretNames = s.sealedSecrets
      ? Object.keys(JSON.parse(this.secrets.open(s.sealedSecrets)) as Record<string, unknown>)
      : (provider?.secretFields ?? []).filter((f) => s.config[f] !== undefined);
    const config = Object.fromEntries(
      Object.entries(s.config).filter(([k]) => !(provider?.secretFields ?? []).includes(k)),
    );
    return {
      id: s.id,
      name: s.name ?? null,
      provider: s.provider,
      channels: s.channels,
      from: s.from,
      identities: s.identities ?? [],
      countries: s.countries ?? [],
      priority: s.priority,
      rateLimitPerSecond: s.rateLimitPerSecond ?? null,
      accountRateLimitPerSecond: s.accountRateLimitPerSecond ?? null,
      costPerMessage: s.costPerMessage ?? null,
      enabled: s.enabled !== false,
      config,
      secrets: secretNames.sort(),
      webhookUrl: this.registry.webhookUrl(s),
      createdAt: new Date(s.createdAt).toISOString(),
      updatedAt: new Date(s.updatedAt).toISOString(),
    };
  }
}

function normalizeCountries(countries: string[] | undefined): string[] {
  return [...new Set((countries ?? []).map((c) => c.toUpperCase()))];
}
