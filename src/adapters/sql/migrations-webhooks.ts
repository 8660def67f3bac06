/** Schema of outbound webhooks (endpoints, the event outbox, deliveries and their attempts). */
import type { Migration } from 'kysely';

export const webhookMigrations: Record<string, Migration> = {};
