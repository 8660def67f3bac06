/**
 * An emulator of Lob's Print & Mail API for letters: `POST /v1/letters` as multipart/form-data, Lob's answers
 * and error envelope, idempotency keys, and signed webhook events posted to the configured webhook URL.
 *
 * No Lob specification is kept in ../shared/fixtures/carriers/, so every rule is checked by hand below and
 * cites where Lob documents it. Sources (lob/lob-openapi, rendered at https://docs.lob.com):
 * - [A] `lob-api-public.yml` tag "Authentication": HTTP Basic, API key as user name, password left blank;
 *   unauthenticated requests get 401. "API Keys": publishable keys (`*_pub`) cannot create mail.
 * - [B] `resources/letters/letters.yml` (`post: letter_create`) and the letter models
 *   `resources/letters/models/letter_editable.yml`, `letter_base.yml`, `shared/models/form_factor/*.yml`,
 *   `resources/letters/attributes/ltr_use_type.yml`: fields, enums, required `to`, `from`, `file`, `color`.
 * - [C] `shared/models/address/address_editable_us.yml`, `address_editable_base.yml`, `address_fields_intl.yml`:
 *   inline address rules (name or company, lengths, 2-letter state, ZIP pattern, country).
 * - [D] tag "Requests and Responses": Request Body (multipart/form-data is the only format that uploads a
 *   file; the file part is `application/pdf`), Idempotent Requests (`Idempotency-Key` header or
 *   `idempotency_key` query, at most 256 characters, never both; a repeated key returns the existing letter),
 *   Metadata (at most 20 keys; keys up to 40 characters, values up to 500, no `"` or `\`; `metadata.yml`).
 * - [E] tag "Errors" and `shared/models/error.yml`, `shared/models/errors/*.yml`: the error envelope and codes.
 * - [F] tag "Rate Limiting": 429 with `rate_limit_exceeded`, the documented body, and X-Rate-Limit-* headers.
 * - [G] letters `file` (letter_editable.yml): every PDF page 8.5" x 11"; at most 60 pages single-sided or 120
 *   double-sided in the US, 6 / 12 abroad; "Advanced" error codes for files (`invalid_file`,
 *   `invalid_file_dimensions`, `inconsistent_page_dimensions`, `pdf_encrypted`, `file_pages_*`).
 * - [H] `shared/models/form_factor/input_from.yml`: the `from` address must be in the US
 *   (`foreign_return_address`).
 * - [I] webhooks: tags "Webhooks", "Events" (letter event types, live-only flags), `resources/events/models/
 *   events.yml` (event object), `resources/letters/responses/letter.yml` (letter object example),
 *   `shared/resources/tracking_events/models/*.yml` (tracking events); Help Center "Using webhooks": JSON POST
 *   signed with `Lob-Signature` = hex HMAC-SHA256(secret, timestamp + "." + body) and
 *   `Lob-Signature-Timestamp` (epoch milliseconds).
 *
 * Requests the documentation does not allow are recorded in `violations` and answered with Lob's error.
 *
 * Destination rules (emulator conventions, keyed on the recipient's `to[address_line1]`, case-insensitive,
 * and `to[address_zip]`):
 * - ZIP `00000`                      → 422 `failed_deliverability_strictness` (permanent refusal at send).
 * - line 1 contains `RATE LIMIT`     → 429 `rate_limit_exceeded` with X-Rate-Limit-* headers (throttling).
 * - line 1 contains `SERVICE UNAVAILABLE` → 503 `service_unavailable`; `SERVER ERROR` → 500
 *   `internal_server_error` (retryable unavailability).
 * - line 1 contains `UNDELIVERABLE`  → accepted; then letter.created, letter.rendered_pdf, letter.mailed,
 *   letter.in_transit, letter.returned_to_sender.
 * - line 1 contains `RENDER FAIL`    → accepted; then letter.created, letter.failed (with `failure_reason`).
 * - anything else                    → accepted; then letter.created, letter.rendered_pdf, letter.mailed,
 *   letter.in_transit, letter.in_local_area, letter.processed_for_delivery, letter.delivered.
 * Events are posted one after another, `delayMs` apart, to the webhook URL given at start. Like a webhook
 * created in Lob's dashboard, the emulator posts only the event types it is subscribed to: by default those
 * the product tracks (`LOB_TRACKED_SUBSCRIPTION`), or every one with `subscribe: 'all'`.
 */
import { createHmac, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Ajv, type ValidateFunction } from 'ajv';
import type { CarrierEmulator } from '../carrier-contract.ts';

export const LOB_EMULATOR_API_KEY = 'test_omni0emulator0key0000000000000';
export const LOB_EMULATOR_WEBHOOK_SECRET = 'lob-emulator-webhook-secret';
/** A US return address the emulator's sender config carries. */
export const LOB_EMULATOR_RETURN_ADDRESS = {
  name: 'Omnichannel Inc',
  line1: '210 King St',
  line2: 'Ste 6100',
  city: 'San Francisco',
  state: 'CA',
  postalCode: '94107',
  country: 'US',
} as const;

const MAX_BODY_BYTES = 64 * 1024 * 1024;
const LETTER_PAGE_PT = { width: 612, height: 792 };

/** Signs a webhook body the way Lob does [I]: hex HMAC-SHA256 of `timestamp.body` under the webhook secret. */
export function signLobWebhook(secret: string, timestamp: string, body: Buffer | string): string {
  return createHmac('sha256', secret)
    .update(Buffer.concat([Buffer.from(`${timestamp}.`), Buffer.isBuffer(body) ? body : Buffer.from(body)]))
    .digest('hex');
}

/** The headers Lob sends with a webhook delivery [I]. */
export function lobWebhookHeaders(secret: string, body: Buffer | string, atMs = Date.now()): Record<string, string> {
  const timestamp = String(atMs);
  return {
    'content-type': 'application/json',
    'lob-signature': signLobWebhook(secret, timestamp, body),
    'lob-signature-timestamp': timestamp,
  };
}

/** The letter event types a product webhook subscribes to: the ones that move a message's status. */
export const LOB_TRACKED_SUBSCRIPTION: readonly string[] = [
  'letter.mailed',
  'letter.in_transit',
  'letter.in_local_area',
  'letter.processed_for_delivery',
  'letter.re-routed',
  'letter.delivered',
  'letter.returned_to_sender',
  'letter.failed',
];

export interface LobEmulatorOptions {
  /** Where events are posted (Lob's dashboard-configured webhook URL). */
  webhookUrl: string;
  /** Event types the webhook is subscribed to (default `LOB_TRACKED_SUBSCRIPTION`). */
  subscribe?: readonly string[] | 'all';
  /** Delay before each event post, ms. */
  delayMs?: number;
  apiKey?: string;
  webhookSecret?: string;
}

/** One request the emulator received, as parsed. */
export interface RecordedLobRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  headers: IncomingMessage['headers'];
  /** Text fields of a multipart body, by name (`to[name]`, `metadata[omni_message_id]`...). */
  fields: Record<string, string>;
  file?: { filename: string | undefined; contentType: string | undefined; data: Buffer };
}

export interface PdfInspection {
  pages: number;
  /** Width x height of each page in points. */
  sizes: { width: number; height: number }[];
  encrypted: boolean;
}

type LetterObject = Record<string, unknown> & { id: string; tracking_events: Record<string, unknown>[] };

class LobError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly violation = false,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

// ---- Request schema [B][C][D], transcribed from the lob-openapi models ----

const ADDRESS_COMMON = {
  description: { type: 'string', maxLength: 255 },
  name: { type: 'string', maxLength: 40 },
  company: { type: 'string', maxLength: 40 },
  phone: { type: 'string', maxLength: 40 },
  email: { type: 'string', maxLength: 100 },
  metadata: { $ref: '#/definitions/metadata' },
} as const;

// "Either name or company is required, you may also add both" (an empty one does not count).
const NAME_OR_COMPANY = [
  { required: ['name'], properties: { name: { minLength: 1 } } },
  { required: ['company'], properties: { company: { minLength: 1 } } },
];

const LETTER_SCHEMA = {
  definitions: {
    metadata: {
      type: 'object',
      maxProperties: 20,
      propertyNames: { maxLength: 40, pattern: '^[^"\\\\]*$' },
      additionalProperties: { type: 'string', maxLength: 500, pattern: '^[^"\\\\]*$' },
    },
    usAddress: {
      type: 'object',
      additionalProperties: false,
      required: ['address_line1', 'address_city', 'address_state', 'address_zip'],
      anyOf: NAME_OR_COMPANY,
      properties: {
        ...ADDRESS_COMMON,
        address_line1: { type: 'string', minLength: 1, maxLength: 64 },
        address_line2: { type: 'string', maxLength: 64 },
        address_city: { type: 'string', minLength: 1, maxLength: 200 },
        address_state: { type: 'string', pattern: '^[a-zA-Z]{2}$' },
        address_zip: { type: 'string', pattern: '^[0-9]{5}(-[0-9]{4})?$' },
        address_country: { const: 'US' },
      },
    },
    intlAddress: {
      type: 'object',
      additionalProperties: false,
      required: ['address_line1', 'address_country'],
      anyOf: NAME_OR_COMPANY,
      properties: {
        ...ADDRESS_COMMON,
        address_line1: { type: 'string', minLength: 1, maxLength: 200 },
        address_line2: { type: 'string', maxLength: 200 },
        address_city: { type: 'string', maxLength: 200 },
        address_state: { type: 'string', maxLength: 200 },
        address_zip: { type: 'string', maxLength: 40 },
        address_country: { type: 'string', pattern: '^[A-Z]{2}$' },
      },
    },
    address: {
      if: { type: 'object', required: ['address_country'], properties: { address_country: { not: { const: 'US' } } } },
      // biome-ignore lint/suspicious/noThenProperty: JSON Schema keyword
      then: { $ref: '#/definitions/intlAddress' },
      else: { $ref: '#/definitions/usAddress' },
    },
  },
  type: 'object',
  additionalProperties: false,
  // `use_type`: marketing or operational; null only when set in the account settings (ltr_use_type.yml).
  required: ['to', 'from', 'file', 'color', 'use_type'],
  properties: {
    description: { type: 'string', maxLength: 255 },
    to: { $ref: '#/definitions/address' },
    from: { $ref: '#/definitions/address' },
    file: {},
    color: { type: 'boolean' },
    double_sided: { type: 'boolean' },
    address_placement: {
      enum: ['top_first_page', 'insert_blank_page', 'bottom_first_page_center', 'bottom_first_page'],
    },
    return_envelope: { type: ['boolean', 'string'] },
    perforated_page: { type: 'integer', minimum: 1 },
    custom_envelope: { type: 'string' },
    extra_service: { enum: ['certified', 'certified_return_receipt', 'registered'] },
    mail_type: { enum: ['usps_first_class', 'usps_standard'] },
    use_type: { enum: ['marketing', 'operational'] },
    metadata: { $ref: '#/definitions/metadata' },
    merge_variables: { type: 'object' },
    send_date: { type: 'string' },
    billing_group_id: { type: 'string' },
    qr_code: { type: 'object' },
    fsc: { type: 'boolean' },
    print_speed: { type: 'string' },
    mail_partition: { type: 'string' },
    cards: { type: 'array', items: { type: 'string' } },
  },
} as const;

const BOOLEAN_FIELDS = new Set(['color', 'double_sided', 'return_envelope', 'fsc']);
const INTEGER_FIELDS = new Set(['perforated_page']);

// ---- multipart/form-data (RFC 7578) ----

interface Part {
  name: string;
  filename: string | undefined;
  contentType: string | undefined;
  data: Buffer;
}

function parseMultipart(body: Buffer, boundary: string): Part[] {
  const delimiter = Buffer.from(`--${boundary}`);
  const parts: Part[] = [];
  let pos = body.indexOf(delimiter);
  if (pos !== 0) throw new Error('body does not start with the boundary');
  for (;;) {
    pos += delimiter.length;
    if (body.subarray(pos, pos + 2).toString() === '--') break;
    if (body.subarray(pos, pos + 2).toString() !== '\r\n') throw new Error('boundary not followed by CRLF');
    pos += 2;
    const headerEnd = body.indexOf('\r\n\r\n', pos);
    if (headerEnd < 0) throw new Error('part without a header block');
    const headers = body.subarray(pos, headerEnd).toString('utf8').split('\r\n');
    const next = body.indexOf(Buffer.concat([Buffer.from('\r\n'), delimiter]), headerEnd + 4);
    if (next < 0) throw new Error('part not closed by the boundary');
    const data = body.subarray(headerEnd + 4, next);
    let name: string | undefined;
    let filename: string | undefined;
    let contentType: string | undefined;
    for (const line of headers) {
      const colon = line.indexOf(':');
      if (colon < 0) throw new Error(`malformed part header '${line}'`);
      const key = line.slice(0, colon).trim().toLowerCase();
      const value = line.slice(colon + 1).trim();
      if (key === 'content-disposition') {
        if (!/^form-data\s*(;|$)/i.test(value)) throw new Error('part disposition is not form-data');
        name = /;\s*name="([^"]*)"/i.exec(value)?.[1];
        filename = /;\s*filename="([^"]*)"/i.exec(value)?.[1];
      } else if (key === 'content-type') {
        contentType = value;
      }
    }
    if (name === undefined) throw new Error('part without a name');
    parts.push({ name, filename, contentType, data });
    pos = next + 2;
  }
  return parts;
}

/** Folds bracketed form names (`to[name]`, `metadata[k]`, `cards[]`) into nested values. */
function formToObject(fields: [string, string][]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, raw] of fields) {
    const m = /^([a-z_]+)(?:\[([^\]]*)\])?$/.exec(name);
    if (!m) throw new LobError(422, 'invalid', `${name} is not allowed`, true);
    const [, key, sub] = m as unknown as [string, string, string | undefined];
    let value: unknown = raw;
    if (BOOLEAN_FIELDS.has(key) && (raw === 'true' || raw === 'false')) value = raw === 'true';
    if (INTEGER_FIELDS.has(key) && /^\d+$/.test(raw)) value = Number(raw);
    if (sub === undefined) {
      out[key] = value;
    } else if (sub === '') {
      const list = (out[key] as unknown[] | undefined) ?? [];
      list.push(value);
      out[key] = list;
    } else {
      const obj = (out[key] as Record<string, unknown> | undefined) ?? {};
      obj[sub] = value;
      out[key] = obj;
    }
  }
  return out;
}

// ---- PDF inspection [G] ----

/**
 * Reads the structure of a PDF without rendering it: header, end marker, the `startxref` offset pointing at a
 * cross-reference section, the page objects with their MediaBox (inherited from the page tree when absent),
 * the page tree's /Count, and whether the trailer names an /Encrypt dictionary.
 */
export function inspectPdf(data: Buffer): PdfInspection {
  const text = data.toString('latin1');
  if (!/^%PDF-[12]\.\d/.test(text)) throw new Error('the file does not start with a %PDF- header');
  const tail = text.slice(-2048);
  if (!tail.includes('%%EOF')) throw new Error('the file has no %%EOF marker');
  const startxref = /startxref\s+(\d+)\s+%%EOF\s*$/.exec(tail);
  if (!startxref) throw new Error('the file has no startxref');
  const xrefAt = Number(startxref[1]);
  const atXref = text.slice(xrefAt, xrefAt + 32);
  if (!/^xref\b/.test(atXref) && !/^\d+\s+\d+\s+obj\b/.test(atXref)) {
    throw new Error('startxref does not point at a cross-reference section');
  }
  const objects = new Map<string, string>();
  for (const m of text.matchAll(/(\d+)\s+(\d+)\s+obj\b([\s\S]*?)\bendobj\b/g)) {
    objects.set(`${m[1]} ${m[2]}`, m[3] as string);
  }
  const box = (dict: string): { width: number; height: number } | undefined => {
    const m = /\/MediaBox\s*\[\s*(-?[\d.]+)\s+(-?[\d.]+)\s+(-?[\d.]+)\s+(-?[\d.]+)\s*\]/.exec(dict);
    if (!m) return undefined;
    return { width: Number(m[3]) - Number(m[1]), height: Number(m[4]) - Number(m[2]) };
  };
  const sizes: { width: number; height: number }[] = [];
  let treeCount = 0;
  for (const dict of objects.values()) {
    const head = dict.split(/\bstream\b/)[0] as string;
    if (/\/Type\s*\/Pages\b/.test(head)) {
      const count = /\/Count\s+(\d+)/.exec(head);
      if (count && !/\/Parent\b/.test(head)) treeCount = Math.max(treeCount, Number(count[1]));
    } else if (/\/Type\s*\/Page(?![A-Za-z])/.test(head)) {
      let size = box(head);
      const parent = /\/Parent\s+(\d+)\s+(\d+)\s+R/.exec(head);
      for (let p = parent, depth = 0; !size && p && depth < 16; depth++) {
        const parentDict = objects.get(`${p[1]} ${p[2]}`) ?? '';
        size = box(parentDict);
        p = /\/Parent\s+(\d+)\s+(\d+)\s+R/.exec(parentDict);
      }
      if (!size) throw new Error('a page has no MediaBox');
      sizes.push(size);
    }
  }
  if (treeCount !== sizes.length) {
    throw new Error(`the page tree counts ${treeCount} pages but ${sizes.length} page objects exist`);
  }
  const trailer = text.slice(text.lastIndexOf('trailer'));
  return {
    pages: sizes.length,
    sizes,
    encrypted: /\/Encrypt\b/.test(trailer) || /\/Encrypt\s+\d+\s+\d+\s+R/.test(text),
  };
}

function randomId(prefix: string): string {
  return `${prefix}_${randomBytes(8).toString('hex')}`;
}

function addressObject(input: Record<string, unknown>): Record<string, unknown> {
  const upper = (v: unknown) => (typeof v === 'string' ? v.toUpperCase() : null);
  const country = typeof input.address_country === 'string' ? input.address_country : 'US';
  const now = new Date().toISOString();
  return {
    id: randomId('adr'),
    description: typeof input.description === 'string' ? input.description : null,
    name: upper(input.name),
    company: upper(input.company),
    phone: typeof input.phone === 'string' ? input.phone : null,
    email: typeof input.email === 'string' ? input.email : null,
    address_line1: upper(input.address_line1),
    address_line2: upper(input.address_line2),
    address_city: upper(input.address_city),
    address_state: upper(input.address_state),
    address_zip: typeof input.address_zip === 'string' ? input.address_zip : null,
    // The documented letter example shows the country spelled out for US addresses.
    address_country: country === 'US' ? 'UNITED STATES' : country,
    metadata: {},
    date_created: now,
    date_modified: now,
    object: 'address',
  };
}

type Scenario = 'deliver' | 'undeliverable' | 'render_fail';

export class LobEmulator implements CarrierEmulator {
  readonly violations: string[] = [];
  readonly requests: RecordedLobRequest[] = [];
  /** Every event posted to the webhook URL, in order. */
  readonly events: Record<string, unknown>[] = [];
  readonly letters = new Map<string, LetterObject>();
  senderConfig: Record<string, unknown> = {};
  private readonly idempotency = new Map<string, string>();
  private readonly pending = new Set<Promise<void>>();
  private readonly validateLetter: ValidateFunction;
  private readonly apiKey: string;
  private readonly webhookSecret: string;
  private readonly delayMs: number;
  private server: Server | undefined;
  private accepted = 0;

  private constructor(private readonly opts: LobEmulatorOptions) {
    this.apiKey = opts.apiKey ?? LOB_EMULATOR_API_KEY;
    this.webhookSecret = opts.webhookSecret ?? LOB_EMULATOR_WEBHOOK_SECRET;
    this.delayMs = opts.delayMs ?? 5;
    const ajv = new Ajv({ allErrors: true, strict: false });
    this.validateLetter = ajv.compile(LETTER_SCHEMA);
  }

  static async start(opts: LobEmulatorOptions): Promise<LobEmulator> {
    const emulator = new LobEmulator(opts);
    emulator.server = createServer((req, res) => emulator.handle(req, res));
    await new Promise<void>((resolve) => emulator.server?.listen(0, '127.0.0.1', resolve));
    const port = (emulator.server.address() as AddressInfo).port;
    emulator.senderConfig = {
      apiKey: emulator.apiKey,
      webhookSecret: emulator.webhookSecret,
      baseUrl: `http://127.0.0.1:${port}`,
      returnAddress: { ...LOB_EMULATOR_RETURN_ADDRESS },
    };
    return emulator;
  }

  acceptedCount(): number {
    return this.accepted;
  }

  /** Waits until every scheduled webhook post has been made. */
  async settled(): Promise<void> {
    while (this.pending.size > 0) await Promise.allSettled([...this.pending]);
  }

  async close(): Promise<void> {
    await this.settled();
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size <= MAX_BODY_BYTES) chunks.push(c);
    });
    req.on('end', () => {
      try {
        if (size > MAX_BODY_BYTES) throw new LobError(422, 'file_size_exceeds_limit', 'The file size is too large.');
        const letter = this.create(req, Buffer.concat(chunks));
        this.answer(res, 200, letter);
      } catch (err) {
        const e =
          err instanceof LobError
            ? err
            : new LobError(500, 'internal_server_error', err instanceof Error ? err.message : String(err));
        if (e.violation) this.violations.push(`${req.method} ${req.url}: ${e.message}`);
        // [E] the error envelope
        this.answer(res, e.status, { error: { message: e.message, status_code: e.status, code: e.code } }, e.headers);
      }
    });
  }

  private answer(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
    const text = JSON.stringify(body);
    res.writeHead(status, {
      'content-type': 'application/json; charset=utf-8',
      'content-length': Buffer.byteLength(text),
      ...headers,
    });
    res.end(text);
  }

  private create(req: IncomingMessage, body: Buffer): LetterObject {
    const url = new URL(req.url ?? '/', 'http://lob.local');
    const record: RecordedLobRequest = {
      method: req.method ?? 'GET',
      path: url.pathname,
      query: url.searchParams,
      headers: req.headers,
      fields: {},
    };
    this.requests.push(record);

    // [B] the only operation this emulator serves.
    if (url.pathname !== '/v1/letters' || req.method !== 'POST') {
      throw new LobError(404, 'unrecognised_endpoint', `${req.method} ${url.pathname} is not an endpoint`, true);
    }
    this.authenticate(req.headers.authorization);

    // [D] Idempotent Requests
    const headerKey = req.headers['idempotency-key'];
    const queryKey = url.searchParams.get('idempotency_key');
    if (Array.isArray(headerKey)) throw new LobError(422, 'invalid', 'Idempotency-Key is repeated', true);
    if (headerKey !== undefined && queryKey !== null) {
      throw new LobError(
        422,
        'invalid',
        'provide the idempotency key as a header or a query parameter, not both',
        true,
      );
    }
    const idempotencyKey = headerKey ?? queryKey ?? undefined;
    if (idempotencyKey !== undefined && (idempotencyKey.length === 0 || idempotencyKey.length > 256)) {
      throw new LobError(422, 'invalid', 'idempotency keys are 1 to 256 characters', true);
    }

    // [D] Request Body: a local file upload only travels as multipart/form-data.
    const contentType = req.headers['content-type'] ?? '';
    const boundary = /^multipart\/form-data\s*;.*?boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(contentType);
    if (!boundary) {
      throw new LobError(
        422,
        'invalid',
        `content type '${contentType}' cannot upload a file; use multipart/form-data`,
        true,
      );
    }
    let parts: Part[];
    try {
      parts = parseMultipart(body, (boundary[1] ?? boundary[2]) as string);
    } catch (err) {
      throw new LobError(422, 'bad_request', `malformed multipart body: ${(err as Error).message}`, true);
    }
    const textFields: [string, string][] = [];
    for (const part of parts) {
      if (part.name === 'file') {
        if (record.file) throw new LobError(422, 'invalid', 'file is given twice', true);
        record.file = { filename: part.filename, contentType: part.contentType, data: part.data };
      } else {
        if (part.filename !== undefined) throw new LobError(422, 'invalid', `${part.name} must not be a file`, true);
        if (part.name in record.fields) throw new LobError(422, 'invalid', `${part.name} is given twice`, true);
        record.fields[part.name] = part.data.toString('utf8');
        textFields.push([part.name, part.data.toString('utf8')]);
      }
    }
    const letter = formToObject(textFields);
    if (record.file) letter.file = '(upload)';
    if (!this.validateLetter(letter)) {
      const problems = (this.validateLetter.errors ?? [])
        .filter((e) => e.keyword !== 'if' && e.keyword !== 'anyOf')
        .map((e) => `${e.instancePath || 'body'} ${e.message ?? 'is invalid'}`);
      throw new LobError(422, 'invalid', problems.join('; ') || 'the letter is invalid', true);
    }
    if (!record.file) throw new LobError(422, 'invalid', 'file is required', true);
    // [D] the file part of Lob's multipart example is `application/pdf` with a filename.
    if (!record.file.filename || !/^application\/pdf\b/i.test(record.file.contentType ?? '')) {
      throw new LobError(422, 'invalid_file', 'the file part must be an application/pdf upload with a filename', true);
    }

    const to = letter.to as Record<string, unknown>;
    const from = letter.from as Record<string, unknown>;
    const toCountry = typeof to.address_country === 'string' ? to.address_country : 'US';
    // [H]
    if (typeof from.address_country === 'string' && from.address_country !== 'US') {
      throw new LobError(422, 'foreign_return_address', "The 'from' address must be a US address.");
    }

    // [G] the PDF itself
    let pdf: PdfInspection;
    try {
      pdf = inspectPdf(record.file.data);
    } catch (err) {
      throw new LobError(422, 'invalid_file', `The file is invalid: ${(err as Error).message}`, true);
    }
    if (pdf.encrypted) throw new LobError(422, 'pdf_encrypted', 'An encrypted PDF was provided.', true);
    if (pdf.pages < 1) throw new LobError(422, 'file_pages_below_min', 'Not enough pages.', true);
    const first = pdf.sizes[0] as { width: number; height: number };
    if (pdf.sizes.some((s) => Math.abs(s.width - first.width) > 1 || Math.abs(s.height - first.height) > 1)) {
      throw new LobError(422, 'inconsistent_page_dimensions', 'All pages must have the same dimensions.', true);
    }
    if (Math.abs(first.width - LETTER_PAGE_PT.width) > 1 || Math.abs(first.height - LETTER_PAGE_PT.height) > 1) {
      throw new LobError(422, 'invalid_file_dimensions', 'Letter pages must be 8.5" x 11".', true);
    }
    const doubleSided = letter.double_sided !== false;
    const domestic = toCountry === 'US';
    const maxPages = (domestic ? 60 : 6) * (doubleSided ? 2 : 1);
    if (pdf.pages > maxPages) throw new LobError(422, 'file_pages_exceed_max', 'Too many pages.');

    // [D] a key seen before returns the letter it created: nothing new is printed.
    if (idempotencyKey !== undefined) {
      const existing = this.idempotency.get(idempotencyKey);
      const known = existing === undefined ? undefined : this.letters.get(existing);
      if (known) return known;
    }

    // Destination rules (see the top of this file).
    const line1 = String(to.address_line1 ?? '').toUpperCase();
    if (to.address_zip === '00000') {
      throw new LobError(
        422,
        'failed_deliverability_strictness',
        "The 'to' address doesn't meet strictness requirements.",
      );
    }
    if (line1.includes('RATE LIMIT')) {
      // [F]
      const reset = Math.floor(Date.now() / 1000) + 2;
      throw new LobError(
        429,
        'rate_limit_exceeded',
        'Rate limit exceeded. Please wait 5 seconds and try your request again.',
        false,
        {
          'x-rate-limit-limit': '150',
          'x-rate-limit-remaining': '0',
          'x-rate-limit-reset': String(reset),
          'ratelimit-limit': '150',
          'ratelimit-remaining': '0',
          'ratelimit-reset': String(reset),
        },
      );
    }
    if (line1.includes('SERVICE UNAVAILABLE')) {
      throw new LobError(503, 'service_unavailable', 'The Lob servers are temporarily unavailable. Please try again.');
    }
    if (line1.includes('SERVER ERROR')) {
      throw new LobError(500, 'internal_server_error', "An error has occured on Lob's servers. Please try again.");
    }
    const scenario: Scenario = line1.includes('UNDELIVERABLE')
      ? 'undeliverable'
      : line1.includes('RENDER FAIL')
        ? 'render_fail'
        : 'deliver';

    const created = this.letterObject(letter);
    this.letters.set(created.id, created);
    if (idempotencyKey !== undefined) this.idempotency.set(idempotencyKey, created.id);
    this.accepted++;
    this.schedule(created, scenario);
    return created;
  }

  /** [A] Basic auth: the API key as user name, an empty password. */
  private authenticate(header: string | undefined): void {
    const m = /^Basic\s+([A-Za-z0-9+/=]+)$/.exec(header ?? '');
    if (!m) throw new LobError(401, 'unauthorized', 'Missing authentication: use HTTP Basic with your API key', true);
    const decoded = Buffer.from(m[1] as string, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon < 0) throw new LobError(401, 'unauthorized', 'Malformed Basic credentials', true);
    const key = decoded.slice(0, colon);
    if (decoded.slice(colon + 1) !== '') {
      throw new LobError(401, 'unauthorized', 'The password must be left blank', true);
    }
    if (/^[a-z]+_pub/.test(key)) {
      throw new LobError(403, 'publishable_key_not_allowed', 'This operation needs a secret API key.');
    }
    if (key !== this.apiKey) throw new LobError(401, 'invalid_api_key', 'Your API key is not valid.');
  }

  /** A letter object shaped like the documented example (`resources/letters/responses/letter.yml`). */
  private letterObject(input: Record<string, unknown>): LetterObject {
    const now = new Date();
    const id = randomId('ltr');
    const expected = new Date(now.getTime() + 5 * 86_400_000).toISOString().slice(0, 10);
    return {
      id,
      description: typeof input.description === 'string' ? input.description : null,
      metadata: (input.metadata as Record<string, string> | undefined) ?? {},
      to: addressObject(input.to as Record<string, unknown>),
      from: addressObject(input.from as Record<string, unknown>),
      color: input.color,
      double_sided: input.double_sided ?? true,
      address_placement: input.address_placement ?? 'top_first_page',
      return_envelope: input.return_envelope ?? false,
      perforated_page: input.perforated_page ?? null,
      custom_envelope: null,
      extra_service: input.extra_service ?? null,
      mail_type: input.mail_type ?? 'usps_first_class',
      use_type: input.use_type,
      url: `https://lob-assets.com/letters/${id}.pdf?expires=1&signature=emulator`,
      carrier: 'USPS',
      tracking_number: null,
      tracking_events: [],
      thumbnails: [],
      merge_variables: null,
      expected_delivery_date: expected,
      date_created: now.toISOString(),
      date_modified: now.toISOString(),
      send_date: now.toISOString(),
      status: 'processed',
      object: 'letter',
    };
  }

  private schedule(letter: LetterObject, scenario: Scenario): void {
    const zip = String((letter.to as Record<string, unknown>).address_zip ?? '').slice(0, 5);
    const steps: { type: string; tracking?: string; location?: string | null; test: boolean }[] = [
      { type: 'letter.created', test: true },
    ];
    if (scenario === 'render_fail') {
      steps.push({ type: 'letter.failed', test: true });
    } else {
      steps.push(
        { type: 'letter.rendered_pdf', test: true },
        { type: 'letter.mailed', tracking: 'Mailed', location: null, test: false },
        { type: 'letter.in_transit', tracking: 'In Transit', location: '94107', test: false },
      );
      if (scenario === 'undeliverable') {
        steps.push({ type: 'letter.returned_to_sender', tracking: 'Returned to Sender', location: zip, test: false });
      } else {
        steps.push(
          { type: 'letter.in_local_area', tracking: 'In Local Area', location: zip, test: false },
          { type: 'letter.processed_for_delivery', tracking: 'Processed for Delivery', location: zip, test: false },
          { type: 'letter.delivered', test: false },
        );
      }
    }
    const run = (async () => {
      for (const step of steps) {
        await new Promise((resolve) => setTimeout(resolve, this.delayMs));
        const at = new Date().toISOString();
        if (step.tracking) {
          letter.tracking_events.push({
            id: randomId('evnt'),
            type: 'normal',
            name: step.tracking,
            details: null,
            location: step.location ?? null,
            time: at,
            date_created: at,
            date_modified: at,
            object: 'tracking_event',
          });
        }
        if (step.type === 'letter.failed') {
          letter.status = 'failed';
          letter.failure_reason = {
            failure_reason: 'render_error',
            remediation: 'Check that the file is a valid 8.5" x 11" PDF',
            errors: null,
          };
        }
        const event = {
          id: randomId('evt'),
          body: structuredClone(letter),
          reference_id: letter.id,
          event_type: { id: step.type, enabled_for_test: step.test, resource: 'letters', object: 'event_type' },
          date_created: at,
          object: 'event',
        };
        const subscribed = this.opts.subscribe ?? LOB_TRACKED_SUBSCRIPTION;
        if (subscribed === 'all' || subscribed.includes(step.type)) await this.post(event);
      }
    })();
    this.pending.add(run);
    void run.finally(() => this.pending.delete(run));
  }

  private async post(event: Record<string, unknown>): Promise<void> {
    this.events.push(event);
    const body = Buffer.from(JSON.stringify(event));
    try {
      const res = await fetch(this.opts.webhookUrl, {
        method: 'POST',
        headers: lobWebhookHeaders(this.webhookSecret, body),
        body,
        signal: AbortSignal.timeout(5000),
      });
      await res.arrayBuffer();
    } catch {
      // The receiver is gone (tests finishing): Lob would retry later; the emulator drops it.
    }
  }
}
