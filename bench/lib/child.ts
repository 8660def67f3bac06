/**
 * Server child processes for the bench: each one runs in its own process (so client and server use different
 * cores), on its own port, with a fresh temp data directory. Every child is registered so that it is killed at the
 * end of the run, on error and on Ctrl-C.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

export interface ServerHandle {
  name: string;
  pid: number;
  url: string;
  dataDir: string;
  /** The last lines the child wrote to stdout/stderr (for error messages). */
  logTail(): string;
  exited(): boolean;
  stop(): Promise<void>;
}

const live = new Set<ChildProcess>();
const tempDirs = new Set<string>();

/** Kills whatever is still running, synchronously (safe to call from an 'exit' handler). */
export function killAllSync(): void {
  for (const c of live) {
    try {
      c.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
  live.clear();
  for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
  tempDirs.clear();
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** A product child process: registered for the end-of-run kill, with the tail of its output kept. */
export interface ChildHandle {
  pid: number;
  /** The last lines the child wrote to stdout/stderr (for error messages). */
  logTail(): string;
  /** How it exited, once it has. */
  exitInfo(): string | undefined;
  /** SIGTERM, then SIGKILL after 5 s. */
  stop(): Promise<void>;
}

/** Spawns `node [nodeFlags] --import tsx ...args`; `onLine` sees each line it prints. */
export function spawnChild(opts: {
  args: string[];
  env: Record<string, string>;
  cwd: string;
  nodeFlags?: string[];
  onLine?: (line: string) => void;
}): ChildHandle {
  const child = spawn(process.execPath, [...(opts.nodeFlags ?? []), '--import', 'tsx', ...opts.args], {
    cwd: opts.cwd,
    env: { ...process.env, ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  live.add(child);
  const tail: string[] = [];
  const keep = (chunk: Buffer) => {
    for (const line of chunk.toString('utf8').split('\n')) {
      if (!line.trim()) continue;
      tail.push(line);
      opts.onLine?.(line);
    }
    if (tail.length > 40) tail.splice(0, tail.length - 40);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  let exitInfo: string | undefined;
  const exitPromise = new Promise<void>((resolve) =>
    child.once('exit', (code, signal) => {
      exitInfo = `exited (code ${code}, signal ${signal})`;
      live.delete(child);
      resolve();
    }),
  );
  return {
    pid: child.pid ?? -1,
    logTail: () => tail.join('\n'),
    exitInfo: () => exitInfo,
    async stop() {
      if (exitInfo !== undefined) return;
      child.kill('SIGTERM');
      const stopped = await Promise.race([exitPromise.then(() => true), sleep(5000).then(() => false)]);
      if (!stopped) {
        child.kill('SIGKILL');
        await exitPromise;
      }
    },
  };
}

export async function spawnServer(opts: {
  name: string;
  /** Script and arguments after `node --import tsx`. */
  args: string[];
  /** Extra environment; `port` and `dataDir` are passed in as the child needs them. */
  env: (ctx: { port: number; dataDir: string }) => Record<string, string>;
  cwd: string;
  nodeFlags?: string[];
  startTimeoutMs?: number;
}): Promise<ServerHandle> {
  const port = await freePort();
  const dataDir = mkdtempSync(join(tmpdir(), `omni-bench-${opts.name}-`));
  tempDirs.add(dataDir);
  const child = spawnChild({
    args: opts.args,
    env: opts.env({ port, dataDir }),
    cwd: opts.cwd,
    ...(opts.nodeFlags ? { nodeFlags: opts.nodeFlags } : {}),
  });
  const url = `http://127.0.0.1:${port}`;
  const handle: ServerHandle = {
    name: opts.name,
    pid: child.pid,
    url,
    dataDir,
    logTail: child.logTail,
    exited: () => child.exitInfo() !== undefined,
    async stop() {
      await child.stop();
      rmSync(dataDir, { recursive: true, force: true });
      tempDirs.delete(dataDir);
    },
  };

  const deadline = Date.now() + (opts.startTimeoutMs ?? 30_000);
  for (;;) {
    const exitInfo = child.exitInfo();
    if (exitInfo !== undefined) {
      await handle.stop();
      throw new Error(`${opts.name} server ${exitInfo} before it was healthy:\n${handle.logTail()}`);
    }
    try {
      const res = await fetch(`${url}/health`, { signal: AbortSignal.timeout(1000) });
      if (res.ok) {
        await res.arrayBuffer();
        return handle;
      }
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await handle.stop();
      throw new Error(
        `${opts.name} server not healthy after ${opts.startTimeoutMs ?? 30_000} ms:\n${handle.logTail()}`,
      );
    }
    await sleep(100);
  }
}

/** VmRSS and VmHWM (peak resident set) of a live process, in bytes; undefined when it cannot be read. */
export function procMemory(pid: number): { rss: number; hwm: number } | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? Number.NaN);
    const rss = kb('VmRSS');
    const hwm = kb('VmHWM');
    if (Number.isNaN(rss)) return undefined;
    return { rss: rss * 1024, hwm: (Number.isNaN(hwm) ? rss : hwm) * 1024 };
  } catch {
    return undefined;
  }
}

/** User + system CPU seconds a process has used so far (Linux /proc; clock ticks assumed to be 100 Hz). */
export function procCpuSeconds(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const utime = Number(fields[11]);
    const stime = Number(fields[12]);
    if (Number.isNaN(utime) || Number.isNaN(stime)) return undefined;
    return (utime + stime) / 100;
  } catch {
    return undefined;
  }
}

/** Polls VmRSS every `intervalMs` and keeps the maximum; `stop()` also folds in VmHWM. */
export class RssSampler {
  private max = 0;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly pid: number,
    intervalMs = 200,
  ) {
    this.sample();
    this.timer = setInterval(() => this.sample(), intervalMs);
    this.timer.unref();
  }

  private sample(): void {
    const m = procMemory(this.pid);
    if (m) this.max = Math.max(this.max, m.rss, m.hwm);
  }

  /** Peak RSS in bytes (max of the samples and the kernel's high-water mark). */
  stop(): number {
    clearInterval(this.timer);
    this.sample();
    return this.max;
  }
}

/** CPU used by a process between `start()` and `stop()`, as a share of one core (1.0 = one core busy). */
export function cpuMeter(pid: number): { stop(): number | undefined } {
  const t0 = performance.now();
  const c0 = procCpuSeconds(pid);
  return {
    stop() {
      const c1 = procCpuSeconds(pid);
      if (c0 === undefined || c1 === undefined) return undefined;
      return (c1 - c0) / ((performance.now() - t0) / 1000);
    },
  };
}

/** Busy CPU seconds of the whole machine so far (all cores; Linux /proc/stat, 100 Hz ticks). */
export function systemBusySeconds(): number | undefined {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0] ?? '';
    const t = line.trim().split(/\s+/).slice(1).map(Number);
    // user nice system idle iowait irq softirq steal: everything but idle and iowait is busy.
    const busy = t.slice(0, 8).reduce((a, b) => a + b, 0) - (t[3] ?? 0) - (t[4] ?? 0);
    return Number.isNaN(busy) ? undefined : busy / 100;
  } catch {
    return undefined;
  }
}
