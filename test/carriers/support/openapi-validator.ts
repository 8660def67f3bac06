/**
 * Checks a request an emulator received against the provider's published API description in
 * `test/fixtures/carriers/` (a copy of `../shared/fixtures/carriers/`) (OpenAPI 3 or Swagger 2, JSON or YAML): the operation must exist for the
 * method and path, required path/query/header parameters must be present, and the body must match the
 * operation's request schema for the request's content type (JSON, or form-encoded, whose string values are
 * coerced to the schema's types as the provider's server does). Returns the violations, empty when valid.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv, type ValidateFunction } from 'ajv';
import { parse as parseYaml } from 'yaml';

/**
 * The carriers' published reference data, as kept in `../shared/fixtures/carriers/` (see its SOURCES.md): a copy
 * lives in the repository so the suite runs from any clone.
 */
export const CARRIER_FIXTURES = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'fixtures', 'carriers');

/** Reads a fixture file under `test/fixtures/carriers/` (e.g. `twilio/sms-inbound.form.txt`). */
export function readFixture(relative: string): string {
  return readFileSync(join(CARRIER_FIXTURES, relative), 'utf8');
}

export function readJsonFixture<T = unknown>(relative: string): T {
  return JSON.parse(readFixture(relative)) as T;
}

export interface SpecRequest {
  method: string;
  /** Path as sent, without the spec's server base path (e.g. `/2010-04-01/Accounts/AC.../Messages.json`). */
  path: string;
  query?: Record<string, string | string[]>;
  headers?: Record<string, string | string[] | undefined>;
  contentType?: string;
  /** Parsed body: a JSON value, or the form fields (repeated fields as arrays). */
  body?: unknown;
}

interface Operation {
  template: string;
  regex: RegExp;
  method: string;
  op: Record<string, unknown>;
  pathItem: Record<string, unknown>;
}

type JsonObject = Record<string, unknown>;

export class OpenApiValidator {
  private readonly spec: JsonObject;
  private readonly swagger2: boolean;
  private readonly operations: Operation[] = [];
  private readonly strictAjv: Ajv;
  private readonly coercingAjv: Ajv;
  private readonly compiled = new Map<string, ValidateFunction>();
  /** Path prefix of the spec's server (OpenAPI `servers[0].url` path or Swagger `basePath`), stripped first. */
  readonly basePath: string;

  constructor(specFile: string, opts: { basePath?: string } = {}) {
    const text = readFixture(specFile);
    this.spec = (specFile.endsWith('.json') ? JSON.parse(text) : parseYaml(text, { maxAliasCount: -1 })) as JsonObject;
    this.swagger2 = typeof this.spec.swagger === 'string';
    this.closeAllOfs(this.spec, new Set());
    this.basePath = opts.basePath ?? this.specBasePath();
    const ajvOpts = {
      strict: false,
      allErrors: true,
      validateFormats: false,
      discriminator: false,
      allowUnionTypes: true,
    } as const;
    this.strictAjv = new Ajv(ajvOpts);
    this.coercingAjv = new Ajv({ ...ajvOpts, coerceTypes: 'array' });
    // Ajv knows OpenAPI 3.0's `nullable`; vendor keywords are ignored (strict: false).
    for (const ajv of [this.strictAjv, this.coercingAjv]) ajv.addSchema(this.spec, 'spec');
    const paths = (this.spec.paths ?? {}) as Record<string, JsonObject>;
    for (const [template, item] of Object.entries(paths)) {
      const regex = new RegExp(`^${template.replace(/[.*+?^$()|[\]\\]/g, '\\$&').replace(/\{[^}]+\}/g, '[^/]+')}$`);
      for (const method of ['get', 'post', 'put', 'patch', 'delete']) {
        const op = item[method];
        if (op && typeof op === 'object')
          this.operations.push({ template, regex, method, op: op as JsonObject, pathItem: item });
      }
    }
  }

  /** The operation a request addresses (its path template), or undefined. */
  operationFor(method: string, path: string): string | undefined {
    return this.find(method, path)?.template;
  }

  validate(req: SpecRequest): string[] {
    const path = this.stripBase(req.path);
    const op = this.find(req.method, path);
    if (!op) return [`${req.method.toUpperCase()} ${req.path}: no such operation in the specification`];
    const problems: string[] = [];
    const params = [
      ...((op.pathItem.parameters as JsonObject[] | undefined) ?? []),
      ...((op.op.parameters as JsonObject[] | undefined) ?? []),
    ].map((p) => this.deref(p));
    for (const p of params) {
      if (p.required !== true) continue;
      const name = String(p.name);
      if (p.in === 'query' && req.query?.[name] === undefined) problems.push(`query parameter '${name}' is required`);
      if (p.in === 'header' && headerOf(req.headers, name) === undefined) problems.push(`header '${name}' is required`);
    }
    const schema = this.bodySchemaPointer(op, params, req.contentType);
    if (schema === null) {
      if (req.body !== undefined && req.body !== '' && this.hasAnyBody(op, params))
        problems.push(`content type '${req.contentType ?? '(none)'}' is not accepted by this operation`);
      return problems;
    }
    if (schema.required && (req.body === undefined || req.body === '')) {
      problems.push('request body is required');
      return problems;
    }
    if (req.body === undefined) return problems;
    const validate = this.compile(schema.pointer, schema.form);
    const body = schema.form ? { ...(req.body as JsonObject) } : req.body;
    if (!validate(body)) {
      for (const e of validate.errors ?? []) problems.push(`body${e.instancePath} ${e.message}${paramsText(e.params)}`);
    }
    return problems;
  }

  /**
   * Generated-client specs (Meta's among them) write `allOf: [Base, {additionalProperties: false, ...}]`, meaning
   * "no properties beyond those of the combined object". Plain JSON Schema would reject Base's properties in the
   * second member, so each closed member is told about its siblings' properties: the meaning the authors intend.
   */
  private closeAllOfs(node: unknown, seen: Set<unknown>): void {
    if (!node || typeof node !== 'object' || seen.has(node)) return;
    seen.add(node);
    if (Array.isArray(node)) {
      for (const n of node) this.closeAllOfs(n, seen);
      return;
    }
    const obj = node as JsonObject;
    if (Array.isArray(obj.allOf)) {
      const members = (obj.allOf as JsonObject[]).map((m) => this.deref(m));
      const names = new Set<string>();
      const collect = (m: JsonObject, depth: number): void => {
        for (const k of Object.keys((m.properties as JsonObject | undefined) ?? {})) names.add(k);
        if (depth < 8 && Array.isArray(m.allOf))
          for (const x of m.allOf as JsonObject[]) collect(this.deref(x), depth + 1);
      };
      for (const m of members) collect(m, 0);
      for (const m of obj.allOf as JsonObject[]) {
        if (m.additionalProperties !== false || typeof m.$ref === 'string') continue;
        const props = (m.properties ?? {}) as JsonObject;
        for (const n of names) if (!(n in props)) props[n] = true;
        m.properties = props;
      }
    }
    for (const v of Object.values(obj)) this.closeAllOfs(v, seen);
  }

  private specBasePath(): string {
    if (this.swagger2) return String(this.spec.basePath ?? '').replace(/\/+$/, '');
    const servers = this.spec.servers as { url: string }[] | undefined;
    const url = servers?.[0]?.url;
    if (!url || !URL.canParse(url)) return '';
    return new URL(url).pathname.replace(/\/+$/, '');
  }

  private stripBase(path: string): string {
    const p = path.split('?')[0] ?? path;
    return this.basePath && p.startsWith(this.basePath) ? p.slice(this.basePath.length) || '/' : p;
  }

  private find(method: string, path: string): Operation | undefined {
    const m = method.toLowerCase();
    const p = this.stripBase(path);
    // Prefer a literal template over a parameterized one when both match.
    const matches = this.operations.filter((o) => o.method === m && o.regex.test(p));
    return matches.sort((a, b) => braces(a.template) - braces(b.template))[0];
  }

  private deref(p: JsonObject): JsonObject {
    const ref = p.$ref;
    if (typeof ref !== 'string') return p;
    let node: unknown = this.spec;
    for (const part of ref.replace(/^#\//, '').split('/')) {
      node = (node as JsonObject)[part.replace(/~1/g, '/').replace(/~0/g, '~')];
    }
    return node as JsonObject;
  }

  private hasAnyBody(op: Operation, params: JsonObject[]): boolean {
    if (this.swagger2) return params.some((p) => p.in === 'body' || p.in === 'formData');
    return op.op.requestBody !== undefined;
  }

  private bodySchemaPointer(
    op: Operation,
    params: JsonObject[],
    contentType: string | undefined,
  ): { pointer: string; form: boolean; required: boolean } | null {
    const base = `spec#/paths/${escapePointer(op.template)}/${op.method}`;
    const type = (contentType ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
    const form = type === 'application/x-www-form-urlencoded' || type === 'multipart/form-data';
    if (this.swagger2) {
      const i = params.findIndex((p) => p.in === 'body');
      if (i < 0) return null;
      const own = ((op.op.parameters as JsonObject[] | undefined) ?? []).map((p) => this.deref(p));
      const j = own.findIndex((p) => p.in === 'body');
      if (j < 0) return null;
      return { pointer: `${base}/parameters/${j}/schema`, form: false, required: own[j]?.required === true };
    }
    let body = op.op.requestBody as JsonObject | undefined;
    let bodyPointer = `${base}/requestBody`;
    if (body && typeof body.$ref === 'string') {
      bodyPointer = `spec${body.$ref}`;
      body = this.deref(body);
    }
    const content = (body?.content ?? {}) as Record<string, JsonObject>;
    const key = Object.keys(content).find((k) => k.toLowerCase() === type);
    if (!key || !content[key]?.schema) return null;
    return { pointer: `${bodyPointer}/content/${escapePointer(key)}/schema`, form, required: body?.required === true };
  }

  private compile(pointer: string, form: boolean): ValidateFunction {
    const key = `${form ? 'f' : 'j'}:${pointer}`;
    let v = this.compiled.get(key);
    if (!v) {
      v = (form ? this.coercingAjv : this.strictAjv).compile({ $ref: pointer });
      this.compiled.set(key, v);
    }
    return v;
  }
}

/** Parses an `application/x-www-form-urlencoded` body into fields; repeated fields become arrays. */
export function parseForm(body: string): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [k, v] of new URLSearchParams(body)) {
    const prev = out[k];
    out[k] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [prev, v];
  }
  return out;
}

function headerOf(headers: SpecRequest['headers'], name: string): string | undefined {
  if (!headers) return undefined;
  const lower = name.toLowerCase();
  for (const [k, v] of Object.entries(headers)) if (k.toLowerCase() === lower) return Array.isArray(v) ? v[0] : v;
  return undefined;
}

function escapePointer(s: string): string {
  return s
    .replace(/~/g, '~0')
    .replace(/\//g, '~1')
    .replace(/[{}]/g, (c) => encodeURIComponent(c));
}

function braces(template: string): number {
  return (template.match(/\{/g) ?? []).length;
}

function paramsText(params: Record<string, unknown>): string {
  const entries = Object.entries(params ?? {});
  return entries.length ? ` (${entries.map(([k, v]) => `${k}: ${String(v)}`).join(', ')})` : '';
}
