/**
 * Assertions for programmer errors: a failed one means the code is wrong, not
 * the input, so the process should stop rather than carry on with bad state.
 * Operating errors (bad input, I/O, corruption) are RingkvErrors instead.
 */

/** Costly checks run only when RINGKV_INVARIANTS=1 (tests set it). They only check; never branch on it. */
export const INVARIANTS = process.env.RINGKV_INVARIANTS === '1';

export class AssertionError extends Error {
  override name = 'AssertionError';
}

export function assert(condition: unknown, message = 'Assertion failed'): asserts condition {
  if (!condition) throw new AssertionError(message);
}

export function unreachable(value: never): never {
  throw new AssertionError(`Unreachable: ${String(value)}`);
}
