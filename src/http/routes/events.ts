/**
 * Business events: `POST /v1/events` (201 when stored, 200 with `duplicate: true` for an idempotency key already
 * used: the body's `idempotencyKey`, else the `Idempotency-Key` header), `POST /v1/events/batch` (each item on
 * its own), `GET /v1/events/{id}` and a contact's events at `GET /v1/contacts/{id}/events`.
 */
import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import type { BusinessEvent } from '../../ports/contact-store.ts';
import {
  type BusinessEvents,
  type EventInput,
  EventInputSchema,
  MAX_EVENT_BATCH,
} from '../../services/business-events.ts';
import { errorResponses } from '../schemas.ts';

const EventSchema = Type.Object({
  id: Type.String(),
  name: Type.String(),
  contactId: Type.String(),
  properties: Type.Union([Type.Record(Type.String(), Type.Unknown()), Type.Null()]),
  occurredAt: Type.String({ format: 'date-time' }),
  receivedAt: Type.String({ format: 'date-time' }),
  idempotencyKey: Type.Union([Type.String(), Type.Null()]),
});

const IngestedSchema = Type.Object({
  id: Type.String(),
  contactId: Type.String(),
  duplicate: Type.Boolean(),
  contactCreated: Type.Boolean(),
});

const iso = (t: number) => new Date(t).toISOString();

export function presentEvent(e: BusinessEvent) {
  return {
    id: e.id,
    name: e.name,
    contactId: e.contactId,
    properties: e.properties,
    occurredAt: iso(e.occurredAt),
    receivedAt: iso(e.receivedAt),
    idempotencyKey: e.idempotencyKey,
  };
}

const IdParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 64 }) });

export function eventRoutes(app: FastifyInstance, deps: { events: BusinessEvents }): void {
  app.removeContentTypeParser('text/plain');
  const tags = ['events'];

  app.post<{ Body: EventInput; Headers: { 'idempotency-key'?: string } }>(
    '/v1/events',
    {
      schema: {
        tags,
        summary: 'Record a business event (matched to a contact; starts and advances journeys)',
        body: EventInputSchema,
        headers: Type.Object({ 'idempotency-key': Type.Optional(Type.String({ minLength: 1, maxLength: 255 })) }),
        response: { 200: IngestedSchema, 201: IngestedSchema, ...errorResponses, 409: Type.Ref('Error') },
      },
    },
    async (request, reply) => {
      const r = await deps.events.ingest(request.auth.orgId, request.body, request.headers['idempotency-key']);
      reply.status(r.duplicate ? 200 : 201);
      return { id: r.event.id, contactId: r.event.contactId, duplicate: r.duplicate, contactCreated: r.contactCreated };
    },
  );

  app.post<{ Body: { events: unknown[] } }>(
    '/v1/events/batch',
    {
      bodyLimit: 16 * 1024 * 1024,
      schema: {
        tags,
        summary: `Record up to ${MAX_EVENT_BATCH} events; each is validated and stored on its own`,
        body: Type.Object(
          {
            events: Type.Array(Type.Unknown({ description: 'an event, as for POST /v1/events' }), {
              minItems: 1,
              maxItems: MAX_EVENT_BATCH,
            }),
          },
          { additionalProperties: false },
        ),
        response: {
          200: Type.Object({
            items: Type.Array(
              Type.Object({
                id: Type.Optional(Type.String()),
                contactId: Type.Optional(Type.String()),
                duplicate: Type.Optional(Type.Boolean()),
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
    async (request) => ({ items: await deps.events.ingestBatch(request.auth.orgId, request.body.events) }),
  );

  app.get<{ Params: { id: string } }>(
    '/v1/events/:id',
    { schema: { tags, summary: 'An event', params: IdParams, response: { 200: EventSchema, ...errorResponses } } },
    async (request) => presentEvent(await deps.events.get(request.auth.orgId, request.params.id)),
  );

  app.get<{ Params: { id: string }; Querystring: { limit?: number; cursor?: string; name?: string } }>(
    '/v1/contacts/:id/events',
    {
      schema: {
        tags,
        summary: "A contact's events, newest first",
        params: IdParams,
        querystring: Type.Object(
          {
            limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500, default: 50 })),
            cursor: Type.Optional(Type.String({ maxLength: 64 })),
            name: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
          },
          { additionalProperties: false },
        ),
        response: {
          200: Type.Object({ items: Type.Array(EventSchema), nextCursor: Type.Union([Type.String(), Type.Null()]) }),
          ...errorResponses,
        },
      },
    },
    async (request) => {
      const q = request.query;
      const page = await deps.events.list(request.auth.orgId, request.params.id, {
        limit: q.limit ?? 50,
        ...(q.cursor ? { cursor: q.cursor } : {}),
        ...(q.name !== undefined ? { name: q.name } : {}),
      });
      return { items: page.items.map(presentEvent), nextCursor: page.nextCursor };
    },
  );
}
