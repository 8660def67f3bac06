/**
 * A small, synchronous reader of Internet messages (RFC 5322 header blocks, RFC 2045/2046 MIME parts,
 * RFC 2047 encoded words, RFC 2231 parameters). `Carrier.parseWebhook` is synchronous, so the stream-based
 * parsers cannot be used there; this covers what bounce reports and replies need: header fields, the part
 * tree, decoded bodies and text in its charset. Bytes are handled as latin1 strings (one char per octet) so
 * splitting never corrupts binary content.
 */

/** Parts nested deeper than this are not opened (a hostile message could nest without end). */
const MAX_DEPTH = 12;
/** At most this many parts are read in one message. */
const MAX_PARTS = 500;

export class MimeHeaders {
  readonly fields: readonly { name: string; value: string }[];

  constructor(fields: { name: string; value: string }[]) {
    this.fields = fields;
  }

  /** The first field of that name (case-insensitive), unfolded, or undefined. */
  get(name: string): string | undefined {
    const lower = name.toLowerCase();
    return this.fields.find((f) => f.name === lower)?.value;
  }

  all(name: string): string[] {
    const lower = name.toLowerCase();
    return this.fields.filter((f) => f.name === lower).map((f) => f.value);
  }
}

export interface MimePart {
  headers: MimeHeaders;
  /** Lower-cased `type/subtype` (RFC 2045 §5.2 default `text/plain`, `message/rfc822` in multipart/digest). */
  type: string;
  /** Content-Type parameters, names lower-cased, RFC 2231 continuations and charsets resolved. */
  params: Record<string, string>;
  /** Body after Content-Transfer-Encoding decoding (empty for multiparts). */
  body: Buffer;
  /** Child parts of a multipart (empty otherwise). */
  parts: MimePart[];
}

/** Splits a message at the first empty line (RFC 5322 §2.1) into its header text and body bytes. */
export function splitHeaderBody(raw: Buffer): { header: string; body: Buffer } {
  const s = raw.toString('latin1');
  if (s.startsWith('\r\n')) return { header: '', body: raw.subarray(2) };
  if (s.startsWith('\n')) return { header: '', body: raw.subarray(1) };
  const m = /\r?\n\r?\n/.exec(s);
  if (!m) return { header: Buffer.from(s, 'latin1').toString('utf8'), body: Buffer.alloc(0) };
  return {
    header: Buffer.from(s.slice(0, m.index), 'latin1').toString('utf8'),
    body: raw.subarray(m.index + m[0].length),
  };
}

/** Parses a header block (RFC 5322 §2.2): unfolds continuation lines, lower-cases field names. */
export function parseHeaderBlock(text: string): MimeHeaders {
  const fields: { name: string; value: string }[] = [];
  for (const line of text.split(/\r?\n/)) {
    if (line.length === 0) continue;
    if (/^[ \t]/.test(line)) {
      const last = fields[fields.length - 1];
      if (last) last.value += line;
      continue;
    }
    const colon = line.indexOf(':');
    // Not a field (an mbox "From " separator, garbage): skipped.
    if (colon <= 0 || /\s/.test(line.slice(0, colon).trimEnd())) continue;
    fields.push({ name: line.slice(0, colon).trim().toLowerCase(), value: line.slice(colon + 1) });
  }
  for (const f of fields) f.value = f.value.trim();
  return new MimeHeaders(fields);
}

/** Parses a whole message (or a body part) into its tree of MIME parts. */
export function parseMessage(raw: Buffer, defaultType = 'text/plain', depth = 0, budget = { parts: 0 }): MimePart {
  budget.parts++;
  const { header, body } = splitHeaderBody(raw);
  const headers = parseHeaderBlock(header);
  const ct = parseContentType(headers.get('content-type'), defaultType);
  const part: MimePart = { headers, type: ct.type, params: ct.params, body: Buffer.alloc(0), parts: [] };
  const boundary = ct.params.boundary;
  if (ct.type.startsWith('multipart/') && boundary && depth < MAX_DEPTH) {
    const childDefault = ct.type === 'multipart/digest' ? 'message/rfc822' : 'text/plain';
    for (const chunk of splitMultipart(body, boundary)) {
      if (budget.parts >= MAX_PARTS) break;
      part.parts.push(parseMessage(chunk, childDefault, depth + 1, budget));
    }
    return part;
  }
  part.body = decodeTransferEncoding(body, headers.get('content-transfer-encoding'));
  return part;
}

/** The body parts between the boundary delimiters of a multipart body (RFC 2046 §5.1.1). */
export function splitMultipart(body: Buffer, boundary: string): Buffer[] {
  const s = body.toString('latin1');
  const escaped = boundary.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
  // The line break before a delimiter belongs to the delimiter; trailing white space is allowed after it.
  const re = new RegExp(`(?:^|\\r?\\n)--${escaped}(--)?[ \\t]*(?=\\r?\\n|$)`, 'g');
  const marks: { start: number; end: number; close: boolean }[] = [];
  for (let m = re.exec(s); m !== null; m = re.exec(s)) {
    let end = m.index + m[0].length;
    if (s.startsWith('\r\n', end)) end += 2;
    else if (s.startsWith('\n', end)) end += 1;
    marks.push({ start: m.index, end, close: m[1] === '--' });
    if (m[1] === '--') break;
  }
  const parts: Buffer[] = [];
  for (let i = 0; i < marks.length; i++) {
    const mark = marks[i] as { start: number; end: number; close: boolean };
    if (mark.close) break;
    const next = marks[i + 1];
    parts.push(Buffer.from(s.slice(mark.end, next ? next.start : s.length), 'latin1'));
  }
  return parts;
}

/** Content-Type (RFC 2045 §5.1) as a lower-cased type and its parameters (RFC 2231 resolved). */
export function parseContentType(
  value: string | undefined,
  fallback = 'text/plain',
): { type: string; params: Record<string, string> } {
  if (value === undefined || value.trim().length === 0) return { type: fallback, params: {} };
  const [head, ...rest] = splitParams(value);
  const type = (head ?? '').trim().toLowerCase();
  return { type: /^[^/\s]+\/[^/\s]+$/.test(type) ? type : fallback, params: parseParams(rest) };
}

/** Splits `value; a=b; c="d;e"` at the semicolons outside quoted strings. */
function splitParams(value: string): string[] {
  const out: string[] = [];
  let current = '';
  let quoted = false;
  for (let i = 0; i < value.length; i++) {
    const c = value[i] as string;
    if (quoted && c === '\\' && i + 1 < value.length) {
      current += c + value[i + 1];
      i++;
      continue;
    }
    if (c === '"') quoted = !quoted;
    if (c === ';' && !quoted) {
      out.push(current);
      current = '';
      continue;
    }
    current += c;
  }
  out.push(current);
  return out;
}

function unquote(value: string): string {
  const v = value.trim();
  if (v.length >= 2 && v.startsWith('"') && v.endsWith('"')) return v.slice(1, -1).replace(/\\(.)/g, '$1');
  return v;
}

/** Parameters, with RFC 2231 §3 continuations (`name*0`, `name*1*`) and §4 charsets (`name*=utf-8''a%20b`). */
function parseParams(items: string[]): Record<string, string> {
  const plain: Record<string, string> = {};
  const sections = new Map<string, { index: number; value: string; encoded: boolean }[]>();
  for (const item of items) {
    const eq = item.indexOf('=');
    if (eq <= 0) continue;
    const key = item.slice(0, eq).trim().toLowerCase();
    const raw = unquote(item.slice(eq + 1));
    const m = /^([^*]+)(?:\*(\d+))?(\*)?$/.exec(key);
    if (!m) continue;
    const name = m[1] as string;
    if (m[2] === undefined && m[3] === undefined) {
      plain[name] = raw;
      continue;
    }
    const list = sections.get(name) ?? [];
    list.push({ index: m[2] === undefined ? 0 : Number(m[2]), value: raw, encoded: m[3] === '*' });
    sections.set(name, list);
  }
  for (const [name, list] of sections) {
    list.sort((a, b) => a.index - b.index);
    let charset = 'utf-8';
    const bytes: Buffer[] = [];
    for (const [i, section] of list.entries()) {
      let v = section.value;
      if (section.encoded) {
        if (i === 0) {
          const m = /^([^']*)'[^']*'(.*)$/.exec(v);
          if (m) {
            charset = m[1] || charset;
            v = m[2] as string;
          }
        }
        bytes.push(
          Buffer.from(
            v.replace(/%([0-9A-Fa-f]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16))),
            'latin1',
          ),
        );
      } else {
        bytes.push(Buffer.from(v, 'utf8'));
      }
    }
    plain[name] = decodeText(Buffer.concat(bytes), charset);
  }
  return plain;
}

/** Undoes base64 / quoted-printable (RFC 2045 §6); 7bit, 8bit, binary and unknown encodings pass as they are. */
export function decodeTransferEncoding(body: Buffer, encoding: string | undefined): Buffer {
  switch ((encoding ?? '').trim().toLowerCase()) {
    case 'base64':
      return Buffer.from(body.toString('latin1').replace(/[^A-Za-z0-9+/=]/g, ''), 'base64');
    case 'quoted-printable':
      return decodeQuotedPrintable(body.toString('latin1'));
    default:
      return body;
  }
}

export function decodeQuotedPrintable(text: string): Buffer {
  const joined = text.replace(/[ \t]+(?=\r?\n)/g, '').replace(/=\r?\n/g, '');
  return Buffer.from(
    joined.replace(/=([0-9A-Fa-f]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16))),
    'latin1',
  );
}

/** Bytes as text in a charset (WHATWG labels); unknown charsets are read as UTF-8. */
export function decodeText(bytes: Buffer, charset: string | undefined): string {
  const label = (charset ?? 'utf-8').trim().toLowerCase() || 'utf-8';
  try {
    return new TextDecoder(label).decode(bytes);
  } catch {
    return new TextDecoder('utf-8').decode(bytes);
  }
}

/** A leaf part's text in its declared charset. */
export function partText(part: MimePart): string {
  return decodeText(part.body, part.params.charset);
}

/** Decodes RFC 2047 encoded words (`=?utf-8?Q?...?=`); white space between adjacent encoded words is dropped. */
export function decodeEncodedWords(value: string): string {
  const word = /=\?([^?*\s]+)(?:\*[^?\s]*)?\?([BbQq])\?([^?\s]*)\?=/g;
  const joined = value.replace(/(\?=)[ \t\r\n]+(?==\?[^?*\s]+(?:\*[^?\s]*)?\?[BbQq]\?)/g, '$1');
  return joined.replace(word, (_, charset: string, enc: string, text: string) => {
    const bytes =
      enc.toUpperCase() === 'B'
        ? Buffer.from(text, 'base64')
        : Buffer.from(
            text
              .replace(/_/g, ' ')
              .replace(/=([0-9A-Fa-f]{2})/g, (_m, h: string) => String.fromCharCode(parseInt(h, 16))),
            'latin1',
          );
    return decodeText(bytes, charset);
  });
}

/** Every leaf part of a tree, depth first, in order. */
export function leafParts(part: MimePart): MimePart[] {
  if (part.parts.length === 0) return [part];
  return part.parts.flatMap(leafParts);
}

/** The first part of the tree (itself included) whose type is one of `types`. */
export function findPart(part: MimePart, types: readonly string[]): MimePart | undefined {
  if (types.includes(part.type)) return part;
  for (const child of part.parts) {
    const found = findPart(child, types);
    if (found) return found;
  }
  return undefined;
}

/** A structured field's value and parameters (Content-Disposition, RFC 2183), value lower-cased. */
export function parseHeaderParams(value: string | undefined): { value: string; params: Record<string, string> } {
  if (value === undefined) return { value: '', params: {} };
  const [head, ...rest] = splitParams(value);
  return { value: (head ?? '').trim().toLowerCase(), params: parseParams(rest) };
}

/** Whether a part is an attachment rather than inline text (RFC 2183 Content-Disposition). */
export function isAttachment(part: MimePart): boolean {
  return parseHeaderParams(part.headers.get('content-disposition')).value === 'attachment';
}

/** The file name of a part (Content-Disposition `filename`, else Content-Type `name`), if it has one. */
export function partFilename(part: MimePart): string | undefined {
  const name = parseHeaderParams(part.headers.get('content-disposition')).params.filename ?? part.params.name;
  return name === undefined ? undefined : decodeEncodedWords(name);
}
