import { getCountries } from 'libphonenumber-js/max';
import { describe, expect, it } from 'vitest';
import {
  allDerivableZones,
  duplicateAreaCodes,
  isValidTimeZone,
  timeZoneForPhone,
  timeZoneOfCountry,
} from './contact-timezone.ts';

describe('timeZoneForPhone', () => {
  it.each([
    ['+12025550100', 'America/New_York'], // Washington DC
    ['+13125550100', 'America/Chicago'], // Chicago
    ['+13035550100', 'America/Denver'], // Denver
    ['+16025550100', 'America/Phoenix'], // Arizona keeps standard time
    ['+14155550100', 'America/Los_Angeles'], // San Francisco
    ['+19075550100', 'America/Anchorage'],
    ['+18085550100', 'Pacific/Honolulu'],
    ['+19155550100', 'America/Denver'], // El Paso is on Mountain time although in Texas
    ['+14165550100', 'America/Toronto'],
    ['+16045550100', 'America/Vancouver'],
    ['+17095550100', 'America/St_Johns'],
    ['+13065550100', 'America/Regina'],
  ])('%s in North America → %s (area code)', (phone, zone) => {
    expect(timeZoneForPhone(phone)).toBe(zone);
  });

  it.each([
    ['+442079460000', 'Europe/London'],
    ['+33142685300', 'Europe/Paris'],
    ['+4930901820', 'Europe/Berlin'],
    ['+819012345678', 'Asia/Tokyo'],
    ['+919812345678', 'Asia/Kolkata'],
    ['+61291234567', 'Australia/Sydney'],
    ['+61892345678', 'Australia/Perth'],
    ['+61889123456', 'Australia/Darwin'],
    ['+61412345678', 'Australia/Sydney'], // a mobile says nothing about the state
    ['+5511987654321', 'America/Sao_Paulo'],
    ['+5592987654321', 'America/Manaus'],
    ['+526641234567', 'America/Tijuana'],
    ['+525512345678', 'America/Mexico_City'],
    ['+79161234567', 'Europe/Moscow'], // Russian mobiles are not geographic: the most populous zone
  ])('%s → %s', (phone, zone) => {
    expect(timeZoneForPhone(phone)).toBe(zone);
  });

  it('falls back to the country zone for an area code the table does not list', () => {
    // 800 is toll-free (not geographic).
    expect(timeZoneForPhone('+18005550100')).toBe('America/New_York');
  });

  it('gives null for what is not a phone number', () => {
    expect(timeZoneForPhone('not a number')).toBeNull();
    expect(timeZoneForPhone('+999')).toBeNull();
  });

  it('only ever produces zones luxon knows, and lists no area code twice', () => {
    const bad = allDerivableZones().filter((z) => !isValidTimeZone(z));
    expect(bad).toEqual([]);
    expect(duplicateAreaCodes()).toEqual([]);
  });

  it('knows a zone for every country libphonenumber-js can return', () => {
    const missing = getCountries().filter((c) => timeZoneOfCountry(c) === null);
    expect(missing).toEqual([]);
  });
});

describe('isValidTimeZone', () => {
  it('accepts IANA names and rejects others', () => {
    expect(isValidTimeZone('Europe/Paris')).toBe(true);
    expect(isValidTimeZone('UTC')).toBe(true);
    expect(isValidTimeZone('Mars/Olympus_Mons')).toBe(false);
    expect(isValidTimeZone('')).toBe(false);
  });
});
