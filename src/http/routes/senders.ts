/**
 * `/v1/senders` (carrier connections of the organization) and `/v1/providers` (what a sender can connect to, with
 * each provider's config schema). Secrets go in, never out.
 */
import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { CHANNELS } from '../../domain/channels.ts';
import type { SenderInput, SenderPatch, Senders } from '../../services/senders.ts';
import { errorResponses } from '../schemas.ts';

const Channels = Type.Array(Type.String({ enum: [...CHANNELS] }), { minItems: 1, maxItems: CHANNELS.length });
const Countries = Type.Array(Type.String({ pattern: '^[A-Za-z]{2}$' }), { maxItems: 250 });
const Identities = Type.Array(Type.String({ minLength: 1, maxLength: 256 }), { maxItems: 1000 });
const Rate = Type.Union([Type.Integer({ minimum: 1, maximum: 100_000 }), Type.Null()]);
const Cost = Type.Union([Type.Number({ minimum: 0, maximum: 1000 }), Type.Null()]);

const settings = {
  name: Type.String({ minLength: 1, maxLength: 200 }),
  channels: Channels,
  config: Type.Record(Type.String(), Type.Unknown(), {
    description: "Provider settings and credentials, per the provider's configSchema (GET /v1/providers)",
  }),
  from: Type.Optional(Type.Union([Type.String({ minLength: 1, maxLength: 256 }), Type.Null()])),
  identities: Type.Optional(Identities),
  countries: Type.Optional(Countries),
  priority: Type.Optional(Type.Integer({ minimum: -1000, maximum: 1000, description: 'Lower is tried first' })),
  rateLimitPerSecond: Type.Optional(Rate),
  accountRateLimitPerSecond: Type.Optional(Rate),
  costPerMessage: Type.Optional(Cost),
  enabled: Type.Optional(Type.Boolean()),
};

const SenderBody = Type.Object(
  { ...settings, provider: Type.String({ minLength: 1, maxLength: 40 }) },
  { additionalProperties: false },
);
const SenderPatchBody = Type.Object(
  {
    ...settings,
    name: Type.Optional(settings.name),
    channels: Type.Optional(Channels),
    config: Type.Optional(settings.config),
  },
  { additionalProperties: false, minProperties: 1 },
);

const SenderSchema = Type.Object({
  id: Type.String(),
  name: Type.Union([Type.String(), Type.Null()]),
  provider: Type.String(),
  channels: Type.Array(Type.String()),
  from: Type.Union([Type.String(), Type.Null()]),
  identities: Type.Array(Type.String()),
  countries: Type.Array(Type.String()),
  priority: Type.Integer(),
  rateLimitPerSecond: Type.Union([Type.Integer(), Type.Null()]),
  accountRateLimitPerSecond: Type.Union([Type.Integer(), Type.Null()]),
  costPerMessage: Type.Union([Type.Number(), Type.Null()]),
  enabled: Type.Boolean(),
  config: Type.Record(Type.String(), Type.Unknown()),
  secrets: Type.Array(Type.String(), { description: 'Secret config fields that are set (values never returned)' }),
  webhookUrl: Type.String({ description: "Status callback and inbound URL to set in the provider's console" }),
  createdAt: Type.String({ format: 'date-time' }),
  updatedAt: Type.String({ format: 'date-time' }),
});

const Id = Type.Object({ id: Type.String({ minLength: 1, maxLength: 64 }) });

export function senderRoutes(app: FastifyInstance, deps: { senders: Senders }): void {
  app.get(
    '/v1/providers',
    {
      schema: {
        tags: ['senders'],
        summary: 'Carrier providers a sender can use, with their channels and config schema',
        response: {
          200: Type.Object({
            data: Type.Array(
              Type.Object({
                id: Type.String(),
                displayName: Type.String(),
                channels: Type.Array(Type.String()),
                secretFields: Type.Array(Type.String()),
                configSchema: Type.Record(Type.String(), Type.Unknown()),
              }),
            ),
          }),
          ...errorResponses,
        },
      },
    },
    async () => ({
      data: deps.senders.providers().map((p) => ({
        id: p.id,
        displayName: p.displayName,
        channels: [...p.channels],
        secretFields: [...p.secretFields],
        configSchema: p.configSchema,
      })),
    }),
  );
  app.post<{ Body: SenderInput }>(
    '/v1/senders',
    {
      schema: {
        tags: ['senders'],
        summary: 'Connect a carrier account (credentials are encrypted at rest and never returned)',
        body: SenderBody,
        response: { 201: SenderSchema, ...errorResponses },
      },
    },
    async (request, reply) => {
      const s = await deps.senders.create(request.auth.orgId, request.body);
      reply.status(201);
      return s;
    },
  );
  app.get(
    '/v1/senders',
    {
      schema: {
        tags: ['senders'],
        summary: "List the organization's senders in routing order",
        response: { 200: Type.Object({ data: Type.Array(SenderSchema) }), ...errorResponses },
      },
    },
    async (request) => ({ data: await deps.senders.list(request.auth.orgId) }),
  );
  app.get<{ Params: { id: string } }>(
    '/v1/senders/:id',
    {
      schema: {
        tags: ['senders'],
        summary: 'Get a sender',
        params: Id,
        response: { 200: SenderSchema, ...errorResponses },
      },
    },
    async (request) => deps.senders.get(request.auth.orgId, request.params.id),
  );
  app.patch<{ Params: { id: string }; Body: SenderPatch }>(
    '/v1/senders/:id',
    {
      schema: {
        tags: ['senders'],
        summary: 'Change a sender (config fields given replace the stored ones; a secret given is rotated)',
        params: Id,
        body: SenderPatchBody,
        response: { 200: SenderSchema, ...errorResponses },
      },
    },
    async (request) => deps.senders.update(request.auth.orgId, request.params.id, request.body),
  );
  app.delete<{ Params: { id: string } }>(
    '/v1/senders/:id',
    {
      schema: {
        tags: ['senders'],
        summary: 'Remove a sender from routing (callbacks for what it sent are still accepted)',
        params: Id,
        response: { 204: Type.Null(), ...errorResponses },
      },
    },
    async (request, reply) => {
      await deps.senders.remove(request.auth.orgId, request.params.id);
      reply.status(204);
      return null;
    },
  );
}
