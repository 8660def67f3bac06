/**
 * First start on an empty database: an organization, an admin API key (the configured one, or a generated one
 * shown once) and a sandbox sender for every channel, so a newcomer can send a message right away.
 */
import { randomBytes } from 'node:crypto';
import { CHANNELS } from '../domain/channels.ts';
import { newId } from '../domain/ids.ts';
import type { Clock } from '../ports/clock.ts';
import type { SecretBox } from '../ports/secrets.ts';
import type { MessageStore } from '../ports/store.ts';
import { generateApiKey, hashApiKey } from './auth.ts';

export const SANDBOX_FROM = '+12025550180';

export interface BootstrapResult {
  created: boolean;
  orgId?: string;
  /** Set only when a key was generated (it is never stored in clear). */
  generatedApiKey?: string;
}

export async function bootstrap(
  store: MessageStore,
  secrets: SecretBox,
  clock: Clock,
  opts: { apiKey?: string },
): Promise<BootstrapResult> {
  if ((await store.countOrganizations()) > 0) {
    // A configured key that the database does not know yet is added to the first organization.
    if (opts.apiKey && !(await store.findApiKeyByHash(hashApiKey(opts.apiKey)))) {
      const orgId = await store.firstOrganizationId();
      if (orgId)
        await store.createApiKey({
          id: newId('key'),
          orgId,
          name: 'bootstrap',
          hash: hashApiKey(opts.apiKey),
          createdAt: clock.now(),
        });
    }
    return { created: false };
  }
  const now = clock.now();
  const orgId = newId('org');
  await store.createOrganization({ id: orgId, name: 'Default organization', createdAt: now });
  const key = opts.apiKey ?? generateApiKey();
  await store.createApiKey({ id: newId('key'), orgId, name: 'admin', hash: hashApiKey(key), createdAt: now });
  await store.createSender({
    id: newId('snd'),
    orgId,
    provider: 'sandbox',
    name: 'Sandbox',
    config: {},
    sealedSecrets: secrets.seal(JSON.stringify({ token: randomBytes(24).toString('base64url') })),
    channels: [...CHANNELS],
    from: SANDBOX_FROM,
    priority: 100,
    enabled: true,
    createdAt: now,
    updatedAt: now,
    deletedAt: null,
  });
  return { created: true, orgId, ...(opts.apiKey ? {} : { generatedApiKey: key }) };
}
