/**
 * The shape of a message a client asks us to send (`POST /v1/messages` and each item of a batch), and the
 * checks beyond the schema: recipient per channel, body limits, `sendAt`.
 */
import { type Static, Type } from '@sinclair/typebox';
import { CHANNELS, type Channel, validateBodyLength, validateRecipient } from '../domain/channels.ts';
import { ValidationError } from '../domain/errors.ts';
import { MAX_DEPTH_KEYWORD } from './validation.ts';

/** How deeply `metadata` and `template.variables` may nest objects and arrays. */
export const MAX_VALUE_DEPTH = 32;

const Str = (max: number) => Type.String({ minLength: 1, maxLength: max });
const HttpUrl = Type.String({ minLength: 8, maxLength: 2048, pattern: '^https?://\\S+$' });
const Postal = Type.Object(
  {
    name: Str(200),
    company: Type.Optional(Str(200)),
    line1: Str(200),
    line2: Type.Optional(Str(200)),
    city: Str(200),
    state: Type.Optional(Str(100)),
    postalCode: Str(20),
    country: Type.String({ pattern: '^[A-Z]{2}$', description: 'ISO 3166-1 alpha-2' }),
  },
  { additionalProperties: false },
);
const FreeForm = Type.Record(Type.String(), Type.Unknown(), { [MAX_DEPTH_KEYWORD]: 16 });

/** Per-channel extras (see ChannelOptions in src/ports/carrier.ts); each carrier reads the part for its channel. */
export const ChannelOptionsSchema = Type.Object(
  {
    mediaUrls: Type.Optional(Type.Array(HttpUrl, { maxItems: 10, description: 'MMS / WhatsApp media, attachments' })),
    email: Type.Optional(
      Type.Object(
        {
          html: Type.Optional(Type.String({ maxLength: 1_000_000 })),
          replyTo: Type.Optional(Str(320)),
          cc: Type.Optional(Type.Array(Str(320), { maxItems: 50 })),
          bcc: Type.Optional(Type.Array(Str(320), { maxItems: 50 })),
        },
        { additionalProperties: false },
      ),
    ),
    whatsapp: Type.Optional(
      Type.Object(
        {
          template: Type.Optional(
            Type.Object(
              {
                name: Str(512),
                language: Str(20),
                components: Type.Optional(Type.Array(FreeForm, { maxItems: 20 })),
              },
              { additionalProperties: false },
            ),
          ),
          interactive: Type.Optional(FreeForm),
          replyTo: Type.Optional(Str(256)),
        },
        { additionalProperties: false },
      ),
    ),
    push: Type.Optional(
      Type.Object(
        {
          keys: Type.Object({ p256dh: Str(200), auth: Str(100) }, { additionalProperties: false }),
          title: Type.Optional(Type.String({ maxLength: 200 })),
          data: Type.Optional(FreeForm),
          ttlSeconds: Type.Optional(Type.Integer({ minimum: 0, maximum: 2_419_200 })),
          urgency: Type.Optional(Type.String({ enum: ['very-low', 'low', 'normal', 'high'] })),
          topic: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9_-]{1,32}$' })),
        },
        { additionalProperties: false },
      ),
    ),
    voice: Type.Optional(
      Type.Object(
        {
          language: Type.Optional(Str(20)),
          voice: Type.Optional(Str(100)),
          loop: Type.Optional(Type.Integer({ minimum: 0, maximum: 10 })),
        },
        { additionalProperties: false },
      ),
    ),
    print: Type.Optional(
      Type.Object(
        {
          to: Postal,
          from: Type.Optional(Postal),
          color: Type.Optional(Type.Boolean()),
          doubleSided: Type.Optional(Type.Boolean()),
        },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
);

export const MessageInputSchema = Type.Object(
  {
    to: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 2048,
        description: 'E.164 number, email address, push endpoint, ...; or give `contactId`',
      }),
    ),
    contactId: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 64,
        description: "A contact: the message goes to the contact's address for the channel",
      }),
    ),
    purpose: Type.Optional(
      Type.String({
        enum: ['transactional', 'marketing'],
        description:
          'Marketing messages need consent and respect quiet hours and frequency caps (default transactional)',
      }),
    ),
    channel: Type.Union(
      CHANNELS.map((c) => Type.Literal(c)),
      { description: 'Delivery channel' },
    ),
    from: Type.Optional(
      Type.String({ minLength: 1, maxLength: 256, description: "Sender identity; defaults to the sender's" }),
    ),
    body: Type.Optional(Type.String({ description: 'Text content; or give `template`' })),
    subject: Type.Optional(Type.String({ maxLength: 998, description: 'Email subject' })),
    template: Type.Optional(
      Type.Object(
        {
          id: Type.String({ minLength: 1, maxLength: 64 }),
          variables: Type.Optional(
            Type.Record(Type.String(), Type.Unknown(), { [MAX_DEPTH_KEYWORD]: MAX_VALUE_DEPTH }),
          ),
        },
        { additionalProperties: false },
      ),
    ),
    metadata: Type.Optional(
      Type.Record(Type.String(), Type.Unknown(), {
        description: 'Your data, returned as given',
        [MAX_DEPTH_KEYWORD]: MAX_VALUE_DEPTH,
      }),
    ),
    sendAt: Type.Optional(Type.String({ description: 'ISO-8601 time to send at (at most a year ahead)' })),
    priority: Type.Optional(Type.Union([Type.Literal('high'), Type.Literal('normal'), Type.Literal('low')])),
    options: Type.Optional(ChannelOptionsSchema),
  },
  { additionalProperties: false },
);
// Ajv reports `anyOf` for a union of literals; an enum gives a precise "unknown channel" error.
(MessageInputSchema.properties.channel as unknown as Record<string, unknown>).enum = [...CHANNELS];
delete (MessageInputSchema.properties.channel as unknown as Record<string, unknown>).anyOf;
(MessageInputSchema.properties.priority as unknown as Record<string, unknown>).enum = ['high', 'normal', 'low'];
delete (MessageInputSchema.properties.priority as unknown as Record<string, unknown>).anyOf;

export type MessageInput = Static<typeof MessageInputSchema>;

const MAX_SCHEDULE_AHEAD_MS = 366 * 24 * 3600_000;
const ISO_DATE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})$/;

/** Semantic checks after the schema; returns the normalized recipient and the parsed send time. */
export function checkMessageInput(
  input: MessageInput,
  now: number,
  prefix = '',
): { to: string | null; sendAt: number | null } {
  const f = (name: string) => (prefix ? `${prefix}.${name}` : name);
  const channel = input.channel as Channel;
  if (input.to === undefined && input.contactId === undefined) {
    throw new ValidationError('missing_field', "give 'to' or 'contactId'", { field: f('to') });
  }
  const to = input.to === undefined ? null : validateRecipient(channel, input.to, f('to'));
  if (input.body === undefined && input.template === undefined) {
    throw new ValidationError('missing_content', "give either 'body' or 'template'", { field: f('body') });
  }
  if (input.body !== undefined && input.template !== undefined) {
    throw new ValidationError('conflicting_content', "give either 'body' or 'template', not both", {
      field: f('template'),
    });
  }
  if (input.body !== undefined) validateBodyLength(channel, input.body, f('body'));
  if (channel === 'push' && to !== null && /^https:/.test(to) && input.options?.push === undefined) {
    throw new ValidationError(
      'push_keys_missing',
      "a Web Push message needs the subscription's keys in 'options.push.keys' ({p256dh, auth})",
      { field: f('options.push') },
    );
  }
  if (channel === 'print' && input.options?.print === undefined) {
    throw new ValidationError('print_address_missing', "a letter needs the postal address in 'options.print.to'", {
      field: f('options.print'),
    });
  }
  let sendAt: number | null = null;
  if (input.sendAt !== undefined) {
    const t = ISO_DATE.test(input.sendAt) ? Date.parse(input.sendAt) : Number.NaN;
    if (Number.isNaN(t)) {
      throw new ValidationError(
        'invalid_send_at',
        "'sendAt' must be an ISO-8601 date-time with a zone, e.g. 2026-12-01T09:00:00Z",
        {
          field: f('sendAt'),
        },
      );
    }
    if (t > now + MAX_SCHEDULE_AHEAD_MS) {
      throw new ValidationError('invalid_send_at', "'sendAt' may be at most one year ahead", { field: f('sendAt') });
    }
    sendAt = t > now ? t : null;
  }
  return { to, sendAt };
}
