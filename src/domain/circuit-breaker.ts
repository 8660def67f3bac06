/**
 * A circuit breaker per sender: after `failureThreshold` consecutive failures of the carrier itself (unreachable,
 * 5xx, throttling — not a rejected destination) it opens and routing passes the sender over; after `openMs` it is
 * half-open and lets one probe through (`probeMs` later another, if the probe never reports); a success closes it,
 * a failure opens it again. Pure state driven by the caller's clock.
 */

export type CircuitState = 'closed' | 'open' | 'half-open';

export interface CircuitOptions {
  failureThreshold: number;
  openMs: number;
  /** How long a half-open probe may take before another is allowed. */
  probeMs: number;
}

export const DEFAULT_CIRCUIT: CircuitOptions = { failureThreshold: 5, openMs: 30_000, probeMs: 15_000 };

export class CircuitBreaker {
  private failures = 0;
  private openedAt: number | null = null;
  private probeAt: number | null = null;

  constructor(private readonly opts: CircuitOptions = DEFAULT_CIRCUIT) {}

  state(now: number): CircuitState {
    if (this.openedAt === null) return 'closed';
    return now - this.openedAt >= this.opts.openMs ? 'half-open' : 'open';
  }

  /** May a request go through now? In half-open state this takes the single probe slot. */
  allow(now: number): boolean {
    const s = this.state(now);
    if (s === 'closed') return true;
    if (s === 'open') return false;
    if (this.probeAt !== null && now - this.probeAt < this.opts.probeMs) return false;
    this.probeAt = now;
    return true;
  }

  /** Would `allow` say yes, without taking the probe slot? */
  available(now: number): boolean {
    const s = this.state(now);
    if (s === 'closed') return true;
    if (s === 'open') return false;
    return this.probeAt === null || now - this.probeAt >= this.opts.probeMs;
  }

  /** When a request may next go through (now, when it may already). */
  nextProbeAt(now: number): number {
    const s = this.state(now);
    if (s === 'closed' || this.openedAt === null) return now;
    if (s === 'open') return this.openedAt + this.opts.openMs;
    return this.probeAt === null ? now : Math.max(now, this.probeAt + this.opts.probeMs);
  }

  success(): void {
    this.failures = 0;
    this.openedAt = null;
    this.probeAt = null;
  }

  failure(now: number): void {
    if (this.openedAt !== null) {
      // A failed probe (or a late failure while open) restarts the open period.
      this.openedAt = now;
      this.probeAt = null;
      return;
    }
    this.failures++;
    if (this.failures >= this.opts.failureThreshold) {
      this.openedAt = now;
      this.probeAt = null;
    }
  }
}
