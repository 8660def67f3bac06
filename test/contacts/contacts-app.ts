/**
 * A small Fastify app with the contacts, consent, compliance, events and segments routes over a fresh SQLite
 * database and a manual clock: the product's error handler and validators, and a stub authentication that puts
 * the request in organization `x-org` (default ORG). The real app's wiring is not these tests' concern.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Ajv } from 'ajv';
import Fastify, { type FastifyInstance } from 'fastify';
import { ManualClock } from '../../src/adapters/clock/system-clock.ts';
import { migrateToLatest } from '../../src/adapters/sql/migrations.ts';
import { openSqlite, type SqliteHandle } from '../../src/adapters/sqlite/database.ts';
import { SqliteContactStore } from '../../src/adapters/sqlite/sqlite-contact-store.ts';
import { handleError } from '../../src/http/errors.ts';
import { contactRoutes } from '../../src/http/routes/contacts.ts';
import { eventRoutes } from '../../src/http/routes/events.ts';
import { segmentRoutes } from '../../src/http/routes/segments.ts';
import { ErrorSchema } from '../../src/http/schemas.ts';
import type { BusinessEvent } from '../../src/ports/contact-store.ts';
import type { ApiKeyRecord } from '../../src/ports/store.ts';
import { BusinessEvents } from '../../src/services/business-events.ts';
import { Compliance } from '../../src/services/compliance.ts';
import { ConsentService } from '../../src/services/consent.ts';
import { Contacts } from '../../src/services/contacts.ts';
import { Segments, type SegmentTransitions } from '../../src/services/segments.ts';
import { bodyAjv } from '../../src/services/validation.ts';

export const ORG = 'org_01JTESTORGANIZATION000000000';
export const OTHER_ORG = 'org_01JOTHERORGANIZATION0000000';
/** 2026-06-10 12:00 in New York. */
export const NOON_NY = Date.UTC(2026, 5, 10, 16, 0);

export interface ContactsApp {
  app: FastifyInstance;
  h: SqliteHandle;
  store: SqliteContactStore;
  clock: ManualClock;
  contacts: Contacts;
  consent: ConsentService;
  compliance: Compliance;
  events: BusinessEvents;
  segments: Segments;
  /** Every segment transition `contactChanged` reported, in order. */
  transitions: SegmentTransitions[];
  /** Events handed to `onEvent`. */
  dispatched: BusinessEvent[];
  /** Addresses reported by erasures. */
  erased: { contactId: string; addresses: string[] }[];
  /** When set, `onEvent` throws this. */
  failOnEvent: Error | null;
  call<T = any>(
    method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE',
    url: string,
    body?: unknown,
    headers?: Record<string, string>,
  ): Promise<{ status: number; body: T }>;
  close(): Promise<void>;
}

const queryAjv = new Ajv({
  coerceTypes: 'array',
  useDefaults: true,
  removeAdditional: false,
  allErrors: false,
  strict: false,
});

export async function contactsApp(): Promise<ContactsApp> {
  const dir = mkdtempSync(join(tmpdir(), 'omni-contacts-api-'));
  const h = openSqlite(join(dir, 'omni.db'));
  await migrateToLatest(h.kysely);
  const store = new SqliteContactStore(h);
  const clock = new ManualClock(NOON_NY);
  const segments = new Segments(store, clock);
  const ctx = {
    transitions: [] as SegmentTransitions[],
    dispatched: [] as BusinessEvent[],
    erased: [] as { contactId: string; addresses: string[] }[],
    failOnEvent: null as Error | null,
  };
  const changed = async (orgId: string, contactId: string) => {
    const t = await segments.contactChanged(orgId, contactId);
    if (t.entered.length > 0 || t.left.length > 0) ctx.transitions.push(t);
  };
  const contacts = new Contacts(store, clock, {
    onChanged: changed,
    onErased: async (_org, contactId, addresses) => {
      ctx.erased.push({ contactId, addresses });
    },
    exportExtras: async () => ({ messages: [] }),
  });
  const consent = new ConsentService(store, contacts, clock, { onChanged: changed });
  const compliance = new Compliance(store, contacts, consent, clock);
  const events = new BusinessEvents(store, contacts, clock, {
    onContactChanged: changed,
    onEvent: async (e) => {
      if (ctx.failOnEvent) throw ctx.failOnEvent;
      ctx.dispatched.push(e);
    },
  });

  const app = Fastify({ logger: false });
  app.setValidatorCompiler(({ schema, httpPart }) =>
    httpPart === 'body' ? bodyAjv.compile(schema) : queryAjv.compile(schema),
  );
  app.setErrorHandler(handleError);
  app.addSchema(ErrorSchema);
  app.decorateRequest('auth', null as unknown as ApiKeyRecord);
  await app.register(async (api) => {
    api.addHook('onRequest', async (request) => {
      const org = request.headers['x-org'];
      request.auth = { id: 'key_test', name: 'test', orgId: typeof org === 'string' ? org : ORG };
    });
    contactRoutes(api, { contacts, consent, compliance });
    eventRoutes(api, { events });
    segmentRoutes(api, { segments });
  });
  await app.ready();

  const result: ContactsApp = {
    app,
    h,
    store,
    clock,
    contacts,
    consent,
    compliance,
    events,
    segments,
    get transitions() {
      return ctx.transitions;
    },
    get dispatched() {
      return ctx.dispatched;
    },
    get erased() {
      return ctx.erased;
    },
    get failOnEvent() {
      return ctx.failOnEvent;
    },
    set failOnEvent(e: Error | null) {
      ctx.failOnEvent = e;
    },
    async call(method, url, body, headers = {}) {
      const res = await app.inject({
        method,
        url,
        headers: { ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers },
        ...(body !== undefined ? { payload: typeof body === 'string' ? body : JSON.stringify(body) } : {}),
      });
      return { status: res.statusCode, body: res.body ? JSON.parse(res.body) : undefined };
    },
    async close() {
      await app.close();
      h.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return result;
}
