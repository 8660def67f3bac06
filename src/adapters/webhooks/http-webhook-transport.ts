/**
 * Posts signed webhooks to customers' URLs with undici, through the SSRF guard (address-guard.ts) unless the
 * operator allows private addresses (OMNI_WEBHOOK_ALLOW_PRIVATE=true). Every request has one time-out for the whole
 * exchange (connect, headers, body); redirects are not followed; at most `maxResponseBytes` of an answer are read
 * (the rest is discarded with the connection) and its first `excerptBytes` kept for the delivery log.
 */
import { type Agent, request } from 'undici';
import type { WebhookResponse, WebhookTransport } from '../../ports/webhook-store.ts';
import { guardedAgent, isAddressLiteral, refusedRange } from './address-guard.ts';

export interface HttpWebhookTransportOptions {
  allowPrivate: boolean;
  timeoutMs: number;
  /** Most of an answer read (default 64 KB). */
  maxResponseBytes?: number;
  /** Kept for the delivery log (default 1 KB). */
  excerptBytes?: number;
  /** Connections per receiving origin (default 16). */
  connectionsPerOrigin?: number;
  userAgent?: string;
}

export class HttpWebhookTransport implements WebhookTransport {
  private readonly agent: Agent;
  private readonly maxResponseBytes: number;
  private readonly excerptBytes: number;
  private readonly userAgent: string;

  constructor(private readonly opts: HttpWebhookTransportOptions) {
    this.maxResponseBytes = opts.maxResponseBytes ?? 64 * 1024;
    this.excerptBytes = opts.excerptBytes ?? 1024;
    this.userAgent = opts.userAgent ?? 'Omnichannel-Webhooks/1';
    this.agent = guardedAgent({
      allowPrivate: opts.allowPrivate,
      connections: opts.connectionsPerOrigin ?? 16,
      connectTimeoutMs: opts.timeoutMs,
      // The request's own signal ends it at `timeoutMs`; these only back it up.
      headersTimeout: opts.timeoutMs + 1000,
      bodyTimeout: opts.timeoutMs + 1000,
    });
  }

  refusal(url: string): string | undefined {
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      return 'is not a valid URL';
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') return 'must use http or https';
    if (!this.opts.allowPrivate && isAddressLiteral(u.hostname)) {
      const range = refusedRange(u.hostname);
      if (range) return `points at a ${range} address, which webhooks may not reach`;
    }
    return undefined;
  }

  async post(url: string, headers: Record<string, string>, body: string): Promise<WebhookResponse> {
    const started = performance.now();
    const latency = () => performance.now() - started;
    const refused = this.refusal(url);
    if (refused) return { statusCode: null, retryAfter: null, body: null, latencyMs: 0, error: `the URL ${refused}` };
    const signal = AbortSignal.timeout(this.opts.timeoutMs);
    try {
      const res = await request(url, {
        method: 'POST',
        dispatcher: this.agent,
        signal,
        headers: { ...headers, 'content-type': 'application/json', 'user-agent': this.userAgent },
        body,
      });
      const excerpt = await this.readExcerpt(res.body);
      const retryAfter = res.headers['retry-after'];
      return {
        statusCode: res.statusCode,
        retryAfter: typeof retryAfter === 'string' ? retryAfter : null,
        body: excerpt,
        latencyMs: latency(),
        error: null,
      };
    } catch (err) {
      return { statusCode: null, retryAfter: null, body: null, latencyMs: latency(), error: describe(err, signal) };
    }
  }

  /** Reads up to `maxResponseBytes`, keeps the first `excerptBytes` as text; drops the rest with the connection. */
  private async readExcerpt(stream: AsyncIterable<Buffer> & { destroy(): void }): Promise<string | null> {
    const kept: Buffer[] = [];
    let keptBytes = 0;
    let read = 0;
    for await (const chunk of stream) {
      read += chunk.length;
      if (keptBytes < this.excerptBytes) {
        const part = chunk.subarray(0, this.excerptBytes - keptBytes);
        kept.push(part);
        keptBytes += part.length;
      }
      if (read >= this.maxResponseBytes) {
        stream.destroy();
        break;
      }
    }
    if (keptBytes === 0) return null;
    // A multi-byte character cut at the limit decodes as U+FFFD; drop it.
    return Buffer.concat(kept)
      .toString('utf8')
      .replace(/\uFFFD$/, '');
  }

  async close(): Promise<void> {
    await this.agent.close();
  }
}

const TIMEOUT_CODES = new Set([
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'ETIMEDOUT',
]);

function describe(err: unknown, signal: AbortSignal): string {
  const e = err as { message?: string; code?: string; cause?: { message?: string; code?: string } };
  if (signal.aborted || TIMEOUT_CODES.has(e.code ?? '') || TIMEOUT_CODES.has(e.cause?.code ?? '')) return 'timed out';
  const inner = e.cause?.message && e.cause.message !== e.message ? `: ${e.cause.message}` : '';
  const code = e.code ?? e.cause?.code;
  return `${e.message ?? String(err)}${inner}${code && !String(e.message).includes(code) ? ` (${code})` : ''}`;
}
