/**
 * Bytes of a size announced up front (an HTTP Content-Length, an internode
 * frame's length), gathered as they arrive. The buffer grows with them,
 * doubling from `firstBytes`: whoever announces a large size and then sends
 * nothing holds no more than that, however many connections do the same.
 * Complete, the bytes are one buffer of exactly the announced size, a view
 * into no socket read.
 *
 *   const body = new SizedBody(contentLength, 64 * 1024);
 *   socket.on('data', (chunk) => { body.fill(chunk); if (body.complete) store(body.value()); });
 */
import { assert } from './assert.js';

export class SizedBody {
  readonly declared: number;
  #buf: Buffer;
  #filled = 0;

  constructor(declared: number, firstBytes: number) {
    this.declared = declared;
    this.#buf = Buffer.allocUnsafe(Math.min(declared, firstBytes));
  }

  /** Bytes received so far. */
  get filled(): number {
    return this.#filled;
  }

  /** Bytes reserved now. */
  get reserved(): number {
    return this.#buf.length;
  }

  get complete(): boolean {
    return this.#filled === this.declared;
  }

  /** Takes the bytes of chunk[start..] that are still missing; returns how many it took. */
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

  /** The bytes, once all the announced ones have come. */
  value(): Buffer {
    assert(this.complete, 'SizedBody.value before it is complete');
    return this.#buf;
  }
}
