/**
 * `/v1/webhook-endpoints`: the organization's outbound webhook subscriptions, their delivery log, redelivery and
 * test sends. The signing secret is in the answers to create and rotate-secret only.
 */
import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { CHANNELS } from '../../domain/channels.ts';
import type { DeliveryStatus } from '../../ports/webhook-store.ts';
import {
  type EndpointInput,
  type EndpointPatch,
  type RedeliverInput,
  WEBHOOK_EVENT_TYPES,
  type WebhookEndpoints,
} from '../../services/webhook-endpoints.ts';
import { errorResponses } from '../schemas.ts';

const EventTypes = Type.Array(Type.String({ minLength: 1, maxLength: 64 }), {
  minItems: 1,
  maxItems: 64,
  description: `Any of: ${WEBHOOK_EVENT_TYPES.join(', ')}`,
});
const Filter = Type.Union([
  Type.Object(
    {
      channels: Type.Optional(
        Type.Array(Type.String({ minLength: 1, maxLength: 32 }), {
          minItems: 1,
          maxItems: CHANNELS.length,
          description: 'Events that name a channel must name one of these',
        }),
      ),
      metadata: Type.Optional(
        Type.Record(Type.String({ maxLength: 128 }), Type.Union([Type.String(), Type.Number(), Type.Boolean()]), {
          maxProperties: 20,
          description: 'Message events must carry these metadata values',
        }),
      ),
    },
    { additionalProperties: false },
  ),
  Type.Null(),
]);
const settings = {
  url: Type.String({ minLength: 1, maxLength: 2048, description: 'http(s) URL that receives the events' }),
  eventTypes: EventTypes,
  filter: Type.Optional(Filter),
  description: Type.Optional(Type.Union([Type.String({ maxLength: 500 }), Type.Null()])),
  enabled: Type.Optional(Type.Boolean()),
};
const EndpointBody = Type.Object(settings, { additionalProperties: false });
const EndpointPatchBody = Type.Object(
  { ...settings, url: Type.Optional(settings.url), eventTypes: Type.Optional(EventTypes) },
  { additionalProperties: false, minProperties: 1 },
);

const Nullable = <T extends ReturnType<typeof Type.String>>(t: T) => Type.Union([t, Type.Null()]);
const EndpointSchema = Type.Object({
  id: Type.String(),
  url: Type.String(),
  description: Nullable(Type.String()),
  eventTypes: Type.Array(Type.String()),
  filter: Type.Union([Type.Record(Type.String(), Type.Unknown()), Type.Null()]),
  enabled: Type.Boolean(),
  disabledReason: Nullable(Type.String({ description: 'Why the product disabled it (deliveries failing for days)' })),
  disabledAt: Nullable(Type.String({ format: 'date-time' })),
  previousSecretExpiresAt: Nullable(
    Type.String({ format: 'date-time', description: 'Until then requests are also signed with the previous secret' }),
  ),
  createdAt: Type.String({ format: 'date-time' }),
  updatedAt: Type.String({ format: 'date-time' }),
});
const CreatedSchema = Type.Object({
  ...EndpointSchema.properties,
  secret: Type.String({ description: 'whsec_… signing secret; shown only now' }),
});
const DeliverySchema = Type.Object({
  id: Type.String(),
  eventId: Type.String({ description: 'The webhook-id header of its requests' }),
  eventType: Type.String(),
  messageId: Nullable(Type.String()),
  status: Type.String({
    enum: ['pending', 'waiting', 'delivered', 'failed', 'canceled'],
    description: 'waiting: behind an earlier event of the same message, which goes first',
  }),
  attempts: Type.Integer(),
  nextAttemptAt: Nullable(Type.String({ format: 'date-time' })),
  createdAt: Type.String({ format: 'date-time' }),
  updatedAt: Type.String({ format: 'date-time' }),
  attemptLog: Type.Array(
    Type.Object({
      at: Type.String({ format: 'date-time' }),
      statusCode: Type.Union([Type.Integer(), Type.Null()]),
      latencyMs: Type.Integer(),
      response: Nullable(Type.String({ description: 'First 1 KB of the answer' })),
      error: Nullable(Type.String({ description: 'Why there was no answer (time-out, connection, refused address)' })),
    }),
  ),
});

const Id = Type.Object({ id: Type.String({ minLength: 1, maxLength: 64 }) });
const tags = ['webhooks'];

export function webhookEndpointRoutes(app: FastifyInstance, deps: { webhookEndpoints: WebhookEndpoints }): void {
  const endpoints = deps.webhookEndpoints;
  app.post<{ Body: EndpointInput }>(
    '/v1/webhook-endpoints',
    {
      schema: {
        tags,
        summary: 'Subscribe a URL to events (the signing secret is in this answer only)',
        body: EndpointBody,
        response: { 201: CreatedSchema, ...errorResponses },
      },
    },
    async (request, reply) => {
      const created = await endpoints.create(request.auth.orgId, request.body);
      reply.status(201);
      return created;
    },
  );
  app.get(
    '/v1/webhook-endpoints',
    {
      schema: {
        tags,
        summary: "The organization's webhook endpoints",
        response: { 200: Type.Object({ data: Type.Array(EndpointSchema) }), ...errorResponses },
      },
    },
    async (request) => ({ data: await endpoints.list(request.auth.orgId) }),
  );
  app.get<{ Params: { id: string } }>(
    '/v1/webhook-endpoints/:id',
    {
      schema: { tags, summary: 'A webhook endpoint', params: Id, response: { 200: EndpointSchema, ...errorResponses } },
    },
    async (request) => endpoints.get(request.auth.orgId, request.params.id),
  );
  app.patch<{ Params: { id: string }; Body: EndpointPatch }>(
    '/v1/webhook-endpoints/:id',
    {
      schema: {
        tags,
        summary: 'Change an endpoint (enabling a disabled one resumes its deliveries)',
        params: Id,
        body: EndpointPatchBody,
        response: { 200: EndpointSchema, ...errorResponses },
      },
    },
    async (request) => endpoints.update(request.auth.orgId, request.params.id, request.body),
  );
  app.delete<{ Params: { id: string } }>(
    '/v1/webhook-endpoints/:id',
    {
      schema: {
        tags,
        summary: 'Delete an endpoint (its pending deliveries are canceled)',
        params: Id,
        response: { 204: Type.Null(), ...errorResponses },
      },
    },
    async (request, reply) => {
      await endpoints.remove(request.auth.orgId, request.params.id);
      reply.status(204);
      return null;
    },
  );
  app.post<{ Params: { id: string }; Body: { overlapSeconds?: number } | undefined }>(
    '/v1/webhook-endpoints/:id/rotate-secret',
    {
      schema: {
        tags,
        summary: 'A new signing secret (shown once); the old one keeps signing for overlapSeconds',
        params: Id,
        body: Type.Optional(
          Type.Object(
            {
              overlapSeconds: Type.Optional(
                Type.Integer({ minimum: 0, maximum: 7 * 86_400, description: 'Default 86400 (one day)' }),
              ),
            },
            { additionalProperties: false },
          ),
        ),
        response: {
          200: Type.Object({
            secret: Type.String(),
            previousSecretExpiresAt: Nullable(Type.String({ format: 'date-time' })),
          }),
          ...errorResponses,
        },
      },
    },
    async (request) =>
      endpoints.rotateSecret(request.auth.orgId, request.params.id, request.body?.overlapSeconds ?? undefined),
  );
  app.get<{ Params: { id: string }; Querystring: { limit?: number; cursor?: string; status?: DeliveryStatus } }>(
    '/v1/webhook-endpoints/:id/deliveries',
    {
      schema: {
        tags,
        summary: 'Delivery log, newest first, with every attempt',
        params: Id,
        querystring: Type.Object(
          {
            limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 200, default: 50 })),
            cursor: Type.Optional(Type.String({ maxLength: 40, description: 'nextCursor of the previous page' })),
            status: Type.Optional(Type.String({ enum: ['pending', 'waiting', 'delivered', 'failed', 'canceled'] })),
          },
          { additionalProperties: false },
        ),
        response: {
          200: Type.Object({ items: Type.Array(DeliverySchema), nextCursor: Nullable(Type.String()) }),
          ...errorResponses,
        },
      },
    },
    async (request) =>
      endpoints.deliveries(request.auth.orgId, request.params.id, {
        limit: request.query.limit ?? 50,
        ...(request.query.cursor ? { cursor: request.query.cursor } : {}),
        ...(request.query.status ? { status: request.query.status } : {}),
      }),
  );
  app.post<{ Params: { id: string }; Body: RedeliverInput }>(
    '/v1/webhook-endpoints/:id/redeliver',
    {
      schema: {
        tags,
        summary: 'Deliver one event again ({eventId}) or every subscribed event of a time range ({from, to})',
        params: Id,
        body: Type.Union([
          Type.Object({ eventId: Type.String({ minLength: 1, maxLength: 40 }) }, { additionalProperties: false }),
          Type.Object(
            {
              from: Type.String({ maxLength: 40, description: 'ISO-8601; inclusive' }),
              to: Type.String({ maxLength: 40, description: 'ISO-8601; exclusive' }),
            },
            { additionalProperties: false },
          ),
        ]),
        response: { 202: Type.Object({ redelivered: Type.Integer() }), ...errorResponses, 409: Type.Ref('Error') },
      },
    },
    async (request, reply) => {
      const r = await endpoints.redeliver(request.auth.orgId, request.params.id, request.body);
      reply.status(202);
      return r;
    },
  );
  app.post<{ Params: { id: string } }>(
    '/v1/webhook-endpoints/:id/test',
    {
      schema: {
        tags,
        summary: 'Send a webhook.test event to this endpoint',
        params: Id,
        response: {
          202: Type.Object({ eventId: Type.String(), deliveryId: Type.String() }),
          ...errorResponses,
          409: Type.Ref('Error'),
        },
      },
    },
    async (request, reply) => {
      const r = await endpoints.test(request.auth.orgId, request.params.id);
      reply.status(202);
      return r;
    },
  );
}
