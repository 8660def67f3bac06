/**
 * The publish/subscribe port: fire-and-forget broadcast of short string messages between the processes of one
 * deployment (wake a worker, drop a cache entry, push a status change to a live connection).
 *
 * Delivery is at most once and never replayed: a subscriber gets the messages published on its channel while
 * its subscription is active, nothing from before it subscribed, and nothing it missed while disconnected. Every
 * active subscription of a channel, in any process, gets each message; messages from one publisher on one
 * channel arrive in the order they were published. Handlers run asynchronously, never inside `publish`; a handler
 * that throws does not affect the others (the adapter reports the error to its `onError` option).
 */
export type MessageHandler = (message: string) => void;

export interface PubSub {
  /** Sends `message` to every current subscriber of `channel` (resolves once the broker took it). */
  publish(channel: string, message: string): Promise<void>;
  /**
   * Calls `handler` for each message on `channel`. Resolves, once the subscription is active, to a function that
   * ends it: no call to `handler` happens after that function was called.
   */
  subscribe(channel: string, handler: MessageHandler): Promise<() => Promise<void>>;
  /** Ends every subscription and releases the connection(s). */
  close(): Promise<void>;
}
