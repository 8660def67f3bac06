import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { CHANNELS } from '../../domain/channels.ts';
import { ValidationError } from '../../domain/errors.ts';
import { STATUSES } from '../../domain/message-status.ts';
import { isSegmentedChannel, segmentSms } from '../../domain/sms-encoding.ts';
import { type AcceptMessages, MAX_BATCH } from '../../services/accept-messages.ts';
import type { MessageCommands } from '../../services/message-commands.ts';
import { checkMessageInput, type MessageInput, MessageInputSchema } from '../../services/message-input.ts';
import type { MessageQueries } from '../../services/message-queries.ts';
import { presentMessage } from '../present.ts';
import { AcceptedSchema, errorResponses, MessageSchema } from '../schemas.ts';

const IdParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 64 }) });
const IdempotencyHeaders = Type.Object({
  'idempotency-key': Type.Optional(
    Type.String({ minLength: 1, maxLength: 255, description: 'Makes a retried request safe' }),
  ),
});

const ListQuery = Type.Object(
  {
    status: Type.Optional(Type.String({ enum: [...STATUSES] })),
    channel: Type.Optional(Type.String({ enum: [...CHANNELS] })),
    direction: Type.Optional(Type.String({ enum: ['outbound', 'inbound'] })),
    createdFrom: Type.Optional(Type.String({ description: 'ISO-8601; inclusive' })),
    createdTo: Type.Optional(Type.String({ description: 'ISO-8601; exclusive' })),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500, default: 50 })),
    cursor: Type.Optional(Type.String({ maxLength: 64, description: 'nextCursor of the previous page' })),
  },
  { additionalProperties: false },
);

function parseTime(value: string | undefined, field: string): number | undefined {
  if (value === undefined) return undefined;
  const t = Date.parse(value);
  if (Number.isNaN(t)) throw new ValidationError('invalid_date', `'${field}' must be an ISO-8601 date-time`, { field });
  return t;
}

export function messageRoutes(
  app: FastifyInstance,
  deps: { accept: AcceptMessages; queries: MessageQueries; commands: MessageCommands; now: () => number },
): void {
  // Bodies are JSON only: without this, Fastify's default text/plain parser hands a string to the schema (a 400).
  app.removeContentTypeParser('text/plain');
  app.post<{ Body: MessageInput; Headers: { 'idempotency-key'?: string } }>(
    '/v1/messages',
    {
      schema: {
        tags: ['messages'],
        summary: 'Send a message',
        body: MessageInputSchema,
        headers: IdempotencyHeaders,
        response: { 202: AcceptedSchema, ...errorResponses, 409: Type.Ref('Error') },
      },
    },
    async (request, reply) => {
      const result = await deps.accept.acceptOne(request.auth.orgId, request.body, request.headers['idempotency-key']);
      reply.status(202);
      return result;
    },
  );

  app.post<{ Body: { messages: unknown[] } }>(
    '/v1/messages/batch',
    {
      bodyLimit: 64 * 1024 * 1024,
      schema: {
        tags: ['messages'],
        summary: `Send up to ${MAX_BATCH} messages; each is validated on its own`,
        body: Type.Object(
          {
            // Items are not constrained here: each one is validated on its own and gets its own error.
            messages: Type.Array(Type.Unknown({ description: 'a message, as for POST /v1/messages' }), {
              minItems: 1,
              maxItems: MAX_BATCH,
            }),
          },
          { additionalProperties: false },
        ),
        response: {
          200: Type.Object({
            items: Type.Array(
              Type.Object({
                id: Type.Optional(Type.String()),
                status: Type.Optional(Type.String()),
                error: Type.Optional(
                  Type.Object({ code: Type.String(), message: Type.String(), field: Type.Optional(Type.String()) }),
                ),
              }),
            ),
          }),
          ...errorResponses,
        },
      },
    },
    async (request) => ({ items: await deps.accept.acceptBatch(request.auth.orgId, request.body.messages) }),
  );

  app.get<{ Params: { id: string } }>(
    '/v1/messages/:id',
    {
      schema: {
        tags: ['messages'],
        summary: 'A message with its full status history',
        params: IdParams,
        response: { 200: MessageSchema, ...errorResponses },
      },
    },
    async (request) => {
      const { message, history } = await deps.queries.get(request.auth.orgId, request.params.id);
      return presentMessage(message, history);
    },
  );

  app.get<{
    Querystring: {
      status?: string;
      channel?: string;
      direction?: string;
      createdFrom?: string;
      createdTo?: string;
      limit?: number;
      cursor?: string;
    };
  }>(
    '/v1/messages',
    {
      schema: {
        tags: ['messages'],
        summary: 'List messages, newest first',
        querystring: ListQuery,
        response: {
          200: Type.Object({ items: Type.Array(MessageSchema), nextCursor: Type.Union([Type.String(), Type.Null()]) }),
          ...errorResponses,
        },
      },
    },
    async (request) => {
      const q = request.query;
      const createdFrom = parseTime(q.createdFrom, 'createdFrom');
      const createdTo = parseTime(q.createdTo, 'createdTo');
      const page = await deps.queries.list(request.auth.orgId, {
        limit: q.limit ?? 50,
        ...(q.status ? { status: q.status as never } : {}),
        ...(q.channel ? { channel: q.channel as never } : {}),
        ...(q.direction ? { direction: q.direction as never } : {}),
        ...(createdFrom !== undefined ? { createdFrom } : {}),
        ...(createdTo !== undefined ? { createdTo } : {}),
        ...(q.cursor ? { before: q.cursor } : {}),
      });
      return { items: page.items.map((m) => presentMessage(m)), nextCursor: page.nextCursor };
    },
  );

  app.post<{ Params: { id: string } }>(
    '/v1/messages/:id/cancel',
    {
      schema: {
        tags: ['messages'],
        summary: 'Cancel a message not yet handed to a carrier',
        params: IdParams,
        response: {
          200: Type.Object({ id: Type.String(), status: Type.String() }),
          ...errorResponses,
          409: Type.Ref('Error'),
        },
      },
    },
    async (request) => deps.commands.cancel(request.auth.orgId, request.params.id),
  );

  // Lets clients check a message without creating it (used by the console and SDKs).
  app.post<{ Body: MessageInput }>(
    '/v1/messages/validate',
    {
      schema: {
        tags: ['messages'],
        summary: 'Validate a message without sending it',
        body: MessageInputSchema,
        response: {
          200: Type.Object({
            valid: Type.Boolean(),
            segments: Type.Optional(Type.Integer()),
            encoding: Type.Optional(Type.String()),
          }),
          ...errorResponses,
        },
      },
    },
    async (request) => {
      checkMessageInput(request.body, deps.now());
      const { channel, body } = request.body;
      if (!isSegmentedChannel(channel) || body === undefined) return { valid: true };
      const s = segmentSms(body);
      return { valid: true, segments: s.segments, encoding: s.encoding };
    },
  );
}
