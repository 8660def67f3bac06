/**
 * The composition root: the only place that chooses adapters. `mode` picks what this process runs:
 * `all` (API, workers and the sandbox carrier: the embedded default), `api` or `worker`.
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import pino from 'pino';
import { systemClock } from '../adapters/clock/system-clock.ts';
import { createPrometheus } from '../adapters/metrics/prometheus.ts';
import { MemoryRateLimiter } from '../adapters/rate-limiter/memory-rate-limiter.ts';
import { BullmqJobQueue } from '../adapters/redis/bullmq-job-queue.ts';
import { RedisPubSub } from '../adapters/redis/redis-pubsub.ts';
import { RedisRateLimiter } from '../adapters/redis/redis-rate-limiter.ts';
import { HttpWebhookTransport } from '../adapters/webhooks/http-webhook-transport.ts';
import { buildApp } from '../http/app.ts';
import type { Clock } from '../ports/clock.ts';
import type { JobQueue } from '../ports/queue.ts';
import type { RateLimiter } from '../ports/rate-limiter.ts';
import { SandboxServer } from '../sandbox/sandbox-server.ts';
import { AcceptMessages, SEND_QUEUE } from '../services/accept-messages.ts';
import { ApiKeyAuth } from '../services/auth.ts';
import { type BootstrapResult, bootstrap } from '../services/bootstrap.ts';
import { CARRIER_EVENTS_QUEUE, CarrierEvents } from '../services/carrier-events.ts';
import { CarrierRegistry } from '../services/carrier-registry.ts';
import { DispatchMessages } from '../services/dispatch-messages.ts';
import { MessageCommands } from '../services/message-commands.ts';
import { MessageQueries } from '../services/message-queries.ts';
import { OutboxRelay } from '../services/outbox-relay.ts';
import { OutboxSweeper } from '../services/outbox-sweeper.ts';
import { SenderRouting } from '../services/sender-routing.ts';
import { Senders } from '../services/senders.ts';
import { Templates } from '../services/templates.ts';
import { WebhookDelivery } from '../services/webhook-delivery.ts';
import { WebhookEndpoints } from '../services/webhook-endpoints.ts';
import { WorkerLoop } from '../workers/worker-loop.ts';
import { openBackend } from './backend.ts';
import type { Config } from './config.ts';
import { Engagement } from './engagement.ts';
import { carrierProviders } from './providers.ts';
import { openSecretBox } from './secret-box.ts';

export type Mode = 'all' | 'api' | 'worker';

export interface Runtime {
  /** Base URL the API listens on (when this process serves HTTP). */
  url: string | null;
  bootstrap: BootstrapResult;
  /** The HTTP app (for in-process requests with `inject`), when this process serves HTTP. */
  app: FastifyInstance | undefined;
  stop(): Promise<void>;
}

export function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

export async function startRuntime(config: Config, mode: Mode = 'all', clock: Clock = systemClock): Promise<Runtime> {
  const logger = pino({ level: config.logLevel });
  const secrets = openSecretBox(config);
  const backend = await openBackend(config, clock);
  const { store } = backend;
  // Scale-out with Redis: jobs committed to the database outbox are relayed to BullMQ, where workers take them.
  let broker: BullmqJobQueue | undefined;
  let pubsub: RedisPubSub | undefined;
  if (config.redisUrl) {
    pubsub = new RedisPubSub({ connection: config.redisUrl, prefix: `${config.redisPrefix}:` });
    broker = new BullmqJobQueue({
      connection: config.redisUrl,
      prefix: config.redisPrefix,
      notify: pubsub,
      onError: (err) => logger.warn({ err }, 'redis queue trouble'),
    });
  }
  const queue: JobQueue = broker ?? backend.jobs;
  // Per-sender rate limits: in Redis when there is one, so every worker process shares each sender's budget.
  const limiter: RateLimiter = config.redisUrl
    ? new RedisRateLimiter({ connection: config.redisUrl, prefix: `${config.redisPrefix}:rate` })
    : new MemoryRateLimiter();
  // Workers need no API key; with separate processes, `omni migrate` (run first) bootstraps, so API processes
  // starting together find the organization already there.
  const boot: BootstrapResult =
    mode === 'worker'
      ? { created: false }
      : await bootstrap(store, secrets, clock, config.bootstrapApiKey ? { apiKey: config.bootstrapApiKey } : {});

  const prometheus = createPrometheus({ queueDepth: () => queue.depth(), byStatus: () => store.countByStatus() });
  const metrics = prometheus.pipeline;
  // With OMNI_PORT=0 (tests) the real port is known only after listen; URLs are resolved when first used.
  let publicUrl = config.publicUrl;
  const sandboxUrl = () => config.sandboxUrl ?? publicUrl;
  const providers = carrierProviders({ sandboxUrl });
  const registry = new CarrierRegistry(
    store,
    secrets,
    providers,
    (sender) => `${publicUrl}/webhooks/${sender.provider}/${sender.id}`,
    clock,
    { allowPrivateUrls: config.allowPrivateUrls },
  );
  const routing = new SenderRouting(store, registry, clock);
  const templates = new Templates(store, clock);
  const onError = (name: string) => (err: unknown) => logger.error({ err }, `${name} worker failed; retrying`);
  const engagement = new Engagement({
    stores: { contacts: backend.contacts, journeys: backend.journeys },
    messages: store,
    clock,
    webhookAllowPrivate: config.webhooks.allowPrivate,
    leaseMs: config.workers.leaseMs,
    retry: config.retry,
    pollMs: config.workers.pollMs,
    onError,
    publish: (events) => backend.webhooks.publishEvents(events),
  });
  const accept = new AcceptMessages(store, templates, clock, metrics, engagement.contacts);
  engagement.attach(accept);
  const carrierEvents = new CarrierEvents(store, queue, registry, clock, metrics, engagement.hooks);
  const webhookConfig = config.webhooks;
  const webhookTransport = new HttpWebhookTransport({
    allowPrivate: webhookConfig.allowPrivate,
    timeoutMs: webhookConfig.timeoutMs,
    userAgent: `Omnichannel-Webhooks/${packageVersion()}`,
  });
  const webhookEndpoints = new WebhookEndpoints(backend.webhooks, secrets, webhookTransport, clock);
  let webhookDelivery: WebhookDelivery | undefined;

  const loops: WorkerLoop[] = [];
  const runsWorkers = mode === 'all' || mode === 'worker';
  const servesHttp = mode === 'all' || mode === 'api';
  if (runsWorkers) {
    const dispatch = new DispatchMessages(store, queue, registry, routing, clock, metrics, {
      batchSize: config.workers.batchSize,
      leaseMs: config.workers.leaseMs,
      retry: config.retry,
      limiter,
      policy: engagement.policy,
      onOutcomes: (updates, at) => engagement.outcomes(updates, at),
      onPushSubscriptionsGone: (gone) => engagement.pushSubscriptionsGone(gone),
    });
    // Outbound webhooks: the fan-out turns the events that status changes wrote into deliveries; it is woken when the
    // send and events workers changed messages (and polls for changes made elsewhere).
    webhookDelivery = new WebhookDelivery(backend.webhooks, webhookTransport, secrets, clock, {
      concurrency: webhookConfig.concurrency,
      perEndpoint: webhookConfig.perEndpoint,
      leaseMs: webhookConfig.timeoutMs * 2 + 30_000,
      retry: {
        baseDelayMs: webhookConfig.retryBaseMs,
        maxDelayMs: webhookConfig.retryMaxMs,
        retryForMs: webhookConfig.retryForMs,
      },
      disableAfterMs: webhookConfig.disableAfterMs,
      onError: onError('webhook delivery'),
      metrics,
    });
    const webhooks = webhookDelivery;
    const fanOut = new WorkerLoop(() => webhooks.fanOut(), {
      name: 'webhook-fan-out',
      concurrency: 1,
      pollMs: config.workers.pollMs,
      onError: onError('webhook fan-out'),
    });
    const deliver = new WorkerLoop(() => webhooks.deliver(), {
      name: 'webhook-delivery',
      concurrency: 1,
      pollMs: config.workers.pollMs,
      onError: onError('webhook delivery'),
    });
    webhooks.onReady(() => deliver.wake());
    const wakingFanOut = (run: () => Promise<number>) => async () => {
      const n = await run();
      if (n > 0) fanOut.wake();
      return n;
    };
    const send = new WorkerLoop(
      wakingFanOut(() => dispatch.runOnce()),
      {
        name: 'send',
        concurrency: config.workers.sendConcurrency,
        pollMs: config.workers.pollMs,
        onError: onError('send'),
      },
    );
    const events = new WorkerLoop(
      wakingFanOut(() => carrierEvents.runOnce()),
      {
        name: 'events',
        concurrency: 1,
        pollMs: config.workers.pollMs,
        onError: onError('events'),
      },
    );
    queue.onEnqueue((q) => {
      fanOut.wake();
      if (q === SEND_QUEUE) send.wake();
      else if (q === CARRIER_EVENTS_QUEUE) events.wake();
      else {
        send.wake();
        events.wake();
      }
    });
    loops.push(send, events, fanOut, deliver, ...engagement.loops());
    if (broker) {
      const relay = new OutboxRelay(backend.jobs, broker, [SEND_QUEUE, CARRIER_EVENTS_QUEUE], () => clock.now());
      const relayLoop = new WorkerLoop(() => relay.runOnce(), {
        name: 'outbox-relay',
        concurrency: 1,
        pollMs: config.workers.pollMs,
        onError: onError('outbox relay'),
      });
      backend.jobs.onEnqueue(() => relayLoop.wake());
      const sweeper = new OutboxSweeper(store, broker, clock, { graceMs: config.sweepGraceMs, batchSize: 10_000 });
      // One sweep per interval: a backlog older than the grace period must not make the sweeper spin on it.
      const sweepLoop = new WorkerLoop(() => sweeper.runOnce().then(() => 0), {
        name: 'outbox-sweeper',
        concurrency: 1,
        pollMs: Math.max(1000, Math.floor(config.sweepGraceMs / 4)),
        onError: onError('outbox sweeper'),
      });
      loops.push(relayLoop, sweepLoop);
    }
  }

  let sandbox: SandboxServer | undefined;
  let app: Awaited<ReturnType<typeof buildApp>> | undefined;
  let url: string | null = null;
  if (servesHttp) {
    if (mode === 'all') {
      // The sandbox carrier keeps its own small database beside the product's data.
      mkdirSync(config.dataDir, { recursive: true });
      sandbox = new SandboxServer({
        dbPath: join(config.dataDir, 'sandbox.db'),
        delayMs: config.sandboxDelayMs,
        logger,
      });
    }
    app = await buildApp({
      version: packageVersion(),
      accept,
      queries: new MessageQueries(store, queue),
      commands: new MessageCommands(store, clock, metrics),
      templates,
      senders: new Senders(store, registry, secrets, clock),
      auth: new ApiKeyAuth(store),
      carrierEvents,
      webhookEndpoints,
      engagementRoutes: (api) => engagement.routes(api),
      now: () => clock.now(),
      logger,
      onRequestDone: prometheus.observeRequest,
      readiness: async () => ({
        database: await withTimeout(store.ping(), 2000),
        ...(broker
          ? {
              redis: await withTimeout(
                broker.depth().then(() => true),
                2000,
              ),
            }
          : {}),
        ...(runsWorkers ? { workers: loops.every((l) => l.isRunning) } : {}),
      }),
      metrics: async () => ({
        contentType: prometheus.registry.contentType,
        body: await prometheus.registry.metrics(),
      }),
      ...(sandbox ? { extraRoutes: (a) => sandbox?.registerRoutes(a) } : {}),
    });
    await app.listen({ port: config.port, host: config.host });
    const address = app.server.address();
    const port = typeof address === 'object' && address ? address.port : config.port;
    url = `http://127.0.0.1:${port}`;
    if (config.port === 0) publicUrl = url;
  }
  sandbox?.start();
  for (const l of loops) l.start();

  let stopping: Promise<void> | undefined;
  return {
    url,
    bootstrap: boot,
    app,
    stop() {
      stopping ??= (async () => {
        // Workers first: they finish the batches in flight (their carriers may be this very process's sandbox).
        // Then the sandbox and the carriers' keep-alive connections, so that nothing of ours keeps the HTTP
        // server's connections busy; then the server, which lets requests in flight finish.
        await Promise.all(loops.map((l) => l.stop()));
        // Webhook requests in flight finish (each within its time-out) and their outcomes are stored.
        await webhookDelivery?.drain();
        await webhookTransport.close();
        await sandbox?.stop();
        await registry.close();
        await engagement.close();
        await app?.close();
        await sandbox?.close();
        await broker?.close();
        await pubsub?.close();
        await limiter.close();
        await store.close();
      })();
      return stopping;
    },
  };
}

/** True when `check` resolves true within `ms`; false on failure or time-out (a readiness probe must not hang). */
function withTimeout(check: Promise<boolean>, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(false), ms);
    check.then(
      (ok) => {
        clearTimeout(t);
        resolve(ok);
      },
      () => {
        clearTimeout(t);
        resolve(false);
      },
    );
  });
}
