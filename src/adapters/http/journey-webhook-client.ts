/**
 * The HTTP client of journeys' webhook steps: POSTs JSON with undici, each request under its step's time-out, with
 * an `Idempotency-Key` that is the same on every attempt of one step visit. Customers' URLs go through the SSRF
 * guard of outbound webhooks (../webhooks/address-guard.ts) unless private addresses are allowed; redirects are not
 * followed; the answer's body is discarded (only its status matters).
 */
import { type Agent, request } from 'undici';
import type { JourneyWebhookClient, JourneyWebhookRequest } from '../../ports/journey-deps.ts';
import { guardedAgent, refuseAddressLiteral } from '../webhooks/address-guard.ts';

export interface JourneyWebhookClientOptions {
  /** Let webhook steps reach loopback and private networks (development, tests). */
  allowPrivate: boolean;
  userAgent?: string;
}

export class HttpJourneyWebhookClient implements JourneyWebhookClient {
  private readonly agent: Agent;
  private readonly userAgent: string;

  constructor(private readonly opts: JourneyWebhookClientOptions) {
    this.userAgent = opts.userAgent ?? 'Omnichannel-Journeys/1';
    this.agent = guardedAgent({ allowPrivate: opts.allowPrivate, connections: 16 });
  }

  async post(r: JourneyWebhookRequest): Promise<{ status: number }> {
    if (!this.opts.allowPrivate) refuseAddressLiteral(new URL(r.url));
    const res = await request(r.url, {
      method: 'POST',
      dispatcher: this.agent,
      signal: AbortSignal.timeout(r.timeoutMs),
      headersTimeout: r.timeoutMs,
      bodyTimeout: r.timeoutMs,
      headers: {
        ...r.headers,
        'content-type': 'application/json',
        'user-agent': this.userAgent,
        'idempotency-key': r.idempotencyKey,
      },
      body: JSON.stringify(r.body),
    });
    // Only the status matters; drop the body with the connection's buffer.
    await res.body.dump({ limit: 64 * 1024 }).catch(() => undefined);
    return { status: res.statusCode };
  }

  async close(): Promise<void> {
    await this.agent.close();
  }
}
