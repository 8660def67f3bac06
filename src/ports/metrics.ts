/** What the pipeline reports for monitoring; the entry point wires it to Prometheus. */
export interface PipelineMetrics {
  messagesAccepted(channel: string, count: number): void;
  sendOutcome(provider: string, outcome: 'sent' | 'retry' | 'fail' | 'failover', count: number): void;
  statusChanged(status: string, count: number): void;
  carrierEventsReceived(provider: string, count: number): void;
  /** One outbound webhook request answered (or failed) and what became of its delivery. */
  webhookAttempt(result: 'delivered' | 'retry' | 'failed', latencyMs: number): void;
}

export const noMetrics: PipelineMetrics = {
  messagesAccepted: () => undefined,
  sendOutcome: () => undefined,
  statusChanged: () => undefined,
  carrierEventsReceived: () => undefined,
  webhookAttempt: () => undefined,
};
