/**
 * Carrier webhooks: `POST /webhooks/{provider}/{senderId}`. The raw body is kept (signatures are computed over
 * the exact bytes), the adapter verifies and parses it, and the events are stored before we answer 200.
 */
import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import type { CarrierEvents } from '../../services/carrier-events.ts';

export function webhookRoutes(app: FastifyInstance, deps: { carrierEvents: CarrierEvents }): void {
  app.register(async (scope) => {
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: 8 * 1024 * 1024 }, (_req, body, done) =>
      done(null, body),
    );
    scope.post<{ Params: { provider: string; senderId: string } }>(
      '/webhooks/:provider/:senderId',
      {
        schema: {
          tags: ['webhooks'],
          summary: 'Carrier status callbacks and inbound messages (signed by the carrier)',
          params: Type.Object({ provider: Type.String({ maxLength: 40 }), senderId: Type.String({ maxLength: 64 }) }),
        },
      },
      async (request) => {
        const rawBody = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
        const stored = await deps.carrierEvents.receive(request.params.provider, request.params.senderId, {
          method: request.method,
          url: request.url,
          headers: request.headers,
          rawBody,
        });
        return { received: stored };
      },
    );
  });
}
