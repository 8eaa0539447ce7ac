/**
 * HTTP helpers for end-to-end tests: a promise-returning request over
 * node:http, URL builders for the API, and a raw keep-alive connection that
 * shows the bytes on the wire (chunk boundaries, a second request on the same
 * socket after a 413).
 */
import { type Agent, type IncomingHttpHeaders, request } from 'node:http';
import { connect, type Socket } from 'node:net';

export interface HttpAnswer {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
}

export interface RequestOptions {
  readonly method?: string;
  readonly body?: Buffer | string;
  readonly headers?: Record<string, string | number>;
  /** Default: a new connection per request. */
  readonly agent?: Agent | undefined;
  readonly timeoutMs?: number;
}

/** One request, the whole answer body collected. Rejects on network errors and after `timeoutMs` (10 s). */
export function httpRequest(url: string, options: RequestOptions = {}): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: options.method ?? 'GET',
        headers: options.headers,
        agent: options.agent ?? false,
        timeout: options.timeoutMs ?? 10_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () =>
          resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }),
        );
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`Request to ${url} timed out`)));
    req.on('error', reject);
    req.end(options.body);
  });
}

/** `/v0/entity?id=KEY&...`, the key and parameters percent-encoded. */
export function entityPath(key: string, params: Record<string, string | number> = {}): string {
  let path = `/v0/entity?id=${encodeURIComponent(key)}`;
  for (const [name, value] of Object.entries(params)) path += `&${name}=${encodeURIComponent(String(value))}`;
  return path;
}

/** `/v0/entities?start=S[&end=E]`. */
export function rangePath(start: string, end?: string): string {
  return `/v0/entities?start=${encodeURIComponent(start)}${end === undefined ? '' : `&end=${encodeURIComponent(end)}`}`;
}

export interface RawAnswer {
  readonly status: number;
  /** Header names lower-cased. */
  readonly headers: Record<string, string>;
  readonly body: Buffer;
  /** For a chunked answer: each chunk's data, in order (the final empty chunk left out). */
  readonly chunks: Buffer[] | undefined;
}

/**
 * One TCP connection speaking HTTP/1.1 by hand. Answers are parsed from the
 * bytes received: Content-Length and chunked bodies (all ringkv sends).
 */
export class RawConnection {
  readonly #socket: Socket;
  #buffer = Buffer.alloc(0);
  #ended = false;
  #waiter: (() => void) | undefined;

  private constructor(socket: Socket) {
    this.#socket = socket;
    socket.on('data', (chunk: Buffer) => {
      this.#buffer = Buffer.concat([this.#buffer, chunk]);
      this.#wake();
    });
    socket.on('close', () => {
      this.#ended = true;
      this.#wake();
    });
    socket.on('error', () => undefined);
  }

  static open(port: number, host = '127.0.0.1'): Promise<RawConnection> {
    return new Promise((resolve, reject) => {
      const socket = connect({ port, host }, () => {
        socket.off('error', reject);
        resolve(new RawConnection(socket));
      });
      socket.once('error', reject);
    });
  }

  get socket(): Socket {
    return this.#socket;
  }

  /** Writes bytes; resolves once they are handed to the OS (respecting back-pressure). */
  write(data: Buffer | string): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#socket.write(data, (err) => (err ? reject(err) : resolve()));
    });
  }

  /** Whether the server has closed the connection. */
  get ended(): boolean {
    return this.#ended;
  }

  /** Reads one whole answer; rejects if the connection closes first or after `timeoutMs`. */
  async readAnswer(timeoutMs = 10_000): Promise<RawAnswer> {
    const deadline = Date.now() + timeoutMs;
    const headEnd = await this.#waitFor(() => this.#buffer.indexOf('\r\n\r\n'), deadline);
    const head = this.#buffer.subarray(0, headEnd).toString('latin1').split('\r\n');
    const status = Number(head[0]!.split(' ')[1]);
    const headers: Record<string, string> = {};
    for (const line of head.slice(1)) {
      const colon = line.indexOf(':');
      headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
    }
    this.#consume(headEnd + 4);
    if (headers['transfer-encoding'] === 'chunked') {
      const chunks: Buffer[] = [];
      for (;;) {
        const lineEnd = await this.#waitFor(() => this.#buffer.indexOf('\r\n'), deadline);
        const size = Number.parseInt(this.#buffer.subarray(0, lineEnd).toString('latin1'), 16);
        await this.#waitFor(() => (this.#buffer.length >= lineEnd + 2 + size + 2 ? 0 : -1), deadline);
        const data = Buffer.from(this.#buffer.subarray(lineEnd + 2, lineEnd + 2 + size));
        this.#consume(lineEnd + 2 + size + 2);
        if (size === 0) return { status, headers, body: Buffer.concat(chunks), chunks };
        chunks.push(data);
      }
    }
    const length = Number(headers['content-length'] ?? '0');
    await this.#waitFor(() => (this.#buffer.length >= length ? 0 : -1), deadline);
    const body = Buffer.from(this.#buffer.subarray(0, length));
    this.#consume(length);
    return { status, headers, body, chunks: undefined };
  }

  /** Resolves true once the server has closed the connection, false after `timeoutMs`. */
  async waitClosed(timeoutMs: number): Promise<boolean> {
    try {
      await this.#waitFor(() => (this.#ended ? 0 : -1), Date.now() + timeoutMs, true);
      return true;
    } catch {
      return false;
    }
  }

  close(): void {
    this.#socket.destroy();
  }

  #consume(bytes: number): void {
    this.#buffer = this.#buffer.subarray(bytes);
  }

  async #waitFor(find: () => number, deadline: number, allowEnd = false): Promise<number> {
    for (;;) {
      const at = find();
      if (at >= 0) return at;
      if (this.#ended && !allowEnd) throw new Error('Connection closed before a whole answer arrived');
      const left = deadline - Date.now();
      if (left <= 0) throw new Error('Timed out waiting for an answer');
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.#waiter = undefined;
    }
  }

  #wake(): void {
    this.#waiter?.();
  }
}
