/**
 * Group commit: requests that arrive while a flush is pending share one transaction. A flush is scheduled with
 * setImmediate, so a lone request waits for no timer, and under load each commit carries many requests.
 */
export class GroupCommitter<T, R> {
  private pending: { item: T; resolve: (r: R) => void; reject: (e: unknown) => void }[] = [];
  private scheduled = false;

  constructor(
    private readonly flushFn: (items: T[]) => Promise<R[]>,
    private readonly maxBatch = 2000,
  ) {}

  submit(item: T): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.pending.push({ item, resolve, reject });
      if (this.pending.length >= this.maxBatch) this.flush();
      else if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.scheduled = false;
    const batch = this.pending;
    if (batch.length === 0) return;
    this.pending = [];
    this.flushFn(batch.map((b) => b.item)).then(
      (results) => {
        for (let i = 0; i < batch.length; i++) batch[i]?.resolve(results[i] as R);
      },
      (err) => {
        for (const b of batch) b.reject(err);
      },
    );
  }
}
