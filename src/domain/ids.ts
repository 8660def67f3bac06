/** Prefixed, time-ordered identifiers (ULID): sortable, so they double as pagination cursors. */
import { randomFillSync } from 'node:crypto';
import { monotonicFactory } from 'ulidx';

// ulidx asks the OS for one random byte per character (16 calls per id); draw them from a refilled pool instead.
const pool = new Uint8Array(4096);
let next = pool.length;
function pooledRandom(): number {
  if (next >= pool.length) {
    randomFillSync(pool);
    next = 0;
  }
  return (pool[next++] as number) / 256;
}

const ulid = monotonicFactory(pooledRandom);

export type IdPrefix = 'msg' | 'org' | 'key' | 'tpl' | 'snd' | 'evt' | 'dlq' | 'job';

export function newId(prefix: IdPrefix): string {
  return `${prefix}_${ulid()}`;
}

export function hasPrefix(id: string, prefix: IdPrefix): boolean {
  return id.length === prefix.length + 27 && id.startsWith(`${prefix}_`);
}
