/**
 * Contacts (`/v1/contacts`), their consent (`/v1/contacts/{id}/consent`) and the organization's compliance
 * settings (`/v1/compliance/settings`).
 *
 * `POST /v1/contacts` creates (409 when an identifier or the external id is taken); `PUT /v1/contacts` upserts:
 * it updates the contact holding the external id or any identifier given (adding the new identifiers, merging
 * attributes) and answers 200, or creates one and answers 201 — the safe way to retry or sync from a CRM.
 */
import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { CHANNELS } from '../../domain/channels.ts';
import type { ComplianceSettings } from '../../domain/compliance.ts';
import { ValidationError } from '../../domain/errors.ts';
import type { ContactRecord } from '../../ports/contact-store.ts';
import type { Compliance, SettingsInput } from '../../services/compliance.ts';
import type { ConsentInput, ConsentService, ConsentView } from '../../services/consent.ts';
import type { ContactExport, ContactInput, Contacts } from '../../services/contacts.ts';
import { MAX_DEPTH_KEYWORD } from '../../services/validation.ts';
import { errorResponses } from '../schemas.ts';

const Str = (min: number, max: number) => Type.String({ minLength: min, maxLength: max });
const NullableStr = (max: number, description?: string) =>
  Type.Union([Str(1, max), Type.Null()], description ? { description } : {});
const FreeForm = Type.Record(Type.String(), Type.Unknown(), { [MAX_DEPTH_KEYWORD]: 16 });
const iso = (t: number | null) => (t === null ? null : new Date(t).toISOString());

const PushSubscription = Type.Object(
  {
    endpoint: Str(8, 2048),
    keys: Type.Object({ p256dh: Str(1, 200), auth: Str(1, 100) }, { additionalProperties: false }),
  },
  { additionalProperties: false },
);

export const ContactBody = Type.Object(
  {
    externalId: Type.Optional(NullableStr(256, 'Your id for this person (unique in the organization)')),
    phones: Type.Optional(Type.Array(Str(1, 32), { maxItems: 10, description: 'E.164; the first is used' })),
    emails: Type.Optional(Type.Array(Str(3, 320), { maxItems: 10 })),
    whatsappIds: Type.Optional(Type.Array(Str(1, 128), { maxItems: 10 })),
    pushSubscriptions: Type.Optional(Type.Array(PushSubscription, { maxItems: 20 })),
    attributes: Type.Optional(FreeForm),
    tags: Type.Optional(Type.Array(Str(1, 64), { maxItems: 100 })),
    persona: Type.Optional(NullableStr(100)),
    timeZone: Type.Optional(NullableStr(64, 'IANA zone; default: derived from the first phone number')),
    language: Type.Optional(NullableStr(35, 'BCP 47, e.g. en-US')),
  },
  { additionalProperties: false },
);

export const ContactSchema = Type.Object({
  id: Type.String(),
  externalId: Type.Union([Type.String(), Type.Null()]),
  phones: Type.Array(Type.String()),
  emails: Type.Array(Type.String()),
  whatsappIds: Type.Array(Type.String()),
  pushSubscriptions: Type.Array(
    Type.Object({ endpoint: Type.String(), keys: Type.Object({ p256dh: Type.String(), auth: Type.String() }) }),
  ),
  attributes: Type.Record(Type.String(), Type.Unknown()),
  tags: Type.Array(Type.String()),
  persona: Type.Union([Type.String(), Type.Null()]),
  timeZone: Type.Union([Type.String(), Type.Null()]),
  timeZoneSource: Type.Union([Type.String({ enum: ['given', 'phone'] }), Type.Null()]),
  language: Type.Union([Type.String(), Type.Null()]),
  erasedAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  createdAt: Type.String({ format: 'date-time' }),
  updatedAt: Type.String({ format: 'date-time' }),
});

export function presentContact(c: ContactRecord) {
  const of = (kind: string) => c.identifiers.filter((i) => i.kind === kind);
  return {
    id: c.id,
    externalId: c.externalId,
    phones: of('phone').map((i) => i.value),
    emails: of('email').map((i) => i.value),
    whatsappIds: of('whatsapp').map((i) => i.value),
    pushSubscriptions: of('push').map((i) => ({
      endpoint: i.value,
      keys: (i.data?.keys ?? { p256dh: '', auth: '' }) as { p256dh: string; auth: string },
    })),
    attributes: c.attributes,
    tags: c.tags,
    persona: c.persona,
    timeZone: c.timeZone,
    timeZoneSource: c.timeZoneSource,
    language: c.language,
    erasedAt: iso(c.erasedAt),
    createdAt: iso(c.createdAt) as string,
    updatedAt: iso(c.updatedAt) as string,
  };
}

const CONSENT_CHANNELS = [...CHANNELS, '*'];
const ConsentBody = Type.Object(
  {
    channel: Type.String({ enum: CONSENT_CHANNELS, description: 'A channel, or * for all' }),
    purpose: Type.String({ enum: ['transactional', 'marketing', '*'] }),
    status: Type.String({ enum: ['opted_in', 'opted_out'] }),
    sender: Type.Optional(Str(1, 256)),
    source: Type.Optional(Type.String({ enum: ['api', 'import', 'journey'] })),
    evidence: Type.Optional(FreeForm),
  },
  { additionalProperties: false },
);
const ConsentRecordSchema = Type.Object({
  channel: Type.String(),
  purpose: Type.String(),
  sender: Type.String(),
  status: Type.String(),
  source: Type.String(),
  updatedAt: Type.String({ format: 'date-time' }),
});
const ConsentEntrySchema = Type.Object({
  channel: Type.String(),
  purpose: Type.String(),
  sender: Type.String(),
  status: Type.String(),
  source: Type.String(),
  evidence: Type.Union([Type.Record(Type.String(), Type.Unknown()), Type.Null()]),
  at: Type.String({ format: 'date-time' }),
});
const ConsentViewSchema = Type.Object({
  contactId: Type.String(),
  consents: Type.Array(ConsentRecordSchema),
  history: Type.Array(ConsentEntrySchema),
  effective: Type.Record(Type.String(), Type.Record(Type.String(), Type.String())),
});

function presentConsentView(v: ConsentView) {
  return {
    contactId: v.contactId,
    consents: v.consents.map(({ contactId: _, ...c }) => ({ ...c, updatedAt: iso(c.updatedAt) as string })),
    history: v.history.map((h) => ({
      channel: h.channel,
      purpose: h.purpose,
      sender: h.sender,
      status: h.status,
      source: h.source,
      evidence: h.evidence,
      at: iso(h.at) as string,
    })),
    effective: v.effective,
  };
}

function presentExport(e: ContactExport) {
  return {
    contact: presentContact(e.contact),
    consents: e.consents.map(({ contactId: _, ...c }) => ({ ...c, updatedAt: iso(c.updatedAt) })),
    consentHistory: e.consentHistory.map((h) => ({ ...h, at: iso(h.at) })),
    events: e.events.map((ev) => ({
      id: ev.id,
      name: ev.name,
      properties: ev.properties,
      occurredAt: iso(ev.occurredAt),
      receivedAt: iso(ev.receivedAt),
    })),
    segments: e.segments,
    ...e.extras,
    exportedAt: iso(e.exportedAt),
  };
}

const HHMM = Type.String({ pattern: '^([01]\\d|2[0-3]):[0-5]\\d$|^24:00$', description: 'HH:MM, local time' });
const SettingsBody = Type.Object(
  {
    helpText: Type.Optional(Str(1, 1600)),
    optOutText: Type.Optional(Str(1, 1600)),
    optInText: Type.Optional(Str(1, 1600)),
    quietHours: Type.Optional(
      Type.Union([Type.Object({ start: HHMM, end: HHMM }, { additionalProperties: false }), Type.Null()], {
        description: 'When marketing may be sent, in the recipient’s local time; null: any time',
      }),
    ),
    defaultTimeZone: Type.Optional(Str(1, 64)),
    marketingRequiresOptIn: Type.Optional(Type.Boolean()),
    frequencyCaps: Type.Optional(
      Type.Array(
        Type.Object(
          {
            channel: Type.String({ enum: CONSENT_CHANNELS }),
            purpose: Type.String({ enum: ['transactional', 'marketing'] }),
            max: Type.Integer({ minimum: 1, maximum: 10_000 }),
            windowHours: Type.Integer({ minimum: 1, maximum: 744 }),
            action: Type.String({ enum: ['defer', 'suppress'] }),
          },
          { additionalProperties: false },
        ),
        { maxItems: 20 },
      ),
    ),
  },
  { additionalProperties: false },
);
const SettingsSchema = Type.Object({
  helpText: Type.String(),
  optOutText: Type.String(),
  optInText: Type.String(),
  quietHours: Type.Union([Type.Object({ start: Type.String(), end: Type.String() }), Type.Null()]),
  defaultTimeZone: Type.String(),
  marketingRequiresOptIn: Type.Boolean(),
  frequencyCaps: Type.Array(
    Type.Object({
      channel: Type.String(),
      purpose: Type.String(),
      max: Type.Integer(),
      windowHours: Type.Integer(),
      action: Type.String(),
    }),
  ),
});

const IdParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 64 }) });
const ListQuery = Type.Object(
  {
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500, default: 50 })),
    cursor: Type.Optional(Type.String({ maxLength: 64 })),
    tag: Type.Optional(Str(1, 64)),
    externalId: Type.Optional(Str(1, 256)),
    phone: Type.Optional(Str(1, 32)),
    email: Type.Optional(Str(3, 320)),
  },
  { additionalProperties: false },
);
const responses = { ...errorResponses, 409: Type.Ref('Error') };

export interface ContactRouteDeps {
  contacts: Contacts;
  consent: ConsentService;
  compliance: Compliance;
}

export function contactRoutes(app: FastifyInstance, deps: ContactRouteDeps): void {
  app.removeContentTypeParser('text/plain');
  const tags = ['contacts'];

  app.post<{ Body: ContactInput }>(
    '/v1/contacts',
    {
      schema: { tags, summary: 'Create a contact', body: ContactBody, response: { 201: ContactSchema, ...responses } },
    },
    async (request, reply) => {
      const c = await deps.contacts.create(request.auth.orgId, request.body);
      reply.status(201);
      return presentContact(c);
    },
  );

  app.put<{ Body: ContactInput }>(
    '/v1/contacts',
    {
      schema: {
        tags,
        summary: 'Create or update the contact holding the external id or an identifier given',
        body: ContactBody,
        response: { 200: ContactSchema, 201: ContactSchema, ...responses },
      },
    },
    async (request, reply) => {
      const b = request.body;
      const keyed =
        !!b.externalId ||
        !!b.phones?.length ||
        !!b.emails?.length ||
        !!b.whatsappIds?.length ||
        !!b.pushSubscriptions?.length;
      if (!keyed)
        throw new ValidationError('missing_field', "give 'externalId' or an identifier to match the contact on", {
          field: 'externalId',
        });
      const r = await deps.contacts.upsert(request.auth.orgId, b);
      reply.status(r.created ? 201 : 200);
      return presentContact(r.contact);
    },
  );

  app.get<{
    Querystring: { limit?: number; cursor?: string; tag?: string; externalId?: string; phone?: string; email?: string };
  }>(
    '/v1/contacts',
    {
      schema: {
        tags,
        summary: 'List contacts, newest first',
        querystring: ListQuery,
        response: {
          200: Type.Object({ items: Type.Array(ContactSchema), nextCursor: Type.Union([Type.String(), Type.Null()]) }),
          ...errorResponses,
        },
      },
    },
    async (request) => {
      const { limit, ...rest } = request.query;
      const page = await deps.contacts.list(request.auth.orgId, { limit: limit ?? 50, ...rest });
      return { items: page.items.map(presentContact), nextCursor: page.nextCursor };
    },
  );

  app.get<{ Params: { id: string } }>(
    '/v1/contacts/:id',
    {
      schema: {
        tags,
        summary: 'A contact (a merged contact answers with the one it was merged into)',
        params: IdParams,
        response: { 200: ContactSchema, ...errorResponses },
      },
    },
    async (request) => presentContact(await deps.contacts.get(request.auth.orgId, request.params.id)),
  );

  app.patch<{ Params: { id: string }; Body: ContactInput }>(
    '/v1/contacts/:id',
    {
      schema: {
        tags,
        summary: 'Change a contact: identifier lists replace, attributes are merge-patched (null deletes)',
        params: IdParams,
        body: ContactBody,
        response: { 200: ContactSchema, ...responses },
      },
    },
    async (request) => presentContact(await deps.contacts.update(request.auth.orgId, request.params.id, request.body)),
  );

  app.delete<{ Params: { id: string } }>(
    '/v1/contacts/:id',
    {
      schema: {
        tags,
        summary: 'Erase a contact (GDPR): personal data removed, an anonymous record kept',
        params: IdParams,
        response: { 204: Type.Null(), ...errorResponses },
      },
    },
    async (request, reply) => {
      await deps.contacts.erase(request.auth.orgId, request.params.id);
      reply.status(204).send();
    },
  );

  app.post<{ Params: { id: string }; Body: { otherId: string } }>(
    '/v1/contacts/:id/merge',
    {
      schema: {
        tags,
        summary: 'Merge another contact into this one',
        params: IdParams,
        body: Type.Object({ otherId: Str(1, 64) }, { additionalProperties: false }),
        response: { 200: ContactSchema, ...responses },
      },
    },
    async (request) =>
      presentContact(await deps.contacts.merge(request.auth.orgId, request.params.id, request.body.otherId)),
  );

  app.get<{ Params: { id: string } }>(
    '/v1/contacts/:id/export',
    {
      schema: {
        tags,
        summary: 'Everything held on a contact (GDPR access)',
        params: IdParams,
        response: { 200: Type.Record(Type.String(), Type.Unknown()), ...errorResponses },
      },
    },
    async (request) => presentExport(await deps.contacts.export(request.auth.orgId, request.params.id)),
  );

  app.get<{ Params: { id: string } }>(
    '/v1/contacts/:id/consent',
    {
      schema: {
        tags,
        summary: "A contact's consent: current statements, history and the effect per channel and purpose",
        params: IdParams,
        response: { 200: ConsentViewSchema, ...errorResponses },
      },
    },
    async (request) => presentConsentView(await deps.consent.view(request.auth.orgId, request.params.id)),
  );

  app.post<{ Params: { id: string }; Body: ConsentInput }>(
    '/v1/contacts/:id/consent',
    {
      schema: {
        tags,
        summary: 'Record a consent statement (kept in the audit trail)',
        params: IdParams,
        body: ConsentBody,
        response: { 200: ConsentViewSchema, ...errorResponses },
      },
    },
    async (request) =>
      presentConsentView(await deps.consent.record(request.auth.orgId, request.params.id, [request.body])),
  );

  app.get(
    '/v1/compliance/settings',
    {
      schema: {
        tags: ['compliance'],
        summary: 'Help text, keyword replies, quiet hours, frequency caps',
        response: { 200: SettingsSchema, ...errorResponses },
      },
    },
    async (request) => deps.compliance.getSettings(request.auth.orgId),
  );

  app.put<{ Body: SettingsInput }>(
    '/v1/compliance/settings',
    {
      schema: {
        tags: ['compliance'],
        summary: 'Change compliance settings (fields not given keep their value)',
        body: SettingsBody,
        response: { 200: SettingsSchema, ...errorResponses },
      },
    },
    async (request): Promise<ComplianceSettings> => deps.compliance.saveSettings(request.auth.orgId, request.body),
  );
}
