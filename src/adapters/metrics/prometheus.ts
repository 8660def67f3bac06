/** Prometheus metrics (prom-client): pipeline counters, HTTP latency, queue depth and messages by status. */
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { PipelineMetrics } from '../../ports/metrics.ts';

export interface Prometheus {
  registry: Registry;
  pipeline: PipelineMetrics;
  observeRequest(route: string, method: string, statusCode: number, seconds: number): void;
}

export function createPrometheus(gauges: {
  queueDepth(): Promise<Record<string, number>>;
  byStatus(): Promise<Record<string, number>>;
}): Prometheus {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'omni_' });
  const accepted = new Counter({
    name: 'omni_messages_accepted_total',
    help: 'Messages accepted',
    labelNames: ['channel'],
    registers: [registry],
  });
  const outcomes = new Counter({
    name: 'omni_send_attempts_total',
    help: 'Send attempts by outcome',
    labelNames: ['provider', 'outcome'],
    registers: [registry],
  });
  const statuses = new Counter({
    name: 'omni_status_changes_total',
    help: 'Status changes applied from carrier events and commands',
    labelNames: ['status'],
    registers: [registry],
  });
  const events = new Counter({
    name: 'omni_carrier_events_total',
    help: 'Carrier webhook events received',
    labelNames: ['provider'],
    registers: [registry],
  });
  const webhookAttempts = new Counter({
    name: 'omni_webhook_attempts_total',
    help: 'Outbound webhook requests by what became of the delivery (delivered, retry later, failed for good)',
    labelNames: ['result'],
    registers: [registry],
  });
  const webhookLatency = new Histogram({
    name: 'omni_webhook_attempt_duration_seconds',
    help: 'Outbound webhook request duration, until the answer or the error',
    buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });
  const http = new Histogram({
    name: 'omni_http_request_duration_seconds',
    help: 'HTTP request duration',
    labelNames: ['route', 'method', 'status'],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [registry],
  });
  new Gauge({
    name: 'omni_queue_jobs',
    help: 'Jobs waiting or leased, per queue',
    labelNames: ['queue'],
    registers: [registry],
    async collect() {
      this.reset();
      for (const [q, n] of Object.entries(await gauges.queueDepth())) this.set({ queue: q }, n);
    },
  });
  new Gauge({
    name: 'omni_messages',
    help: 'Messages by current status',
    labelNames: ['status'],
    registers: [registry],
    async collect() {
      this.reset();
      for (const [s, n] of Object.entries(await gauges.byStatus())) this.set({ status: s }, n);
    },
  });
  return {
    registry,
    pipeline: {
      messagesAccepted: (channel, n) => accepted.inc({ channel }, n),
      sendOutcome: (provider, outcome, n) => outcomes.inc({ provider, outcome }, n),
      statusChanged: (status, n) => statuses.inc({ status }, n),
      carrierEventsReceived: (provider, n) => events.inc({ provider }, n),
      webhookAttempt: (result, latencyMs) => {
        webhookAttempts.inc({ result });
        webhookLatency.observe(latencyMs / 1000);
      },
    },
    observeRequest: (route, method, status, seconds) =>
      http.observe({ route, method, status: String(status) }, seconds),
  };
}
