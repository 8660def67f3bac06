/** `omni start | api | worker | migrate` — the product's command line. */

import { systemClock } from '../adapters/clock/system-clock.ts';
import { bootstrap } from '../services/bootstrap.ts';
import { openBackend } from './backend.ts';
import { loadConfig } from './config.ts';
import { type Mode, startRuntime } from './runtime.ts';
import { startSandboxProcess } from './sandbox-process.ts';
import { openSecretBox } from './secret-box.ts';

const USAGE = `usage: omni <command>
  start     API, workers and the sandbox carrier in one process (embedded SQLite)
  api       the HTTP API only
  worker    the workers only
  sandbox   the sandbox carrier alone (for scale-out; point OMNI_SANDBOX_URL at it)
  migrate   bring the database schema up to date and exit`;

async function main(argv: string[]): Promise<number> {
  const command = argv[0] ?? 'start';
  const config = loadConfig();
  if (command === 'migrate') {
    const backend = await openBackend(config, systemClock);
    // The first organization and its admin key are created here too, once, before API processes start.
    const boot = await bootstrap(
      backend.store,
      openSecretBox(config),
      systemClock,
      config.bootstrapApiKey ? { apiKey: config.bootstrapApiKey } : {},
    );
    await backend.store.close();
    const applied = backend.migrated;
    console.log(`${backend.kind}: ${applied.length ? `applied ${applied.join(', ')}` : 'schema is up to date'}`);
    if (boot.generatedApiKey) console.log(`admin API key (shown once): ${boot.generatedApiKey}`);
    return 0;
  }
  if (command === 'sandbox') {
    const sandbox = await startSandboxProcess(config);
    console.log(`  Omnichannel sandbox carrier listening on ${sandbox.url}`);
    const stop = () => sandbox.stop().then(() => process.exit(0));
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
    return -1;
  }
  if (command !== 'start' && command !== 'api' && command !== 'worker') {
    console.error(USAGE);
    return 2;
  }
  const runtime = await startRuntime(config, command === 'start' ? 'all' : (command as Mode));
  if (runtime.bootstrap.generatedApiKey) {
    console.log(
      [
        '',
        '  Omnichannel is set up. Your admin API key (shown once, store it now):',
        '',
        `    ${runtime.bootstrap.generatedApiKey}`,
        '',
      ].join('\n'),
    );
  }
  if (runtime.url) {
    console.log(`  Omnichannel ${command} listening on ${config.publicUrl}  (API docs: ${config.publicUrl}/docs)`);
  } else {
    console.log(`  Omnichannel ${command} running`);
  }
  let signals = 0;
  const shutdown = (signal: string) => {
    signals++;
    if (signals > 1) process.exit(1);
    console.log(`  ${signal}: finishing work in flight, then exiting`);
    runtime.stop().then(
      () => process.exit(0),
      (err) => {
        console.error(err);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  return -1;
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exit(code);
  },
  (err) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  },
);
