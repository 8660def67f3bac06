import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';

export interface HealthDeps {
  version: string;
  readiness(): Promise<Record<string, boolean>>;
  metrics(): Promise<{ contentType: string; body: string }>;
}

export function systemRoutes(app: FastifyInstance, deps: HealthDeps): void {
  app.get(
    '/health',
    {
      schema: {
        tags: ['system'],
        summary: 'Liveness',
        response: {
          200: Type.Object({
            status: Type.String(),
            version: Type.String(),
            timestamp: Type.String({ format: 'date-time' }),
          }),
        },
      },
    },
    async () => ({ status: 'ok', version: deps.version, timestamp: new Date().toISOString() }),
  );
  app.get(
    '/ready',
    { schema: { tags: ['system'], summary: 'Readiness: the database answers and the workers run' } },
    async (_request, reply) => {
      const checks = await deps.readiness();
      const ready = Object.values(checks).every(Boolean);
      reply.status(ready ? 200 : 503);
      return { status: ready ? 'ready' : 'not_ready', checks };
    },
  );
  app.get(
    '/metrics',
    { schema: { tags: ['system'], summary: 'Prometheus metrics', hide: false } },
    async (_request, reply) => {
      const m = await deps.metrics();
      reply.header('content-type', m.contentType);
      return m.body;
    },
  );
}
