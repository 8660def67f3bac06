/**
 * The ContactStore contract: the semantics every adapter (SQLite, PostgreSQL) must have. A runner per adapter
 * calls `contactStoreContract(name, make)`; `make` returns a fresh, empty, migrated store.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DEFAULT_COMPLIANCE_SETTINGS } from '../../src/domain/compliance.ts';
import { newId } from '../../src/domain/ids.ts';
import type {
  BusinessEvent,
  ConsentChange,
  ContactRecord,
  ContactStore,
  Segment,
} from '../../src/ports/contact-store.ts';

export interface ContactStoreContext {
  store: ContactStore;
  cleanup(): Promise<void>;
}

const T0 = Date.UTC(2026, 0, 1);
const DAY = 86_400_000;
const id = (prefix: string) => `${prefix}_${newId('evt').slice(4)}`;

export function contactStoreContract(name: string, make: () => Promise<ContactStoreContext>): void {
  describe(name, () => {
    let ctx: ContactStoreContext;
    let store: ContactStore;
    let org: string;
    let otherOrg: string;

    beforeEach(async () => {
      ctx = await make();
      store = ctx.store;
      org = newId('org');
      otherOrg = newId('org');
    });
    afterEach(async () => {
      await ctx.cleanup();
    });

    function contact(over: Partial<ContactRecord> = {}): ContactRecord {
      return {
        id: id('ctc'),
        orgId: org,
        externalId: null,
        identifiers: [],
        attributes: {},
        tags: [],
        persona: null,
        timeZone: null,
        timeZoneSource: null,
        language: null,
        version: 1,
        mergedInto: null,
        erasedAt: null,
        createdAt: T0,
        updatedAt: T0,
        ...over,
      };
    }

    async function saved(over: Partial<ContactRecord> = {}): Promise<ContactRecord> {
      const c = contact(over);
      expect(await store.insertContact(c)).toEqual({ ok: true });
      return c;
    }

    function event(contactId: string, over: Partial<BusinessEvent> = {}): BusinessEvent {
      return {
        id: id('evt'),
        orgId: org,
        contactId,
        name: 'purchase',
        properties: { amount: 12.5 },
        occurredAt: T0,
        receivedAt: T0,
        idempotencyKey: null,
        dispatchedAt: null,
        ...over,
      };
    }

    function consent(contactId: string, over: Partial<ConsentChange> = {}): ConsentChange {
      return {
        orgId: org,
        contactId,
        channel: 'sms',
        purpose: 'marketing',
        sender: '*',
        status: 'opted_in',
        source: 'api',
        evidence: { form: 'signup' },
        at: T0,
        ...over,
      };
    }

    const auditId = () => id('cns');

    describe('contacts', () => {
      it('stores a contact with its identifiers in order and reads it back', async () => {
        const c = await saved({
          externalId: 'crm-1',
          identifiers: [
            { kind: 'phone', value: '+12025550100', data: null },
            { kind: 'email', value: 'ada@example.com', data: null },
            { kind: 'phone', value: '+12025550101', data: null },
            { kind: 'push', value: 'https://push.example.com/abc', data: { keys: { p256dh: 'k', auth: 'a' } } },
          ],
          attributes: { plan: 'gold', nested: { n: 1 } },
          tags: ['vip'],
          persona: 'patient',
          timeZone: 'America/New_York',
          timeZoneSource: 'phone',
          language: 'en-US',
        });
        const got = await store.getContact(org, c.id);
        expect(got).toEqual({
          ...c,
          identifiers: [
            { kind: 'email', value: 'ada@example.com', data: null },
            { kind: 'phone', value: '+12025550100', data: null },
            { kind: 'phone', value: '+12025550101', data: null },
            { kind: 'push', value: 'https://push.example.com/abc', data: { keys: { p256dh: 'k', auth: 'a' } } },
          ],
        });
        expect(await store.getContact(otherOrg, c.id)).toBeUndefined();
        const d = await saved();
        const both = await store.getContacts(org, [c.id, d.id, 'ctc_unknown']);
        expect(both.map((x) => x.id).sort()).toEqual([c.id, d.id].sort());
        expect(both.find((x) => x.id === c.id)?.identifiers).toHaveLength(4);
        expect(await store.getContacts(otherOrg, [c.id])).toEqual([]);
        expect(await store.getContacts(org, [])).toEqual([]);
      });

      it('refuses an identifier or external id another contact holds, writing nothing', async () => {
        const a = await saved({ externalId: 'crm-1', identifiers: [{ kind: 'phone', value: '+1202', data: null }] });
        const b = contact({
          identifiers: [
            { kind: 'email', value: 'b@x.io', data: null },
            { kind: 'phone', value: '+1202', data: null },
          ],
        });
        expect(await store.insertContact(b)).toEqual({
          ok: false,
          reason: 'conflict',
          kind: 'phone',
          value: '+1202',
          contactId: a.id,
        });
        expect(await store.getContact(org, b.id)).toBeUndefined();
        expect(await store.findContacts(org, { identifiers: [{ kind: 'email', value: 'b@x.io' }] })).toEqual([]);
        expect(await store.insertContact(contact({ externalId: 'crm-1' }))).toMatchObject({
          ok: false,
          kind: 'externalId',
          contactId: a.id,
        });
        // Another organization has its own namespace.
        expect(
          await store.insertContact(
            contact({
              orgId: otherOrg,
              externalId: 'crm-1',
              identifiers: [{ kind: 'phone', value: '+1202', data: null }],
            }),
          ),
        ).toEqual({ ok: true });
      });

      it('lets exactly one of several concurrent writers take an address', async () => {
        const racers = Array.from({ length: 6 }, (_, i) =>
          contact({
            identifiers: [
              { kind: 'email', value: `own${i}@x.io`, data: null },
              { kind: 'phone', value: '+1999', data: null },
            ],
          }),
        );
        const results = await Promise.all(racers.map((c) => store.insertContact(c)));
        const winners = results.filter((r) => r.ok);
        expect(winners).toHaveLength(1);
        const winner = racers[results.findIndex((r) => r.ok)]!;
        for (const r of results.filter((x) => !x.ok)) {
          expect(r).toEqual({ ok: false, reason: 'conflict', kind: 'phone', value: '+1999', contactId: winner.id });
        }
        const holders = await store.findContacts(org, { identifiers: [{ kind: 'phone', value: '+1999' }] });
        expect(holders.map((c) => c.id)).toEqual([winner.id]);
        // The losers left nothing behind.
        expect(
          await store.findContacts(org, {
            identifiers: [
              { kind: 'email', value: 'own0@x.io' },
              { kind: 'email', value: 'own5@x.io' },
            ],
          }),
        ).toHaveLength(winner.identifiers.some((i) => i.value === 'own0@x.io' || i.value === 'own5@x.io') ? 1 : 0);
      });

      it('updates only from the version it read, replacing the identifiers', async () => {
        const c = await saved({ identifiers: [{ kind: 'phone', value: '+1', data: null }] });
        const next = {
          ...c,
          version: 2,
          attributes: { a: 1 },
          identifiers: [{ kind: 'email' as const, value: 'c@x.io', data: null }],
          updatedAt: T0 + 1,
        };
        expect(await store.updateContact(next, 1)).toEqual({ ok: true });
        expect(await store.getContact(org, c.id)).toEqual(next);
        expect(await store.updateContact({ ...next, version: 3, tags: ['x'] }, 1)).toEqual({
          ok: false,
          reason: 'stale',
        });
        expect((await store.getContact(org, c.id))?.tags).toEqual([]);
        // The old phone is free again.
        await saved({ identifiers: [{ kind: 'phone', value: '+1', data: null }] });
        const other = await saved({ identifiers: [{ kind: 'phone', value: '+2', data: null }] });
        expect(
          await store.updateContact(
            { ...next, version: 3, identifiers: [{ kind: 'phone', value: '+2', data: null }] },
            2,
          ),
        ).toMatchObject({ ok: false, reason: 'conflict', contactId: other.id });
        expect((await store.getContact(org, c.id))?.version).toBe(2);
      });

      it('finds active contacts by external id or any identifier', async () => {
        const a = await saved({ externalId: 'e-a', identifiers: [{ kind: 'phone', value: '+1', data: null }] });
        const b = await saved({ identifiers: [{ kind: 'email', value: 'b@x.io', data: null }] });
        const found = await store.findContacts(org, {
          externalId: 'e-a',
          identifiers: [
            { kind: 'email', value: 'b@x.io' },
            { kind: 'phone', value: '+1' },
            { kind: 'phone', value: '+9' },
          ],
        });
        expect(found.map((c) => c.id).sort()).toEqual([a.id, b.id].sort());
        expect(await store.findContacts(org, { identifiers: [{ kind: 'email', value: '+1' }] })).toEqual([]);
        expect(await store.findContacts(otherOrg, { externalId: 'e-a' })).toEqual([]);
        await store.eraseContact(org, a.id, T0 + 1);
        expect(
          await store.findContacts(org, { externalId: 'e-a', identifiers: [{ kind: 'phone', value: '+1' }] }),
        ).toEqual([]);
      });

      it('lists active contacts newest first, by page, with filters', async () => {
        const cs: ContactRecord[] = [];
        for (let i = 0; i < 5; i++) {
          cs.push(
            await saved({
              externalId: `e${i}`,
              tags: i % 2 === 0 ? ['even'] : ['odd'],
              identifiers: [{ kind: 'phone', value: `+1${i}`, data: null }],
            }),
          );
        }
        await saved({ orgId: otherOrg });
        const ids = cs.map((c) => c.id).reverse();
        const first = await store.listContacts(org, { limit: 3 });
        expect(first.map((c) => c.id)).toEqual(ids.slice(0, 3));
        expect(first[0]?.identifiers).toEqual([{ kind: 'phone', value: '+14', data: null }]);
        const second = await store.listContacts(org, { limit: 3, before: first[2]!.id });
        expect(second.map((c) => c.id)).toEqual(ids.slice(3));
        expect((await store.listContacts(org, { limit: 10, tag: 'even' })).map((c) => c.id)).toEqual([
          cs[4]!.id,
          cs[2]!.id,
          cs[0]!.id,
        ]);
        expect((await store.listContacts(org, { limit: 10, externalId: 'e1' })).map((c) => c.id)).toEqual([cs[1]!.id]);
        expect(
          (await store.listContacts(org, { limit: 10, identifier: { kind: 'phone', value: '+13' } })).map((c) => c.id),
        ).toEqual([cs[3]!.id]);
        await store.eraseContact(org, cs[4]!.id, T0 + 1);
        expect((await store.listContacts(org, { limit: 10 })).map((c) => c.id)).toEqual(ids.slice(1));
      });
    });

    describe('merge and erase', () => {
      it('merges one contact into another: identifiers, events, consents, audit and sends follow', async () => {
        const target = await saved({ identifiers: [{ kind: 'phone', value: '+1', data: null }] });
        const other = await saved({
          externalId: 'crm-9',
          identifiers: [{ kind: 'email', value: 'o@x.io', data: null }],
        });
        const pointer = await saved();
        expect(
          await store.mergeContacts({
            orgId: org,
            target: other,
            targetVersion: 1,
            otherId: pointer.id,
            otherVersion: 1,
            consents: [],
            at: T0 + 1,
          }),
        ).toEqual({ ok: true });
        await store.insertEvent(event(other.id));
        await store.recordConsents([consent(other.id, { status: 'opted_out' })], auditId);
        await store.recordSends([{ orgId: org, recipientKey: other.id, channel: 'sms', purpose: 'marketing', at: T0 }]);
        const seg = id('seg');
        await store.setMemberships(org, other.id, [seg], [], T0);

        const otherNow = (await store.getContact(org, other.id))!;
        const merged: ContactRecord = {
          ...target,
          externalId: 'crm-9',
          // Kinds in alphabetical order, as the store reads them back.
          identifiers: [...otherNow.identifiers, ...target.identifiers],
          version: 2,
          updatedAt: T0 + 2,
        };
        const mergedConsents = [
          {
            channel: 'sms' as const,
            purpose: 'marketing' as const,
            sender: '*',
            status: 'opted_out' as const,
            source: 'api' as const,
            updatedAt: T0,
          },
        ];
        expect(
          await store.mergeContacts({
            orgId: org,
            target: merged,
            targetVersion: 1,
            otherId: other.id,
            otherVersion: otherNow.version,
            consents: mergedConsents,
            at: T0 + 2,
          }),
        ).toEqual({ ok: true });

        expect(await store.getContact(org, target.id)).toEqual(merged);
        const gone = await store.getContact(org, other.id);
        expect(gone).toMatchObject({ mergedInto: target.id, externalId: null, identifiers: [] });
        expect((await store.getContact(org, pointer.id))?.mergedInto).toBe(target.id);
        expect((await store.listEvents(org, target.id, { limit: 10 })).length).toBe(1);
        expect(await store.listEvents(org, other.id, { limit: 10 })).toEqual([]);
        expect(await store.getConsents(org, [target.id, other.id])).toEqual([
          { ...mergedConsents[0], contactId: target.id },
        ]);
        expect((await store.listConsentAudit(org, target.id, 10)).length).toBe(1);
        expect((await store.recentSends(org, [target.id], 0)).length).toBe(1);
        // Memberships stay for the segments' re-evaluation to record the exit.
        expect(await store.getMemberships(org, other.id)).toEqual([seg]);
        expect(await store.findContacts(org, { identifiers: [{ kind: 'email', value: 'o@x.io' }] })).toMatchObject([
          { id: target.id },
        ]);
      });

      it('refuses a merge when either side changed since it was read', async () => {
        const target = await saved();
        const other = await saved({ identifiers: [{ kind: 'phone', value: '+5', data: null }] });
        const m = {
          orgId: org,
          target: { ...target, version: 2 },
          targetVersion: 1,
          otherId: other.id,
          consents: [],
          at: T0 + 1,
        };
        expect(await store.mergeContacts({ ...m, otherVersion: 7 })).toEqual({ ok: false, reason: 'stale' });
        expect(await store.mergeContacts({ ...m, targetVersion: 7, otherVersion: 1 })).toEqual({
          ok: false,
          reason: 'stale',
        });
        // Nothing moved.
        expect((await store.getContact(org, other.id))?.identifiers).toHaveLength(1);
        expect((await store.getContact(org, other.id))?.mergedInto).toBeNull();
      });

      it('erases personal data and keeps an anonymous tombstone', async () => {
        const c = await saved({
          externalId: 'crm-1',
          identifiers: [
            { kind: 'phone', value: '+1', data: null },
            { kind: 'email', value: 'e@x.io', data: null },
          ],
          attributes: { name: 'Ada' },
          tags: ['vip'],
          persona: 'p',
          timeZone: 'Europe/Paris',
          timeZoneSource: 'given',
          language: 'fr',
        });
        await store.insertEvent(event(c.id, { properties: { card: '4242' } }));
        await store.recordConsents([consent(c.id, { evidence: { ip: '1.2.3.4' } })], auditId);
        await store.setMemberships(org, c.id, [id('seg')], [], T0);

        const erased = await store.eraseContact(org, c.id, T0 + 5);
        expect(erased?.identifiers.map((i) => i.value).sort()).toEqual(['+1', 'e@x.io']);
        const tomb = await store.getContact(org, c.id);
        expect(tomb).toMatchObject({
          id: c.id,
          externalId: null,
          identifiers: [],
          attributes: {},
          tags: [],
          persona: null,
          timeZone: null,
          language: null,
          erasedAt: T0 + 5,
          createdAt: T0,
        });
        const [ev] = await store.listEvents(org, c.id, { limit: 10 });
        expect(ev).toMatchObject({ name: 'purchase', properties: null });
        expect(await store.getConsents(org, [c.id])).toEqual([]);
        expect(await store.getMemberships(org, c.id)).toHaveLength(1);
        const [audit] = await store.listConsentAudit(org, c.id, 10);
        expect(audit).toMatchObject({ status: 'opted_in', evidence: null });
        // The addresses may belong to someone else now.
        await saved({ externalId: 'crm-1', identifiers: [{ kind: 'phone', value: '+1', data: null }] });
        // Erasing again keeps the first time; an unknown contact is undefined.
        expect(await store.eraseContact(org, c.id, T0 + 9)).toEqual({ identifiers: [] });
        expect((await store.getContact(org, c.id))?.erasedAt).toBe(T0 + 5);
        expect(await store.eraseContact(otherOrg, c.id, T0)).toBeUndefined();
      });
    });

    describe('consent', () => {
      it('keeps the latest statement per scope and every change in the audit trail', async () => {
        const a = await saved();
        const b = await saved();
        await store.recordConsents(
          [
            consent(a.id, { at: T0 + 10 }),
            consent(a.id, {
              sender: '+12025550100',
              channel: 'sms',
              purpose: '*',
              status: 'opted_out',
              source: 'inbound_keyword',
              at: T0 + 20,
              evidence: { body: 'STOP' },
            }),
            consent(b.id, { channel: 'email', purpose: 'transactional', status: 'opted_out', at: T0 }),
          ],
          auditId,
        );
        // An older statement arriving late is audited but does not override the newer one.
        await store.recordConsents([consent(a.id, { status: 'opted_out', at: T0 + 5 })], auditId);
        const current = await store.getConsents(org, [a.id, b.id]);
        expect(current).toHaveLength(3);
        expect(current.find((c) => c.contactId === a.id && c.sender === '*')).toEqual({
          contactId: a.id,
          channel: 'sms',
          purpose: 'marketing',
          sender: '*',
          status: 'opted_in',
          source: 'api',
          updatedAt: T0 + 10,
        });
        const audit = await store.listConsentAudit(org, a.id, 10);
        expect(audit.map((e) => [e.status, e.at])).toEqual([
          ['opted_out', T0 + 5],
          ['opted_in', T0 + 10],
          ['opted_out', T0 + 20],
        ]);
        expect(audit[2]).toMatchObject({
          source: 'inbound_keyword',
          sender: '+12025550100',
          evidence: { body: 'STOP' },
        });
        expect(await store.getConsents(otherOrg, [a.id])).toEqual([]);
        expect(await store.listConsentAudit(otherOrg, a.id, 10)).toEqual([]);
      });
    });

    describe('compliance settings and send counts', () => {
      it('saves settings per organization', async () => {
        expect(await store.getComplianceSettings(org)).toBeUndefined();
        const s = { ...DEFAULT_COMPLIANCE_SETTINGS, helpText: 'Call us' };
        await store.saveComplianceSettings(org, s, T0);
        await store.saveComplianceSettings(org, { ...s, quietHours: null }, T0 + 1);
        expect(await store.getComplianceSettings(org)).toEqual({ ...s, quietHours: null });
        expect(await store.getComplianceSettings(otherOrg)).toBeUndefined();
      });

      it('counts sends per recipient since a moment and prunes old ones', async () => {
        await store.recordSends([
          { orgId: org, recipientKey: 'ctc_a', channel: 'sms', purpose: 'marketing', at: T0 },
          { orgId: org, recipientKey: 'ctc_a', channel: 'email', purpose: 'marketing', at: T0 + DAY },
          { orgId: org, recipientKey: 'ctc_b', channel: 'sms', purpose: 'marketing', at: T0 + DAY },
          { orgId: otherOrg, recipientKey: 'ctc_a', channel: 'sms', purpose: 'marketing', at: T0 + DAY },
        ]);
        const recent = await store.recentSends(org, ['ctc_a'], T0 + 1);
        expect(recent).toEqual([
          { orgId: org, recipientKey: 'ctc_a', channel: 'email', purpose: 'marketing', at: T0 + DAY },
        ]);
        expect((await store.recentSends(org, ['ctc_a', 'ctc_b'], T0)).length).toBe(3);
        expect(await store.pruneSends(T0 + 1)).toBe(1);
        expect((await store.recentSends(org, ['ctc_a'], 0)).length).toBe(1);
      });
    });

    describe('events', () => {
      it('stores an event once per idempotency key and organization', async () => {
        const c = await saved();
        const e = event(c.id, { idempotencyKey: 'k1' });
        expect(await store.insertEvent(e)).toEqual({ inserted: true });
        expect(await store.insertEvent({ ...e, id: id('evt'), name: 'other' })).toEqual({
          inserted: false,
          existing: e,
        });
        expect(await store.insertEvent(event(c.id, { orgId: otherOrg, idempotencyKey: 'k1' }))).toEqual({
          inserted: true,
        });
        expect(await store.insertEvent(event(c.id))).toEqual({ inserted: true });
        expect(await store.insertEvent(event(c.id))).toEqual({ inserted: true });
        expect(await store.getEvent(org, e.id)).toEqual(e);
        expect(await store.getEvent(otherOrg, e.id)).toBeUndefined();
      });

      it("lists a contact's events newest first, by page and name", async () => {
        const c = await saved();
        const evs: BusinessEvent[] = [];
        for (let i = 0; i < 4; i++) {
          const e = event(c.id, { name: i % 2 ? 'login' : 'purchase', occurredAt: T0 + i });
          evs.push(e);
          await store.insertEvent(e);
        }
        const page = await store.listEvents(org, c.id, { limit: 3 });
        expect(page.map((e) => e.id)).toEqual([evs[3]!.id, evs[2]!.id, evs[1]!.id]);
        expect((await store.listEvents(org, c.id, { limit: 3, before: evs[1]!.id })).map((e) => e.id)).toEqual([
          evs[0]!.id,
        ]);
        expect((await store.listEvents(org, c.id, { limit: 9, name: 'login' })).map((e) => e.id)).toEqual([
          evs[3]!.id,
          evs[1]!.id,
        ]);
      });

      it('counts events per contact, name and window', async () => {
        const a = await saved();
        const b = await saved();
        const none = await saved();
        for (const [cid, name, at] of [
          [a.id, 'purchase', T0],
          [a.id, 'purchase', T0 + 10 * DAY],
          [a.id, 'login', T0 + 10 * DAY],
          [b.id, 'purchase', T0 + 20 * DAY],
        ] as const) {
          await store.insertEvent(event(cid, { name, occurredAt: at }));
        }
        const counts = await store.countEvents(
          org,
          [a.id, b.id, none.id],
          [
            { name: 'purchase', since: 0 },
            { name: 'purchase', since: T0 + 5 * DAY },
            { name: 'login', since: 0 },
          ],
        );
        expect(counts.get(a.id)).toEqual([2, 1, 1]);
        expect(counts.get(b.id)).toEqual([1, 1, 0]);
        expect(counts.get(none.id)).toEqual([0, 0, 0]);
        expect((await store.countEvents(otherOrg, [a.id], [{ name: 'purchase', since: 0 }])).get(a.id)).toEqual([0]);
      });

      it('hands over undispatched events until they are marked', async () => {
        const c = await saved();
        const e1 = event(c.id, { receivedAt: T0 });
        const e2 = event(c.id, { receivedAt: T0 + 1 });
        await store.insertEvent(e1);
        await store.insertEvent(e2);
        expect((await store.listUndispatchedEvents(T0 + 1, 10)).map((e) => e.id)).toEqual([e1.id]);
        await store.markEventsDispatched([e1.id], T0 + 2);
        expect((await store.listUndispatchedEvents(T0 + 10, 10)).map((e) => e.id)).toEqual([e2.id]);
        expect(await store.getEvent(org, e1.id)).toEqual({ ...e1, dispatchedAt: T0 + 2 });
      });
    });

    describe('segments', () => {
      function segment(over: Partial<Segment> = {}): Segment {
        return {
          id: id('seg'),
          orgId: org,
          name: 'VIPs',
          description: null,
          rules: { tag: 'vip' },
          createdAt: T0,
          updatedAt: T0,
          ...over,
        };
      }

      it('stores, lists, updates and deletes segments per organization', async () => {
        const s = segment();
        await store.insertSegment(s);
        await store.insertSegment(segment({ orgId: otherOrg }));
        expect(await store.getSegment(org, s.id)).toEqual(s);
        expect(await store.getSegment(otherOrg, s.id)).toBeUndefined();
        expect(await store.listSegments(org)).toEqual([s]);
        const changed = {
          ...s,
          name: 'Gold',
          description: 'gold plan',
          rules: { attribute: 'plan', op: 'eq' as const, value: 'gold' },
          updatedAt: T0 + 1,
        };
        expect(await store.updateSegment(changed)).toBe(true);
        expect(await store.getSegment(org, s.id)).toEqual(changed);
        expect(await store.updateSegment({ ...changed, orgId: otherOrg })).toBe(false);
        expect(await store.deleteSegment(otherOrg, s.id)).toBe(false);
        expect(await store.deleteSegment(org, s.id)).toBe(true);
        expect(await store.getSegment(org, s.id)).toBeUndefined();
      });

      it('records who entered and left, and clears members when the rules change', async () => {
        const s1 = segment();
        const s2 = segment();
        await store.insertSegment(s1);
        await store.insertSegment(s2);
        const c = await saved();
        await store.setMemberships(org, c.id, [s1.id, s2.id], [], T0);
        await store.setMemberships(org, c.id, [s1.id], [], T0);
        expect(await store.getMemberships(org, c.id)).toEqual([s1.id, s2.id].sort());
        await store.setMemberships(org, c.id, [], [s2.id], T0);
        expect(await store.getMemberships(org, c.id)).toEqual([s1.id]);
        const more = [await saved(), await saved()].map((x) => x.id);
        await store.addSegmentMembers(org, s1.id, more, T0);
        await store.addSegmentMembers(org, s1.id, more, T0);
        expect(await store.countSegmentMembers(org, s1.id)).toBe(3);
        await store.updateSegment({ ...s1, updatedAt: T0 + 1 });
        expect(await store.countSegmentMembers(org, s1.id)).toBe(0);
        await store.addSegmentMembers(org, s2.id, more, T0);
        await store.deleteSegment(org, s2.id);
        expect(await store.countSegmentMembers(org, s2.id)).toBe(0);
      });
    });
  });
}
