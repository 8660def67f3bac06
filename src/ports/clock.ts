/** Time, as a port: services never read the wall clock directly, so tests can move it. */
export interface Clock {
  /** Milliseconds since the Unix epoch. */
  now(): number;
}
