/**
 * Test support for the replication tests: an in-process cluster of
 * ClusterStores over MemoryEngines, each with its own fake wall clock, joined
 * by a transport whose calls to a peer can be held (answered only when the
 * test releases them), failed, or refused as down. Not used outside tests.
 */

import { HybridClock } from '../../src/cluster/clock.js';
import { ClusterStore } from '../../src/cluster/replication/coordinator.js';
import { RecentWrites } from '../../src/cluster/replication/recent-writes.js';
import { Replica } from '../../src/cluster/replication/replica.js';
import { Ring } from '../../src/cluster/ring/index.js';
import type { InternodeHandler, ScanPage, Transport } from '../../src/cluster/transport/index.js';
import type { EntryCursor } from '../../src/storage/engine.js';
import type { Entry } from '../../src/storage/entry/entry.js';
import { MemoryEngine } from '../../src/storage/memory-engine.js';
import { RingkvError } from '../../src/util/errors.js';

interface _Call {
  readonly peer: string;
  readonly run: () => Promise<unknown>;
  readonly resolve: (value: unknown) => void;
  readonly reject: (err: unknown) => void;
}

/** A Transport straight into other nodes' handlers, with knobs per peer. */
export class HeldTransport implements Transport {
  readonly #handlers: ReadonlyMap<string, InternodeHandler>;
  /** Peers whose calls wait for release(). */
  readonly held = new Set<string>();
  /** Peers that refuse at once, like a transport's down state. */
  readonly down = new Set<string>();
  readonly #waiting: _Call[] = [];
  #closed = false;
  requests = 0;

  constructor(handlers: ReadonlyMap<string, InternodeHandler>) {
    this.#handlers = handlers;
  }

  write(peer: string, entry: Entry, _deadlineMs: number): Promise<bigint | undefined> {
    return this.#call(peer, (handler) => handler.write(entry)) as Promise<bigint | undefined>;
  }

  read(peer: string, key: Buffer, _deadlineMs: number): Promise<Entry | undefined> {
    return this.#call(peer, (handler) => handler.read(key)) as Promise<Entry | undefined>;
  }

  scan(
    peer: string,
    start: Buffer,
    end: Buffer | undefined,
    limit: number,
    _deadlineMs: number,
  ): Promise<ScanPage> {
    return this.#call(peer, (handler) => handler.scan(start, end, limit)) as Promise<ScanPage>;
  }

  antiEntropy(peer: string, body: Buffer, _deadlineMs: number): Promise<Buffer> {
    return this.#call(peer, (handler) => {
      if (handler.antiEntropy === undefined) {
        return Promise.reject(
          new RingkvError('RINGKV_BAD_REQUEST', `Peer ${peer} does not serve anti-entropy`),
        );
      }
      return handler.antiEntropy(body);
    }) as Promise<Buffer>;
  }

  isUp(peer: string): boolean {
    return !this.down.has(peer);
  }

  /** Calls held for `peer`, not yet released. */
  heldCount(peer: string): number {
    return this.#waiting.filter((call) => call.peer === peer).length;
  }

  /** Runs the calls held for `peer` on its handler and answers them. */
  release(peer: string): void {
    this.held.delete(peer);
    for (const call of this.#take(peer)) call.run().then(call.resolve, call.reject);
  }

  /** Rejects the calls held for `peer`. */
  failHeld(peer: string, err: unknown): void {
    for (const call of this.#take(peer)) call.reject(err);
  }

  async close(): Promise<void> {
    this.#closed = true;
    for (const call of this.#waiting.splice(0))
      call.reject(new RingkvError('RINGKV_CLOSED', 'Transport is closed'));
  }

  #take(peer: string): _Call[] {
    const taken = this.#waiting.filter((call) => call.peer === peer);
    for (const call of taken) this.#waiting.splice(this.#waiting.indexOf(call), 1);
    return taken;
  }

  #call(peer: string, run: (handler: InternodeHandler) => Promise<unknown>): Promise<unknown> {
    if (this.#closed) return Promise.reject(new RingkvError('RINGKV_CLOSED', 'Transport is closed'));
    this.requests++;
    const handler = this.#handlers.get(peer);
    if (handler === undefined || this.down.has(peer)) {
      return Promise.reject(new RingkvError('RINGKV_UNAVAILABLE', `Peer ${peer} is down`));
    }
    if (!this.held.has(peer)) return run(handler);
    return new Promise((resolve, reject) =>
      this.#waiting.push({ peer, run: () => run(handler), resolve, reject }),
    );
  }
}

export interface TestNode {
  readonly url: string;
  readonly engine: MemoryEngine;
  readonly clock: HybridClock;
  readonly replica: Replica;
  readonly store: ClusterStore;
  /** This node's view of the others. */
  readonly transport: HeldTransport;
  /** Added to the real clock for this node's wall time. */
  offsetMs: number;
}

export interface TestClusterOptions {
  readonly nodes: number;
  readonly requestTimeoutMs?: number;
  readonly conflictRetriesMax?: number;
  readonly scanPageEntries?: number;
  readonly readHedgeMs?: number;
  /** Per node, ms added to its wall clock. */
  readonly offsetsMs?: readonly number[];
  readonly windowMs?: number;
  /** Wraps each node's replica, e.g. to script its answers. */
  readonly wrapReplica?: (url: string, replica: Replica) => InternodeHandler;
  /** Each node's coordinator log lines. */
  readonly log?: (url: string, line: string) => void;
}

/** The ring makeTestCluster builds for `count` nodes. */
export function testRing(count: number): Ring {
  return new Ring(
    Array.from({ length: count }, (_, i) => `http://node-${i}:1`),
    { vnodesPerNode: 64 },
  );
}

/** Nodes http://node-0:1 ... (sorted as the ring sorts them for up to 10 nodes). */
export function makeTestCluster(options: TestClusterOptions): TestNode[] {
  const ring = testRing(options.nodes);
  const urls = ring.nodes;
  const handlers = new Map<string, InternodeHandler>();
  const nodes: TestNode[] = [];
  for (const [i, url] of urls.entries()) {
    const engine = new MemoryEngine();
    const node = { offsetMs: options.offsetsMs?.[i] ?? 0 } as { offsetMs: number };
    const clock = new HybridClock({ wallMs: () => Date.now() + node.offsetMs });
    const replica = new Replica({
      engine,
      clock,
      recentWrites: new RecentWrites({
        windowMs: options.windowMs ?? 3000,
        entriesMax: 10_000,
        keyBytesMax: 1 << 20,
        initialFloor: 0n,
      }),
    });
    handlers.set(url, options.wrapReplica?.(url, replica) ?? replica);
    const transport = new HeldTransport(handlers);
    const store = new ClusterStore({
      selfUrl: url,
      ring,
      engine,
      clock,
      transport,
      replica,
      requestTimeoutMs: options.requestTimeoutMs ?? 60_000,
      ...(options.conflictRetriesMax === undefined ? {} : { conflictRetriesMax: options.conflictRetriesMax }),
      ...(options.scanPageEntries === undefined ? {} : { scanPageEntries: options.scanPageEntries }),
      ...(options.readHedgeMs === undefined ? {} : { readHedgeMs: options.readHedgeMs }),
      ...(options.log === undefined ? {} : { log: (line: string) => options.log?.(url, line) }),
    });
    nodes.push(Object.assign(node, { url, engine, clock, replica, store, transport }));
  }
  return nodes;
}

/** Ends a test's cluster: every held call released, every store closed. */
export async function closeTestCluster(nodes: readonly TestNode[]): Promise<void> {
  for (const node of nodes) {
    for (const other of nodes) node.transport.release(other.url);
  }
  await Promise.all(nodes.map((node) => node.store.close()));
}

/** The peers `reader` asks for `key` (with from = every node), in order, when every peer is up. */
export function peersInReadOrder(nodes: readonly TestNode[], reader: TestNode, key: Buffer): TestNode[] {
  return testRing(nodes.length)
    .replicas(key, nodes.length)
    .filter((url) => url !== reader.url)
    .map((url) => nodes.find((n) => n.url === url)!);
}

/** Waits (bounded in turns) until `check` holds; false if it never did. */
export async function eventually(check: () => boolean | Promise<boolean>, turns = 200): Promise<boolean> {
  for (let i = 0; i < turns; i++) {
    if (await check()) return true;
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
  return check();
}

/** Every entry a cursor hands out, then closes it. */
export async function drainCursor(cursor: EntryCursor): Promise<Entry[]> {
  const entries: Entry[] = [];
  try {
    for (let batch = await cursor.next(); batch !== undefined; batch = await cursor.next())
      entries.push(...batch);
  } finally {
    await cursor.close();
  }
  return entries;
}
