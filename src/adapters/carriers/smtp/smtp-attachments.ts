/**
 * An email's attachments come from http(s) URLs (`options.mediaUrls`), which the worker fetches itself. Those URLs
 * are the API caller's, so they go through the SSRF guard of outbound webhooks (../../webhooks/address-guard.ts)
 * unless the operator allows private addresses (OMNI_MESSAGE_URLS_ALLOW_PRIVATE=true): otherwise anyone with an API key
 * could have a worker read the cloud metadata service or an internal admin page and mail it to themselves.
 * Redirects are followed (a few, each hop through the guard); an attachment's size is capped while it is read.
 * One send call fetches each distinct URL once, however many of its messages attach it.
 */
import { type Agent, request } from 'undici';
import type { SendResult } from '../../../ports/carrier.ts';
import { type GuardPurpose, guardedAgent, refusalOf } from '../../webhooks/address-guard.ts';
import { errorReason, permanentFailure, retryableFailure } from '../carrier-support.ts';

export const ATTACHMENT_GUARD: GuardPurpose = {
  what: 'email attachments may not be fetched from there',
  setting: 'OMNI_MESSAGE_URLS_ALLOW_PRIVATE',
};

/** The attachments of one message together (what most mail services accept). */
export const MAX_ATTACHMENT_BYTES = 25 * 1024 * 1024;
const MAX_REDIRECTS = 3;

export interface FetchedAttachment {
  filename: string;
  /** As the server labelled it; absent (or generic) leaves it to the filename's extension. */
  contentType?: string;
  content: Buffer;
}

export type AttachmentResult = { ok: true; attachment: FetchedAttachment } | { ok: false; failure: SendResult };

export interface AttachmentFetcherOptions {
  allowPrivate: boolean;
  timeoutMs: number;
  maxBytes?: number;
}

export class AttachmentFetcher {
  private agent: Agent | undefined;
  private readonly maxBytes: number;

  constructor(private readonly opts: AttachmentFetcherOptions) {
    this.maxBytes = opts.maxBytes ?? MAX_ATTACHMENT_BYTES;
  }

  /** Fetches each URL at most once for this call (`cache` is the call's). */
  fetch(url: string, cache: Map<string, Promise<AttachmentResult>>): Promise<AttachmentResult> {
    let pending = cache.get(url);
    if (!pending) {
      pending = this.fetchOne(url);
      cache.set(url, pending);
    }
    return pending;
  }

  /** The attachments of one message, or the failure of the first that cannot be had. */
  async fetchAll(
    urls: readonly string[],
    cache: Map<string, Promise<AttachmentResult>>,
  ): Promise<{ ok: true; attachments: FetchedAttachment[] } | { ok: false; failure: SendResult }> {
    const results = await Promise.all(urls.map((u) => this.fetch(u, cache)));
    const attachments: FetchedAttachment[] = [];
    let total = 0;
    for (const r of results) {
      if (!r.ok) return r;
      total += r.attachment.content.length;
      if (total > this.maxBytes) return { ok: false, failure: tooLarge(this.maxBytes) };
      attachments.push(r.attachment);
    }
    return { ok: true, attachments };
  }

  async close(): Promise<void> {
    await this.agent?.close();
  }

  private async fetchOne(original: string): Promise<AttachmentResult> {
    this.agent ??= guardedAgent({ allowPrivate: this.opts.allowPrivate, purpose: ATTACHMENT_GUARD, connections: 8 });
    let url = new URL(original);
    try {
      for (let hop = 0; ; hop++) {
        if (url.protocol !== 'http:' && url.protocol !== 'https:') {
          return fail(
            permanentFailure('smtp_invalid_attachment', `attachment '${original}' redirects to ${url.protocol}`),
          );
        }
        const res = await request(url, {
          method: 'GET',
          dispatcher: this.agent,
          signal: AbortSignal.timeout(this.opts.timeoutMs),
          headers: { 'user-agent': 'Omnichannel-Mail/1', accept: '*/*' },
        });
        const location = res.headers.location;
        if (res.statusCode >= 300 && res.statusCode < 400 && typeof location === 'string') {
          await res.body.dump().catch(() => undefined);
          if (hop >= MAX_REDIRECTS) {
            return fail(
              permanentFailure('smtp_attachment_fetch_failed', `attachment '${original}' redirects too often`),
            );
          }
          url = new URL(location, url);
          continue;
        }
        if (res.statusCode < 200 || res.statusCode >= 300) {
          await res.body.dump().catch(() => undefined);
          const message = `fetching attachment '${original}' answered ${res.statusCode}`;
          // Gone or forbidden stays so; a server error, a time-out or throttling may pass.
          const passing = res.statusCode >= 500 || res.statusCode === 408 || res.statusCode === 429;
          return fail(
            passing
              ? retryableFailure('smtp_attachment_fetch_failed', message)
              : permanentFailure('smtp_attachment_fetch_failed', message),
          );
        }
        const declared = Number(res.headers['content-length']);
        if (Number.isFinite(declared) && declared > this.maxBytes) {
          await res.body.dump().catch(() => undefined);
          return fail(tooLarge(this.maxBytes));
        }
        const chunks: Buffer[] = [];
        let size = 0;
        for await (const chunk of res.body) {
          size += (chunk as Buffer).length;
          if (size > this.maxBytes) {
            res.body.destroy();
            return fail(tooLarge(this.maxBytes));
          }
          chunks.push(chunk as Buffer);
        }
        const type = typeof res.headers['content-type'] === 'string' ? res.headers['content-type'] : undefined;
        const generic = !type || /^application\/octet-stream\b/i.test(type);
        return {
          ok: true,
          attachment: {
            filename: filenameOf(url),
            ...(generic ? {} : { contentType: type }),
            content: Buffer.concat(chunks),
          },
        };
      }
    } catch (err) {
      const refused = refusalOf(err);
      if (refused) {
        return fail(permanentFailure('smtp_attachment_refused', `attachment '${original}': ${refused.message}`));
      }
      return fail(
        retryableFailure(
          'smtp_attachment_fetch_failed',
          `fetching attachment '${original}' failed: ${errorReason(err)}`,
        ),
      );
    }
  }
}

function fail(failure: SendResult): AttachmentResult {
  return { ok: false, failure };
}

function tooLarge(max: number): SendResult {
  return permanentFailure(
    'smtp_attachment_too_large',
    `attachments may total at most ${Math.floor(max / (1024 * 1024))} MB per message`,
  );
}

/** The last segment of the URL's path, as nodemailer named URL attachments (`attachment` when there is none). */
function filenameOf(url: URL): string {
  const last = url.pathname.split('/').filter(Boolean).at(-1);
  if (!last) return 'attachment';
  try {
    return decodeURIComponent(last);
  } catch {
    return last;
  }
}
