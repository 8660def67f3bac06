import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DataError, ValidationError } from '../../domain/errors.ts';
import { AesGcmSecretBox, parseSecretKey } from './aes-gcm-secret-box.ts';

describe('AES-256-GCM secret box', () => {
  const key = randomBytes(32);
  const box = new AesGcmSecretBox(key);

  it('round-trips any text and never shows it in the sealed form', () => {
    fc.assert(
      fc.property(fc.string({ minLength: 4, maxLength: 500 }), (text) => {
        const sealed = box.seal(text);
        expect(box.open(sealed)).toBe(text);
        expect(sealed.includes(text)).toBe(false);
      }),
    );
  });

  it('uses a fresh IV each time', () => {
    expect(box.seal('same')).not.toBe(box.seal('same'));
  });

  it('refuses a tampered value and a value sealed under an unknown key', () => {
    const sealed = box.seal('{"authToken":"secret"}');
    const parts = sealed.split('.');
    const data = Buffer.from(parts[2] as string, 'base64url');
    data[data.length - 1] = (data[data.length - 1] as number) ^ 1;
    expect(() => box.open(`${parts[0]}.${parts[1]}.${data.toString('base64url')}`)).toThrow(DataError);
    expect(() => new AesGcmSecretBox(randomBytes(32)).open(sealed)).toThrow(/secret_key_unknown|neither/);
    expect(() => box.open('plain text')).toThrow(DataError);
  });

  it('opens values sealed under a previous key after rotation, and seals under the new one', () => {
    const sealed = box.seal('old');
    const rotated = new AesGcmSecretBox(randomBytes(32), [key]);
    expect(rotated.open(sealed)).toBe('old');
    expect(() => box.open(rotated.seal('new'))).toThrow(DataError);
  });

  it('reads keys as hex or base64 and refuses anything else', () => {
    const k = randomBytes(32);
    expect(parseSecretKey(k.toString('hex')).equals(k)).toBe(true);
    expect(parseSecretKey(k.toString('base64')).equals(k)).toBe(true);
    expect(parseSecretKey(k.toString('base64url')).equals(k)).toBe(true);
    expect(() => parseSecretKey('too-short')).toThrow(ValidationError);
    expect(() => parseSecretKey('ab'.repeat(31))).toThrow(ValidationError);
  });
});
