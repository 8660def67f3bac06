/**
 * JSON-schema validation shared by the HTTP layer (Fastify's compiler) and the services (batch items, which are
 * validated one by one): one mapping from schema errors to our `{code, message, field}` errors.
 */
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { ValidationError } from '../domain/errors.ts';

/** Body validation: no type coercion, unknown properties rejected (they are almost always typos). */
export const bodyAjv = new Ajv({
  allErrors: false,
  coerceTypes: false,
  useDefaults: false,
  removeAdditional: false,
  strict: false,
});

bodyAjv.addFormat('uri', (s: string) => URL.canParse(s));
bodyAjv.addFormat('email', (s: string) => /^[^\s@]+@[^\s@]+$/.test(s));

/**
 * `x-maxDepth` on free-form values (metadata, template variables): how deeply objects and arrays may nest.
 * Without a limit a small body nested thousands of levels deep overflows the stack of recursive code later on
 * (request hashing for Idempotency-Key), a 500 instead of a 400.
 */
export const MAX_DEPTH_KEYWORD = 'x-maxDepth';
bodyAjv.addKeyword({
  keyword: MAX_DEPTH_KEYWORD,
  schemaType: 'number',
  errors: true,
  validate: function checkDepth(max: number, data: unknown): boolean {
    // Iterative on purpose: a recursive walk would overflow on the very input it guards against.
    const stack: Array<[unknown, number]> = [[data, 1]];
    while (stack.length > 0) {
      const [value, depth] = stack.pop() as [unknown, number];
      if (value === null || typeof value !== 'object') continue;
      if (depth > max) {
        (checkDepth as { errors?: Partial<ErrorObject>[] }).errors = [
          { keyword: MAX_DEPTH_KEYWORD, message: `must not nest objects or arrays more than ${max} deep`, params: {} },
        ];
        return false;
      }
      for (const child of Object.values(value)) stack.push([child, depth + 1]);
    }
    return true;
  },
});

export function fieldOf(
  err: Pick<ErrorObject, 'instancePath' | 'params' | 'keyword'>,
  prefix = '',
): string | undefined {
  const path = err.instancePath
    .split('/')
    .filter(Boolean)
    .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
  if (err.keyword === 'required') path.push(String((err.params as { missingProperty?: string }).missingProperty));
  if (err.keyword === 'additionalProperties')
    path.push(String((err.params as { additionalProperty?: string }).additionalProperty));
  const joined = path.map((p, i) => (/^\d+$/.test(p) ? `[${p}]` : i === 0 ? p : `.${p}`)).join('');
  if (!prefix) return joined || undefined;
  return joined ? (joined.startsWith('[') ? `${prefix}${joined}` : `${prefix}.${joined}`) : prefix;
}

/** Maps the first schema error to a ValidationError with a stable code. */
export function schemaErrorToValidation(err: ErrorObject, prefix = ''): ValidationError {
  const field = fieldOf(err, prefix);
  const last = field?.split('.').pop();
  switch (err.keyword) {
    case 'required':
      return new ValidationError('missing_field', `'${field}' is required`, opts(field));
    case 'additionalProperties':
      return new ValidationError('unknown_field', `'${field}' is not a known field`, opts(field));
    case 'type':
      return new ValidationError(
        'invalid_type',
        `'${field ?? 'body'}' must be ${article((err.params as { type: string }).type)}`,
        opts(field),
      );
    case 'enum':
      if (last === 'channel') {
        const allowed = (err.params as { allowedValues: unknown[] }).allowedValues.join(', ');
        return new ValidationError('unknown_channel', `'channel' must be one of: ${allowed}`, opts(field));
      }
      return new ValidationError('invalid_value', `'${field}' ${err.message ?? 'is not allowed'}`, opts(field));
    case 'maxLength':
      if (last === 'body') return new ValidationError('body_too_long', `'${field}' ${err.message}`, opts(field));
      return new ValidationError('too_long', `'${field}' ${err.message}`, opts(field));
    case 'maxItems':
      return new ValidationError('too_many_items', `'${field}' ${err.message}`, opts(field));
    default:
      return new ValidationError('invalid_value', `'${field ?? 'body'}' ${err.message ?? 'is invalid'}`, opts(field));
  }
}

function opts(field: string | undefined) {
  return field === undefined ? {} : { field };
}

function article(type: string): string {
  return /^[aeiou]/.test(type) ? `an ${type}` : `a ${type}`;
}

/** Compiles a schema once; `check` throws the first error as a ValidationError. */
export function compileChecker<T>(schema: object): { check(value: unknown, prefix?: string): T; fn: ValidateFunction } {
  const fn = bodyAjv.compile(schema);
  return {
    fn,
    check(value: unknown, prefix = ''): T {
      if (!fn(value)) throw schemaErrorToValidation((fn.errors ?? [])[0] as ErrorObject, prefix);
      return value as T;
    },
  };
}
