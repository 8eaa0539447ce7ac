/**
 * Request targets: keys and parameters written into a query string the way
 * the server decodes it (application/x-www-form-urlencoded: %XX is a byte).
 */

/** A key: a string (sent as UTF-8) or its bytes. The server takes keys that are valid UTF-8. */
export type Key = string | Uint8Array;

/** Bytes that stand for themselves in a query value; every other byte is %XX. */
const UNRESERVED = /^[A-Za-z0-9\-_.~]$/;
const HEX = '0123456789ABCDEF';

/**
 * The key as a query value: a string through encodeURIComponent, bytes one by
 * one. A string that is not valid UTF-16 (a lone surrogate) throws a URIError.
 *
 *   encodeKey('a b/é') === 'a%20b%2F%C3%A9'
 *   encodeKey(Buffer.from([0x61, 0x0a])) === 'a%0A'
 */
export function encodeKey(key: Key): string {
  if (typeof key === 'string') return encodeURIComponent(key);
  let out = '';
  for (const byte of key) {
    const char = String.fromCharCode(byte);
    out += byte < 0x80 && UNRESERVED.test(char) ? char : `%${HEX[byte >> 4]}${HEX[byte & 0x0f]}`;
  }
  return out;
}

/**
 * `path` with its parameters, those undefined left out, in the order given.
 *
 *   target('/v0/entity', { id: 'k', ack: 2, from: undefined }) === '/v0/entity?id=k&ack=2'
 */
export function target(path: string, params: Readonly<Record<string, Key | number | undefined>>): string {
  let query = '';
  for (const [name, value] of Object.entries(params)) {
    if (value === undefined) continue;
    query += `${query === '' ? '?' : '&'}${name}=${typeof value === 'number' ? numeral(value) : encodeKey(value)}`;
  }
  return `${path}${query}`;
}

/** A number as the server reads it: an integer in digits, even from 1e21 up, where String() turns to exponents. */
function numeral(value: number): string {
  return Number.isInteger(value) ? BigInt(value).toString() : String(value);
}
