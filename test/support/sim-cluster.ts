/**
 * Test support: nodes in one process, each an engine (wrapped in an
 * IndexedEngine whose index is a MemoryEngine) behind an InternodeHandler
 * and an AntiEntropyResponder, reached through SimTransport (writes, reads)
 * and an in-process stand-in for the ANTI_ENTROPY message that copies
 * bodies both ways, so nothing is shared by reference. Counts what travels.
 * Not used outside tests.
 */
import { setImmediate as nextTurn } from 'node:timers/promises';
import type { AntiEntropyTransport } from '../../src/cluster/antientropy/exchange.js';
import { IndexedEngine, type IndexStore } from '../../src/cluster/antientropy/indexed-engine.js';
import { AntiEntropyResponder } from '../../src/cluster/antientropy/responder.js';
import { AntiEntropy, type AntiEntropyOptions } from '../../src/cluster/antientropy/scheduler.js';
import { Ring } from '../../src/cluster/ring/index.js';
import type { InternodeHandler, ScanPage } from '../../src/cluster/transport/contract.js';
import { SimTransport } from '../../src/cluster/transport/sim-transport.js';
import { type Engine, type Entry, MemoryEngine } from '../../src/storage/index.js';
import { RingkvError } from '../../src/util/errors.js';

export class EngineHandler implements InternodeHandler {
  engine: Engine;

  constructor(engine: Engine) {
    this.engine = engine;
  }

  async write(entry: Entry): Promise<bigint | undefined> {
    await this.engine.write(entry);
    return undefined;
  }

  read(key: Buffer): Promise<Entry | undefined> {
    return this.engine.get(key);
  }

  async scan(start: Buffer, end: Buffer | undefined, limit: number): Promise<ScanPage> {
    const cursor = this.engine.scan({ start, end });
    const entries: Entry[] = [];
    try {
      for (let batch = await cursor.next(); batch !== undefined; batch = await cursor.next()) {
        entries.push(...batch);
        if (entries.length > limit) return { entries: entries.slice(0, limit), more: true };
      }
    } finally {
      await cursor.close();
    }
    return { entries, more: false };
  }
}

/** The counters tests assert on: what crossed the simulated network. */
export interface Traffic {
  writes: number;
  reads: number;
  digestRequests: number;
  summaryRequests: number;
}

export class SimAntiEntropyTransport implements AntiEntropyTransport {
  readonly #sim: SimTransport;
  readonly #responders: ReadonlyMap<string, AntiEntropyResponder>;
  readonly traffic: Traffic = { writes: 0, reads: 0, digestRequests: 0, summaryRequests: 0 };

  constructor(sim: SimTransport, responders: ReadonlyMap<string, AntiEntropyResponder>) {
    this.#sim = sim;
    this.#responders = responders;
  }

  write(peer: string, entry: Entry, deadlineMs: number): Promise<unknown> {
    this.traffic.writes++;
    return this.#sim.write(peer, entry, deadlineMs);
  }

  read(peer: string, key: Buffer, deadlineMs: number): Promise<Entry | undefined> {
    this.traffic.reads++;
    return this.#sim.read(peer, key, deadlineMs);
  }

  isUp(peer: string): boolean {
    return this.#sim.isUp(peer);
  }

  async antiEntropy(peer: string, request: Buffer, _deadlineMs: number): Promise<Buffer> {
    const responder = this.#responders.get(peer);
    if (responder === undefined || !this.#sim.isUp(peer)) {
      throw new RingkvError('RINGKV_UNAVAILABLE', `Peer ${peer} is down`);
    }
    if (request[0] === 1) this.traffic.digestRequests++;
    else this.traffic.summaryRequests++;
    await nextTurn();
    return Buffer.from(await responder.handle(Buffer.from(request)));
  }
}

export interface SimNode {
  readonly url: string;
  readonly handler: EngineHandler;
  /** The node's engine as its parts see it: writes through it keep the index and digests current. */
  readonly engine: IndexedEngine;
  readonly antiEntropy: AntiEntropy;
  readonly transport: SimAntiEntropyTransport;
}

/** Indexes in memory: a new MemoryEngine per open (wrapped by `wrap`, to count reads). */
export function memoryIndexes(wrap: (engine: Engine) => Engine = (engine) => engine): IndexStore {
  return { open: async () => wrap(new MemoryEngine()), clear: async () => {} };
}

/**
 * A cluster of `engines.length` nodes named http://sim-<i>:1. What the
 * engines hold when it is called is indexed before it resolves; later
 * writes must go through nodes[i].engine.
 */
export async function simCluster(
  engines: readonly Engine[],
  options: Partial<Omit<AntiEntropyOptions, 'selfUrl' | 'ring' | 'engine' | 'transport'>> & {
    readonly summaryLimits?: { entriesMax?: number };
    /** Node i's birth version (default: the birthVersion option, else none). */
    readonly birthVersionOf?: (index: number) => bigint | undefined;
    /** Wraps each index engine (to count what is read from it). */
    readonly wrapIndex?: (engine: Engine, node: number) => Engine;
  } = {},
): Promise<{ nodes: SimNode[]; ring: Ring; sim: SimTransport }> {
  const urls = engines.map((_, i) => `http://sim-${i}:1`);
  const ring = new Ring(urls, { vnodesPerNode: 64 });
  const indexed = await Promise.all(
    engines.map((main, i) =>
      IndexedEngine.open({
        main,
        indexes: memoryIndexes((engine) => options.wrapIndex?.(engine, i) ?? engine),
        verifyIntervalMs: 0,
        scanShare: 1,
      }),
    ),
  );
  for (const engine of indexed) {
    engine.watchRing(() => ring);
    await engine.settled();
  }
  const handlers = new Map(urls.map((url, i) => [url, new EngineHandler(indexed[i]!)]));
  const sim = new SimTransport(handlers, { seed: 11 });
  const responders = new Map(
    urls.map((url) => [
      url,
      new AntiEntropyResponder({
        selfUrl: url,
        ring,
        engine: indexed[urls.indexOf(url)]!,
        summaryLimits: options.summaryLimits ?? {},
      }),
    ]),
  );
  const { summaryLimits: _unused, birthVersionOf, wrapIndex: _wrap, ...rest } = options;
  const nodes = urls.map((url, index) => {
    const transport = new SimAntiEntropyTransport(sim, responders);
    const handler = handlers.get(url)!;
    const birthVersion = birthVersionOf?.(index);
    const antiEntropy = new AntiEntropy({
      ...rest,
      ...(birthVersion === undefined ? {} : { birthVersion }),
      selfUrl: url,
      ring,
      engine: indexed[index]!,
      transport,
    });
    return { url, handler, engine: indexed[index]!, antiEntropy, transport };
  });
  return { nodes, ring, sim };
}

/** Every entry of an engine, as comparable plain data. */
export async function dump(engine: Engine): Promise<string[]> {
  const out: string[] = [];
  const cursor = engine.scan({ start: Buffer.alloc(0) });
  try {
    for (let batch = await cursor.next(); batch !== undefined; batch = await cursor.next()) {
      for (const e of batch)
        out.push(`${e.key.toString('hex')}:${e.version}:${e.kind}:${e.value.toString('hex')}`);
    }
  } finally {
    await cursor.close();
  }
  return out;
}
