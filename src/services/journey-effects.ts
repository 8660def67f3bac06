/**
 * Performs the effects journey steps ask for — send a message, call a webhook, update the contact — through the
 * journey ports, and classifies what happened as an EffectOutcome the step semantics understand: a user-class error
 * (no address on that channel, unknown template, contact gone) is final for that effect; an infrastructure error is
 * retryable.
 */
import { asDomainError } from '../domain/errors.ts';
import type { ContactView, Effect, EffectOutcome, RunContext } from '../domain/journey-run-state.ts';
import type { JourneyContact, JourneyContacts, JourneyMessaging, JourneyWebhookClient } from '../ports/journey-deps.ts';
import { contentScope, type JourneyContent } from './journey-content.ts';

export interface EffectRun {
  orgId: string;
  journeyId: string;
  runId: string;
  contactId: string;
  context: RunContext;
  contact: JourneyContact | undefined;
}

function failure(err: unknown): EffectOutcome {
  const e = asDomainError(err);
  return { ok: false, retryable: e.isRetryable, error: { code: e.code, message: e.message } };
}

export class JourneyEffects {
  constructor(
    private readonly messaging: JourneyMessaging,
    private readonly contacts: JourneyContacts,
    private readonly webhooks: JourneyWebhookClient,
    private readonly content: JourneyContent,
  ) {}

  async perform(effect: Effect, run: EffectRun): Promise<EffectOutcome> {
    switch (effect.kind) {
      case 'send':
        return this.send(effect, run);
      case 'webhook':
        return this.callWebhook(effect);
      case 'update_contact':
        try {
          await this.contacts.update(run.orgId, run.contactId, effect.patch);
          return { ok: true };
        } catch (err) {
          return failure(err);
        }
    }
  }

  private async send(effect: Extract<Effect, { kind: 'send' }>, run: EffectRun): Promise<EffectOutcome> {
    try {
      let scoped: Record<string, unknown> | undefined;
      const scope = () => {
        scoped ??= contentScope(run.contactId, run.contact, run.context);
        return scoped;
      };
      const c = effect.content;
      const r = await this.messaging.send({
        orgId: run.orgId,
        contactId: run.contactId,
        channel: effect.channel,
        ...(c.body !== undefined ? { body: this.content.render(c.body, scope) } : {}),
        ...(c.subject !== undefined ? { subject: this.content.render(c.subject, scope) } : {}),
        ...(c.template !== undefined
          ? { template: { id: c.template.id, variables: { ...scope(), ...(c.template.variables ?? {}) } } }
          : {}),
        metadata: { journeyId: run.journeyId, journeyRunId: run.runId, stepId: effect.stepId },
        purpose: effect.purpose,
        idempotencyKey: effect.idempotencyKey,
      });
      return { ok: true, messageId: r.messageId, to: r.to ?? null };
    } catch (err) {
      return failure(err);
    }
  }

  private async callWebhook(effect: Extract<Effect, { kind: 'webhook' }>): Promise<EffectOutcome> {
    let status: number;
    try {
      ({ status } = await this.webhooks.post({
        url: effect.url,
        headers: effect.headers,
        body: effect.body,
        timeoutMs: effect.timeoutMs,
        idempotencyKey: effect.idempotencyKey,
      }));
    } catch (err) {
      const e = asDomainError(err);
      // No answer (refused, reset, timed out): the receiver may be back later.
      return { ok: false, retryable: true, error: { code: 'webhook_unreachable', message: e.message } };
    }
    if (status >= 200 && status < 300) return { ok: true, httpStatus: status };
    const retryable = status === 408 || status === 429 || status >= 500;
    return {
      ok: false,
      retryable,
      httpStatus: status,
      error: { code: 'webhook_failed', message: `the webhook answered ${status}` },
    };
  }
}

/** The part of a contact the step semantics read. */
export function contactView(c: JourneyContact | undefined): ContactView | undefined {
  return c ? { id: c.id, attributes: c.attributes, tags: c.tags, timeZone: c.timeZone } : undefined;
}
