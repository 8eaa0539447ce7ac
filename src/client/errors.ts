/**
 * The client's errors. Every failure a caller meets is a RequestError, a
 * RingkvError (util/errors.ts) whose `code` is stable, with the HTTP status
 * that ended the request (if a node answered), the server's reason text (the
 * answer's body) and the node that gave it:
 *
 * | class | when | code |
 * | --- | --- | --- |
 * | BadRequestError | the node refused the request as bad: a bad parameter (400), a value too large (413), a key too long (414) | RINGKV_BAD_REQUEST, RINGKV_VALUE_TOO_LARGE, RINGKV_KEY_TOO_LONG |
 * | UnavailableError | 504 (too few replicas answered), or no node answered: every one refused, reset or closed the connection before answering, or answered 503 | RINGKV_NOT_ENOUGH_REPLICAS (504), RINGKV_UNAVAILABLE |
 * | TimeoutError | the call's deadline passed (`timeoutMs`) | RINGKV_TIMEOUT |
 * | ServerError | a 500, any other status the client does not expect (a redirect, which it never follows; a 401; a 404 on a write), or an answer it cannot read (not HTTP, a broken body, a range entry without a key, a status that is not JSON) | RINGKV_SERVER, RINGKV_PROTOCOL |
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

/** The statuses of a request the node refused as bad, the only ones that are BadRequestError. */
const BAD_REQUEST_CODES: Readonly<Record<number, ErrorCode>> = {
  400: 'RINGKV_BAD_REQUEST',
  413: 'RINGKV_VALUE_TOO_LARGE',
  414: 'RINGKV_KEY_TOO_LONG',
};

/**
 * The error for an answer that is not a success, a 404 read or a 503 (which
 * the client fails over on before it gets here). Only 400, 413 and 414 say
 * that the request was bad (README, docs/api.md: exit 2); any other status
 * the client does not expect, a 3xx or another 4xx included, is a
 * ServerError (exit 4): the client asked what a node answers, and the answer
 * is not one a node gives.
 *
 *   errorForStatus(400, 'Bad ack: expected a positive integer', 'http://127.0.0.1:8080')
 *   // -> BadRequestError, code RINGKV_BAD_REQUEST, status 400
 *   errorForStatus(307, '', 'http://127.0.0.1:8080')   // -> ServerError, code RINGKV_SERVER
 */
export function errorForStatus(status: number, reason: string, node: string): RequestError {
  const fields = { status, reason: reason || `HTTP ${status}`, node };
  const badRequest = BAD_REQUEST_CODES[status];
  if (badRequest !== undefined) return new BadRequestError(badRequest, fields);
  if (status === 503) return new UnavailableError('RINGKV_UNAVAILABLE', fields);
  if (status === 504) return new UnavailableError('RINGKV_NOT_ENOUGH_REPLICAS', fields);
  return new ServerError('RINGKV_SERVER', fields);
}

/**
 * Whether `err` means the connection failed before an answer came: refused,
 * reset, closed, unreachable, or a range answer cut short. Such a request is
 * sent to the next node. fetch reports a network failure as a TypeError with
 * the socket's error as its cause ('fetch failed', or 'terminated' while the
 * body is read); node:net as a system error with a code. An answer that came
 * but cannot be read (undici's parser errors, HPE_*) is no connection
 * failure: see answerFailure.
 */
export function isConnectionFailure(err: unknown): boolean {
  if (err instanceof ConnectionLost) return true;
  return CONNECTION_CODES.has(codeOf(fetchCause(err)) ?? '');
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
  // undici: the node closed the connection (before the answer, or during its body).
  'UND_ERR_SOCKET',
  // undici: no connection within its connect timeout (10 s).
  'UND_ERR_CONNECT_TIMEOUT',
]);

/** undici's own deadlines for the head and for each piece of the body (300 s each by default). */
const UNDICI_TIMEOUT_CODES = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT']);

/**
 * The library's error for a failure of a request that a node took: a
 * RequestError as it is; an answer that fetch could not read (not HTTP, a
 * broken body: undici's HPE_* parser errors and UND_ERR_* answer errors) a
 * ServerError RINGKV_PROTOCOL naming the node (and the status, if the head
 * was read); undici's own deadlines a TimeoutError; any other fetch failure
 * (fetch refusing the request) a ServerError RINGKV_SERVER. Anything else
 * (an abort's reason, a programming error) is given back as it is.
 * Connection failures are sorted out before, by isConnectionFailure.
 */
export function answerFailure(err: unknown, node: string, status?: number): unknown {
  if (err instanceof RequestError) return err;
  const cause = fetchCause(err);
  if (cause === err) return err;
  const code = codeOf(cause) ?? '';
  const reason = describeFailure(cause);
  if (UNDICI_TIMEOUT_CODES.has(code))
    return new TimeoutError('RINGKV_TIMEOUT', { status, reason, node, cause: err });
  if (code.startsWith('HPE_') || code.startsWith('UND_ERR_')) {
    return unreadableAnswer({ status, reason: `Unreadable answer: ${reason}`, node, cause: err });
  }
  // fetch refusing the request itself, e.g. 'bad port' for a port browsers block.
  return new ServerError('RINGKV_SERVER', {
    status,
    reason: `${(err as Error).message}: ${reason}`,
    node,
    cause: err,
  });
}

/** An answer the client cannot read: a ServerError RINGKV_PROTOCOL. */
export function unreadableAnswer(fields: RequestErrorFields): ServerError {
  return new ServerError('RINGKV_PROTOCOL', fields);
}

/** fetch's 'fetch failed' and 'terminated' TypeErrors carry the real failure as their cause. */
function fetchCause(err: unknown): unknown {
  return err instanceof TypeError && err.cause !== undefined ? err.cause : err;
}

/** A system error's code; an AggregateError (every address of a host failed) gives its first error's. */
function codeOf(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string') return code;
  if (err instanceof AggregateError) return codeOf(err.errors[0]);
  return undefined;
}

/** The node closed the connection before its answer was complete (a range without its last chunk). */
export class ConnectionLost extends Error {
  override name = 'ConnectionLost';
}

/** A short description of a connection failure, for UnavailableError's reason. */
export function connectionFailureReason(err: unknown): string {
  return describeFailure(fetchCause(err));
}

function describeFailure(cause: unknown): string {
  const code = codeOf(cause);
  const message = cause instanceof Error ? cause.message : String(cause);
  return code !== undefined && !message.includes(code) ? `${code}: ${message}` : message;
}
