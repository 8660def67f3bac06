/**
 * The HTTP API (Fastify). Every route has a JSON schema: bodies are validated strictly (no coercion, unknown
 * fields rejected), query strings with coercion; the same schemas produce the OpenAPI document at /docs.
 */
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import { Ajv } from 'ajv';
import Fastify, {
  type FastifyBaseLogger,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
  LogController,
} from 'fastify';
import type { ApiKeyRecord } from '../ports/store.ts';
import type { AcceptMessages } from '../services/accept-messages.ts';
import type { ApiKeyAuth } from '../services/auth.ts';
import type { CarrierEvents } from '../services/carrier-events.ts';
import type { MessageCommands } from '../services/message-commands.ts';
import type { MessageQueries } from '../services/message-queries.ts';
import type { Senders } from '../services/senders.ts';
import type { Templates } from '../services/templates.ts';
import { bodyAjv } from '../services/validation.ts';
import type { WebhookEndpoints } from '../services/webhook-endpoints.ts';
import { handleError } from './errors.ts';
import { deadLetterRoutes } from './routes/dead-letters.ts';
import { messageRoutes } from './routes/messages.ts';
import { senderRoutes } from './routes/senders.ts';
import { type HealthDeps, systemRoutes } from './routes/system.ts';
import { templateRoutes } from './routes/templates.ts';
import { webhookEndpointRoutes } from './routes/webhook-endpoints.ts';
import { webhookRoutes } from './routes/webhooks.ts';
import { ErrorSchema } from './schemas.ts';

declare module 'fastify' {
  interface FastifyRequest {
    auth: ApiKeyRecord;
  }
}

export interface AppDeps extends HealthDeps {
  accept: AcceptMessages;
  queries: MessageQueries;
  commands: MessageCommands;
  templates: Templates;
  senders: Senders;
  auth: ApiKeyAuth;
  carrierEvents: CarrierEvents;
  webhookEndpoints: WebhookEndpoints;
  /** Contacts, consent, events, segments and journeys routes (registered in the authenticated scope). */
  engagementRoutes?: (api: FastifyInstance) => void;
  now: () => number;
  logger?: FastifyBaseLogger;
  /** Extra routes mounted beside the API (the sandbox carrier in the embedded deployment). */
  extraRoutes?: (app: FastifyInstance) => void | Promise<void>;
  onRequestDone?: (route: string, method: string, statusCode: number, seconds: number) => void;
}

const queryAjv = new Ajv({
  coerceTypes: 'array',
  useDefaults: true,
  removeAdditional: false,
  allErrors: false,
  strict: false,
});

export async function buildApp(deps: AppDeps): Promise<FastifyInstance> {
  const app = Fastify({
    ...(deps.logger ? { loggerInstance: deps.logger } : { logger: false }),
    bodyLimit: 1024 * 1024,
    // Request lines are not logged (metrics cover them); errors still are.
    logController: new LogController({ disableRequestLogging: true }),
    return503OnClosing: true,
    // Errors the router raises before any route runs (bad percent-encoding, over-long parameters).
    frameworkErrors: handleError,
    ajv: { customOptions: { strict: false } },
  });
  app.setValidatorCompiler(({ schema, httpPart }) =>
    httpPart === 'body' ? bodyAjv.compile(schema) : queryAjv.compile(schema),
  );
  app.setErrorHandler(handleError);
  const notFound = (request: FastifyRequest, reply: FastifyReply) =>
    reply
      .status(404)
      .send({ error: { code: 'route_not_found', message: `no route ${request.method} ${request.url.split('?')[0]}` } });
  app.setNotFoundHandler(notFound);
  // An unknown route is a 404 whatever its body: answer in onRequest, before the body is parsed.
  app.addHook('onRequest', (request, reply, next) => {
    if (request.is404) notFound(request, reply);
    else next();
  });
  app.addSchema(ErrorSchema);
  app.decorateRequest('auth', null as unknown as ApiKeyRecord);
  if (deps.onRequestDone) {
    const done = deps.onRequestDone;
    app.addHook('onResponse', (request, reply, next) => {
      done(request.routeOptions.url ?? 'unknown', request.method, reply.statusCode, reply.elapsedTime / 1000);
      next();
    });
  }

  await app.register(swagger, {
    openapi: {
      info: {
        title: 'Omnichannel API',
        version: deps.version,
        description: 'Send and track messages on every channel.',
      },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
    },
    refResolver: {
      buildLocalReference: (json, _base, _frag, i) => (typeof json.$id === 'string' ? json.$id : `def-${i}`),
    },
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });

  systemRoutes(app, deps);
  webhookRoutes(app, deps);
  await app.register(async (api) => {
    api.addHook('onRequest', async (request) => {
      request.auth = await deps.auth.authenticate(request.headers.authorization);
    });
    messageRoutes(api, deps);
    templateRoutes(api, deps);
    deadLetterRoutes(api, deps);
    senderRoutes(api, deps);
    webhookEndpointRoutes(api, deps);
    deps.engagementRoutes?.(api);
  });
  if (deps.extraRoutes) await deps.extraRoutes(app);
  return app;
}
