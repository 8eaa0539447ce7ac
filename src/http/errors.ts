/**
 * The one place that turns an error into an HTTP answer. Expected operating
 * errors (RingkvError) map to their status with their message as a short
 * text body; anything else is a bug or an unforeseen failure: 500 with a
 * generic body and one log line, never a stack trace to the client.
 *
 * A damaged file (RINGKV_CORRUPTION: a bad SSTable block or log record) is
 * 503: the data is unavailable on this node, not the request wrong, and a
 * client may read it from another replica. The client is told only that;
 * the log line names the file and offset, for the operator.
 *
 * A full disk (RINGKV_NO_SPACE) is 507 Insufficient Storage, with the
 * engine's one-line reason (the disk is full, and the file or directory):
 * writes are refused until space returns, reads go on. It is not logged per
 * request: the engine logs its failed flushes and log creations, with a
 * backoff.
 */
import { type ErrorCode, errorMessage, isRingkvError } from '../util/errors.js';

export interface ErrorAnswer {
  readonly status: number;
  /** Short text for the response body. */
  readonly body: string;
  /** A line to log, for errors the operator must see (unexpected ones, damaged files, I/O). */
  readonly logLine: string | undefined;
}

const STATUS_BY_CODE: Partial<Record<ErrorCode, number>> = {
  RINGKV_BAD_REQUEST: 400,
  RINGKV_KEY_TOO_LONG: 414,
  RINGKV_VALUE_TOO_LARGE: 413,
  RINGKV_NOT_ENOUGH_REPLICAS: 504,
  RINGKV_TIMEOUT: 504,
  RINGKV_UNAVAILABLE: 503,
  // The node is shutting down: a client may retry elsewhere.
  RINGKV_CLOSED: 503,
  RINGKV_UNAUTHORIZED: 401,
  RINGKV_NO_SPACE: 507,
};

const CORRUPTION_BODY = 'Data unavailable: a damaged file on this node; see its log';

/**
 *   errorAnswer(new RingkvError('RINGKV_BAD_REQUEST', 'Missing id'))
 *   // -> { status: 400, body: 'Missing id', logLine: undefined }
 */
export function errorAnswer(err: unknown): ErrorAnswer {
  if (isRingkvError(err)) {
    const status = STATUS_BY_CODE[err.code];
    if (status !== undefined) return { status, body: err.message, logLine: undefined };
    if (err.code === 'RINGKV_CORRUPTION') {
      return { status: 503, body: CORRUPTION_BODY, logLine: `${err.code}: ${err.message}` };
    }
    // I/O and the like: the operator needs to know; the client gets no detail.
    return { status: 500, body: 'Internal error', logLine: `${err.code}: ${err.message}` };
  }
  return { status: 500, body: 'Internal error', logLine: `Unexpected error: ${errorMessage(err)}` };
}
