/**
 * Channels and their recipients: which channels exist, what a valid destination looks like on each,
 * and the content limits each imposes. Pure; used by the API (validation) and the pipeline.
 */
import { isValidPhoneNumber } from 'libphonenumber-js/max';
import { ValidationError } from './errors.ts';
import { memoize } from './memo.ts';

export const CHANNELS = ['sms', 'mms', 'whatsapp', 'rcs', 'email', 'voice', 'push', 'chat', 'print'] as const;
export type Channel = (typeof CHANNELS)[number];

const CHANNEL_SET: ReadonlySet<string> = new Set(CHANNELS);
export function isChannel(value: unknown): value is Channel {
  return typeof value === 'string' && CHANNEL_SET.has(value);
}

/** The kind of address a channel delivers to. */
export type AddressKind = 'phone' | 'email' | 'push' | 'chat' | 'postal';
export const ADDRESS_KIND: Record<Channel, AddressKind> = {
  sms: 'phone',
  mms: 'phone',
  whatsapp: 'phone',
  rcs: 'phone',
  voice: 'phone',
  email: 'email',
  push: 'push',
  chat: 'chat',
  print: 'postal',
};

/** Longest body accepted per channel, in characters (Twilio caps SMS at 1,600; WhatsApp text at 4,096). */
export const MAX_BODY_LENGTH: Record<Channel, number> = {
  sms: 1600,
  mms: 1600,
  whatsapp: 4096,
  rcs: 3072,
  voice: 4000,
  email: 512_000,
  push: 4000,
  chat: 10_000,
  print: 200_000,
};

const E164_SHAPE = /^\+[1-9]\d{6,14}$/;
// Pragmatic RFC 5321/5322 subset: one @, a dotted domain with a 2+ letter TLD, no spaces or control characters.
const EMAIL_SHAPE =
  /^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$/;

// libphonenumber-js compiles its metadata regexes on every call (~25 µs a number); validity of a given
// string never changes, so a bounded memo keeps repeated destinations (OTPs, reminders, replies) cheap.
const validPhone = memoize((value) => isValidPhoneNumber(value), 50_000);

export function isValidE164(value: string): boolean {
  return E164_SHAPE.test(value) && validPhone(value);
}

export function isValidEmail(value: string): boolean {
  if (!EMAIL_SHAPE.test(value)) return false;
  const domain = value.slice(value.lastIndexOf('@') + 1);
  return /[A-Za-z]{2,}$/.test(domain);
}

/**
 * Checks `to` for a channel; throws a ValidationError naming `field` when it is not a deliverable address.
 * Returns the normalized address (emails lower-cased in the domain part).
 */
export function validateRecipient(channel: Channel, to: string, field = 'to'): string {
  switch (ADDRESS_KIND[channel]) {
    case 'phone':
      if (!isValidE164(to)) {
        throw new ValidationError(
          'invalid_phone_number',
          `'${truncate(to)}' is not a valid E.164 phone number (e.g. +14155550123)`,
          {
            field,
          },
        );
      }
      return to;
    case 'email': {
      if (!isValidEmail(to)) {
        throw new ValidationError('invalid_email', `'${truncate(to)}' is not a valid email address`, { field });
      }
      const at = to.lastIndexOf('@');
      return to.slice(0, at + 1) + to.slice(at + 1).toLowerCase();
    }
    case 'push':
      if (!/^(https:\/\/\S{8,2000}|[A-Za-z0-9:_\-.]{8,4096})$/.test(to)) {
        throw new ValidationError(
          'invalid_recipient',
          'push recipient must be a Web Push endpoint URL (https) or a device token',
          {
            field,
          },
        );
      }
      return to;
    case 'chat':
    case 'postal':
      if (to.trim().length === 0 || to.length > 1000) {
        throw new ValidationError(
          'invalid_recipient',
          `recipient for channel '${channel}' must be a non-empty string`,
          { field },
        );
      }
      return to;
  }
}

export function validateBodyLength(channel: Channel, body: string, field = 'body'): void {
  const max = MAX_BODY_LENGTH[channel];
  if (body.length > max) {
    throw new ValidationError(
      'body_too_long',
      `body is ${body.length} characters; channel '${channel}' allows at most ${max}`,
      {
        field,
      },
    );
  }
  if (body.length === 0) {
    throw new ValidationError('body_empty', 'body must not be empty', { field });
  }
}

function truncate(s: string): string {
  return s.length > 64 ? `${s.slice(0, 61)}...` : s;
}
