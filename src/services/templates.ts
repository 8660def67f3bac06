/**
 * Message templates: per-channel content written in Liquid. Templates are checked when saved (syntax) and
 * rendered when a message is accepted; rendering is strict, so a variable the caller did not give is a 400
 * naming it rather than a message with a blank in it.
 */
import { Liquid, type Template as LiquidTemplate } from 'liquidjs';
import { CHANNELS, type Channel, validateBodyLength } from '../domain/channels.ts';
import { NotFoundError, ValidationError } from '../domain/errors.ts';
import { newId } from '../domain/ids.ts';
import type { Clock } from '../ports/clock.ts';
import type { MessageStore, Template } from '../ports/store.ts';

type Parsed = Partial<Record<Channel, { body: LiquidTemplate[]; subject?: LiquidTemplate[] }>>;

/**
 * A Liquid engine safe for tenants' templates: no file access (include/render/layout are rejected when a
 * template is saved), and limits on render time and memory so a template cannot stall the server.
 */
function createLiquid(): Liquid {
  const liquid = new Liquid({
    strictVariables: true,
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
        throw new Error(`the '${tag}' tag is not available in message templates`);
      },
      render() {
        return '';
      },
    });
  }
  return liquid;
}

export interface TemplateInput {
  name: string;
  channels: Partial<Record<Channel, { body: string; subject?: string }>>;
}

export class Templates {
  private readonly liquid = createLiquid();
  private readonly parsed = new Map<string, { template: Template; parsed: Parsed }>();

  constructor(
    private readonly store: MessageStore,
    private readonly clock: Clock,
  ) {}

  async create(orgId: string, input: TemplateInput): Promise<Template> {
    const channels = Object.keys(input.channels);
    if (channels.length === 0)
      throw new ValidationError('missing_field', "'channels' needs content for at least one channel", {
        field: 'channels',
      });
    for (const ch of channels) {
      if (!(CHANNELS as readonly string[]).includes(ch)) {
        throw new ValidationError('unknown_channel', `'${ch}' is not a channel; use one of: ${CHANNELS.join(', ')}`, {
          field: `channels.${ch}`,
        });
      }
    }
    const template: Template = {
      id: newId('tpl'),
      orgId,
      name: input.name,
      content: input.channels,
      createdAt: this.clock.now(),
    };
    const parsed = this.parse(template);
    await this.store.createTemplate(template);
    this.parsed.set(template.id, { template, parsed });
    return template;
  }

  async get(orgId: string, id: string): Promise<Template> {
    const t = await this.load(orgId, id);
    return t.template;
  }

  /** Renders a template for a channel; throws ValidationError naming a missing variable. */
  async render(
    orgId: string,
    id: string,
    channel: Channel,
    variables: Record<string, unknown>,
    prefix = '',
  ): Promise<{ body: string; subject: string | null }> {
    const field = (f: string) => (prefix ? `${prefix}.${f}` : f);
    const { parsed } = await this.load(orgId, id, field('template.id'));
    const content = parsed[channel];
    if (!content) {
      throw new ValidationError(
        'template_channel_missing',
        `template '${id}' has no content for channel '${channel}'`,
        { field: field('template.id') },
      );
    }
    try {
      const body = this.liquid.renderSync(content.body, variables) as string;
      const subject = content.subject ? (this.liquid.renderSync(content.subject, variables) as string) : null;
      validateBodyLength(channel, body, field('body'));
      return { body, subject };
    } catch (err) {
      if (err instanceof ValidationError) throw err;
      const e = err as Error;
      const name = /undefined variable: ([^,]+)/.exec(e.message)?.[1];
      if (name) {
        throw new ValidationError('template_variable_missing', `template variable '${name}' is missing`, {
          field: field(`template.variables.${name}`),
        });
      }
      throw new ValidationError('template_render_failed', `template could not be rendered: ${e.message}`, {
        field: field('template'),
      });
    }
  }

  private async load(orgId: string, id: string, field = 'id'): Promise<{ template: Template; parsed: Parsed }> {
    const cached = this.parsed.get(id);
    if (cached && cached.template.orgId === orgId) return cached;
    const template = await this.store.getTemplate(orgId, id);
    if (!template) throw new NotFoundError('template_not_found', `template '${id}' does not exist`, { field });
    const entry = { template, parsed: this.parse(template) };
    this.parsed.set(id, entry);
    return entry;
  }

  private parse(t: Template): Parsed {
    const out: Parsed = {};
    for (const [ch, c] of Object.entries(t.content) as [Channel, { body: string; subject?: string }][]) {
      try {
        out[ch] = { body: this.liquid.parse(c.body), ...(c.subject ? { subject: this.liquid.parse(c.subject) } : {}) };
      } catch (err) {
        throw new ValidationError('template_syntax_error', `channels.${ch}: ${(err as Error).message}`, {
          field: `channels.${ch}`,
        });
      }
    }
    return out;
  }
}
