/**
 * A private PostgreSQL cluster for tests that stop and start the database (outage tests), so the shared test
 * PostgreSQL other test files use is never disturbed.
 *
 * The cluster lives in a temporary directory: data, server log and unix socket. It listens on 127.0.0.1 only, at a
 * free port, with trust authentication and fsync off. The binaries come from `OMNI_TEST_PG_BINDIR` or the newest
 * `/usr/lib/postgresql/<version>/bin`. initdb and postgres refuse to run as root: as root, the directory is given to
 * the `postgres` OS user and every server command runs through `runuser -u postgres --`.
 *
 * When the binaries or `runuser` are missing the suites are skipped with the reason, except under CI=true, where that
 * is a failure (a CI job that silently skips proves nothing).
 */
import { execFile, spawnSync } from 'node:child_process';
import {
  appendFileSync,
  chmodSync,
  chownSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './processes.ts';

const OS_USER = 'postgres';
const isRoot = process.getuid?.() === 0;

/** The directory holding initdb, pg_ctl and postgres, or null. */
function findBinDir(): string | null {
  const has = (dir: string) => ['initdb', 'pg_ctl', 'postgres'].every((b) => existsSync(join(dir, b)));
  const fromEnv = process.env.OMNI_TEST_PG_BINDIR;
  if (fromEnv) return has(fromEnv) ? fromEnv : null;
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return null;
  const versions = readdirSync(root)
    .filter((v) => /^\d+(\.\d+)?$/.test(v))
    .sort((a, b) => Number(b) - Number(a));
  for (const v of versions) {
    const dir = join(root, v, 'bin');
    if (has(dir)) return dir;
  }
  return null;
}

/** `[command, args]` that run `bin` as the cluster's owner (through runuser when we are root). */
function asOwner(bin: string, args: string[]): [string, string[]] {
  return isRoot ? ['runuser', ['-u', OS_USER, '--', bin, ...args]] : [bin, args];
}

let probed: { binDir: string } | { reason: string } | undefined;

/** Where the binaries are, or why a private cluster cannot be run here. */
function probe(): { binDir: string } | { reason: string } {
  if (probed) return probed;
  const binDir = findBinDir();
  if (!binDir) {
    probed = {
      reason:
        'no PostgreSQL server binaries (initdb, pg_ctl, postgres) in /usr/lib/postgresql/*/bin; set OMNI_TEST_PG_BINDIR',
    };
    return probed;
  }
  const [cmd, args] = asOwner(join(binDir, 'pg_ctl'), ['--version']);
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 10_000, cwd: '/' });
  if (r.error || r.status !== 0) {
    const why = r.error?.message ?? (r.stderr.trim() || `exit status ${r.status}`);
    probed = {
      reason: isRoot
        ? `cannot run PostgreSQL as the '${OS_USER}' OS user through runuser (${why})`
        : `cannot run ${join(binDir, 'pg_ctl')} (${why})`,
    };
    return probed;
  }
  probed = { binDir };
  return probed;
}

/**
 * Whether suites that need a private cluster run here: under CI=true they must (missing binaries throw); elsewhere
 * they are skipped with a visible reason.
 */
export function privatePostgresForTests(): { run: true } | { run: false; reason: string } {
  const p = probe();
  if ('binDir' in p) return { run: true };
  const reason = `a private PostgreSQL cluster cannot be started: ${p.reason}`;
  if (process.env.CI === 'true') throw new Error(`${reason}; CI requires it`);
  console.warn(`[tests] skipped private-PostgreSQL runs: ${reason}`);
  return { run: false, reason };
}

function run(bin: string, args: string[], cwd: string, timeoutMs: number): Promise<void> {
  const [cmd, argv] = asOwner(bin, args);
  return new Promise((resolve, reject) => {
    execFile(cmd, argv, { cwd, timeout: timeoutMs, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${[cmd, ...argv].join(' ')} failed: ${err.message}\n${stdout}${stderr}`.trim()));
      else resolve();
    });
  });
}

function ownerIds(): { uid: number; gid: number } {
  const id = (flag: string) => {
    const r = spawnSync('id', [flag, OS_USER], { encoding: 'utf8' });
    const n = Number(r.stdout.trim());
    if (r.status !== 0 || !Number.isInteger(n)) throw new Error(`cannot look up the '${OS_USER}' OS user`);
    return n;
  };
  return { uid: id('-u'), gid: id('-g') };
}

export interface PrivatePostgres {
  port: number;
  /** Superuser URL of the `postgres` database. */
  url: string;
  /** The temporary directory (data, log, socket). */
  dir: string;
  readonly running: boolean;
  start(): Promise<void>;
  /** Fast shutdown: sessions are terminated (as an administrator or a failing host would), the server stops. */
  stop(): Promise<void>;
  restart(): Promise<void>;
  /** Stops the server (immediately) if it runs and removes the directory. */
  cleanup(): Promise<void>;
  /** The last lines of the server log (for failure messages). */
  logTail(lines?: number): string;
}

const live = new Set<PrivatePostgres>();
// A test process that exits without cleaning up must not leave servers behind.
process.once('exit', () => {
  for (const c of live) {
    if (!c.running) continue;
    const bin = findBinDir();
    if (!bin) continue;
    const [cmd, args] = asOwner(join(bin, 'pg_ctl'), ['stop', '-D', join(c.dir, 'data'), '-m', 'immediate', '-w']);
    spawnSync(cmd, args, { cwd: c.dir, timeout: 10_000 });
  }
});

/** Creates (initdb) a cluster in a new temporary directory; `start()` it. Call `privatePostgresForTests` first. */
export async function createPrivatePostgres(): Promise<PrivatePostgres> {
  const p = probe();
  if (!('binDir' in p)) throw new Error(p.reason);
  const bin = (name: string) => join(p.binDir, name);
  const dir = mkdtempSync(join(tmpdir(), 'omni-pg-'));
  chmodSync(dir, 0o700);
  if (isRoot) {
    const { uid, gid } = ownerIds();
    chownSync(dir, uid, gid);
  }
  const data = join(dir, 'data');
  const log = join(dir, 'server.log');
  try {
    await run(
      bin('initdb'),
      ['-D', data, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--locale=C', '--no-sync'],
      dir,
      60_000,
    );
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  const port = await freePort();
  appendFileSync(
    join(data, 'postgresql.conf'),
    [
      '',
      '# omnichannel test cluster',
      "listen_addresses = '127.0.0.1'",
      `port = ${port}`,
      `unix_socket_directories = '${dir}'`,
      'fsync = off',
      'synchronous_commit = off',
      'full_page_writes = off',
      'max_connections = 60',
      'shared_buffers = 32MB',
      '',
    ].join('\n'),
  );

  let running = false;
  const cluster: PrivatePostgres = {
    port,
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    dir,
    get running() {
      return running;
    },
    async start() {
      await run(bin('pg_ctl'), ['start', '-D', data, '-l', log, '-w', '-t', '30'], dir, 40_000);
      running = true;
    },
    async stop() {
      await run(bin('pg_ctl'), ['stop', '-D', data, '-m', 'fast', '-w', '-t', '30'], dir, 40_000);
      running = false;
    },
    async restart() {
      if (running) await cluster.stop();
      await cluster.start();
    },
    async cleanup() {
      if (running) {
        await run(bin('pg_ctl'), ['stop', '-D', data, '-m', 'immediate', '-w', '-t', '30'], dir, 40_000).catch(
          () => undefined,
        );
        running = false;
      }
      live.delete(cluster);
      rmSync(dir, { recursive: true, force: true });
    },
    logTail(lines = 30) {
      try {
        return readFileSync(log, 'utf8').split('\n').slice(-lines).join('\n');
      } catch {
        return '';
      }
    },
  };
  live.add(cluster);
  return cluster;
}
