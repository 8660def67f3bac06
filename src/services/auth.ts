/**
 * API keys: `omni_sk_` followed by 32 random bytes (base64url). Only a SHA-256 of a key is stored; keys seen
 * valid are cached in memory (this process only) so a request costs a map lookup, not a hash and a query.
 */
import { createHash, randomBytes } from 'node:crypto';
import { AuthenticationError } from '../domain/errors.ts';
import type { ApiKeyRecord, MessageStore } from '../ports/store.ts';

export function generateApiKey(): string {
  return `omni_sk_${randomBytes(32).toString('base64url')}`;
}

export function hashApiKey(key: string): string {
  return createHash('sha256').update(key).digest('hex');
}

export class ApiKeyAuth {
  private readonly cache = new Map<string, ApiKeyRecord>();

  constructor(private readonly store: MessageStore) {}

  /** Resolves an `Authorization` header to the key's record; throws AuthenticationError. */
  async authenticate(header: string | undefined): Promise<ApiKeyRecord> {
    if (!header)
      throw new AuthenticationError('missing_api_key', "send your API key as 'Authorization: Bearer <key>'", {
        field: 'Authorization',
      });
    const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (!m?.[1])
      throw new AuthenticationError('invalid_authorization', "the Authorization header must be 'Bearer <key>'", {
        field: 'Authorization',
      });
    const cached = this.cache.get(m[1]);
    if (cached) return cached;
    const rec = await this.store.findApiKeyByHash(hashApiKey(m[1]));
    if (!rec) throw new AuthenticationError('invalid_api_key', 'the API key is not valid', { field: 'Authorization' });
    if (this.cache.size > 10_000) this.cache.clear();
    this.cache.set(m[1], rec);
    return rec;
  }
}
