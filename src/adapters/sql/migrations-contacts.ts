/** Schema of contacts, consent, business events, journeys and segments. */
import type { Migration } from 'kysely';

export const contactMigrations: Record<string, Migration> = {};
