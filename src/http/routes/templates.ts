import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import type { Template } from '../../ports/store.ts';
import type { TemplateInput, Templates } from '../../services/templates.ts';
import { errorResponses } from '../schemas.ts';

const Content = Type.Object(
  { body: Type.String({ minLength: 1, maxLength: 512_000 }), subject: Type.Optional(Type.String({ maxLength: 998 })) },
  { additionalProperties: false },
);
const TemplateBody = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 200 }),
    channels: Type.Record(Type.String(), Content, {
      description: 'Liquid content per channel, e.g. {"sms": {"body": "Hi {{ name }}"}}',
    }),
  },
  { additionalProperties: false },
);
const TemplateSchema = Type.Object({
  id: Type.String(),
  name: Type.String(),
  channels: Type.Record(Type.String(), Type.Object({ body: Type.String(), subject: Type.Optional(Type.String()) })),
  createdAt: Type.String({ format: 'date-time' }),
});

const present = (t: Template) => ({
  id: t.id,
  name: t.name,
  channels: t.content,
  createdAt: new Date(t.createdAt).toISOString(),
});

export function templateRoutes(app: FastifyInstance, deps: { templates: Templates }): void {
  // Bodies are JSON only: without this, Fastify's default text/plain parser hands a string to the schema (a 400).
  app.removeContentTypeParser('text/plain');
  app.post<{ Body: TemplateInput }>(
    '/v1/templates',
    {
      schema: {
        tags: ['templates'],
        summary: 'Create a template',
        body: TemplateBody,
        response: { 201: TemplateSchema, ...errorResponses },
      },
    },
    async (request, reply) => {
      const t = await deps.templates.create(request.auth.orgId, request.body);
      reply.status(201);
      return present(t);
    },
  );
  app.get<{ Params: { id: string } }>(
    '/v1/templates/:id',
    {
      schema: {
        tags: ['templates'],
        summary: 'Get a template',
        params: Type.Object({ id: Type.String({ minLength: 1, maxLength: 64 }) }),
        response: { 200: TemplateSchema, ...errorResponses },
      },
    },
    async (request) => present(await deps.templates.get(request.auth.orgId, request.params.id)),
  );
}
