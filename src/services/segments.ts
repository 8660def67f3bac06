/**
 * Segments: named rules over contacts (src/domain/segment-rules.ts), validated when saved and evaluated on demand
 * over pages of contacts (the store fetches each page's consents and event counts in one query each).
 *
 * Membership is also recorded, so a change can be told apart from a state: saving a segment evaluates every
 * contact once (the baseline; proportional to the number of contacts), and `contactChanged(orgId, contactId)`
 * re-evaluates one contact against every segment of its organization and answers the segments it `entered` and
 * `left` since the last evaluation — what journeys triggered by "entry into a segment" start on. Call it after
 * anything that may change a contact's membership: contact writes, consent changes, new events (the services
 * take it as their `onChanged`/`onContactChanged` hook). A rule with a time window (events in the last N days,
 * `daysAgo` dates) can change its answer with no change to the contact: that exit (or entry) is noticed at the
 * contact's next evaluation, not at the moment the window moves.
 */
import { NotFoundError } from '../domain/errors.ts';
import { newId } from '../domain/ids.ts';
import {
  type EventQuery,
  eventQueries,
  eventQueryKey,
  matchesSegment,
  type SegmentRule,
  validateSegmentRule,
} from '../domain/segment-rules.ts';
import type { Clock } from '../ports/clock.ts';
import type { ContactRecord, ContactStore, Segment } from '../ports/contact-store.ts';

export interface SegmentInput {
  name: string;
  description?: string | null;
  rules: unknown;
}

export interface SegmentTransitions {
  contactId: string;
  entered: string[];
  left: string[];
}

const PAGE = 500;
// newId's ULID under the segment prefix (ids.ts lists the prefixes of the core entities).
const newSegmentId = (): string => `seg_${newId('evt').slice(4)}`;
/** How many contacts one on-demand page may look at before answering (with a cursor to go on). */
const SCAN_BUDGET = 5000;

export class Segments {
  constructor(
    private readonly store: ContactStore,
    private readonly clock: Clock,
  ) {}

  async create(orgId: string, input: SegmentInput): Promise<Segment> {
    const rules = validateSegmentRule(input.rules);
    const now = this.clock.now();
    const segment: Segment = {
      id: newSegmentId(),
      orgId,
      name: input.name,
      description: input.description ?? null,
      rules,
      createdAt: now,
      updatedAt: now,
    };
    await this.store.insertSegment(segment);
    await this.baseline(segment);
    return segment;
  }

  async update(orgId: string, id: string, input: SegmentInput): Promise<Segment> {
    const rules = validateSegmentRule(input.rules);
    const current = await this.get(orgId, id);
    const segment: Segment = {
      ...current,
      name: input.name,
      description: input.description ?? null,
      rules,
      updatedAt: this.clock.now(),
    };
    if (!(await this.store.updateSegment(segment)))
      throw new NotFoundError('segment_not_found', `segment '${id}' does not exist`, { field: 'id' });
    await this.baseline(segment);
    return segment;
  }

  async get(orgId: string, id: string): Promise<Segment> {
    const s = await this.store.getSegment(orgId, id);
    if (!s) throw new NotFoundError('segment_not_found', `segment '${id}' does not exist`, { field: 'id' });
    return s;
  }

  async list(orgId: string): Promise<Segment[]> {
    return this.store.listSegments(orgId);
  }

  async delete(orgId: string, id: string): Promise<void> {
    if (!(await this.store.deleteSegment(orgId, id)))
      throw new NotFoundError('segment_not_found', `segment '${id}' does not exist`, { field: 'id' });
  }

  /** Contacts recorded in the segment (as of their last evaluation). */
  async memberCount(orgId: string, id: string): Promise<number> {
    await this.get(orgId, id);
    return this.store.countSegmentMembers(orgId, id);
  }

  /**
   * Evaluates the segment now over contacts newest first, from `cursor`: up to `limit` members. A page may come
   * back short (even empty) with a `nextCursor` when many contacts were looked at without enough matching; go on
   * until `nextCursor` is null. With `count`, also the number of members among all contacts (a full scan).
   */
  async contacts(
    orgId: string,
    id: string,
    f: { limit: number; cursor?: string; count?: boolean },
  ): Promise<{ items: ContactRecord[]; nextCursor: string | null; count?: number }> {
    const segment = await this.get(orgId, id);
    const now = this.clock.now();
    const items: ContactRecord[] = [];
    let before = f.cursor;
    let scanned = 0;
    let nextCursor: string | null = null;
    for (;;) {
      const want = Math.min(PAGE, SCAN_BUDGET - scanned);
      const page = await this.store.listContacts(orgId, { limit: want, ...(before ? { before } : {}) });
      const members = (await this.evaluate([segment], page, now)).get(segment.id) ?? new Set<string>();
      for (const c of page) {
        scanned++;
        before = c.id;
        if (members.has(c.id)) items.push(c);
        if (items.length === f.limit) break;
      }
      // A short page is the last one: nothing lies beyond it.
      const last = page.length < want;
      if (items.length === f.limit) {
        nextCursor = last && before === page.at(-1)?.id ? null : (before ?? null);
        break;
      }
      if (last) break;
      if (scanned >= SCAN_BUDGET) {
        nextCursor = before ?? null;
        break;
      }
    }
    const result: { items: ContactRecord[]; nextCursor: string | null; count?: number } = { items, nextCursor };
    if (f.count) result.count = await this.countNow(segment, now);
    return result;
  }

  /** Re-evaluates one contact against every segment; records and answers what it entered and left. */
  async contactChanged(orgId: string, contactId: string): Promise<SegmentTransitions> {
    const contact = await this.store.getContact(orgId, contactId);
    const recorded = new Set(await this.store.getMemberships(orgId, contactId));
    const now = this.clock.now();
    let matching = new Set<string>();
    if (contact && contact.mergedInto === null && contact.erasedAt === null) {
      const segments = await this.store.listSegments(orgId);
      const members = await this.evaluate(segments, [contact], now);
      matching = new Set(segments.filter((s) => members.get(s.id)?.has(contact.id)).map((s) => s.id));
    }
    const entered = [...matching].filter((s) => !recorded.has(s)).sort();
    const left = [...recorded].filter((s) => !matching.has(s)).sort();
    if (entered.length > 0 || left.length > 0) await this.store.setMemberships(orgId, contactId, entered, left, now);
    return { contactId, entered, left };
  }

  /** For each segment, the contacts of `contacts` in it at `now`. */
  private async evaluate(
    segments: readonly Segment[],
    contacts: readonly ContactRecord[],
    now: number,
  ): Promise<Map<string, Set<string>>> {
    const out = new Map<string, Set<string>>(segments.map((s) => [s.id, new Set<string>()]));
    if (segments.length === 0 || contacts.length === 0) return out;
    const orgId = (contacts[0] as ContactRecord).orgId;
    const ids = contacts.map((c) => c.id);
    const queries = new Map<string, EventQuery>();
    for (const s of segments) for (const q of eventQueries(s.rules, now)) queries.set(eventQueryKey(q), q);
    const queryList = [...queries.values()];
    const needsConsent = segments.some((s) => usesConsent(s.rules));
    const consents = needsConsent ? await this.store.getConsents(orgId, ids) : [];
    const counts = await this.store.countEvents(orgId, ids, queryList);
    for (const c of contacts) {
      const row = counts.get(c.id) ?? [];
      const eventCounts = new Map(queryList.map((q, i) => [eventQueryKey(q), row[i] ?? 0]));
      const facts = { contact: c, consents: consents.filter((x) => x.contactId === c.id), eventCounts };
      for (const s of segments) if (matchesSegment(s.rules, facts, now)) out.get(s.id)?.add(c.id);
    }
    return out;
  }

  private async forEachPage(orgId: string, fn: (page: ContactRecord[]) => Promise<void>): Promise<void> {
    let before: string | undefined;
    for (;;) {
      const page = await this.store.listContacts(orgId, { limit: PAGE, ...(before ? { before } : {}) });
      if (page.length === 0) return;
      await fn(page);
      if (page.length < PAGE) return;
      before = page.at(-1)?.id;
    }
  }

  private async countNow(segment: Segment, now: number): Promise<number> {
    let n = 0;
    await this.forEachPage(segment.orgId, async (page) => {
      n += (await this.evaluate([segment], page, now)).get(segment.id)?.size ?? 0;
    });
    return n;
  }

  /** Records who is in a segment just saved, so later changes report real entries and exits. */
  private async baseline(segment: Segment): Promise<void> {
    const now = this.clock.now();
    await this.forEachPage(segment.orgId, async (page) => {
      const members = (await this.evaluate([segment], page, now)).get(segment.id) ?? new Set<string>();
      await this.store.addSegmentMembers(segment.orgId, segment.id, [...members], now);
    });
  }
}

function usesConsent(rule: SegmentRule): boolean {
  if ('all' in rule) return rule.all.some(usesConsent);
  if ('any' in rule) return rule.any.some(usesConsent);
  if ('not' in rule) return usesConsent(rule.not);
  return 'consent' in rule;
}
