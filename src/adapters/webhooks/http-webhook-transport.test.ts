import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HttpWebhookTransport } from './http-webhook-transport.ts';

type Handler = (req: IncomingMessage, body: string, res: ServerResponse) => void;

describe('HttpWebhookTransport', () => {
  let server: Server;
  let port = 0;
  let handler: Handler = (_req, _body, res) => res.end('ok');
  const received: { headers: IncomingMessage['headers']; body: string }[] = [];
  const open = new HttpWebhookTransport({ allowPrivate: true, timeoutMs: 300 });
  const guarded = new HttpWebhookTransport({ allowPrivate: false, timeoutMs: 300 });

  beforeAll(async () => {
    server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        received.push({ headers: req.headers, body });
        handler(req, body, res);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(async () => {
    await open.close();
    await guarded.close();
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  it('posts the body with the given headers as JSON and reports the answer', async () => {
    handler = (_req, _body, res) => res.writeHead(503, { 'retry-after': '7' }).end('try later');
    const r = await open.post(`http://127.0.0.1:${port}/hook`, { 'webhook-id': 'whe_1' }, '{"a":1}');
    expect(r).toMatchObject({ statusCode: 503, retryAfter: '7', body: 'try later', error: null });
    expect(r.latencyMs).toBeGreaterThan(0);
    const last = received.at(-1);
    expect(last?.body).toBe('{"a":1}');
    expect(last?.headers['webhook-id']).toBe('whe_1');
    expect(last?.headers['content-type']).toBe('application/json');
  });

  it('keeps 1 KB of a long answer and stops reading an endless one', async () => {
    handler = (_req, _body, res) => res.end('é'.repeat(4000));
    const long = await open.post(`http://127.0.0.1:${port}/`, {}, '{}');
    expect(long.statusCode).toBe(200);
    expect(Buffer.byteLength(long.body ?? '')).toBeLessThanOrEqual(1024);
    expect(long.body).toMatch(/^é+$/);
    handler = (_req, _body, res) => {
      res.writeHead(200);
      const chunk = Buffer.alloc(16 * 1024, 120);
      const pump = () => {
        while (!res.destroyed && res.write(chunk));
        if (!res.destroyed) res.once('drain', pump);
      };
      pump();
    };
    const endless = await open.post(`http://127.0.0.1:${port}/`, {}, '{}');
    expect(endless.statusCode).toBe(200);
    expect(endless.body).toHaveLength(1024);
    expect(endless.latencyMs).toBeLessThan(300);
  });

  it('times out a receiver that does not answer', async () => {
    handler = () => undefined;
    const t0 = performance.now();
    const r = await open.post(`http://127.0.0.1:${port}/slow`, {}, '{}');
    expect(r).toMatchObject({ statusCode: null, error: 'timed out' });
    expect(performance.now() - t0).toBeLessThan(1500);
  });

  it('reports a refused connection as an error, not an exception', async () => {
    const r = await open.post('http://127.0.0.1:1/', {}, '{}');
    expect(r.statusCode).toBeNull();
    expect(r.error).toMatch(/ECONNREFUSED/);
  });

  it('refuses non-http schemes and refused literal addresses at once', () => {
    expect(guarded.refusal('ftp://example.com/')).toBe('must use http or https');
    expect(guarded.refusal('not a url')).toBe('is not a valid URL');
    expect(guarded.refusal('http://127.0.0.1:8080/')).toMatch(/loopback/);
    expect(guarded.refusal('http://[::1]/')).toMatch(/loopback/);
    expect(guarded.refusal('http://169.254.169.254/latest/meta-data')).toMatch(/linkLocal/);
    expect(guarded.refusal('http://10.0.0.8/')).toMatch(/private/);
    expect(guarded.refusal('https://example.com/hooks')).toBeUndefined();
    expect(guarded.refusal('http://localhost:8080/')).toBeUndefined();
    expect(open.refusal('http://127.0.0.1:8080/')).toBeUndefined();
  });

  it('refuses, at connect time, a name that resolves to a loopback address', async () => {
    handler = (_req, _body, res) => res.end('ok');
    const before = received.length;
    const r = await guarded.post(`http://localhost:${port}/hook`, {}, '{}');
    expect(r.statusCode).toBeNull();
    expect(r.error).toMatch(/localhost resolves to .* loopback address/);
    const literal = await guarded.post(`http://127.0.0.1:${port}/hook`, {}, '{}');
    expect(literal.error).toMatch(/loopback/);
    expect(received.length).toBe(before);
    // The same request is let through when private addresses are allowed.
    expect((await open.post(`http://localhost:${port}/hook`, {}, '{}')).statusCode).toBe(200);
  });
});
