import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HttpJourneyWebhookClient } from './journey-webhook-client.ts';

describe('HttpJourneyWebhookClient', () => {
  let server: Server;
  let url = '';
  let answer: (req: IncomingMessage, res: ServerResponse) => void = (_req, res) => res.end();
  const received: { headers: IncomingMessage['headers']; body: string }[] = [];
  const open = new HttpJourneyWebhookClient({ allowPrivate: true });
  const guarded = new HttpJourneyWebhookClient({ allowPrivate: false });

  beforeAll(async () => {
    server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        received.push({ headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
        answer(req, res);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
  });
  afterAll(async () => {
    await open.close();
    await guarded.close();
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  const request = (over: Partial<Parameters<HttpJourneyWebhookClient['post']>[0]> = {}) => ({
    url,
    headers: { 'x-tenant': 'acme' },
    body: { runId: 'jrun_1', stepId: 'hook' },
    timeoutMs: 2000,
    idempotencyKey: 'jrun_1:hook:1',
    ...over,
  });

  it('posts JSON with the idempotency key and reports the status', async () => {
    answer = (_req, res) => res.writeHead(503).end('busy');
    expect(await open.post(request())).toEqual({ status: 503 });
    const last = received.at(-1);
    expect(JSON.parse(last?.body ?? '')).toEqual({ runId: 'jrun_1', stepId: 'hook' });
    expect(last?.headers).toMatchObject({
      'content-type': 'application/json',
      'idempotency-key': 'jrun_1:hook:1',
      'x-tenant': 'acme',
    });
  });

  it('gives up after the time-out', async () => {
    answer = (_req, res) => setTimeout(() => res.end(), 2000).unref();
    await expect(open.post(request({ timeoutMs: 100 }))).rejects.toThrow();
  });

  it('refuses private addresses unless allowed', async () => {
    answer = (_req, res) => res.end();
    const before = received.length;
    await expect(guarded.post(request())).rejects.toThrow(/loopback/);
    await expect(guarded.post(request({ url: url.replace('127.0.0.1', 'localhost') }))).rejects.toThrow(/loopback/);
    expect(received.length).toBe(before);
  });
});
