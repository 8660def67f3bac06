import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import type { MessageQueries } from '../../services/message-queries.ts';
import { errorResponses } from '../schemas.ts';

export function deadLetterRoutes(app: FastifyInstance, deps: { queries: MessageQueries }): void {
  app.get<{ Querystring: { limit?: number; cursor?: string } }>(
    '/v1/dead-letters',
    {
      schema: {
        tags: ['operations'],
        summary: 'Jobs that exhausted their attempts (newest first)',
        querystring: Type.Object(
          {
            limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500 })),
            cursor: Type.Optional(Type.String({ maxLength: 64 })),
          },
          { additionalProperties: false },
        ),
        response: {
          200: Type.Object({
            items: Type.Array(
              Type.Object({
                id: Type.String(),
                queue: Type.String(),
                messageId: Type.Union([Type.String(), Type.Null()]),
                payload: Type.String(),
                attempts: Type.Integer(),
                error: Type.String(),
                createdAt: Type.String({ format: 'date-time' }),
              }),
            ),
            nextCursor: Type.Union([Type.String(), Type.Null()]),
          }),
          ...errorResponses,
        },
      },
    },
    async (request) => {
      const page = await deps.queries.deadLetters(request.auth.orgId, request.query.limit ?? 50, request.query.cursor);
      return {
        items: page.items.map((d) => ({
          id: d.id,
          queue: d.queue,
          messageId: d.queue === 'send' ? d.payload : null,
          payload: d.payload,
          attempts: d.attempts,
          error: d.error,
          createdAt: new Date(d.createdAt).toISOString(),
        })),
        nextCursor: page.nextCursor,
      };
    },
  );
}
