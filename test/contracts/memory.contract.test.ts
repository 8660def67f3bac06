/** The in-process adapters against the shared port contracts. */
import { ManualClock } from '../../src/adapters/clock/system-clock.ts';
import { MemoryBroker, MemoryPubSub } from '../../src/adapters/pubsub/memory-pubsub.ts';
import { MemoryRateLimiter } from '../../src/adapters/rate-limiter/memory-rate-limiter.ts';
import { pubsubContract } from './pubsub-contract.ts';
import { rateLimiterContract } from './rate-limiter-contract.ts';

pubsubContract('MemoryPubSub', async () => {
  const broker = new MemoryBroker();
  return { client: (opts) => new MemoryPubSub(broker, opts?.onError), cleanup: async () => undefined };
});

rateLimiterContract('MemoryRateLimiter (manual clock)', { shared: false }, async () => {
  const clock = new ManualClock();
  return { limiter: () => new MemoryRateLimiter(() => clock.now()), clock, cleanup: async () => undefined };
});
