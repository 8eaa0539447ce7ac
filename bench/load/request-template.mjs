/**
 * Pre-built HTTP/1.1 requests: one buffer per connection, the key written in
 * place as fixed-width decimal digits, so sending a request allocates nothing.
 *
 *   PUT /v0/entity?id=<prefix><digits><suffix> HTTP/1.1\r\n
 *   Host: 127.0.0.1:<port>\r\n
 *   Content-Length: <n>\r\n
 *   \r\n
 *   <body: the same digits, then random bytes>
 *
 * A connection has at most one request in flight and reuses its buffer only
 * after the response arrived, by which time the kernel has taken the bytes.
 */
import { randomFillSync } from 'node:crypto';

export const KEY_DIGITS = 15;

export function keyString(prefix, index) {
  return prefix + String(index).padStart(KEY_DIGITS, '0');
}

export class RequestTemplate {
  /** The request bytes; rewritten by setKey(). */
  buffer;
  #keyOffset;
  #bodyKeyOffset;

  /**
   * @param {{ method: string, path: string, keyPrefix: string, querySuffix: string,
   *           host: string, port: number, valueBytes: number }} spec
   */
  constructor(spec) {
    const withBody = spec.method === 'PUT';
    const before = `${spec.method} ${spec.path}${spec.keyPrefix}`;
    const after =
      `${spec.querySuffix} HTTP/1.1\r\nHost: ${spec.host}:${spec.port}\r\n` +
      (withBody ? `Content-Length: ${spec.valueBytes}\r\n` : '') +
      '\r\n';
    const head = Buffer.from(before + '0'.repeat(KEY_DIGITS) + after, 'latin1');
    const body = Buffer.alloc(withBody ? spec.valueBytes : 0);
    randomFillSync(body);
    this.buffer = Buffer.concat([head, body]);
    this.#keyOffset = Buffer.byteLength(before, 'latin1');
    this.#bodyKeyOffset = withBody && spec.valueBytes >= KEY_DIGITS ? head.length : -1;
  }

  setKey(index) {
    const buf = this.buffer;
    let n = index;
    const at = this.#keyOffset;
    const bodyAt = this.#bodyKeyOffset;
    for (let d = KEY_DIGITS - 1; d >= 0; d--) {
      const digit = 48 + (n % 10);
      buf[at + d] = digit;
      // The body varies with the key, so that no two stored values are alike.
      if (bodyAt >= 0) buf[bodyAt + d] = digit;
      n = Math.floor(n / 10);
    }
  }
}
