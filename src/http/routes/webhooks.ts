/**
 * Carrier webhooks: `POST /webhooks/{provider}/{senderId}` (and `GET` for handshakes and GET-style callbacks).
 * The raw body is kept (signatures are computed over the exact bytes), the adapter verifies and parses it, and the
 * events are stored (with a job that applies them later) before we answer: the answer never waits on that work.
 */
import { Type } from '@sinclair/typebox';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { CarrierEvents } from '../../services/carrier-events.ts';

export function webhookRoutes(app: FastifyInstance, deps: { carrierEvents: CarrierEvents }): void {
  app.register(async (scope) => {
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: 8 * 1024 * 1024 }, (_req, body, done) =>
      done(null, body),
    );
    const params = Type.Object({ provider: Type.String({ maxLength: 40 }), senderId: Type.String({ maxLength: 64 }) });
    const handler =
      (get: boolean) =>
      async (request: FastifyRequest<{ Params: { provider: string; senderId: string } }>, reply: FastifyReply) => {
        const rawBody = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
        const webhook = { method: request.method, url: request.url, headers: request.headers, rawBody };
        const { provider, senderId } = request.params;
        const result = get
          ? await deps.carrierEvents.receiveGet(provider, senderId, webhook)
          : await deps.carrierEvents.receive(provider, senderId, webhook);
        if (result.answer) {
          reply.status(result.answer.status).type(result.answer.contentType);
          return result.answer.body;
        }
        return { received: result.stored };
      };
    scope.post<{ Params: { provider: string; senderId: string } }>(
      '/webhooks/:provider/:senderId',
      {
        schema: {
          tags: ['webhooks'],
          summary: 'Carrier status callbacks and inbound messages (signed by the carrier)',
          params,
        },
      },
      handler(false),
    );
    scope.get<{ Params: { provider: string; senderId: string } }>(
      '/webhooks/:provider/:senderId',
      {
        schema: {
          tags: ['webhooks'],
          summary: "A provider's subscription handshake (WhatsApp hub.challenge) or a callback delivered as GET",
          params,
        },
      },
      handler(true),
    );
  });
}
