/**
 * The shared rate limiter: the sliding one-second window of the port kept in Redis, so every process draws on
 * one budget per key. Per key, a sorted set of the milliseconds that had takes and a hash of their units (plus
 * the running total), both expiring a second after the last take; one Lua script decides and records a take
 * atomically, on Redis's clock, so the processes' clocks need not agree.
 */
import { Redis } from 'ioredis';
import { checkTake, RATE_WINDOW_MS, type RateDecision, type RateLimiter } from '../../ports/rate-limiter.ts';

export interface RedisRateLimiterOptions {
  /** A Redis URL (the limiter opens and closes its connection) or a client to share (left open on close). */
  connection: string | Redis;
  /** Key prefix; default `omni:rate`. */
  prefix?: string;
  /** Time source instead of Redis's clock: for tests that drive the clock (every process must then agree). */
  now?: () => number;
}

/**
 * KEYS: the log (sorted set, member and score = millisecond), the units (hash: millisecond -> units, `total`).
 * ARGV: cost, limit, window ms, key TTL ms, now ('' = Redis TIME).
 * Returns { allowed 0/1, retryAfterMs, remaining }.
 */
const TAKE_LUA = `
local log, units = KEYS[1], KEYS[2]
local cost, limit, window, ttl = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local now = tonumber(ARGV[5])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local old = redis.call('ZRANGEBYSCORE', log, '-inf', now - window)
if #old > 0 then
  local gone = 0
  for _, at in ipairs(old) do
    gone = gone + (tonumber(redis.call('HGET', units, at)) or 0)
    redis.call('HDEL', units, at)
  end
  redis.call('ZREMRANGEBYSCORE', log, '-inf', now - window)
  redis.call('HINCRBY', units, 'total', -gone)
end
local total = tonumber(redis.call('HGET', units, 'total')) or 0
if total + cost <= limit then
  -- A clock that stepped back files the take at the newest entry, keeping the log in order.
  local newest = redis.call('ZRANGE', log, -1, -1, 'WITHSCORES')
  local at = now
  if newest[2] and tonumber(newest[2]) > now then at = tonumber(newest[2]) end
  redis.call('ZADD', log, at, at)
  redis.call('HINCRBY', units, at, cost)
  redis.call('HINCRBY', units, 'total', cost)
  redis.call('PEXPIRE', log, ttl)
  redis.call('PEXPIRE', units, ttl)
  return { 1, 0, limit - total - cost }
end
local excess = total + cost - limit
local freed = 0
for _, at in ipairs(redis.call('ZRANGE', log, 0, -1)) do
  freed = freed + (tonumber(redis.call('HGET', units, at)) or 0)
  if freed >= excess then
    return { 0, tonumber(at) + window - now, math.max(0, limit - total) }
  end
end
return { 0, window, math.max(0, limit - total) }
`;

/** The script as a client command (ioredis sends EVALSHA, the script body only once per connection). */
type ScriptedRedis = Redis & {
  omniRateTake(log: string, units: string, ...args: (string | number)[]): Promise<[number, number, number]>;
};

export class RedisRateLimiter implements RateLimiter {
  private readonly redis: ScriptedRedis;
  private readonly ownsRedis: boolean;
  private readonly prefix: string;
  private readonly now: (() => number) | undefined;

  constructor(opts: RedisRateLimiterOptions) {
    this.ownsRedis = typeof opts.connection === 'string';
    const redis = typeof opts.connection === 'string' ? new Redis(opts.connection) : opts.connection;
    redis.defineCommand('omniRateTake', { numberOfKeys: 2, lua: TAKE_LUA });
    this.redis = redis as ScriptedRedis;
    this.prefix = opts.prefix ?? 'omni:rate';
    this.now = opts.now;
  }

  async take(key: string, cost: number, limitPerSecond: number): Promise<RateDecision> {
    checkTake(cost, limitPerSecond);
    // One hash tag for both keys, so the script also runs on Redis Cluster.
    const base = `${this.prefix}:{${key}}`;
    // On Redis's clock the keys can go with the window; a driven clock may stand still while real time passes.
    const ttl = this.now ? 60 * RATE_WINDOW_MS : RATE_WINDOW_MS;
    const [allowed, retryAfterMs, remaining] = await this.redis.omniRateTake(
      `${base}:log`,
      `${base}:units`,
      cost,
      limitPerSecond,
      RATE_WINDOW_MS,
      ttl,
      this.now ? this.now() : '',
    );
    return { allowed: allowed === 1, retryAfterMs, remaining };
  }

  async close(): Promise<void> {
    if (this.ownsRedis) await this.redis.quit();
  }
}
