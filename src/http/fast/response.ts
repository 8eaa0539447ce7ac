/**
 * A whole HTTP/1.1 answer in one buffer: status line, headers and body, so
 * that the socket gets one write (node:http sends its header string and the
 * body as two chunks of a writev). The headers are those node:http sends for
 * the same answer: content type and length, Date, and the connection's
 * keep-alive or close.
 */
import { STATUS_CODES } from 'node:http';

/** "HTTP/1.1 200 OK\r\n" and so on, built once per status. */
const statusLines = new Map<number, string>();

function statusLine(status: number): string {
  let line = statusLines.get(status);
  if (line === undefined) {
    line = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Unknown'}\r\n`;
    statusLines.set(status, line);
  }
  return line;
}

let dateSecond = -1;
let dateLine = '';

/** The Date header line, rebuilt at most once a second. */
function currentDateLine(): string {
  const nowMs = Date.now();
  const second = Math.floor(nowMs / 1000);
  if (second !== dateSecond) {
    dateSecond = second;
    dateLine = `date: ${new Date(second * 1000).toUTCString()}\r\n`;
  }
  return dateLine;
}

/**
 * The bytes of one answer. `connectionLines` is the Connection header and
 * its companions, ending in CRLF (see keepAliveLines, CLOSE_LINES).
 *
 *   encodeResponse(404, 'text/plain; charset=utf-8', 'Not found', CLOSE_LINES)
 */
export function encodeResponse(
  status: number,
  contentType: string | undefined,
  body: Buffer | string,
  connectionLines: string,
): Buffer {
  const bodyBytes = typeof body === 'string' ? Buffer.byteLength(body) : body.length;
  const head =
    statusLine(status) +
    (contentType === undefined ? '' : `content-type: ${contentType}\r\n`) +
    `content-length: ${bodyBytes}\r\n` +
    currentDateLine() +
    connectionLines +
    '\r\n';
  // Header text is ASCII, one byte per character.
  const out = Buffer.allocUnsafe(head.length + bodyBytes);
  out.write(head, 0, 'latin1');
  if (typeof body === 'string') out.write(body, head.length, 'utf8');
  else body.copy(out, head.length);
  return out;
}

/** The header lines of an answer that keeps the connection open. */
export function keepAliveLines(keepAliveTimeoutMs: number): string {
  return `connection: keep-alive\r\nkeep-alive: timeout=${Math.floor(keepAliveTimeoutMs / 1000)}\r\n`;
}

export const CLOSE_LINES = 'connection: close\r\n';

/**
 * Header lines for more fields (a traced answer's receipt), to go before
 * the connection lines: `name: value` CRLF each.
 *
 *   headerLines(['x-ringkv-version', '42']) === 'x-ringkv-version: 42\r\n'
 */
export function headerLines(headers: readonly string[]): string {
  let lines = '';
  for (let i = 0; i < headers.length; i += 2) lines += `${headers[i]}: ${headers[i + 1]}\r\n`;
  return lines;
}
