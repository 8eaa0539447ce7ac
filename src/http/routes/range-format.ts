/**
 * The two bodies a range answer (/v0/entities) can have, and how a request
 * picks one.
 *
 * - `chunks` (the default, shared/API.md): one HTTP chunk per entry, each
 *   exactly key '\n' value, bytes as stored. Content-Type
 *   application/octet-stream.
 * - `ndjson`: one JSON object per line, `{"key":"...","value":"..."}` and a
 *   '\n' after each, for clients that read lines (curl, jq, any JSON
 *   library). Content-Type application/x-ndjson. Chunk boundaries mean
 *   nothing here: split the body on '\n' (JSON escapes every newline inside
 *   a string, so each line is one whole entry). A key or value that is valid
 *   UTF-8 is the JSON string of its text; one that is not is written in
 *   base64 (RFC 4648, with padding) and flagged by `"keyBase64":true` or
 *   `"valueBase64":true` after the fields; the flags are absent otherwise.
 *
 *     {"key":"user:1","value":"Ada"}
 *     {"key":"blob","value":"AP8=","valueBase64":true}
 *
 * A request asks for ndjson with `format=ndjson` in the query, or with an
 * Accept header that lists application/x-ndjson (and no q=0 for it);
 * `format=chunks` asks for the default whatever Accept says. The query wins
 * over the header.
 */
import { isUtf8 } from 'node:buffer';
import type { Entry } from '../../storage/index.js';
import type { RangeFormat } from '../params.js';

export interface RangeEncoding {
  readonly contentType: string;
  /** One entry's bytes in the answer. */
  readonly encode: (entry: Entry) => Buffer | string;
}

export const NDJSON_TYPE = 'application/x-ndjson';

const NEWLINE = 0x0a;

/** One entry as one chunk: key '\n' value, copied into a single buffer. */
export function chunkFrame(entry: Entry): Buffer {
  const keyBytes = entry.key.length;
  const out = Buffer.allocUnsafe(keyBytes + 1 + entry.value.length);
  entry.key.copy(out, 0);
  out[keyBytes] = NEWLINE;
  entry.value.copy(out, keyBytes + 1);
  return out;
}

/**
 * One entry as one line of NDJSON, its '\n' included.
 *
 *   ndjsonLine(valueEntry(Buffer.from('k'), 1n, Buffer.from([0xff]), 0))
 *   // -> '{"key":"k","value":"/w==","valueBase64":true}\n'
 */
export function ndjsonLine(entry: Entry): string {
  const keyText = isUtf8(entry.key);
  const valueText = isUtf8(entry.value);
  const key = keyText ? JSON.stringify(entry.key.toString('utf8')) : `"${entry.key.toString('base64')}"`;
  const value = valueText
    ? JSON.stringify(entry.value.toString('utf8'))
    : `"${entry.value.toString('base64')}"`;
  const flags = (keyText ? '' : ',"keyBase64":true') + (valueText ? '' : ',"valueBase64":true');
  return `{"key":${key},"value":${value}${flags}}\n`;
}

const ENCODINGS: Readonly<Record<RangeFormat, RangeEncoding>> = {
  chunks: { contentType: 'application/octet-stream', encode: chunkFrame },
  ndjson: { contentType: NDJSON_TYPE, encode: ndjsonLine },
};

/** The encoding for the query's `format` if it has one, else for the Accept header. */
export function rangeEncoding(format: RangeFormat | undefined, accept: string | undefined): RangeEncoding {
  return ENCODINGS[format ?? (accept !== undefined && acceptsNdjson(accept) ? 'ndjson' : 'chunks')];
}

/**
 * Whether an Accept header lists application/x-ndjson with a weight above 0
 * (media types compare case-insensitively; wildcards do not count).
 *
 *   acceptsNdjson('application/x-ndjson') === true
 *   acceptsNdjson('*\/*') === false
 *   acceptsNdjson('application/x-ndjson;q=0, *\/*') === false
 */
export function acceptsNdjson(accept: string): boolean {
  for (const range of accept.split(',')) {
    const [type = '', ...params] = range.split(';');
    if (type.trim().toLowerCase() !== NDJSON_TYPE) continue;
    const weight = params.map((p) => p.trim().toLowerCase()).find((p) => p.startsWith('q='));
    if (weight === undefined || Number(weight.slice(2)) > 0) return true;
  }
  return false;
}
