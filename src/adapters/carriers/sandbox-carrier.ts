/**
 * Carrier adapter for the sandbox carrier (src/sandbox): a bulk HTTP API plus signed JSON-array callbacks.
 * Sender config: `{ baseUrl: string, token: string }`; the token authenticates sends and keys the callback HMAC.
 */
import { Pool } from 'undici';
import { CHANNELS, isChannel } from '../../domain/channels.ts';
import { AuthenticationError, ValidationError } from '../../domain/errors.ts';
import type { MessageError } from '../../domain/message-status.ts';
import type {
  Carrier,
  CarrierEvent,
  ProviderDefinition,
  SenderRecord,
  SendRequest,
  SendResult,
  WebhookRequest,
} from '../../ports/carrier.ts';
import type { Clock } from '../../ports/clock.ts';
import { SANDBOX_SIGNATURE_HEADER, verifySandboxSignature } from '../../sandbox/signature.ts';
import { systemClock } from '../clock/system-clock.ts';
import {
  errorReason,
  headerValue,
  httpStatusFailure,
  isRecord,
  parseJsonBody,
  requestText,
  retryableFailure,
  tryParseJson,
} from './carrier-support.ts';

export const SANDBOX_PROVIDER = 'sandbox';

/** Messages per API request (the sandbox API's limit). */
const MAX_CHUNK_MESSAGES = 1000;
/** Rough cap on the characters of one request body, well under the sandbox's 32 MiB body limit. */
const MAX_CHUNK_CHARS = 4_000_000;
const REQUEST_TIMEOUT_MS = 15_000;
const STATUSES: ReadonlySet<string> = new Set(['sent', 'delivered', 'read', 'undelivered', 'failed']);

interface SandboxConfig {
  baseUrl: string;
  token: string;
}

function parseConfig(config: Record<string, unknown>): SandboxConfig {
  const { baseUrl, token } = config;
  if (typeof baseUrl !== 'string' || !URL.canParse(baseUrl) || !/^https?:$/.test(new URL(baseUrl).protocol)) {
    throw new ValidationError('invalid_sender_config', 'sandbox sender config.baseUrl must be an http(s) URL', {
      field: 'config.baseUrl',
    });
  }
  if (typeof token !== 'string' || token.length === 0 || /\s/.test(token)) {
    throw new ValidationError('invalid_sender_config', 'sandbox sender config.token must be a non-empty string', {
      field: 'config.token',
    });
  }
  return { baseUrl, token };
}

export function createSandboxCarrier(
  sender: SenderRecord,
  ctx: { webhookUrl: string },
  clock: Clock = systemClock,
): Carrier {
  const { baseUrl, token } = parseConfig(sender.config);
  const base = new URL(baseUrl);
  const path = `${base.pathname.replace(/\/+$/, '')}/sandbox/v1/messages`;
  const pool = new Pool(base.origin, { connections: 16, keepAliveTimeout: 30_000 });
  const headers = {
    authorization: `Bearer ${token}`,
    'content-type': 'application/json',
    accept: 'application/json',
  };

  async function sendChunk(chunk: readonly SendRequest[]): Promise<SendResult[]> {
    const payload = JSON.stringify({
      callbackUrl: ctx.webhookUrl,
      messages: chunk.map((r) => ({
        reference: r.messageId,
        channel: r.channel,
        to: r.to,
        from: r.from ?? sender.from,
        body: r.body,
        subject: r.subject,
      })),
    });
    const answer = await requestText(pool, { method: 'POST', path, headers, body: payload }, REQUEST_TIMEOUT_MS);
    if (!answer.ok) {
      return chunk.map(() => retryableFailure('carrier_unavailable', `sandbox carrier unreachable: ${answer.reason}`));
    }
    const { status, text } = answer;
    if (status < 200 || status >= 300) {
      const detail = errorMessage(text);
      const now = clock.now();
      return chunk.map(() => httpStatusFailure('sandbox carrier', status, answer.headers['retry-after'], now, detail));
    }

    const parsed = tryParseJson(text);
    const results = isRecord(parsed) && Array.isArray(parsed.results) ? parsed.results : undefined;
    return chunk.map((req, i) => {
      const mapped = mapResult(results?.[i], req.messageId);
      return (
        mapped ??
        retryableFailure('carrier_invalid_response', 'sandbox carrier answered without a result for this message')
      );
    });
  }

  return {
    provider: SANDBOX_PROVIDER,

    async send(requests) {
      if (requests.length === 0) return [];
      try {
        const chunks = chunkRequests(requests);
        const answers = await Promise.all(chunks.map(sendChunk));
        return answers.flat();
      } catch (err) {
        // sendChunk never throws; this only guards against the unexpected (send must never throw).
        const reason = errorReason(err);
        return requests.map(() => retryableFailure('carrier_unavailable', `sandbox send failed: ${reason}`));
      }
    },

    parseWebhook(request: WebhookRequest): CarrierEvent[] {
      const signature = headerValue(request.headers, SANDBOX_SIGNATURE_HEADER);
      if (signature === undefined || signature.length === 0) {
        throw new AuthenticationError('webhook_signature_missing', `missing ${SANDBOX_SIGNATURE_HEADER} header`);
      }
      if (!verifySandboxSignature(token, request.rawBody, signature, clock.now())) {
        throw new AuthenticationError('webhook_signature_invalid', 'sandbox webhook signature is invalid or stale');
      }
      const parsed = parseJsonBody(request.rawBody, invalidPayload);
      if (!Array.isArray(parsed)) throw invalidPayload('body must be a JSON array of events');
      return parsed.flatMap((item) => mapEvent(item) ?? []);
    },

    async close() {
      await pool.close();
    },
  };
}

function chunkRequests(requests: readonly SendRequest[]): SendRequest[][] {
  const chunks: SendRequest[][] = [];
  let current: SendRequest[] = [];
  let chars = 0;
  for (const r of requests) {
    const size =
      200 + r.messageId.length + r.to.length + (r.from?.length ?? 0) + (r.body?.length ?? 0) + (r.subject?.length ?? 0);
    if (current.length > 0 && (current.length >= MAX_CHUNK_MESSAGES || chars + size > MAX_CHUNK_CHARS)) {
      chunks.push(current);
      current = [];
      chars = 0;
    }
    current.push(r);
    chars += size;
  }
  if (current.length > 0) chunks.push(current);
  return chunks;
}

function mapResult(value: unknown, reference: string): SendResult | null {
  if (!isRecord(value) || value.reference !== reference) return null;
  if (value.status === 'accepted' && typeof value.id === 'string' && value.id.length > 0) {
    return { ok: true, providerMessageId: value.id, cost: 0 };
  }
  const error = value.error;
  if (isRecord(error) && typeof error.code === 'string') {
    const retryable = error.retryable === true;
    const message = typeof error.message === 'string' ? error.message : error.code;
    return {
      ok: false,
      retryable,
      error: { code: error.code, class: retryable ? 'ResourceError' : 'PermanentError', message },
    };
  }
  return null;
}

/** `: <message>` of the sandbox's error body `{error: {message}}`, or nothing. */
function errorMessage(text: string): string {
  const parsed = tryParseJson(text);
  return isRecord(parsed) && isRecord(parsed.error) && typeof parsed.error.message === 'string'
    ? `: ${parsed.error.message}`
    : '';
}

function invalidPayload(message: string): ValidationError {
  return new ValidationError('invalid_webhook_payload', `sandbox webhook: ${message}`);
}

function requireString(event: Record<string, unknown>, field: string): string {
  const value = event[field];
  if (typeof value !== 'string' || value.length === 0)
    throw invalidPayload(`event.${field} must be a non-empty string`);
  return value;
}

function requireTime(event: Record<string, unknown>): number {
  const at = Date.parse(requireString(event, 'timestamp'));
  if (Number.isNaN(at)) throw invalidPayload('event.timestamp must be an ISO-8601 timestamp');
  return at;
}

function mapEvent(item: unknown): CarrierEvent | null {
  if (!isRecord(item)) throw invalidPayload('every event must be an object');
  switch (item.type) {
    case 'message.status': {
      const status = requireString(item, 'status');
      if (!STATUSES.has(status)) throw invalidPayload(`unknown status '${status}'`);
      let error: MessageError | undefined;
      if (item.error !== undefined && item.error !== null) {
        if (!isRecord(item.error) || typeof item.error.code !== 'string') {
          throw invalidPayload('event.error must be an object with a code');
        }
        const message = typeof item.error.message === 'string' ? item.error.message : item.error.code;
        error = { code: item.error.code, class: 'PermanentError', message };
      }
      const reference = item.reference;
      return {
        kind: 'status',
        eventKey: requireString(item, 'eventId'),
        providerMessageId: requireString(item, 'messageId'),
        reference: typeof reference === 'string' && reference.length > 0 ? reference : null,
        status: status as 'sent' | 'delivered' | 'read' | 'undelivered' | 'failed',
        ...(error ? { error } : {}),
        occurredAt: requireTime(item),
      };
    }
    case 'message.inbound': {
      const channel = requireString(item, 'channel');
      if (!isChannel(channel)) throw invalidPayload(`unknown channel '${channel}'`);
      if (typeof item.body !== 'string') throw invalidPayload('event.body must be a string');
      return {
        kind: 'inbound',
        eventKey: requireString(item, 'eventId'),
        providerMessageId: requireString(item, 'messageId'),
        channel,
        from: requireString(item, 'from'),
        to: requireString(item, 'to'),
        body: item.body,
        occurredAt: requireTime(item),
      };
    }
    default:
      return null;
  }
}

/** The sandbox as a provider; `baseUrl` defaults to where this deployment's sandbox runs. */
export function sandboxProvider(defaultBaseUrl: () => string): ProviderDefinition {
  return {
    id: SANDBOX_PROVIDER,
    displayName: 'Sandbox carrier (built in: receipts, failures and replies without a real carrier)',
    channels: [...CHANNELS],
    configSchema: {
      type: 'object',
      additionalProperties: false,
      required: ['token'],
      properties: {
        token: {
          type: 'string',
          minLength: 8,
          maxLength: 200,
          pattern: '^\\S+$',
          description: 'Bearer token for the sandbox API; also the HMAC key of its callbacks',
        },
        baseUrl: { type: 'string', format: 'uri', description: "The sandbox's URL (default: this deployment's)" },
      },
    },
    secretFields: ['token'],
    create: (sender, ctx) =>
      createSandboxCarrier({ ...sender, config: { baseUrl: defaultBaseUrl(), ...sender.config } }, ctx),
  };
}
