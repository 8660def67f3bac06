/**
 * Message bodies written inline in a journey's send steps: Liquid, checked when the journey is saved and rendered
 * per run with what the run knows (`contact`, `event`, `trigger`, `reply`). Lenient on variables (a missing one
 * renders empty: a journey must not stall on a contact without a first name), strict on filters, and sandboxed like
 * message templates (no file tags, render and memory limits).
 */
import { Liquid, type Template } from 'liquidjs';
import { ValidationError } from '../domain/errors.ts';
import type { JourneyDefinition, MessageContent } from '../domain/journey-definition.ts';
import type { RunContext } from '../domain/journey-run-state.ts';
import type { JourneyContact } from '../ports/journey-deps.ts';

const CACHE_LIMIT = 2000;

function createLiquid(): Liquid {
  const liquid = new Liquid({
    strictVariables: false,
    strictFilters: true,
    ownPropertyOnly: true,
    templates: {},
    renderLimit: 250,
    memoryLimit: 10_000_000,
    parseLimit: 1_000_000,
  });
  for (const tag of ['include', 'render', 'layout']) {
    liquid.registerTag(tag, {
      parse() {
        throw new Error(`the '${tag}' tag is not available in journey messages`);
      },
      render() {
        return '';
      },
    });
  }
  return liquid;
}

/** What a journey message may refer to. */
export function contentScope(
  contactId: string,
  contact: JourneyContact | undefined,
  ctx: RunContext,
): Record<string, unknown> {
  const event = ctx.event ? { ...ctx.event.properties, ...ctx.event } : null;
  return {
    contact: contact
      ? {
          ...contact.attributes,
          id: contact.id,
          attributes: contact.attributes,
          tags: contact.tags,
          timeZone: contact.timeZone,
        }
      : { id: contactId },
    event,
    trigger: ctx.trigger,
    reply: ctx.reply,
  };
}

export class JourneyContent {
  private readonly liquid = createLiquid();
  private readonly parsed = new Map<string, Template[]>();

  /** Checks every inline body and subject of a definition; the error's field points at it (under `prefix`). */
  check(def: JourneyDefinition, prefix = 'definition'): void {
    for (const [id, step] of Object.entries(def.steps)) {
      if (step.type !== 'send') continue;
      const base = `${prefix}.steps.${id}`;
      this.checkContent(step, base);
      step.fallback?.forEach((leg, i) => {
        this.checkContent(leg, `${base}.fallback[${i}]`);
      });
    }
  }

  private checkContent(c: MessageContent, field: string): void {
    for (const key of ['body', 'subject'] as const) {
      const text = c[key];
      if (text === undefined) continue;
      try {
        this.parse(text);
      } catch (err) {
        throw new ValidationError('template_syntax_error', `'${field}.${key}': ${(err as Error).message}`, {
          field: `${field}.${key}`,
        });
      }
    }
  }

  /** Renders `text`; `scope` is only asked for when the text has Liquid in it. */
  render(text: string, scope: () => Record<string, unknown>): string {
    if (!text.includes('{')) return text;
    return this.liquid.renderSync(this.parse(text), scope()) as string;
  }

  private parse(text: string): Template[] {
    let t = this.parsed.get(text);
    if (!t) {
      t = this.liquid.parse(text);
      if (this.parsed.size >= CACHE_LIMIT) this.parsed.clear();
      this.parsed.set(text, t);
    }
    return t;
  }
}
