/**
 * A bounded memo for pure functions of a string that are costly and called with repeating arguments (phone-number
 * parsing, time-zone checks): answers are kept until `limit` are held, then the memo starts afresh.
 */
export function memoize<T>(fn: (key: string) => T, limit: number): (key: string) => T {
  const known = new Map<string, T>();
  return (key) => {
    if (known.has(key)) return known.get(key) as T;
    const value = fn(key);
    if (known.size >= limit) known.clear();
    known.set(key, value);
    return value;
  };
}
