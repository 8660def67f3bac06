/** Prefixed, time-ordered identifiers (ULID): sortable, so they double as pagination cursors. */
import { monotonicFactory } from 'ulidx';

const ulid = monotonicFactory();

export type IdPrefix = 'msg' | 'org' | 'key' | 'tpl' | 'snd' | 'evt' | 'dlq' | 'job';

export function newId(prefix: IdPrefix): string {
  return `${prefix}_${ulid()}`;
}

export function hasPrefix(id: string, prefix: IdPrefix): boolean {
  return id.length === prefix.length + 27 && id.startsWith(`${prefix}_`);
}
