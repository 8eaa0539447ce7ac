/**
 * A request body of a declared size (Content-Length), filled as its bytes
 * arrive, on either request path. Its buffer grows with the bytes, doubling
 * from `limits.httpBodyFirstBytes`: a head that declares the largest value
 * and then sends nothing reserves no more than that for the 30 s its body
 * may take, however many connections do the same. Complete, the value is
 * one buffer of exactly the declared size, a view into no socket read.
 */
import { limits } from '../config/limits.js';
import { assert } from '../util/assert.js';

export class SizedBody {
  readonly declared: number;
  #buf: Buffer;
  #filled = 0;

  constructor(declared: number) {
    this.declared = declared;
    this.#buf = Buffer.allocUnsafe(Math.min(declared, limits.httpBodyFirstBytes));
  }

  /** Bytes received so far. */
  get filled(): number {
    return this.#filled;
  }

  /** Bytes reserved for the body now. */
  get reserved(): number {
    return this.#buf.length;
  }

  get complete(): boolean {
    return this.#filled === this.declared;
  }

  /** Takes the bytes of chunk[start..] that the body still lacks; returns how many it took. */
  fill(chunk: Buffer, start = 0): number {
    const take = Math.min(chunk.length - start, this.declared - this.#filled);
    const needed = this.#filled + take;
    if (needed > this.#buf.length) {
      const grown = Buffer.allocUnsafe(Math.min(this.declared, Math.max(needed, 2 * this.#buf.length)));
      this.#buf.copy(grown, 0, 0, this.#filled);
      this.#buf = grown;
    }
    chunk.copy(this.#buf, this.#filled, start, start + take);
    this.#filled = needed;
    return take;
  }

  /** The value, once every declared byte has come. */
  value(): Buffer {
    assert(this.complete, 'SizedBody.value before the body is complete');
    return this.#buf;
  }
}
