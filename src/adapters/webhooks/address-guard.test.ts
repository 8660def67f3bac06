import { describe, expect, it } from 'vitest';
import { guardedLookup, isAddressLiteral, RefusedAddressError, refusedRange } from './address-guard.ts';

describe('refusedRange', () => {
  it('refuses loopback, private, link-local, unique-local, multicast, unspecified and other special ranges', () => {
    const cases: [string, string][] = [
      ['127.0.0.1', 'loopback'],
      ['127.255.0.9', 'loopback'],
      ['10.1.2.3', 'private'],
      ['172.16.0.1', 'private'],
      ['192.168.1.1', 'private'],
      ['169.254.169.254', 'linkLocal'],
      ['0.0.0.0', 'unspecified'],
      ['255.255.255.255', 'broadcast'],
      ['224.0.0.1', 'multicast'],
      ['100.64.0.1', 'carrierGradeNat'],
      ['::1', 'loopback'],
      ['[::1]', 'loopback'],
      ['::', 'unspecified'],
      ['fe80::1', 'linkLocal'],
      ['fd12:3456::1', 'uniqueLocal'],
      ['ff02::1', 'multicast'],
      ['::ffff:127.0.0.1', 'loopback'],
      ['::ffff:10.0.0.1', 'private'],
      ['64:ff9b::a00:1', 'rfc6052'],
      ['2002:7f00:1::', '6to4'],
      ['not-an-ip', 'invalid'],
    ];
    for (const [ip, range] of cases) expect(refusedRange(ip), ip).toBe(range);
  });

  it('lets public unicast addresses through', () => {
    for (const ip of ['8.8.8.8', '1.1.1.1', '203.0.114.1', '2001:4860:4860::8888', '::ffff:8.8.8.8'])
      expect(refusedRange(ip), ip).toBeUndefined();
  });

  it('tells address literals from names', () => {
    expect(isAddressLiteral('127.0.0.1')).toBe(true);
    expect(isAddressLiteral('[::1]')).toBe(true);
    expect(isAddressLiteral('localhost')).toBe(false);
    expect(isAddressLiteral('example.com')).toBe(false);
  });
});

describe('guardedLookup', () => {
  const lookup = (host: string, all: boolean) =>
    new Promise<{ err: Error | null; address: unknown }>((resolve) =>
      guardedLookup(host, { all }, (err, address) => resolve({ err, address })),
    );

  it('refuses a name that resolves to a loopback address', async () => {
    for (const all of [false, true]) {
      const { err } = await lookup('localhost', all);
      expect(err).toBeInstanceOf(RefusedAddressError);
      expect(err?.message).toMatch(/localhost resolves to .*loopback/);
    }
  });

  it('passes a literal public address through in both callback shapes', async () => {
    expect((await lookup('8.8.8.8', false)).address).toBe('8.8.8.8');
    expect((await lookup('8.8.8.8', true)).address).toEqual([{ address: '8.8.8.8', family: 4 }]);
  });
});
