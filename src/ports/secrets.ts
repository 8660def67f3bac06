/**
 * The secrets port: seals credentials before they are stored and opens them when a carrier needs them.
 * A sealed value names the key that sealed it, so keys can be rotated while old values still open.
 */
export interface SecretBox {
  seal(plaintext: string): string;
  /** Throws when the value was tampered with or sealed under a key this box does not hold. */
  open(sealed: string): string;
}
