/**
 * One error base class for every expected operating error. Callers branch on
 * `code`, never on the message. Messages start with a capital, have no final
 * period, and put the detail after a colon.
 */
export type ErrorCode =
  | 'RINGKV_CORRUPTION'
  | 'RINGKV_IO'
  // The disk (or the quota) is full (ENOSPC, EDQUOT): writes are refused until space returns; reads go on.
  | 'RINGKV_NO_SPACE'
  | 'RINGKV_CLOSED'
  | 'RINGKV_LOCKED'
  | 'RINGKV_BAD_REQUEST'
  | 'RINGKV_KEY_TOO_LONG'
  | 'RINGKV_VALUE_TOO_LARGE'
  | 'RINGKV_NOT_ENOUGH_REPLICAS'
  | 'RINGKV_TIMEOUT'
  | 'RINGKV_UNAVAILABLE'
  | 'RINGKV_UNAUTHORIZED'
  | 'RINGKV_PROTOCOL'
  | 'RINGKV_SERVER'
  | 'RINGKV_CONFIG';

export class RingkvError extends Error {
  override name = 'RingkvError';
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

/**
 * Corruption found in a file: names the file and the byte offset so an
 * operator can find it. Recovery tests check `code === 'RINGKV_CORRUPTION'`.
 */
export class CorruptionError extends RingkvError {
  override name = 'CorruptionError';
  readonly file: string;
  readonly offset: number;

  constructor(file: string, offset: number, detail: string) {
    super('RINGKV_CORRUPTION', `Corruption in ${file} at offset ${offset}: ${detail}`);
    this.file = file;
    this.offset = offset;
  }
}

export function isRingkvError(err: unknown, code?: ErrorCode): err is RingkvError {
  return err instanceof RingkvError && (code === undefined || err.code === code);
}

/** The message of any thrown value, for one-line logs. */
export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
