/**
 * The error taxonomy. Every error the product raises on purpose is one of these; each carries two flags:
 * `isUser` (the caller's fault, a 4xx, never retried) and `isRetryable` (a later attempt may succeed).
 * The HTTP layer maps them to statuses in one place; carrier adapters map provider codes into them.
 */
export abstract class DomainError extends Error {
  abstract readonly isUser: boolean;
  abstract readonly isRetryable: boolean;
  readonly code: string;
  readonly field: string | undefined;
  readonly details: Record<string, unknown> | undefined;

  constructor(
    code: string,
    message: string,
    opts: { field?: string; details?: Record<string, unknown>; cause?: unknown } = {},
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.code = code;
    this.field = opts.field;
    this.details = opts.details;
    this.name = new.target.name;
  }
}

export class ValidationError extends DomainError {
  readonly isUser = true;
  readonly isRetryable = false;
}
export class NotFoundError extends DomainError {
  readonly isUser = true;
  readonly isRetryable = false;
}
export class ForbiddenError extends DomainError {
  readonly isUser = true;
  readonly isRetryable = false;
}
export class ConflictError extends DomainError {
  readonly isUser = true;
  readonly isRetryable = false;
}
export class AuthenticationError extends DomainError {
  readonly isUser = true;
  readonly isRetryable = false;
}
/** An external resource (carrier, database, network) is unavailable for now. */
export class ResourceError extends DomainError {
  readonly isUser = false;
  readonly isRetryable = true;
  /** When the resource told us how long to wait (e.g. `Retry-After`). */
  get retryAfterMs(): number | undefined {
    const v = this.details?.retryAfterMs;
    return typeof v === 'number' ? v : undefined;
  }
}
/** Internal data is inconsistent; retrying will not help. */
export class DataError extends DomainError {
  readonly isUser = false;
  readonly isRetryable = false;
}
/** A general internal failure that may pass. */
export class OperationalError extends DomainError {
  readonly isUser = false;
  readonly isRetryable = true;
}
/** An unrecoverable failure (e.g. a carrier rejected the destination for good). */
export class PermanentError extends DomainError {
  readonly isUser = false;
  readonly isRetryable = false;
}

export type ErrorClassName =
  | 'ValidationError'
  | 'NotFoundError'
  | 'ForbiddenError'
  | 'ConflictError'
  | 'AuthenticationError'
  | 'ResourceError'
  | 'DataError'
  | 'OperationalError'
  | 'PermanentError';

/** Anything thrown, seen as a DomainError: unknown errors become retryable OperationalErrors. */
export function asDomainError(err: unknown): DomainError {
  if (err instanceof DomainError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new OperationalError('internal_error', message, { cause: err });
}
