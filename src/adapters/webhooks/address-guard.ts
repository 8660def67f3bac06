/**
 * The SSRF guard of outbound webhooks: which network addresses a customer's URL may reach. Only public unicast
 * addresses may: loopback, private (RFC 1918), link-local (cloud metadata services live there), unique-local,
 * carrier-grade NAT, multicast, broadcast, unspecified and reserved ranges are refused, and so is an IPv6 address
 * that embeds an IPv4 one (mapped, 6to4, Teredo, NAT64), which could lead back to a refused IPv4 range.
 *
 * The check runs where the connection is made (`guardedLookup` resolves the name and refuses it when any address
 * is refused), so a name that resolves to a public address when the endpoint is saved and to an internal one later
 * (DNS rebinding) is still refused; literal addresses are also checked when an endpoint is saved.
 */
import { lookup as dnsLookup, type LookupAddress, type LookupOptions } from 'node:dns';
import { isIP } from 'node:net';
import ipaddr from 'ipaddr.js';
import { Agent, buildConnector } from 'undici';

/** The range that refuses `address` (e.g. `loopback`, `private`), or undefined when it is a public unicast one. */
export function refusedRange(address: string): string | undefined {
  const bare = address.startsWith('[') && address.endsWith(']') ? address.slice(1, -1) : address;
  if (!ipaddr.isValid(bare)) return 'invalid';
  const parsed = ipaddr.parse(bare);
  const range = parsed.range();
  if (parsed.kind() === 'ipv6' && range === 'ipv4Mapped') {
    return refusedRange((parsed as ipaddr.IPv6).toIPv4Address().toString());
  }
  return range === 'unicast' ? undefined : range;
}

/** True when `host` (a URL's hostname) is an IP address literal rather than a name. */
export function isAddressLiteral(host: string): boolean {
  const bare = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  return ipaddr.isValid(bare) && (bare.includes(':') || ipaddr.IPv4.isValidFourPartDecimal(bare));
}

/** What a guard protects, named in its refusals: what may not go there, and the setting that allows it. */
export interface GuardPurpose {
  what: string;
  setting: string;
}

export const WEBHOOK_GUARD: GuardPurpose = {
  what: 'webhooks may not be sent there',
  setting: 'OMNI_WEBHOOK_ALLOW_PRIVATE',
};

/** The error a refused address gives (a connection error to undici: the attempt is logged and retried). */
export class RefusedAddressError extends Error {
  readonly code = 'EWEBHOOKADDRESS';
  constructor(
    host: string,
    address: string,
    readonly range: string,
    purpose: GuardPurpose = WEBHOOK_GUARD,
  ) {
    const hint = `${purpose.what} (${purpose.setting}=true allows it)`;
    super(
      host === address
        ? `${address} is a ${range} address; ${hint}`
        : `${host} resolves to ${address}, a ${range} address; ${hint}`,
    );
    this.name = 'RefusedAddressError';
  }
}

/** Throws RefusedAddressError when `url`'s host is an address literal in a refused range. */
export function refuseAddressLiteral(url: URL, purpose: GuardPurpose = WEBHOOK_GUARD): void {
  if (!isAddressLiteral(url.hostname)) return;
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  const range = refusedRange(host);
  if (range) throw new RefusedAddressError(host, host, range, purpose);
}

export interface GuardedAgentOptions {
  /** Reach loopback and private networks too (development, tests, trusted networks): no guard. */
  allowPrivate: boolean;
  purpose?: GuardPurpose;
  connections?: number;
  connectTimeoutMs?: number;
  headersTimeout?: number;
  bodyTimeout?: number;
}

/**
 * An undici Agent whose connections go only to public unicast addresses (unless `allowPrivate`): names through
 * `guardedLookup`, and literal addresses, which never go through a lookup, checked at connect time as well.
 */
export function guardedAgent(opts: GuardedAgentOptions): Agent {
  return new Agent({
    connections: opts.connections ?? 16,
    keepAliveTimeout: 10_000,
    ...(opts.headersTimeout !== undefined ? { headersTimeout: opts.headersTimeout } : {}),
    ...(opts.bodyTimeout !== undefined ? { bodyTimeout: opts.bodyTimeout } : {}),
    connect: guardedConnector(opts),
  });
}

/** The `connect` of an undici Agent or Pool that reaches only public unicast addresses (unless `allowPrivate`). */
export function guardedConnector(
  opts: Pick<GuardedAgentOptions, 'allowPrivate' | 'purpose' | 'connectTimeoutMs'>,
): buildConnector.connector {
  const purpose = opts.purpose ?? WEBHOOK_GUARD;
  const connect = buildConnector({
    ...(opts.connectTimeoutMs !== undefined ? { timeout: opts.connectTimeoutMs } : {}),
    ...(opts.allowPrivate ? {} : { lookup: guardedLookupFor(purpose) }),
  });
  return (options, callback) => {
    const host = options.hostname.replace(/^\[(.*)\]$/, '$1');
    const range = opts.allowPrivate || isIP(host) === 0 ? undefined : refusedRange(host);
    if (range) {
      callback(new RefusedAddressError(host, host, range, purpose), null);
      return;
    }
    connect(options, callback);
  };
}

/** The RefusedAddressError behind a failed request (undici may wrap it), if that is why it failed. */
export function refusalOf(err: unknown): RefusedAddressError | undefined {
  if (err instanceof RefusedAddressError) return err;
  const cause = (err as { cause?: unknown } | null)?.cause;
  return cause instanceof RefusedAddressError ? cause : undefined;
}

type LookupCallback = (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void;

/** A `lookup` for `net.connect` that refuses names resolving to a refused address (any of them). */
export const guardedLookup = guardedLookupFor(WEBHOOK_GUARD);

function guardedLookupFor(purpose: GuardPurpose) {
  return (hostname: string, options: LookupOptions, callback: LookupCallback): void =>
    dnsLookup(hostname, { ...options, all: true }, (err, addresses) => {
      if (err) {
        callback(err, []);
        return;
      }
      for (const a of addresses) {
        const range = refusedRange(a.address);
        if (range) {
          callback(new RefusedAddressError(hostname, a.address, range, purpose), []);
          return;
        }
      }
      const first = addresses[0];
      if (!first) {
        callback(Object.assign(new Error(`${hostname} has no address`), { code: 'ENOTFOUND' }), []);
        return;
      }
      if (options.all) callback(null, addresses);
      else callback(null, first.address, first.family);
    });
}
