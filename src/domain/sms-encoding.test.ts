import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isGsm7, segmentSms, smsCost } from './sms-encoding.ts';

describe('SMS encoding', () => {
  it('keeps plain text, accented GSM letters and the extension table in GSM-7', () => {
    expect(isGsm7('Hello, World! 123 @£$¥ èéùìò ÄÖÑÜ §¿ ΔΦΓ')).toBe(true);
    expect(isGsm7('Price: 10€ [sale] {now} ~^|\\')).toBe(true);
    expect(segmentSms('€').units).toBe(2);
  });

  it('switches to UCS-2 for anything outside the GSM alphabet', () => {
    expect(segmentSms('Привет').encoding).toBe('UCS-2');
    expect(segmentSms('ok 👍').encoding).toBe('UCS-2');
    expect(segmentSms('ç lowercase is not GSM').encoding).toBe('UCS-2');
    expect(segmentSms('straight "quotes" are; curly “quotes” are not').encoding).toBe('UCS-2');
  });

  it('counts GSM-7 segments at 160, then 153 per part', () => {
    expect(segmentSms('a'.repeat(160))).toMatchObject({ encoding: 'GSM-7', segments: 1, perSegment: 160 });
    expect(segmentSms('a'.repeat(161))).toMatchObject({ segments: 2, perSegment: 153 });
    expect(segmentSms('a'.repeat(306)).segments).toBe(2);
    expect(segmentSms('a'.repeat(307)).segments).toBe(3);
    expect(segmentSms('a'.repeat(459)).segments).toBe(3);
    expect(segmentSms('a'.repeat(460)).segments).toBe(4);
  });

  it('counts extension characters as two septets and never splits them', () => {
    expect(segmentSms('€'.repeat(80))).toMatchObject({ segments: 1, units: 160 });
    expect(segmentSms('€'.repeat(81)).segments).toBe(2);
    // 152 plain + '€' does not fit the first part's 153 septets: the escape pair moves to the second part.
    expect(segmentSms(`${'a'.repeat(152)}€${'a'.repeat(152)}`).segments).toBe(3);
  });

  it('counts UCS-2 segments at 70, then 67 per part, keeping surrogate pairs whole', () => {
    expect(segmentSms('я'.repeat(70))).toMatchObject({ encoding: 'UCS-2', segments: 1, perSegment: 70 });
    expect(segmentSms('я'.repeat(71))).toMatchObject({ segments: 2, perSegment: 67 });
    expect(segmentSms('я'.repeat(134)).segments).toBe(2);
    expect(segmentSms('я'.repeat(135)).segments).toBe(3);
    // 66 units then an emoji (2 units): the pair does not fit in 67 and starts the next part.
    expect(segmentSms(`${'я'.repeat(66)}😀${'я'.repeat(66)}`).segments).toBe(3);
  });

  it('never reports fewer segments than the units need', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 1200, unit: 'grapheme' }), (text) => {
        const s = segmentSms(text);
        expect(s.segments).toBeGreaterThanOrEqual(Math.max(1, Math.ceil(s.units / s.perSegment)));
        expect(s.segments).toBeLessThanOrEqual(Math.max(1, Math.ceil(s.units / (s.perSegment - 1))));
      }),
    );
  });

  it('prices segments', () => {
    expect(smsCost(3, 0.0079)).toBe(0.0237);
    expect(smsCost(1, 0)).toBe(0);
  });
});
