/**
 * Journeys as their users edit them: a draft definition (validated on every save), published as numbered, immutable
 * versions. Publishing makes the journey active with that version's trigger; runs stay on the version they started
 * with, so a later publish never changes a run in flight. Archiving stops new runs and lets the running ones finish.
 */
import { ConflictError, NotFoundError, ValidationError } from '../domain/errors.ts';
import { newId } from '../domain/ids.ts';
import { type JourneyDefinition, validateDefinition } from '../domain/journey-definition.ts';
import type { Clock } from '../ports/clock.ts';
import type { JourneyRecord, JourneyStatus, JourneyStore, JourneyVersion } from '../ports/journey-store.ts';
import type { JourneyContent } from './journey-content.ts';

// The ULID of `newId`, under the journey prefixes (ids.ts lists the prefixes of the core entities).
export const newJourneyId = (): string => `jny_${newId('job').slice(4)}`;
export const newRunId = (): string => `jrun_${newId('job').slice(4)}`;

export interface JourneyInput {
  name: string;
  definition: unknown;
}

export interface JourneyPage {
  items: JourneyRecord[];
  nextCursor: string | null;
}

export class Journeys {
  constructor(
    private readonly store: JourneyStore,
    private readonly content: JourneyContent,
    private readonly clock: Clock,
  ) {}

  /** Validates a definition as the API receives it; errors name fields under `definition.`. */
  check(definition: unknown): JourneyDefinition {
    let def: JourneyDefinition;
    try {
      def = validateDefinition(definition);
    } catch (err) {
      if (err instanceof ValidationError && err.field !== undefined) {
        const field = err.field === 'definition' ? 'definition' : `definition.${err.field}`;
        throw new ValidationError(err.code, err.message.replace(`'${err.field}'`, `'${field}'`), { field });
      }
      throw err;
    }
    this.content.check(def);
    return def;
  }

  async create(orgId: string, input: JourneyInput): Promise<JourneyRecord> {
    const def = this.check(input.definition);
    const now = this.clock.now();
    const journey: JourneyRecord = {
      id: newJourneyId(),
      orgId,
      name: input.name,
      status: 'draft',
      draft: JSON.stringify(def),
      publishedVersion: null,
      createdAt: now,
      updatedAt: now,
    };
    await this.store.createJourney(journey);
    return journey;
  }

  async get(orgId: string, id: string): Promise<JourneyRecord> {
    const j = await this.store.getJourney(orgId, id);
    if (!j) throw new NotFoundError('journey_not_found', `journey '${id}' does not exist`, { field: 'id' });
    return j;
  }

  async list(orgId: string, opts: { status?: JourneyStatus; limit: number; cursor?: string }): Promise<JourneyPage> {
    const items = await this.store.listJourneys(orgId, {
      limit: opts.limit,
      ...(opts.status ? { status: opts.status } : {}),
      ...(opts.cursor ? { before: opts.cursor } : {}),
    });
    return { items, nextCursor: items.length === opts.limit ? (items.at(-1)?.id ?? null) : null };
  }

  /** Replaces the name and/or the draft. */
  async update(orgId: string, id: string, patch: { name?: string; definition?: unknown }): Promise<JourneyRecord> {
    const j = await this.get(orgId, id);
    if (j.status === 'archived') throw archived(id);
    const draft = patch.definition !== undefined ? JSON.stringify(this.check(patch.definition)) : j.draft;
    const updated: JourneyRecord = { ...j, name: patch.name ?? j.name, draft, updatedAt: this.clock.now() };
    await this.store.updateJourney(updated);
    return updated;
  }

  /** Publishes the draft as the next version. */
  async publish(orgId: string, id: string): Promise<{ journey: JourneyRecord; version: JourneyVersion }> {
    const j = await this.get(orgId, id);
    if (j.status === 'archived') throw archived(id);
    // Saved drafts are valid, but validation may have grown stricter since: check again before it can run.
    const def = this.check(JSON.parse(j.draft));
    const trigger = def.trigger;
    const version = await this.store.publishJourney(orgId, id, {
      definition: JSON.stringify(def),
      triggerType: trigger.type,
      triggerKey: trigger.type === 'event' ? trigger.event : trigger.type === 'segment' ? trigger.segmentId : null,
      at: this.clock.now(),
    });
    if (!version) throw archived(id);
    return { journey: await this.get(orgId, id), version };
  }

  async archive(orgId: string, id: string): Promise<JourneyRecord> {
    await this.get(orgId, id);
    await this.store.archiveJourney(orgId, id, this.clock.now());
    return this.get(orgId, id);
  }

  async versions(orgId: string, id: string): Promise<JourneyVersion[]> {
    await this.get(orgId, id);
    return this.store.listVersions(orgId, id);
  }

  async version(orgId: string, id: string, version: number): Promise<JourneyVersion> {
    const v = await this.store.getVersion(id, version);
    if (!v || v.orgId !== orgId)
      throw new NotFoundError('journey_version_not_found', `journey '${id}' has no version ${version}`, {
        field: 'version',
      });
    return v;
  }
}

function archived(id: string): ConflictError {
  return new ConflictError('journey_archived', `journey '${id}' is archived`, { field: 'id' });
}
