/**
 * Consent as the API, imports and journeys state it, and the one writer of consent changes (the inbound keyword
 * path records through it too): each change updates the contact's current statement for its scope and is kept in
 * the audit trail with its source, time and evidence. See src/domain/compliance.ts for how statements combine.
 */

import { CHANNELS, type Channel } from '../domain/channels.ts';
import {
  ANY,
  CONSENT_PURPOSES,
  type ConsentSource,
  type ConsentStatus,
  effectiveConsent,
} from '../domain/compliance.ts';
import { newId } from '../domain/ids.ts';
import type { Clock } from '../ports/clock.ts';
import type { ConsentAuditEntry, ConsentChange, ContactStore, StoredConsent } from '../ports/contact-store.ts';
import type { ContactChanged, Contacts } from './contacts.ts';

export interface ConsentInput {
  channel: Channel | typeof ANY;
  purpose: 'transactional' | 'marketing' | typeof ANY;
  status: ConsentStatus;
  /** A sender identity (our number); `*` or absent: every sender. */
  sender?: string;
  /** Where the statement comes from; `inbound_keyword` is reserved to the keyword path. */
  source?: Exclude<ConsentSource, 'inbound_keyword'>;
  evidence?: Record<string, unknown>;
}

export interface ConsentView {
  contactId: string;
  consents: StoredConsent[];
  history: ConsentAuditEntry[];
  /** Per channel and purpose, what a send from a sender not yet chosen would meet. */
  effective: Record<string, Record<string, ConsentStatus | 'none'>>;
}

// newId's ULID under the consent-audit prefix (ids.ts lists the prefixes of the core entities).
const newAuditId = (): string => `cns_${newId('evt').slice(4)}`;
const MAX_HISTORY = 1000;

export class ConsentService {
  constructor(
    private readonly store: ContactStore,
    private readonly contacts: Contacts,
    private readonly clock: Clock,
    private readonly opts: { onChanged?: ContactChanged } = {},
  ) {}

  /** Records changes (already addressed to contacts) and tells who changed. */
  async recordChanges(changes: readonly ConsentChange[]): Promise<void> {
    if (changes.length === 0) return;
    await this.store.recordConsents(changes, newAuditId);
    const touched = new Map(changes.map((c) => [`${c.orgId}\u0000${c.contactId}`, c]));
    for (const c of touched.values()) await this.opts.onChanged?.(c.orgId, c.contactId);
  }

  /** Records statements about a contact made through the API (or an import or a journey). */
  async record(orgId: string, contactId: string, inputs: readonly ConsentInput[]): Promise<ConsentView> {
    const contact = await this.contacts.get(orgId, contactId);
    const at = this.clock.now();
    await this.recordChanges(
      inputs.map((i) => ({
        orgId,
        contactId: contact.id,
        channel: i.channel,
        purpose: i.purpose,
        sender: i.sender ?? ANY,
        status: i.status,
        source: i.source ?? 'api',
        evidence: i.evidence ?? null,
        at,
      })),
    );
    return this.view(orgId, contact.id);
  }

  async view(orgId: string, contactId: string): Promise<ConsentView> {
    const contact = await this.contacts.get(orgId, contactId);
    const consents = await this.store.getConsents(orgId, [contact.id]);
    const effective: ConsentView['effective'] = {};
    for (const channel of CHANNELS) {
      const perPurpose: Record<string, ConsentStatus | 'none'> = {};
      for (const purpose of CONSENT_PURPOSES) {
        perPurpose[purpose] = effectiveConsent(consents, { channel, purpose, sender: null }).status;
      }
      effective[channel] = perPurpose;
    }
    return {
      contactId: contact.id,
      consents,
      history: await this.store.listConsentAudit(orgId, contact.id, MAX_HISTORY),
      effective,
    };
  }
}
