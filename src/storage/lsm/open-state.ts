/**
 * Whether the engine is open. close() and crashForTest() set it once; every
 * part reads it, so that no new job, spare log or cache warm-up starts after
 * that, and a caller woken from a wait finds the engine closed.
 */
import { RingkvError } from '../../util/errors.js';

export class OpenState {
  #closed = false;

  get closed(): boolean {
    return this.#closed;
  }

  /** Marks the engine closed; false if it already was. */
  close(): boolean {
    if (this.#closed) return false;
    this.#closed = true;
    return true;
  }

  /** Throws RINGKV_CLOSED once the engine is closed. */
  check(): void {
    if (this.#closed) throw new RingkvError('RINGKV_CLOSED', 'Engine is closed');
  }
}
