/**
 * Test support for the transport tests: a node:http server on 127.0.0.1
 * hosting an InternodeServer in front of a MemoryEngine, with knobs to make
 * the handler slow, hang or fail. Not used outside tests.
 */
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import type { InternodeHandler, ScanPage } from '../../src/cluster/transport/contract.js';
import {
  attachInternode,
  type InternodeServer,
  type InternodeServerOptions,
} from '../../src/cluster/transport/server.js';
import type { Entry } from '../../src/storage/entry/entry.js';
import { MemoryEngine } from '../../src/storage/memory-engine.js';

export class TestHandler implements InternodeHandler {
  readonly engine = new MemoryEngine();
  /** Keys (latin1) whose reads never answer. */
  readonly hang = new Set<string>();
  /** Thrown by every call while set. */
  failWith: unknown;
  /** Each call waits this many event-loop turns, drawn per call (answers come back out of order). */
  delayTurns: ((key: Buffer) => number) | undefined;
  /** Every write answers this conflict version while set (undefined: no conflict). */
  conflict: bigint | undefined;
  calls = 0;
  /** The URLs that announced LEAVING, in order. */
  readonly leavingFrom: string[] = [];
  /** The wall clock this node reports in PONG. */
  wallMs: () => number = Date.now;
  /** Set when built with serveAntiEntropy: answers `answer:` + the body, and keeps each body here. */
  readonly antiEntropy?: (body: Buffer) => Promise<Buffer>;
  readonly antiEntropyBodies: Buffer[] = [];

  constructor(options: { serveAntiEntropy?: boolean } = {}) {
    if (options.serveAntiEntropy === true) {
      this.antiEntropy = async (body) => {
        await this.#enter(body);
        this.antiEntropyBodies.push(body);
        return Buffer.concat([Buffer.from('answer:'), body]);
      };
    }
  }

  leaving(node: string): void {
    this.leavingFrom.push(node);
  }

  async write(entry: Entry): Promise<bigint | undefined> {
    await this.#enter(entry.key);
    await this.engine.write(entry);
    return this.conflict;
  }

  async read(key: Buffer): Promise<Entry | undefined> {
    await this.#enter(key);
    return this.engine.get(key);
  }

  async scan(start: Buffer, end: Buffer | undefined, limit: number): Promise<ScanPage> {
    await this.#enter(start);
    const cursor = this.engine.scan({ start, end });
    const entries: Entry[] = [];
    let more = false;
    try {
      for (let batch = await cursor.next(); batch !== undefined; batch = await cursor.next()) {
        for (const entry of batch) {
          if (entries.length === limit) {
            more = true;
            break;
          }
          entries.push(entry);
        }
        if (more) break;
      }
    } finally {
      await cursor.close();
    }
    return { entries, more };
  }

  async #enter(key: Buffer): Promise<void> {
    this.calls++;
    if (this.failWith !== undefined) throw this.failWith;
    if (this.hang.has(key.toString('latin1'))) await new Promise<never>(() => {});
    const turns = this.delayTurns?.(key) ?? 0;
    for (let i = 0; i < turns; i++) await new Promise<void>((resolve) => setImmediate(resolve));
  }
}

export interface TestPeer {
  readonly url: string;
  readonly port: number;
  readonly handler: TestHandler;
  readonly internode: InternodeServer;
  /** Cuts every connection and stops listening. */
  close(): Promise<void>;
}

export async function startPeer(
  options: InternodeServerOptions & { port?: number; handler?: TestHandler } = {},
): Promise<TestPeer> {
  const handler = options.handler ?? new TestHandler();
  const server = http.createServer((req, res) => {
    if (!internode.handleHttp(req, res)) res.writeHead(400).end('Bad request');
  });
  const internode = attachInternode(server, handler, options);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    handler,
    internode,
    close: async () => {
      internode.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/**
 * Blocks the event loop for `ms` right after the peer's next socket write
 * (with `key`: the next one after a read of that key reached its handler).
 * Client and peer share this process, so the answer just written waits
 * unread in the client's socket buffer meanwhile: the client's node seems
 * to pause (a GC, a long synchronous task) while its peer answers in time.
 * Returns the undo, for a pause that did not happen.
 */
export function pauseAfterNextAnswer(peer: TestPeer, ms: number, key?: string): () => void {
  const proto = net.Socket.prototype as unknown as Record<
    '_write' | '_writev',
    (...args: unknown[]) => unknown
  >;
  const original = { _write: proto._write, _writev: proto._writev };
  const read = peer.handler.read;
  let armed = key === undefined;
  const restore = (): void => {
    proto._write = original._write;
    proto._writev = original._writev;
    peer.handler.read = read;
  };
  if (key !== undefined) {
    peer.handler.read = (k: Buffer) => {
      if (k.toString('latin1') === key) armed = true;
      return read.call(peer.handler, k);
    };
  }
  for (const name of ['_write', '_writev'] as const) {
    proto[name] = function (this: net.Socket, ...args: unknown[]) {
      const result = original[name].apply(this, args);
      if (armed && this.localPort === peer.port) {
        restore();
        const until = Date.now() + ms;
        while (Date.now() < until) {
          // the event loop is blocked
        }
      }
      return result;
    };
  }
  return restore;
}

/** A port nothing listens on (bound, then released). */
export async function closedPort(): Promise<number> {
  const server = http.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const port = (server.address() as AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
