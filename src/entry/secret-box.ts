/**
 * The key that seals carrier credentials: OMNI_SECRET_KEY when set. The embedded deployment, where one process
 * holds the data, creates a key file beside its database on first start (`<data dir>/secret.key`, mode 0600), so
 * `npm start` needs no setup; scale-out processes must all hold the same key, so there it must be configured.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { AesGcmSecretBox, parseSecretKey } from '../adapters/secrets/aes-gcm-secret-box.ts';
import type { SecretBox } from '../ports/secrets.ts';
import type { Config } from './config.ts';

export function openSecretBox(config: Config): SecretBox {
  const previous = config.secretKeyPrevious.map((k) => parseSecretKey(k, 'OMNI_SECRET_KEY_PREVIOUS'));
  if (config.secretKey) return new AesGcmSecretBox(parseSecretKey(config.secretKey), previous);
  if (config.databaseUrl) {
    throw new Error(
      'OMNI_SECRET_KEY is required with OMNI_DATABASE_URL: every process must seal and open carrier credentials with ' +
        'the same key (generate one with: openssl rand -hex 32)',
    );
  }
  mkdirSync(config.dataDir, { recursive: true });
  const file = join(config.dataDir, 'secret.key');
  if (!existsSync(file)) writeFileSync(file, `${randomBytes(32).toString('hex')}\n`, { mode: 0o600, flag: 'wx' });
  return new AesGcmSecretBox(parseSecretKey(readFileSync(file, 'utf8'), file), previous);
}
