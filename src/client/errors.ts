/**
 * The client's errors. Every failure a caller meets is a RequestError, a
 * RingkvError (util/errors.ts) whose `code` is stable, with the HTTP status
 * that ended the request (if a node answered), the server's reason text (the
 * answer's body) and the node that gave it:
 *
 * | class | when | code |
 * | --- | --- | --- |
 * | BadRequestError | a 4xx answer: a bad parameter (400), a key too long (414), a value too large (413) | RINGKV_BAD_REQUEST, RINGKV_KEY_TOO_LONG, RINGKV_VALUE_TOO_LARGE, RINGKV_UNAUTHORIZED |
 * | UnavailableError | 504 (too few replicas answered), or no node answered: every one refused, reset or answered 503 | RINGKV_NOT_ENOUGH_REPLICAS (504), RINGKV_UNAVAILABLE |
 * | TimeoutError | the call's deadline passed (`timeoutMs`) | RINGKV_TIMEOUT |
 * | ServerError | a 500, any status the client does not expect, or an answer it cannot read | RINGKV_SERVER, RINGKV_PROTOCOL |
 *
 * A 404 on a read is no error: get() answers undefined. An abort through the
 * caller's AbortSignal rejects with the signal's reason, as fetch does.
 */
import { type ErrorCode, RingkvError } from '../util/errors.js';

export interface RequestErrorFields {
  /** The HTTP status that ended the request; undefined when no node answered. */
  readonly status?: number | undefined;
  /** The server's reason (the answer's body), or what went wrong on the way. */
  readonly reason: string;
  /** The node that answered, or the last one tried. */
  readonly node?: string | undefined;
  readonly cause?: unknown;
}

export class RequestError extends RingkvError {
  override name = 'RequestError';
  readonly status: number | undefined;
  readonly reason: string;
  readonly node: string | undefined;

  constructor(code: ErrorCode, fields: RequestErrorFields) {
    const where = fields.node === undefined ? '' : ` (${fields.node})`;
    const status = fields.status === undefined ? '' : `${fields.status} `;
    super(
      code,
      `${status}${fields.reason}${where}`,
      fields.cause === undefined ? {} : { cause: fields.cause },
    );
    this.status = fields.status;
    this.reason = fields.reason;
    this.node = fields.node;
  }
}

export class BadRequestError extends RequestError {
  override name = 'BadRequestError';
}

export class UnavailableError extends RequestError {
  override name = 'UnavailableError';
}

export class TimeoutError extends RequestError {
  override name = 'TimeoutError';
}

export class ServerError extends RequestError {
  override name = 'ServerError';
}

const CODE_BY_STATUS: Readonly<Record<number, ErrorCode>> = {
  401: 'RINGKV_UNAUTHORIZED',
  413: 'RINGKV_VALUE_TOO_LARGE',
  414: 'RINGKV_KEY_TOO_LONG',
  504: 'RINGKV_NOT_ENOUGH_REPLICAS',
};

/**
 * The error for an answer that is not a success, a 404 read or a 503 (which
 * the client fails over on before it gets here).
 *
 *   errorForStatus(400, 'Bad ack: expected a positive integer', 'http://127.0.0.1:8080')
 *   // -> BadRequestError, code RINGKV_BAD_REQUEST, status 400
 */
export function errorForStatus(status: number, reason: string, node: string): RequestError {
  const fields = { status, reason: reason || `HTTP ${status}`, node };
  if (status >= 400 && status < 500) {
    return new BadRequestError(CODE_BY_STATUS[status] ?? 'RINGKV_BAD_REQUEST', fields);
  }
  if (status === 503 || status === 504) {
    return new UnavailableError(CODE_BY_STATUS[status] ?? 'RINGKV_UNAVAILABLE', fields);
  }
  return new ServerError('RINGKV_SERVER', fields);
}

/**
 * Whether `err` means the connection failed before an answer came: refused,
 * reset, closed, unreachable, or a range answer cut short. Such a request is
 * sent to the next node. fetch reports a network failure as a TypeError with
 * the socket's error as its cause ('fetch failed', or 'terminated' while the
 * body is read); node:net as a system error with a code.
 */
export function isConnectionFailure(err: unknown): boolean {
  if (err instanceof TypeError && err.cause !== undefined) return true;
  if (err instanceof ConnectionLost) return true;
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && CONNECTION_CODES.has(code);
}

const CONNECTION_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ETIMEDOUT',
]);

/** The node closed the connection before its answer was complete (a range without its last chunk). */
export class ConnectionLost extends Error {
  override name = 'ConnectionLost';
}

/** A short description of a connection failure, for UnavailableError's reason. */
export function connectionFailureReason(err: unknown): string {
  const cause = err instanceof TypeError && err.cause !== undefined ? err.cause : err;
  const code = (cause as { code?: unknown } | null)?.code;
  const message = cause instanceof Error ? cause.message : String(cause);
  return typeof code === 'string' && !message.includes(code) ? `${code}: ${message}` : message;
}
