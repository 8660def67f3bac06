/** Schema of journeys: definitions and their versions, runs, step history and timers. */
import type { Migration } from 'kysely';

export const journeyMigrations: Record<string, Migration> = {};
