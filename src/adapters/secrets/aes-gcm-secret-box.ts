/**
 * AES-256-GCM secret box. A sealed value is `v1.<key id>.<base64url(iv ‖ tag ‖ ciphertext)>`: a fresh 96-bit IV per
 * value, the 128-bit tag authenticating it, and the key id (first 8 hex digits of the key's SHA-256) choosing the key
 * to open with. Values sealed under a previous key (OMNI_SECRET_KEY_PREVIOUS) still open after a rotation.
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { DataError, ValidationError } from '../../domain/errors.ts';
import type { SecretBox } from '../../ports/secrets.ts';

const VERSION = 'v1';
const IV_BYTES = 12;
const TAG_BYTES = 16;

/** Reads a 256-bit key given as 64 hex digits or as base64/base64url of 32 bytes. */
export function parseSecretKey(text: string, name = 'OMNI_SECRET_KEY'): Buffer {
  const t = text.trim();
  if (/^[0-9a-fA-F]{64}$/.test(t)) return Buffer.from(t, 'hex');
  if (/^[A-Za-z0-9+/_-]{43}=?$/.test(t)) {
    const b = Buffer.from(t.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
    if (b.length === 32) return b;
  }
  throw new ValidationError(
    'invalid_secret_key',
    `${name} must be 32 bytes as 64 hex digits or base64 (generate one with: openssl rand -hex 32)`,
    { field: name },
  );
}

function keyId(key: Buffer): string {
  return createHash('sha256').update(key).digest('hex').slice(0, 8);
}

export class AesGcmSecretBox implements SecretBox {
  private readonly current: { id: string; key: Buffer };
  private readonly keys = new Map<string, Buffer>();

  /** `key` seals; `previous` keys only open. */
  constructor(key: Buffer, previous: readonly Buffer[] = []) {
    if (key.length !== 32) throw new Error('AesGcmSecretBox: key must be 32 bytes');
    this.current = { id: keyId(key), key };
    for (const k of [key, ...previous]) this.keys.set(keyId(k), k);
  }

  seal(plaintext: string): string {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.current.key, iv);
    const ct = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
    const sealed = Buffer.concat([iv, cipher.getAuthTag(), ct]).toString('base64url');
    return `${VERSION}.${this.current.id}.${sealed}`;
  }

  open(sealed: string): string {
    const [version, id, data] = sealed.split('.');
    if (version !== VERSION || !id || data === undefined)
      throw new DataError('secret_unreadable', 'not a sealed value');
    const key = this.keys.get(id);
    if (!key) {
      throw new DataError(
        'secret_key_unknown',
        `sealed under key ${id}, which is neither OMNI_SECRET_KEY nor one of OMNI_SECRET_KEY_PREVIOUS`,
      );
    }
    const raw = Buffer.from(data, 'base64url');
    if (raw.length < IV_BYTES + TAG_BYTES) throw new DataError('secret_unreadable', 'sealed value is truncated');
    const decipher = createDecipheriv('aes-256-gcm', key, raw.subarray(0, IV_BYTES));
    decipher.setAuthTag(raw.subarray(IV_BYTES, IV_BYTES + TAG_BYTES));
    try {
      return Buffer.concat([decipher.update(raw.subarray(IV_BYTES + TAG_BYTES)), decipher.final()]).toString('utf8');
    } catch {
      throw new DataError('secret_unreadable', 'sealed value failed authentication (tampered, or another key)');
    }
  }
}
