/**
 * A stand-in for our webhook endpoint in carrier tests: a plain HTTP server that records every request an
 * emulator posts (method, path and query, headers, raw bytes) and answers 200, so a test can hand the
 * recorded requests to an adapter's `parseWebhook` exactly as the product's route would.
 */
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { WebhookRequest } from '../../../src/ports/carrier.ts';

export interface RecordedWebhook extends WebhookRequest {
  headers: IncomingHttpHeaders;
  receivedAt: number;
}

export class WebhookReceiver {
  readonly requests: RecordedWebhook[] = [];
  private server: Server | undefined;
  private waiters: { predicate: (r: RecordedWebhook[]) => boolean; resolve: () => void }[] = [];
  /** HTTP status the receiver answers with (tests set 500 to see an emulator retry). */
  answerStatus = 200;
  /** Base URL, e.g. `http://127.0.0.1:40123`. */
  url = '';

  async start(): Promise<this> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        this.requests.push({
          method: req.method ?? 'GET',
          url: req.url ?? '/',
          headers: req.headers,
          rawBody: Buffer.concat(chunks),
          receivedAt: Date.now(),
        });
        res.writeHead(this.answerStatus, { 'content-type': 'text/plain' }).end();
        for (const w of [...this.waiters]) {
          if (w.predicate(this.requests)) {
            this.waiters.splice(this.waiters.indexOf(w), 1);
            w.resolve();
          }
        }
      });
    });
    await new Promise<void>((resolve) => this.server?.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  /** Resolves once the recorded requests satisfy `predicate`; rejects after `timeoutMs`. */
  waitFor(predicate: (r: RecordedWebhook[]) => boolean, timeoutMs = 10_000): Promise<void> {
    if (predicate(this.requests)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const waiter = { predicate, resolve };
      this.waiters.push(waiter);
      setTimeout(() => {
        const i = this.waiters.indexOf(waiter);
        if (i >= 0) {
          this.waiters.splice(i, 1);
          reject(
            new Error(`webhook receiver: condition not met within ${timeoutMs} ms (${this.requests.length} requests)`),
          );
        }
      }, timeoutMs).unref();
    });
  }

  clear(): void {
    this.requests.length = 0;
  }

  async close(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}
