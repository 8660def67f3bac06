/**
 * One place maps every failure to an HTTP answer `{error: {code, message, field?}}`: our typed errors by class,
 * Fastify's own errors (bad JSON, wrong content type, body too large, schema violations) by their codes.
 */
import type { ErrorObject } from 'ajv';
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import {
  AuthenticationError,
  ConflictError,
  DomainError,
  ForbiddenError,
  NotFoundError,
  ResourceError,
  ValidationError,
} from '../domain/errors.ts';
import { schemaErrorToValidation } from '../services/validation.ts';

export interface ErrorBody {
  error: { code: string; message: string; field?: string; details?: Record<string, unknown> };
}

export function statusOf(err: DomainError): number {
  if (err instanceof ValidationError) return 400;
  if (err instanceof AuthenticationError) return 401;
  if (err instanceof ForbiddenError) return 403;
  if (err instanceof NotFoundError) return 404;
  if (err instanceof ConflictError) return 409;
  if (err instanceof ResourceError) return 503;
  return 500;
}

export function errorBody(err: DomainError): ErrorBody {
  return {
    error: {
      code: err.code,
      message: err.message,
      ...(err.field ? { field: err.field } : {}),
      ...(err.details ? { details: err.details } : {}),
    },
  };
}

const FASTIFY_CODES: Record<string, { status: number; code: string; message?: string }> = {
  FST_ERR_CTP_INVALID_MEDIA_TYPE: {
    status: 415,
    code: 'unsupported_media_type',
    message: "send the body as 'application/json'",
  },
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: { status: 400, code: 'invalid_content_length' },
  FST_ERR_CTP_EMPTY_JSON_BODY: {
    status: 400,
    code: 'malformed_json',
    message: 'the request body is empty; send a JSON object',
  },
  FST_ERR_CTP_BODY_TOO_LARGE: { status: 413, code: 'payload_too_large' },
  FST_ERR_CTP_INVALID_JSON_BODY: { status: 400, code: 'malformed_json' },
  FST_ERR_INVALID_URL: { status: 400, code: 'invalid_url' },
  FST_ERR_BAD_URL: { status: 400, code: 'invalid_url' },
  FST_ERR_MAX_PARAM_LENGTH: { status: 414, code: 'uri_too_long', message: 'a path parameter is too long' },
};

export function handleError(err: FastifyError | Error, request: FastifyRequest, reply: FastifyReply): void {
  if (err instanceof DomainError) {
    if (err instanceof ResourceError && err.retryAfterMs)
      reply.header('Retry-After', Math.ceil(err.retryAfterMs / 1000));
    if (!err.isUser) request.log.warn({ err }, 'request failed');
    reply.status(statusOf(err)).send(errorBody(err));
    return;
  }
  const fe = err as FastifyError & { validation?: ErrorObject[]; validationContext?: string };
  if (fe.validation && fe.validation.length > 0) {
    const ctx = fe.validationContext;
    const prefix = ctx === 'querystring' || ctx === 'params' || ctx === 'headers' ? '' : '';
    const v = schemaErrorToValidation(fe.validation[0] as ErrorObject, prefix);
    const message = ctx && ctx !== 'body' ? `${ctx}: ${v.message}` : v.message;
    reply.status(400).send({ error: { code: v.code, message, ...(v.field ? { field: v.field } : {}) } });
    return;
  }
  if (isUnavailable(err)) {
    request.log.warn({ err }, 'dependency unavailable');
    reply
      .status(503)
      .header('Retry-After', 5)
      .send({
        error: {
          code: 'service_unavailable',
          message: 'a dependency (database or queue) is unreachable; retry shortly',
        },
      });
    return;
  }
  const known = fe.code ? FASTIFY_CODES[fe.code] : undefined;
  if (known) {
    reply.status(known.status).send({ error: { code: known.code, message: known.message ?? fe.message } });
    return;
  }
  if (err instanceof SyntaxError || (fe.statusCode === 400 && /JSON/i.test(fe.message))) {
    reply
      .status(400)
      .send({ error: { code: 'malformed_json', message: `the request body is not valid JSON: ${fe.message}` } });
    return;
  }
  if (fe.statusCode && fe.statusCode >= 400 && fe.statusCode < 500) {
    reply.status(fe.statusCode).send({ error: { code: 'bad_request', message: fe.message } });
    return;
  }
  request.log.error({ err }, 'unhandled error');
  reply
    .status(500)
    .send({ error: { code: 'internal_error', message: 'an internal error occurred; it has been logged' } });
}

const UNAVAILABLE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
  '57P01',
  '57P03',
]);

/** Connection failures of the database or Redis: the request may succeed later, so 503 rather than 500. */
function isUnavailable(err: Error): boolean {
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string' && UNAVAILABLE_CODES.has(code)) return true;
  return /timeout exceeded when trying to connect|Connection terminated|connect ECONNREFUSED|Connection is closed|is not queryable/i.test(
    err.message,
  );
}
