/**
 * The PubSub contract. `make` sets up one broker for a test; `client()` connects another client to it, the way
 * another process would (in-process broker, or the same Redis), so "every subscriber" spans processes.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { PubSub } from '../../src/ports/pubsub.ts';

export interface PubSubContractContext {
  client(opts?: { onError?: (err: unknown) => void }): PubSub;
  cleanup(): Promise<void>;
}

/** Collects what a handler got. */
function inbox(): { messages: string[]; handler: (m: string) => void } {
  const messages: string[] = [];
  return { messages, handler: (m) => messages.push(m) };
}

export function pubsubContract(name: string, make: () => Promise<PubSubContractContext>): void {
  describe(name, () => {
    let ctx: PubSubContractContext;
    let clients: PubSub[];

    function client(opts?: { onError?: (err: unknown) => void }): PubSub {
      const c = ctx.client(opts);
      clients.push(c);
      return c;
    }

    beforeEach(async () => {
      ctx = await make();
      clients = [];
    });

    afterEach(async () => {
      await Promise.all(clients.map((c) => c.close()));
      await ctx.cleanup();
    });

    it('delivers a message to a subscriber of its channel, never inside publish', async () => {
      const c = client();
      const box = inbox();
      await c.subscribe('status', box.handler);
      const p = c.publish('status', 'msg_1 delivered');
      expect(box.messages).toEqual([]);
      await p;
      await vi.waitFor(() => expect(box.messages).toEqual(['msg_1 delivered']));
    });

    it('delivers to every subscription, in this client and in others', async () => {
      const publisher = client();
      const [a, b, c] = [client(), client(), client()];
      const boxes = [inbox(), inbox(), inbox(), inbox()];
      await a.subscribe('wake', boxes[0]!.handler);
      await a.subscribe('wake', boxes[1]!.handler);
      await b.subscribe('wake', boxes[2]!.handler);
      await publisher.subscribe('wake', boxes[3]!.handler);
      const unrelated = inbox();
      await c.subscribe('other', unrelated.handler);

      await publisher.publish('wake', 'send');
      for (const box of boxes) await vi.waitFor(() => expect(box.messages).toEqual(['send']));
      expect(unrelated.messages).toEqual([]);
    });

    it('keeps channels apart', async () => {
      const publisher = client();
      const sub = client();
      const [onA, onB] = [inbox(), inbox()];
      await sub.subscribe('channel-a', onA.handler);
      await sub.subscribe('channel-b', onB.handler);
      await publisher.publish('channel-b', 'for b');
      await publisher.publish('channel-a', 'for a');
      await publisher.publish('channel-c', 'for nobody');
      await publisher.publish('channel-b', 'for b again');
      await vi.waitFor(() => expect(onB.messages).toEqual(['for b', 'for b again']));
      await vi.waitFor(() => expect(onA.messages).toEqual(['for a']));
    });

    it('does not deliver what was published before the subscription', async () => {
      const publisher = client();
      const sub = client();
      await publisher.publish('news', 'too early');
      const box = inbox();
      await sub.subscribe('news', box.handler);
      await publisher.publish('news', 'on time');
      await vi.waitFor(() => expect(box.messages).toContain('on time'));
      expect(box.messages).toEqual(['on time']);
    });

    it('stops delivering to a subscription once it is ended, leaving the others', async () => {
      const publisher = client();
      const sub = client();
      const [gone, stays] = [inbox(), inbox()];
      const end = await sub.subscribe('news', gone.handler);
      await sub.subscribe('news', stays.handler);
      await publisher.publish('news', 'one');
      await vi.waitFor(() => expect(gone.messages).toEqual(['one']));

      await end();
      await end(); // twice is harmless
      await publisher.publish('news', 'two');
      await vi.waitFor(() => expect(stays.messages).toEqual(['one', 'two']));
      expect(gone.messages).toEqual(['one']);
    });

    it('does not call a handler after its subscription was ended, even for messages already on the way', async () => {
      const publisher = client();
      const sub = client();
      const box = inbox();
      const witness = inbox();
      const end = await sub.subscribe('burst', box.handler);
      await sub.subscribe('burst', witness.handler);
      const sends = Array.from({ length: 50 }, (_, i) => publisher.publish('burst', `m${i}`));
      await vi.waitFor(() => expect(box.messages.length).toBeGreaterThan(0));
      void end();
      const seen = box.messages.length;
      await Promise.all(sends);
      await vi.waitFor(() => expect(witness.messages).toHaveLength(50));
      expect(box.messages).toHaveLength(seen);
    });

    it('subscribes again to a channel whose last subscription was ended', async () => {
      const publisher = client();
      const sub = client();
      const first = inbox();
      const end = await sub.subscribe('again', first.handler);
      await end();
      const second = inbox();
      await sub.subscribe('again', second.handler);
      await publisher.publish('again', 'hello');
      await vi.waitFor(() => expect(second.messages).toEqual(['hello']));
      expect(first.messages).toEqual([]);
    });

    it("keeps one publisher's messages in order for every subscriber", async () => {
      const publisher = client();
      const [a, b] = [client(), client()];
      const [boxA, boxB] = [inbox(), inbox()];
      await a.subscribe('ordered', boxA.handler);
      await b.subscribe('ordered', boxB.handler);
      const sent = Array.from({ length: 300 }, (_, i) => `seq-${i}`);
      // Not awaited one by one: all in flight at once, as a busy process would publish.
      await Promise.all(sent.map((m) => publisher.publish('ordered', m)));
      await vi.waitFor(() => expect(boxA.messages).toHaveLength(sent.length));
      await vi.waitFor(() => expect(boxB.messages).toHaveLength(sent.length));
      expect(boxA.messages).toEqual(sent);
      expect(boxB.messages).toEqual(sent);
    });

    it('carries any string unchanged', async () => {
      const c = client();
      const box = inbox();
      await c.subscribe('text', box.handler);
      const samples = ['', 'multi\nline\r\n', '{"status":"delivered","id":"msg_01"}', 'ünïcødé ✉️ 短信', ' '.repeat(3)];
      for (const s of samples) await c.publish('text', s);
      await vi.waitFor(() => expect(box.messages).toEqual(samples));
    });

    it('reports a throwing handler and still delivers to the others', async () => {
      const errors: unknown[] = [];
      const publisher = client();
      const sub = client({ onError: (err) => errors.push(err) });
      const box = inbox();
      await sub.subscribe('fragile', () => {
        throw new Error('handler bug');
      });
      await sub.subscribe('fragile', box.handler);
      await publisher.publish('fragile', 'x');
      await publisher.publish('fragile', 'y');
      await vi.waitFor(() => expect(box.messages).toEqual(['x', 'y']));
      await vi.waitFor(() => expect(errors).toHaveLength(2));
      expect((errors[0] as Error).message).toBe('handler bug');
    });

    it('ends every subscription on close and refuses to publish after it', async () => {
      const publisher = client();
      const sub = client();
      const box = inbox();
      const witness = client();
      const seen = inbox();
      await sub.subscribe('closing', box.handler);
      await witness.subscribe('closing', seen.handler);
      await sub.close();
      await publisher.publish('closing', 'after close');
      await vi.waitFor(() => expect(seen.messages).toEqual(['after close']));
      expect(box.messages).toEqual([]);
      await expect(sub.publish('closing', 'x')).rejects.toThrow();
      await expect(sub.subscribe('closing', box.handler)).rejects.toThrow();
    });
  });
}
