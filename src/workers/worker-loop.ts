/**
 * Runs a batch function over and over: at once while it finds work, otherwise sleeping until woken (a job was
 * enqueued in this process) or until the poll interval passes (jobs that came due, or other processes' jobs).
 */
export interface LoopOptions {
  name: string;
  /** Parallel runners: while one waits on a carrier, another claims the next batch. */
  concurrency: number;
  pollMs: number;
  onError: (err: unknown) => void;
}

export class WorkerLoop {
  private running = false;
  private runners: Promise<void>[] = [];
  private wakers: (() => void)[] = [];

  constructor(
    private readonly runOnce: () => Promise<number>,
    private readonly opts: LoopOptions,
  ) {}

  start(): void {
    if (this.running) return;
    this.running = true;
    this.runners = Array.from({ length: this.opts.concurrency }, () => this.run());
  }

  /** Something may be due now. */
  wake(): void {
    const w = this.wakers;
    this.wakers = [];
    for (const f of w) f();
  }

  get isRunning(): boolean {
    return this.running;
  }

  /** Stops taking work and waits for the batches in flight. */
  async stop(): Promise<void> {
    this.running = false;
    this.wake();
    await Promise.all(this.runners);
  }

  private async run(): Promise<void> {
    while (this.running) {
      let n = 0;
      try {
        n = await this.runOnce();
      } catch (err) {
        this.opts.onError(err);
        await this.sleep(this.opts.pollMs * 5);
        continue;
      }
      if (n === 0 && this.running) await this.sleep(this.opts.pollMs);
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(done, ms);
      t.unref();
      const self = this;
      function done() {
        clearTimeout(t);
        self.wakers = self.wakers.filter((f) => f !== done);
        resolve();
      }
      this.wakers.push(done);
    });
  }
}
