/**
 * Test support for the transport tests: a node:http server on 127.0.0.1
 * hosting an InternodeServer in front of a MemoryEngine, with knobs to make
 * the handler slow, hang or fail. Not used outside tests.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
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
