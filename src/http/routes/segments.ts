/**
 * Segments (`/v1/segments`): rules validated when saved (a 400 names the faulty part, e.g. `rules.all[1].op`);
 * `GET /v1/segments/{id}/contacts` evaluates them now, page by page (a page may come back short with a
 * `nextCursor`: keep going until it is null), with `count=true` for the total.
 */
import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import type { Segment } from '../../ports/contact-store.ts';
import type { SegmentInput, Segments } from '../../services/segments.ts';
import { MAX_DEPTH_KEYWORD } from '../../services/validation.ts';
import { errorResponses } from '../schemas.ts';
import { ContactSchema, presentContact } from './contacts.ts';

const SegmentBody = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 200 }),
    description: Type.Optional(Type.Union([Type.String({ maxLength: 2000 }), Type.Null()])),
    rules: Type.Unknown({
      description:
        'A rule: {all|any: [rules]}, {not: rule}, {attribute, op, value}, {field, op, value}, {tag}, ' +
        '{event, minCount?, withinDays?}, {consent: {channel, purpose}, status?}',
      [MAX_DEPTH_KEYWORD]: 40,
    }),
  },
  { additionalProperties: false },
);

const SegmentSchema = Type.Object({
  id: Type.String(),
  name: Type.String(),
  description: Type.Union([Type.String(), Type.Null()]),
  rules: Type.Unknown(),
  memberCount: Type.Optional(Type.Integer({ description: 'Contacts recorded in it at their last evaluation' })),
  createdAt: Type.String({ format: 'date-time' }),
  updatedAt: Type.String({ format: 'date-time' }),
});

const present = (s: Segment, memberCount?: number) => ({
  id: s.id,
  name: s.name,
  description: s.description,
  rules: s.rules,
  ...(memberCount !== undefined ? { memberCount } : {}),
  createdAt: new Date(s.createdAt).toISOString(),
  updatedAt: new Date(s.updatedAt).toISOString(),
});

const IdParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 64 }) });

export function segmentRoutes(app: FastifyInstance, deps: { segments: Segments }): void {
  app.removeContentTypeParser('text/plain');
  const tags = ['segments'];

  app.post<{ Body: SegmentInput }>(
    '/v1/segments',
    {
      schema: {
        tags,
        summary: 'Create a segment',
        body: SegmentBody,
        response: { 201: SegmentSchema, ...errorResponses },
      },
    },
    async (request, reply) => {
      const s = await deps.segments.create(request.auth.orgId, request.body);
      reply.status(201);
      return present(s);
    },
  );

  app.get(
    '/v1/segments',
    {
      schema: {
        tags,
        summary: 'List segments',
        response: { 200: Type.Object({ items: Type.Array(SegmentSchema) }), ...errorResponses },
      },
    },
    async (request) => ({ items: (await deps.segments.list(request.auth.orgId)).map((s) => present(s)) }),
  );

  app.get<{ Params: { id: string } }>(
    '/v1/segments/:id',
    { schema: { tags, summary: 'A segment', params: IdParams, response: { 200: SegmentSchema, ...errorResponses } } },
    async (request) => {
      const s = await deps.segments.get(request.auth.orgId, request.params.id);
      return present(s, await deps.segments.memberCount(request.auth.orgId, s.id));
    },
  );

  app.put<{ Params: { id: string }; Body: SegmentInput }>(
    '/v1/segments/:id',
    {
      schema: {
        tags,
        summary: 'Replace a segment’s name, description and rules',
        params: IdParams,
        body: SegmentBody,
        response: { 200: SegmentSchema, ...errorResponses },
      },
    },
    async (request) => present(await deps.segments.update(request.auth.orgId, request.params.id, request.body)),
  );

  app.delete<{ Params: { id: string } }>(
    '/v1/segments/:id',
    {
      schema: {
        tags,
        summary: 'Delete a segment',
        params: IdParams,
        response: { 204: Type.Null(), ...errorResponses },
      },
    },
    async (request, reply) => {
      await deps.segments.delete(request.auth.orgId, request.params.id);
      reply.status(204).send();
    },
  );

  app.get<{ Params: { id: string }; Querystring: { limit?: number; cursor?: string; count?: boolean } }>(
    '/v1/segments/:id/contacts',
    {
      schema: {
        tags,
        summary: 'The contacts in a segment now, newest first',
        params: IdParams,
        querystring: Type.Object(
          {
            limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500, default: 50 })),
            cursor: Type.Optional(Type.String({ maxLength: 64 })),
            count: Type.Optional(Type.Boolean({ description: 'Also count all members (scans every contact)' })),
          },
          { additionalProperties: false },
        ),
        response: {
          200: Type.Object({
            items: Type.Array(ContactSchema),
            nextCursor: Type.Union([Type.String(), Type.Null()]),
            count: Type.Optional(Type.Integer()),
          }),
          ...errorResponses,
        },
      },
    },
    async (request) => {
      const q = request.query;
      const page = await deps.segments.contacts(request.auth.orgId, request.params.id, {
        limit: q.limit ?? 50,
        ...(q.cursor ? { cursor: q.cursor } : {}),
        ...(q.count ? { count: true } : {}),
      });
      return {
        items: page.items.map(presentContact),
        nextCursor: page.nextCursor,
        ...(page.count !== undefined ? { count: page.count } : {}),
      };
    },
  );
}
