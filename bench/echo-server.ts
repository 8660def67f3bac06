/**
 * The ceiling: a bare Fastify server with one `POST /echo` route (and `GET /health` so the bench can wait for it).
 * Run as a child process of bench/run-all.ts: `node --import tsx bench/echo-server.ts`, port from ECHO_PORT.
 */
import Fastify from 'fastify';

const port = Number(process.env.ECHO_PORT ?? 3999);
const host = process.env.ECHO_HOST ?? '127.0.0.1';

const app = Fastify({ logger: false });
app.post('/echo', async () => ({ ok: true }));
app.get('/health', async () => ({ status: 'ok' }));

await app.listen({ port, host });
console.log(`echo listening on http://${host}:${port}`);

const stop = () => {
  app.close().then(
    () => process.exit(0),
    () => process.exit(1),
  );
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
