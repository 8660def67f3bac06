import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AttachmentFetcher, type AttachmentResult } from './smtp-attachments.ts';

let server: Server;
let base = '';
let port = 0;
const hits = new Map<string, number>();
const png = Buffer.from('89504e470d0a1a0a', 'hex');

beforeAll(async () => {
  server = createServer((req, res) => {
    hits.set(req.url ?? '', (hits.get(req.url ?? '') ?? 0) + 1);
    if (req.url === '/logo.png') res.writeHead(200, { 'content-type': 'image/png' }).end(png);
    else if (req.url === '/moved') res.writeHead(302, { location: '/files/report%20q3.pdf' }).end();
    else if (req.url === '/files/report%20q3.pdf')
      res.writeHead(200, { 'content-type': 'application/octet-stream' }).end('pdf');
    else if (req.url === '/loop') res.writeHead(302, { location: '/loop' }).end();
    else if (req.url === '/busy') res.writeHead(503).end();
    else if (req.url?.startsWith('/half')) res.writeHead(200).end(Buffer.alloc(600));
    else if (req.url === '/big') res.writeHead(200, { 'content-length': '2048' }).end(Buffer.alloc(2048));
    else if (req.url === '/stream') {
      // No length announced: the cap applies while reading.
      res.writeHead(200, { 'transfer-encoding': 'chunked' });
      for (let i = 0; i < 8; i++) res.write(Buffer.alloc(256));
      res.end();
    } else res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const a = server.address();
  port = typeof a === 'object' && a ? a.port : 0;
  base = `http://127.0.0.1:${port}`;
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

const outcome = (r: AttachmentResult) =>
  r.ok ? 'ok' : `${r.failure.ok ? '' : r.failure.retryable}:${r.failure.ok ? '' : r.failure.error.code}`;

describe('AttachmentFetcher', () => {
  it('refuses loopback and private addresses by default, by literal and by name (SSRF guard)', async () => {
    const guarded = new AttachmentFetcher({ allowPrivate: false, timeoutMs: 2000 });
    try {
      for (const url of [`${base}/logo.png`, `http://localhost:${port}/logo.png`, 'http://169.254.169.254/latest/']) {
        const r = await guarded.fetch(url, new Map());
        expect(outcome(r), url).toBe('false:smtp_attachment_refused');
      }
      const r = await guarded.fetch(`http://10.1.2.3:${port}/x`, new Map());
      expect(r.ok ? '' : r.failure.ok ? '' : r.failure.error.message).toMatch(
        /private address.*OMNI_MESSAGE_URLS_ALLOW_PRIVATE/,
      );
      expect(hits.get('/logo.png') ?? 0).toBe(0);
    } finally {
      await guarded.close();
    }
  });

  it('fetches, follows redirects, names the file by the last URL and keeps a specific content type', async () => {
    const f = new AttachmentFetcher({ allowPrivate: true, timeoutMs: 2000 });
    try {
      const cache = new Map<string, Promise<AttachmentResult>>();
      const got = await f.fetchAll([`${base}/logo.png`, `${base}/moved`], cache);
      expect(got.ok).toBe(true);
      if (!got.ok) return;
      expect(got.attachments.map((a) => [a.filename, a.contentType, a.content.length])).toEqual([
        ['logo.png', 'image/png', png.length],
        ['report q3.pdf', undefined, 3],
      ]);
      // The same URL again in this call: not fetched twice.
      const before = hits.get('/logo.png');
      await f.fetch(`${base}/logo.png`, cache);
      expect(hits.get('/logo.png')).toBe(before);
    } finally {
      await f.close();
    }
  });

  it('classifies failures: missing for good, busy for now, redirect loops, too large (announced or streamed)', async () => {
    const f = new AttachmentFetcher({ allowPrivate: true, timeoutMs: 2000, maxBytes: 1024 });
    try {
      const results = await Promise.all(
        ['/missing', '/busy', '/loop', '/big', '/stream'].map((p) => f.fetch(base + p, new Map())),
      );
      expect(results.map(outcome)).toEqual([
        'false:smtp_attachment_fetch_failed',
        'true:smtp_attachment_fetch_failed',
        'false:smtp_attachment_fetch_failed',
        'false:smtp_attachment_too_large',
        'false:smtp_attachment_too_large',
      ]);
      // Each small enough alone, too large together.
      const one = await f.fetchAll([`${base}/half?1`], new Map());
      expect(one.ok).toBe(true);
      const both = await f.fetchAll([`${base}/half?1`, `${base}/half?2`], new Map());
      expect(both.ok ? 'ok' : outcome(both)).toBe('false:smtp_attachment_too_large');
      const closed = await f.fetch('http://127.0.0.1:9/nothing-listens', new Map());
      expect(outcome(closed)).toBe('true:smtp_attachment_fetch_failed');
    } finally {
      await f.close();
    }
  });
});
