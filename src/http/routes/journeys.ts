/**
 * `/v1/journeys` (definitions: a draft, published versions, archive; start by API) and `/v1/journey-runs`
 * (operators: a run with its step history, retry, cancel). Definitions are checked by the journey validator, whose
 * errors name the field inside the definition (`definition.steps.s3.next`).
 */
import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import type { HistoryEntry, JourneyRecord, JourneyStatus, RunRecord, RunStatus } from '../../ports/journey-store.ts';
import type { JourneyRunner } from '../../services/journey-runner.ts';
import type { JourneyRuns } from '../../services/journey-runs.ts';
import type { Journeys } from '../../services/journeys.ts';
import { MAX_DEPTH_KEYWORD } from '../../services/validation.ts';
import { errorResponses } from '../schemas.ts';

const iso = (t: number | null) => (t === null ? null : new Date(t).toISOString());
const Nullable = <T extends ReturnType<typeof Type.String>>(t: T) => Type.Union([t, Type.Null()]);
const FreeForm = (description: string) =>
  Type.Record(Type.String(), Type.Unknown(), { [MAX_DEPTH_KEYWORD]: 32, description });

const Definition = FreeForm('{trigger, entry, steps: {id: step}, reentry}: see README "Journeys"');
const JOURNEY_STATUSES = ['draft', 'active', 'archived'];
const RUN_STATUSES = ['running', 'waiting', 'completed', 'failed', 'canceled'];

const JourneyBody = Type.Object(
  { name: Type.String({ minLength: 1, maxLength: 200 }), definition: Definition },
  { additionalProperties: false },
);
const JourneyPatch = Type.Object(
  { name: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })), definition: Type.Optional(Definition) },
  { additionalProperties: false, minProperties: 1 },
);
const StartBody = Type.Object(
  {
    contactId: Type.String({ minLength: 1, maxLength: 64 }),
    payload: Type.Optional(FreeForm('Data the run can read as `trigger.input`')),
  },
  { additionalProperties: false },
);
const VersionSummary = Type.Object({ version: Type.Integer(), publishedAt: Type.String({ format: 'date-time' }) });
const JourneySchema = Type.Object({
  id: Type.String(),
  name: Type.String(),
  status: Type.String({ enum: JOURNEY_STATUSES }),
  definition: Type.Record(Type.String(), Type.Unknown(), { description: 'The draft' }),
  publishedVersion: Type.Union([Type.Integer(), Type.Null()]),
  versions: Type.Optional(Type.Array(VersionSummary)),
  createdAt: Type.String({ format: 'date-time' }),
  updatedAt: Type.String({ format: 'date-time' }),
});
const HistorySchema = Type.Object({
  stepId: Nullable(Type.String()),
  type: Type.String(),
  outcome: Type.String(),
  at: Type.String({ format: 'date-time' }),
  detail: Type.Union([Type.Record(Type.String(), Type.Unknown()), Type.Null()]),
});
const RunSchema = Type.Object({
  id: Type.String(),
  journeyId: Type.String(),
  version: Type.Integer(),
  contactId: Type.String(),
  status: Type.String({ enum: RUN_STATUSES }),
  stepId: Type.String({ description: 'The step the run is in (or ended in)' }),
  attempts: Type.Integer({ description: "Failed attempts of the current step's effect" }),
  dueAt: Nullable(Type.String({ format: 'date-time' })),
  error: Type.Union([Type.Object({ code: Type.String(), message: Type.String() }), Type.Null()]),
  phase: Type.Union([Type.Record(Type.String(), Type.Unknown()), Type.Null()]),
  context: Type.Record(Type.String(), Type.Unknown(), {
    description: 'Trigger, latest event, messages by step, reply, split choices, webhook results',
  }),
  startedAt: Type.String({ format: 'date-time' }),
  updatedAt: Type.String({ format: 'date-time' }),
  endedAt: Nullable(Type.String({ format: 'date-time' })),
  history: Type.Optional(Type.Array(HistorySchema)),
});
const Id = Type.Object({ id: Type.String({ minLength: 1, maxLength: 64 }) });
const Page = (item: ReturnType<typeof Type.Object>) =>
  Type.Object({ items: Type.Array(item), nextCursor: Type.Union([Type.String(), Type.Null()]) });
const Limit = Type.Optional(Type.Integer({ minimum: 1, maximum: 500, default: 50 }));
const Cursor = Type.Optional(Type.String({ maxLength: 64, description: 'nextCursor of the previous page' }));
const withConflict = { ...errorResponses, 409: Type.Ref('Error') };

function presentJourney(j: JourneyRecord, versions?: { version: number; publishedAt: number }[]) {
  return {
    id: j.id,
    name: j.name,
    status: j.status,
    definition: JSON.parse(j.draft) as Record<string, unknown>,
    publishedVersion: j.publishedVersion,
    ...(versions ? { versions: versions.map((v) => ({ version: v.version, publishedAt: iso(v.publishedAt) })) } : {}),
    createdAt: iso(j.createdAt) as string,
    updatedAt: iso(j.updatedAt) as string,
  };
}

function presentRun(r: RunRecord, history?: HistoryEntry[]) {
  const state = JSON.parse(r.state) as { phase: Record<string, unknown> | null; context: Record<string, unknown> };
  const { visits: _visits, ...context } = state.context;
  return {
    id: r.id,
    journeyId: r.journeyId,
    version: r.version,
    contactId: r.contactId,
    status: r.status,
    stepId: r.stepId,
    attempts: r.attempts,
    dueAt: iso(r.dueAt),
    error: r.error,
    phase: state.phase,
    context,
    startedAt: iso(r.startedAt) as string,
    updatedAt: iso(r.updatedAt) as string,
    endedAt: iso(r.endedAt),
    ...(history ? { history: history.map((h) => ({ ...h, at: iso(h.at) as string })) } : {}),
  };
}

export function journeyRoutes(
  app: FastifyInstance,
  deps: { journeys: Journeys; journeyRuns: JourneyRuns; runner: JourneyRunner },
): void {
  // Bodies are JSON only: without this, Fastify's default text/plain parser hands a string to the schema (a 400).
  if (app.hasContentTypeParser('text/plain')) app.removeContentTypeParser('text/plain');
  const tags = ['journeys'];

  app.post<{ Body: { name: string; definition: unknown } }>(
    '/v1/journeys',
    {
      schema: {
        tags,
        summary: 'Create a journey (a draft)',
        body: JourneyBody,
        response: { 201: JourneySchema, ...errorResponses },
      },
    },
    async (request, reply) => {
      const j = await deps.journeys.create(request.auth.orgId, request.body);
      reply.status(201);
      return presentJourney(j);
    },
  );

  app.get<{ Querystring: { status?: JourneyStatus; limit?: number; cursor?: string } }>(
    '/v1/journeys',
    {
      schema: {
        tags,
        summary: 'List journeys (newest first)',
        querystring: Type.Object(
          { status: Type.Optional(Type.String({ enum: JOURNEY_STATUSES })), limit: Limit, cursor: Cursor },
          { additionalProperties: false },
        ),
        response: { 200: Page(JourneySchema), ...errorResponses },
      },
    },
    async (request) => {
      const q = request.query;
      const page = await deps.journeys.list(request.auth.orgId, {
        limit: q.limit ?? 50,
        ...(q.status ? { status: q.status } : {}),
        ...(q.cursor ? { cursor: q.cursor } : {}),
      });
      return { items: page.items.map((j) => presentJourney(j)), nextCursor: page.nextCursor };
    },
  );

  app.get<{ Params: { id: string } }>(
    '/v1/journeys/:id',
    {
      schema: {
        tags,
        summary: 'Get a journey: its draft and its versions',
        params: Id,
        response: { 200: JourneySchema, ...errorResponses },
      },
    },
    async (request) => {
      const orgId = request.auth.orgId;
      const j = await deps.journeys.get(orgId, request.params.id);
      return presentJourney(j, await deps.journeys.versions(orgId, j.id));
    },
  );

  app.patch<{ Params: { id: string }; Body: { name?: string; definition?: unknown } }>(
    '/v1/journeys/:id',
    {
      schema: {
        tags,
        summary: 'Update the draft (name and/or definition); published versions do not change',
        params: Id,
        body: JourneyPatch,
        response: { 200: JourneySchema, ...withConflict },
      },
    },
    async (request) => presentJourney(await deps.journeys.update(request.auth.orgId, request.params.id, request.body)),
  );

  app.post<{ Params: { id: string } }>(
    '/v1/journeys/:id/publish',
    {
      schema: {
        tags,
        summary: 'Publish the draft as a new version; new runs use it, running runs stay on theirs',
        params: Id,
        response: { 200: JourneySchema, ...withConflict },
      },
    },
    async (request) => {
      const orgId = request.auth.orgId;
      const { journey } = await deps.journeys.publish(orgId, request.params.id);
      return presentJourney(journey, await deps.journeys.versions(orgId, journey.id));
    },
  );

  app.post<{ Params: { id: string } }>(
    '/v1/journeys/:id/archive',
    {
      schema: {
        tags,
        summary: 'Archive: no new runs; runs in flight finish',
        params: Id,
        response: { 200: JourneySchema, ...errorResponses },
      },
    },
    async (request) => presentJourney(await deps.journeys.archive(request.auth.orgId, request.params.id)),
  );

  app.get<{ Params: { id: string; version: number } }>(
    '/v1/journeys/:id/versions/:version',
    {
      schema: {
        tags,
        summary: 'A published version of a journey',
        params: Type.Object({
          id: Type.String({ minLength: 1, maxLength: 64 }),
          version: Type.Integer({ minimum: 1, maximum: 1_000_000 }),
        }),
        response: {
          200: Type.Object({
            journeyId: Type.String(),
            version: Type.Integer(),
            definition: Type.Record(Type.String(), Type.Unknown()),
            publishedAt: Type.String({ format: 'date-time' }),
          }),
          ...errorResponses,
        },
      },
    },
    async (request) => {
      const v = await deps.journeys.version(request.auth.orgId, request.params.id, request.params.version);
      return {
        journeyId: v.journeyId,
        version: v.version,
        definition: JSON.parse(v.definition) as Record<string, unknown>,
        publishedAt: iso(v.publishedAt) as string,
      };
    },
  );

  app.post<{
    Params: { id: string };
    Body: { contactId: string; payload?: Record<string, unknown> };
    Headers: { 'idempotency-key'?: string };
  }>(
    '/v1/journeys/:id/start',
    {
      schema: {
        tags,
        summary: 'Start a run of an API-triggered journey for a contact',
        params: Id,
        body: StartBody,
        headers: Type.Object({
          'idempotency-key': Type.Optional(
            Type.String({ minLength: 1, maxLength: 255, description: 'One run per key' }),
          ),
        }),
        response: {
          201: Type.Object({ runId: Type.String(), status: Type.Literal('started') }),
          200: Type.Object({ runId: Type.String(), status: Type.Literal('duplicate') }),
          ...withConflict,
        },
      },
    },
    async (request, reply) => {
      const key = request.headers['idempotency-key'];
      const r = await deps.runner.start(request.auth.orgId, request.params.id, request.body.contactId, {
        ...(request.body.payload ? { payload: request.body.payload } : {}),
        ...(key ? { idempotencyKey: key } : {}),
      });
      reply.status(r.duplicate ? 200 : 201);
      return { runId: r.runId, status: r.duplicate ? 'duplicate' : 'started' };
    },
  );

  app.get<{
    Params: { id: string };
    Querystring: { status?: RunStatus; contactId?: string; limit?: number; cursor?: string };
  }>(
    '/v1/journeys/:id/runs',
    {
      schema: {
        tags,
        summary: "A journey's runs (newest first)",
        params: Id,
        querystring: Type.Object(
          {
            status: Type.Optional(Type.String({ enum: RUN_STATUSES })),
            contactId: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
            limit: Limit,
            cursor: Cursor,
          },
          { additionalProperties: false },
        ),
        response: { 200: Page(RunSchema), ...errorResponses },
      },
    },
    async (request) => {
      const q = request.query;
      const page = await deps.journeyRuns.list(request.auth.orgId, request.params.id, {
        limit: q.limit ?? 50,
        ...(q.status ? { status: q.status } : {}),
        ...(q.contactId ? { contactId: q.contactId } : {}),
        ...(q.cursor ? { cursor: q.cursor } : {}),
      });
      return { items: page.items.map((r) => presentRun(r)), nextCursor: page.nextCursor };
    },
  );

  app.get<{ Params: { id: string } }>(
    '/v1/journey-runs/:id',
    {
      schema: {
        tags,
        summary: 'A run with the history of its steps',
        params: Id,
        response: { 200: RunSchema, ...errorResponses },
      },
    },
    async (request) => {
      const { run, history } = await deps.journeyRuns.get(request.auth.orgId, request.params.id);
      return presentRun(run, history);
    },
  );

  app.post<{ Params: { id: string } }>(
    '/v1/journey-runs/:id/retry',
    {
      schema: {
        tags,
        summary: 'Retry a failed run at the step it failed in',
        params: Id,
        response: { 200: RunSchema, ...withConflict },
      },
    },
    async (request) => presentRun(await deps.journeyRuns.retry(request.auth.orgId, request.params.id)),
  );

  app.post<{ Params: { id: string } }>(
    '/v1/journey-runs/:id/cancel',
    {
      schema: {
        tags,
        summary: 'Cancel a running, waiting or failed run',
        params: Id,
        response: { 200: RunSchema, ...withConflict },
      },
    },
    async (request) => presentRun(await deps.journeyRuns.cancel(request.auth.orgId, request.params.id)),
  );
}
