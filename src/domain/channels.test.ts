import { describe, expect, it } from 'vitest';
import {
  ADDRESS_KIND,
  CHANNELS,
  isChannel,
  isValidE164,
  isValidEmail,
  MAX_BODY_LENGTH,
  validateBodyLength,
  validateRecipient,
} from './channels.ts';
import { ValidationError } from './errors.ts';

/** Runs `fn` and returns the ValidationError it throws. */
function validationError(fn: () => unknown): ValidationError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ValidationError);
    return err as ValidationError;
  }
  throw new Error('expected a ValidationError');
}

describe('channels', () => {
  it('recognizes exactly the listed channels', () => {
    for (const c of CHANNELS) expect(isChannel(c)).toBe(true);
    for (const v of ['SMS', 'fax', '', ' sms', 'telegram', null, undefined, 1, {}]) expect(isChannel(v)).toBe(false);
  });

  it('gives every channel an address kind and a body limit', () => {
    for (const c of CHANNELS) {
      expect(ADDRESS_KIND[c]).toBeDefined();
      expect(MAX_BODY_LENGTH[c]).toBeGreaterThan(0);
    }
    expect(MAX_BODY_LENGTH.sms).toBe(1600);
    expect(MAX_BODY_LENGTH.whatsapp).toBe(4096);
  });
});

describe('isValidE164', () => {
  it.each([
    '+14155550123',
    '+12125551234',
    '+18005550100',
    '+442071838750',
    '+447911123456',
    '+33612345678',
    '+4915123456789',
    '+61291234567',
    '+861012345678',
  ])('accepts %s', (n) => {
    expect(isValidE164(n)).toBe(true);
  });

  it('accepts every sandbox number, +12025550100 to +12025550194', () => {
    const invalid: string[] = [];
    for (let i = 100; i <= 194; i++) {
      const n = `+1202555${String(i).padStart(4, '0')}`;
      if (!isValidE164(n)) invalid.push(n);
    }
    expect(invalid).toEqual([]);
  });

  it.each([
    ['no plus', '14155550123'],
    ['double plus', '++14155550123'],
    ['zero country code', '+04155550123'],
    ['too short', '+4420'],
    ['too long (16 digits)', '+1234567890123456'],
    ['letters', '+1415555012a'],
    ['spaces', '+1 415 555 0123'],
    ['dashes', '+1-415-555-0123'],
    ['parentheses', '+1(415)5550123'],
    ['empty', ''],
    ['just a plus', '+'],
    ['trailing newline', '+14155550123\n'],
    ['no such area code', '+11234567890'],
    ['area code 000', '+10005550123'],
    ['no such country', '+999123456789'],
    ['US number one digit short', '+1202555010'],
  ])('rejects %s', (_why, n) => {
    expect(isValidE164(n)).toBe(false);
  });

  it('answers the same on repeated calls (memoized)', () => {
    for (let i = 0; i < 3; i++) {
      expect(isValidE164('+12025550150')).toBe(true);
      expect(isValidE164('+11234567890')).toBe(false);
    }
  });
});

describe('isValidEmail', () => {
  it.each([
    'ada@example.com',
    'first.last+tag@sub.example.co.uk',
    "o'brien@example.ie",
    'A@Example.COM',
    'a@b.co',
    'user_name-1@my-domain.io',
    `${'x'.repeat(64)}@example.com`,
    `ada@${Array.from({ length: 4 }, () => 'a'.repeat(61)).join('.')}.com`,
  ])('accepts %s', (e) => {
    expect(isValidEmail(e)).toBe(true);
  });

  it.each([
    ['no at', 'ada.example.com'],
    ['no local part', '@example.com'],
    ['no domain', 'ada@'],
    ['two ats', 'ada@lovelace@example.com'],
    ['no dot in domain', 'ada@localhost'],
    ['one-letter TLD', 'ada@example.c'],
    ['numeric TLD', 'ada@1.2.3.4'],
    ['empty label', 'ada@example..com'],
    ['label starts with hyphen', 'ada@-example.com'],
    ['label ends with hyphen', 'ada@example-.com'],
    ['space', 'ada lovelace@example.com'],
    ['local part over 64', `${'x'.repeat(65)}@example.com`],
    ['domain over 253', `ada@${Array.from({ length: 5 }, () => 'a'.repeat(60)).join('.')}.com`],
    ['display name', 'Ada <ada@example.com>'],
    ['empty', ''],
  ])('rejects %s', (_why, e) => {
    expect(isValidEmail(e)).toBe(false);
  });
});

describe('validateRecipient', () => {
  it('accepts phone numbers on every phone channel', () => {
    for (const c of CHANNELS.filter((ch) => ADDRESS_KIND[ch] === 'phone')) {
      expect(validateRecipient(c, '+12025550123')).toBe('+12025550123');
    }
  });

  it('names the field and the code of a bad phone number', () => {
    const err = validationError(() => validateRecipient('sms', '415-555-0123', 'messages[3].to'));
    expect(err.code).toBe('invalid_phone_number');
    expect(err.field).toBe('messages[3].to');
    expect(err.message).toContain('415-555-0123');
    expect(validationError(() => validateRecipient('whatsapp', 'ada@example.com')).field).toBe('to');
  });

  it('lower-cases the domain of an email, keeping the local part', () => {
    expect(validateRecipient('email', 'Ada.Lovelace@Example.COM')).toBe('Ada.Lovelace@example.com');
    const err = validationError(() => validateRecipient('email', '+12025550123'));
    expect(err.code).toBe('invalid_email');
  });

  it('truncates a long bad address in the message', () => {
    const err = validationError(() => validateRecipient('email', `${'y'.repeat(300)}@nowhere`));
    expect(err.message.length).toBeLessThan(120);
    expect(err.message).toContain('...');
  });

  it('checks push endpoints and device tokens', () => {
    expect(validateRecipient('push', 'https://fcm.googleapis.com/fcm/send/abc123')).toBe(
      'https://fcm.googleapis.com/fcm/send/abc123',
    );
    expect(validateRecipient('push', 'f1e2d3c4b5a6:APA91bH-token_value.1')).toBe('f1e2d3c4b5a6:APA91bH-token_value.1');
    for (const bad of ['http://push.example.com/endpoint', 'short', 'token with spaces inside']) {
      expect(validationError(() => validateRecipient('push', bad)).code).toBe('invalid_recipient');
    }
  });

  it('takes any non-empty chat or postal recipient up to 1000 characters', () => {
    expect(validateRecipient('chat', 'U024BE7LH')).toBe('U024BE7LH');
    expect(validateRecipient('print', '1600 Pennsylvania Ave NW, Washington, DC 20500')).toBe(
      '1600 Pennsylvania Ave NW, Washington, DC 20500',
    );
    expect(validationError(() => validateRecipient('chat', '   ')).code).toBe('invalid_recipient');
    expect(validationError(() => validateRecipient('print', 'x'.repeat(1001))).code).toBe('invalid_recipient');
  });
});

describe('validateBodyLength', () => {
  it('accepts a body of exactly the limit on every channel and rejects one more', () => {
    for (const c of CHANNELS) {
      const max = MAX_BODY_LENGTH[c];
      expect(() => validateBodyLength(c, 'a'.repeat(max))).not.toThrow();
      const err = validationError(() => validateBodyLength(c, 'a'.repeat(max + 1)));
      expect(err.code).toBe('body_too_long');
      expect(err.field).toBe('body');
      expect(err.message).toContain(String(max));
    }
  });

  it('rejects an empty body, naming the field', () => {
    const err = validationError(() => validateBodyLength('sms', '', 'messages[0].body'));
    expect(err.code).toBe('body_empty');
    expect(err.field).toBe('messages[0].body');
  });

  it('counts UTF-16 code units (an emoji counts twice)', () => {
    expect(() => validateBodyLength('sms', '😀'.repeat(800))).not.toThrow();
    expect(validationError(() => validateBodyLength('sms', `${'😀'.repeat(800)}a`)).code).toBe('body_too_long');
  });
});
