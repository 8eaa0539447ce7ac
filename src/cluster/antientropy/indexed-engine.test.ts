import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import fc from 'fast-check';
import { scanAll } from '../../../test/conformance/engine-suite.js';
import { propertyParams } from '../../../test/support/property.js';
import { memoryIndexes, simCluster } from '../../../test/support/sim-cluster.js';
import {
  type Engine,
  type Entry,
  type EntryCursor,
  LsmEngine,
  MemoryEngine,
  tombstoneEntry,
  valueEntry,
} from '../../storage/index.js';
import { isRingkvError, RingkvError } from '../../util/errors.js';
import { hash32, Ring } from '../ring/index.js';
import { ArcDigests } from './arc-digests.js';
import { lsmIndexes } from './index-store.js';
import { IndexedEngine, indexKey } from './indexed-engine.js';
import { valueHash } from './merkle.js';
import { indexedValueHash, summaryPage } from './scan.js';
import { treeFileIn } from './tree-file.js';

const dirs: string[] = [];
after(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

const URLS = ['http://n0:1', 'http://n1:1', 'http://n2:1'];
/** An expiry far ahead (ms since 1970): values with it never age out during a test. */
const FAR = 4_000_000_000_000;

function key(i: number): Buffer {
  return Buffer.from(`key-${String(i).padStart(5, '0')}`);
}

/** The digests and index a from-scratch computation over `main` gives. */
async function fromScratch(main: Engine, ring: Ring): Promise<{ words: number[]; index: string[] }> {
  const digests = new ArcDigests(ring);
  const index: string[] = [];
  for (const e of await scanAll(main)) {
    const hash = hash32(e.key);
    digests.add(hash, e.key, e.version, e.kind, valueHash(e), 1);
    index.push(`${indexKey(hash, e.key).toString('hex')}:${e.version}:${e.kind}:${valueHash(e)}`);
  }
  return { words: [...digests.words], index: index.sort() };
}

async function actual(engine: IndexedEngine, ring: Ring): Promise<{ words: number[]; index: string[] }> {
  await engine.settled();
  const digests = engine.digestsFor(ring);
  assert.ok(digests !== undefined, `tree ready (state ${engine.state})`);
  const index = (await scanAll(engine.index)).map(
    (e) => `${e.key.toString('hex')}:${e.version}:${e.kind}:${indexedValueHash(e)}`,
  );
  return { words: [...digests.words], index: index.sort() };
}

/** An index beside `main` in `dir`, with its tree file there, following `ring`, its lines kept in `lines`. */
async function openBeside(main: Engine, dir: string, ring: Ring, lines: string[]): Promise<IndexedEngine> {
  const engine = await IndexedEngine.open({
    main,
    indexes: lsmIndexes(dir),
    treeFile: treeFileIn(dir),
    log: (line) => lines.push(line),
    verifyIntervalMs: 0,
  });
  engine.watchRing(() => ring);
  await engine.settled();
  return engine;
}

/** An engine that counts the entries read from it (scans and gets). */
class Counting implements Engine {
  readonly inner: Engine;
  read = 0;
  constructor(inner: Engine) {
    this.inner = inner;
  }
  write(entry: Entry) {
    return this.inner.write(entry);
  }
  async get(k: Buffer) {
    const entry = await this.inner.get(k);
    if (entry !== undefined) this.read++;
    return entry;
  }
  scan(range: { start: Buffer; end?: Buffer | undefined }): EntryCursor {
    const cursor = this.inner.scan(range);
    return {
      next: async () => {
        const batch = await cursor.next();
        if (batch !== undefined) this.read += batch.length;
        return batch;
      },
      close: () => cursor.close(),
    };
  }
  flush() {
    return this.inner.flush();
  }
  compact() {
    return this.inner.compact();
  }
  snapshot(dir: string) {
    return this.inner.snapshot(dir);
  }
  purge(...args: Parameters<NonNullable<Engine['purge']>>) {
    return this.inner.purge!(...args);
  }
  stats() {
    return this.inner.stats();
  }
  close() {
    return this.inner.close();
  }
}

/** The index directory the saved tree of `dir` describes (its slot: the u32 at offset 8 of aae/TREE). */
async function savedIndexDir(dir: string): Promise<string> {
  const tree = await readFile(join(dir, 'aae', 'TREE'));
  return join(dir, 'aae', `index-${tree.readUInt32BE(8)}`);
}

describe('IndexedEngine', () => {
  it('keeps the index and the arc digests equal to a from-scratch computation under concurrent writes (several values of one version among them), ring changes, rebuilds and purges (property)', async () => {
    const op = fc.oneof(
      {
        weight: 20,
        arbitrary: fc.record({
          kind: fc.constant('write' as const),
          key: fc.integer({ min: 0, max: 30 }),
          version: fc.bigInt({ min: 1n, max: 40n }),
          tombstone: fc.boolean(),
          // Several values per version: one version stamped by two coordinators.
          value: fc.integer({ min: 0, max: 3 }),
        }),
      },
      {
        // Two values (or expiries) of one version of a key, one after the other: the index must follow
        // the store's choice (the larger value, then the later expiry), whichever comes second, and
        // whatever its hash.
        weight: 5,
        arbitrary: fc.record({
          kind: fc.constant('twice' as const),
          key: fc.integer({ min: 0, max: 30 }),
          version: fc.bigInt({ min: 30n, max: 44n }),
          first: fc.integer({ min: 0, max: 3 }),
          second: fc.integer({ min: 0, max: 3 }),
          firstExpiry: fc.constantFrom(0, FAR, FAR + 1),
          secondExpiry: fc.constantFrom(0, FAR, FAR + 1),
        }),
      },
      {
        weight: 1,
        arbitrary: fc.record({ kind: fc.constant('ring' as const), size: fc.integer({ min: 2, max: 4 }) }),
      },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant('rebuild' as const) }) },
      {
        weight: 1,
        arbitrary: fc.record({
          kind: fc.constant('purge' as const),
          from: fc.integer({ min: 0, max: 2 ** 31 }),
          versionMax: fc.bigInt({ min: 0n, max: 40n }),
        }),
      },
    );
    await fc.assert(
      fc.asyncProperty(fc.array(fc.array(op, { maxLength: 12 }), { maxLength: 12 }), async (batches) => {
        const main = new MemoryEngine();
        const engine = await IndexedEngine.open({
          main,
          indexes: memoryIndexes(),
          verifyIntervalMs: 0,
          scanShare: 1,
        });
        let ring = new Ring(URLS, { vnodesPerNode: 16 });
        engine.watchRing(() => ring);
        // Each batch runs at once: writes of one key overlap, and with a digest computation or a rebuild.
        for (const batch of batches) {
          await Promise.all(
            batch.map((o) => {
              if (o.kind === 'write') {
                const entry = o.tombstone
                  ? tombstoneEntry(key(o.key), o.version)
                  : valueEntry(key(o.key), o.version, Buffer.from(`v${o.version}-${o.value}`));
                return engine.write(entry);
              }
              if (o.kind === 'twice') {
                const write = (value: number, expiresAtMs: number) =>
                  engine.write(
                    valueEntry(key(o.key), o.version, Buffer.from(`v${o.version}-${value}`), expiresAtMs),
                  );
                return write(o.first, o.firstExpiry).then(() => write(o.second, o.secondExpiry));
              }
              if (o.kind === 'ring') {
                ring = new Ring(
                  URLS.slice(0, 1).concat([...Array(o.size - 1)].map((_, i) => `http://m${i}:1`)),
                  { vnodesPerNode: 16 },
                );
                engine.digestsFor(ring);
                return Promise.resolve();
              }
              if (o.kind === 'rebuild') {
                engine.rebuild('test');
                return Promise.resolve();
              }
              return engine.purge({ hashRanges: [o.from, o.from + 2 ** 31], versionMax: o.versionMax });
            }),
          );
        }
        assert.deepEqual(await actual(engine, ring), await fromScratch(main, ring));
        await engine.close();
      }),
      propertyParams({ numRuns: 60 }),
    );
  });

  it('persists the tree at a clean close, adopts it at start, and rebuilds a damaged one, naming the file and the checksum mismatch', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ringkv-aae-'));
    dirs.push(dir);
    const ring = new Ring(URLS, { vnodesPerNode: 64 });
    const lines: string[] = [];
    const open = async () => {
      const main = await LsmEngine.open({ dir, sync: false });
      return { main, engine: await openBeside(main, dir, ring, lines) };
    };
    let { main, engine } = await open();
    for (let i = 0; i < 500; i++) {
      await engine.write(
        i % 10 === 0
          ? tombstoneEntry(key(i), 9n)
          : valueEntry(key(i), 5n, Buffer.from('x'), i % 10 === 1 ? FAR : 0),
      );
    }
    const expected = await fromScratch(main, ring);
    assert.deepEqual(await actual(engine, ring), expected);
    await engine.close();
    const path = join(dir, 'aae', 'TREE');
    const bytes = await readFile(path);

    // A clean restart adopts the file: no rebuild, same digests.
    lines.length = 0;
    ({ main, engine } = await open());
    assert.equal(engine.treeStats().rebuilds, 0, lines.join('\n'));
    assert.deepEqual(await actual(engine, ring), expected);
    await engine.close();

    // Damaged while stopped: one byte of a digest flipped.
    const damaged = await readFile(path);
    assert.deepEqual(damaged, bytes);
    damaged[100] = damaged[100]! ^ 0x40;
    await writeFile(path, damaged);
    lines.length = 0;
    ({ main, engine } = await open());
    const line = lines.find((l) => l.includes('checksum mismatch'));
    assert.ok(line?.includes(path), `a line names ${path} and the mismatch: ${lines.join('\n')}`);
    assert.equal(engine.treeStats().rebuilds, 1);
    assert.deepEqual(await actual(engine, ring), expected);

    // A tree of an earlier format (1: no value hashes; 2: value hashes without the expiry) is rebuilt,
    // with its index, not adopted: they hold other hashes.
    for (const format of ['1', '2']) {
      await engine.close();
      const previous = await readFile(path);
      previous[7] = format.charCodeAt(0);
      await writeFile(path, previous);
      lines.length = 0;
      ({ main, engine } = await open());
      assert.ok(
        lines.some((l) => l.includes(`${path}: format ${format} (this build reads 3)`)),
        lines.join('\n'),
      );
      assert.equal(engine.treeStats().rebuilds, 1);
      assert.deepEqual(await actual(engine, ring), expected);
    }

    // A crash leaves no file (the start deleted it): the next start rebuilds.
    await engine.close();
    await rm(path);
    lines.length = 0;
    ({ main, engine } = await open());
    assert.ok(
      lines.some((l) => l.includes('missing')),
      lines.join('\n'),
    );
    assert.deepEqual(await actual(engine, ring), expected);
    await engine.close();
  });

  it('rebuilds the index, naming the file, when the index a valid saved tree describes is damaged', async () => {
    const ring = new Ring(URLS, { vnodesPerNode: 64 });
    // What a stopped node's disk can suffer: the index's MANIFEST emptied, or a table's footer changed.
    const damages: [string, (slotDir: string) => Promise<string>][] = [
      [
        'an empty MANIFEST',
        async (slotDir) => {
          await writeFile(join(slotDir, 'MANIFEST'), '');
          return join(slotDir, 'MANIFEST');
        },
      ],
      [
        'a flipped footer byte',
        async (slotDir) => {
          const table = (await readdir(slotDir)).find((name) => name.endsWith('.sst'));
          assert.ok(table !== undefined, `a table in ${slotDir}`);
          const bytes = await readFile(join(slotDir, table));
          bytes[bytes.length - 20] = bytes[bytes.length - 20]! ^ 0xff;
          await writeFile(join(slotDir, table), bytes);
          return join(slotDir, table);
        },
      ],
    ];
    for (const [what, damage] of damages) {
      const dir = await mkdtemp(join(tmpdir(), 'ringkv-aae-'));
      dirs.push(dir);
      const lines: string[] = [];
      let main = await LsmEngine.open({ dir, sync: false });
      let engine = await openBeside(main, dir, ring, lines);
      for (let i = 0; i < 200; i++) await engine.write(valueEntry(key(i), 5n, Buffer.from('x'), 0));
      await engine.close();
      const slotDir = await savedIndexDir(dir);
      const damaged = await damage(slotDir);

      lines.length = 0;
      main = await LsmEngine.open({ dir, sync: false });
      engine = await openBeside(main, dir, ring, lines).catch(async (err: unknown) => {
        await main.close();
        throw err;
      });
      try {
        assert.ok(
          lines.some((l) => l.startsWith('warning: ') && l.includes(damaged)),
          `${what}: a warning names ${damaged}: ${lines.join('\n')}`,
        );
        assert.equal(engine.treeStats().rebuilds, 1, what);
        assert.deepEqual(await actual(engine, ring), await fromScratch(main, ring), what);
      } finally {
        await engine.close();
      }
    }
  });

  it('rebuilds the index, once and naming the file, when a read of it finds a damaged data block while the node runs', async () => {
    const ring = new Ring(URLS, { vnodesPerNode: 64 });
    const dir = await mkdtemp(join(tmpdir(), 'ringkv-aae-'));
    dirs.push(dir);
    const lines: string[] = [];
    let main = await LsmEngine.open({ dir, sync: false });
    let engine = await openBeside(main, dir, ring, lines);
    for (let i = 0; i < 200; i++) await engine.write(valueEntry(key(i), 5n, Buffer.from('x'), 0));
    /** Closes, then flips a byte of the first data block of a table of the saved tree's index. */
    const closeAndDamage = async (): Promise<string> => {
      await engine.close();
      const slotDir = await savedIndexDir(dir);
      const table = (await readdir(slotDir)).find((name) => name.endsWith('.sst'));
      assert.ok(table !== undefined, `a table in ${slotDir}`);
      const bytes = await readFile(join(slotDir, table));
      bytes[10] = bytes[10]! ^ 0xff;
      await writeFile(join(slotDir, table), bytes);
      return join(slotDir, table);
    };
    const reopen = async () => {
      lines.length = 0;
      main = await LsmEngine.open({ dir, sync: false });
      engine = await openBeside(main, dir, ring, lines);
      // The footer and MANIFEST are sound: the saved tree is adopted.
      assert.equal(engine.treeStats().rebuilds, 0, lines.join('\n'));
    };

    // A responder's summary pages over every hash: two under way together fail, and one rebuild follows.
    let damaged = await closeAndDamage();
    await reopen();
    assert.equal(engine.state, 'ready');
    const page = () =>
      summaryPage(engine.index, [0, 2 ** 32], Buffer.alloc(0), {
        entriesMax: 1000,
        bytesMax: 1 << 20,
        yieldEntries: 1000,
      });
    const reads = await Promise.allSettled([page(), page()]);
    for (const read of reads) {
      assert.ok(read.status === 'rejected' && isRingkvError(read.reason, 'RINGKV_CORRUPTION'), String(read));
    }
    await engine.settled();
    assert.equal(engine.treeStats().rebuilds, 1, lines.join('\n'));
    assert.ok(engine.treeStats().lastRebuildReason?.includes(damaged), engine.treeStats().lastRebuildReason);
    assert.ok(
      lines.some((l) => l.startsWith('warning: ') && l.includes(damaged)),
      `a warning names ${damaged}: ${lines.join('\n')}`,
    );
    assert.deepEqual(await actual(engine, ring), await fromScratch(main, ring));
    assert.equal((await page()).page.summaries.length, 200);
    assert.equal(engine.treeStats().rebuilds, 1);

    // Digests for a new ring read the whole index: the damage found there rebuilds it too.
    damaged = await closeAndDamage();
    await reopen();
    const other = new Ring(URLS, { vnodesPerNode: 32 });
    engine.watchRing(() => other);
    await engine.settled();
    assert.equal(engine.treeStats().rebuilds, 1, lines.join('\n'));
    assert.ok(engine.treeStats().lastRebuildReason?.includes(damaged), engine.treeStats().lastRebuildReason);
    assert.deepEqual(await actual(engine, other), await fromScratch(main, other));
    await engine.close();
  });

  it('updates of one key, and of keys that share a chain slot, never overlap: the index ends as the store is', async () => {
    const ring = new Ring(URLS, { vnodesPerNode: 64 });
    // Index reads that take a random number of turns, so that updates left unchained would interleave.
    let seed = 11;
    const turns = (): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return (seed >>> 16) % 6; // the high bits: an LCG's low ones repeat in short cycles
    };
    const main = new MemoryEngine();
    const engine = await IndexedEngine.open({
      main,
      indexes: memoryIndexes((index) =>
        hooked(index, {
          // The delay comes after the read: an update's read and its write are then turns apart.
          get: async (k) => {
            const found = await index.get(k);
            for (let n = turns(); n > 0; n--) await new Promise((resolve) => setImmediate(resolve));
            return found;
          },
        }),
      ),
      verifyIntervalMs: 0,
    });
    engine.watchRing(() => ring);
    await engine.settled();
    // Waves of writes, each sent a random number of turns after the one before, so that updates
    // arrive while others of the key run and others wait: 2 keys, written at rising versions.
    for (let wave = 0; wave < 20; wave++) {
      const writes: Promise<void>[] = [];
      for (let n = 0; n < 30; n++) {
        const version = BigInt(wave * 100 + n + 1);
        writes.push(engine.write(valueEntry(key(n % 2), version, Buffer.from(`w${wave}-${n}`), 0)));
        for (let t = turns(); t > 3; t--) await new Promise((resolve) => setImmediate(resolve));
      }
      await Promise.all(writes);
    }
    await engine.settled();
    assert.equal(engine.state, 'ready');
    assert.deepEqual(await actual(engine, ring), await fromScratch(main, ring));
    await engine.close();
  });

  it('a write that cannot even start (no key) rejects, as an async write would, rather than throwing', async () => {
    const engine = await IndexedEngine.open({
      main: new MemoryEngine(),
      indexes: memoryIndexes(),
      verifyIntervalMs: 0,
    });
    const bad = { ...valueEntry(key(1), 5n, Buffer.from('x'), 0), key: undefined as unknown as Buffer };
    let returned: Promise<void> | undefined;
    assert.doesNotThrow(() => {
      returned = engine.write(bad);
    });
    await assert.rejects(returned!, TypeError);
    await engine.close();
  });

  it('a read of the index that fails with an error other than damage does not rebuild it', async () => {
    const ring = new Ring(URLS, { vnodesPerNode: 64 });
    let failScans = false;
    const engine = await IndexedEngine.open({
      main: new MemoryEngine(),
      indexes: memoryIndexes((index) =>
        hooked(index, {
          scan: (range) => {
            if (!failScans) return index.scan(range);
            return {
              next: () => Promise.reject(new RingkvError('RINGKV_IO', 'EIO: simulated read error')),
              close: async () => {},
            };
          },
        }),
      ),
      verifyIntervalMs: 0,
    });
    engine.watchRing(() => ring);
    for (let i = 0; i < 20; i++) await engine.write(valueEntry(key(i), 5n, Buffer.from('x'), 0));
    await engine.settled();
    const rebuilds = engine.treeStats().rebuilds;
    failScans = true;
    await assert.rejects(scanAll(engine.index), { code: 'RINGKV_IO' });
    await engine.settled();
    assert.equal(engine.treeStats().rebuilds, rebuilds);
    assert.equal(engine.state, 'ready');
    await engine.close();
  });

  it('does not adopt a saved tree that counts entries when the store beside it is empty (its files gone, aae/ kept)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ringkv-aae-'));
    dirs.push(dir);
    const ring = new Ring(URLS, { vnodesPerNode: 64 });
    const lines: string[] = [];
    const open = (main: Engine) => openBeside(main, dir, ring, lines);
    let engine = await open(new MemoryEngine());
    for (let i = 0; i < 50; i++) await engine.write(valueEntry(key(i), 5n, Buffer.from('x'), 0));
    await engine.close();

    // The same aae/ beside a store that holds nothing: the tree is rebuilt, and counts nothing.
    const empty = new MemoryEngine();
    engine = await open(empty);
    try {
      assert.ok(
        lines.some((l) => l.includes('the store is empty but the saved tree counts 50 entries')),
        lines.join('\n'),
      );
      assert.equal(engine.treeStats().rebuilds, 1);
      assert.deepEqual(await actual(engine, ring), await fromScratch(empty, ring));
    } finally {
      await engine.close();
    }
  });

  it('an exchange between agreeing replicas reads no entry; N differing keys read the differing buckets only', async () => {
    const keys = 4000;
    // Paced reads rest on unref'd timers (a node's server keeps its loop alive): this test keeps its own alive.
    const keepAlive = setInterval(() => {}, 1000);
    after(() => clearInterval(keepAlive));
    const mains = [new MemoryEngine(), new MemoryEngine()];
    for (let i = 0; i < keys; i++) {
      for (const m of mains) await m.write(valueEntry(key(i), 3n, Buffer.from('v')));
    }
    const counted: Counting[] = [];
    const countedMains = mains.map((m) => new Counting(m));
    const { nodes, ring } = await simCluster(countedMains, {
      leafBits: 10,
      wrapIndex: (engine) => {
        const c = new Counting(engine);
        counted.push(c);
        return c;
      },
    });
    const readSoFar = () => [...counted, ...countedMains].reduce((s, c) => s + c.read, 0);
    const base = readSoFar();
    const [equal] = await nodes[0]!.antiEntropy.runOnce();
    assert.equal(equal?.equal, true);
    assert.equal(readSoFar() - base, 0, 'no index or store entry read');
    assert.equal(equal?.entriesRead, 0);

    // A key's bucket is that of its arc's point; the summaries list every key of the differing buckets.
    const bucketOfKey = (k: Buffer) => ring.pointPosition(ring.pointOf(hash32(k))) >>> 22;
    for (const n of [1, 10, 40]) {
      // Node 1 misses new versions of n keys.
      const changed = Array.from({ length: n }, (_, i) => key(i * 97));
      for (const k of changed) await nodes[0]!.engine.write(valueEntry(k, 10n + BigInt(n), Buffer.from('w')));
      const differing = new Set(changed.map(bucketOfKey));
      let inDiffering = 0;
      for (let i = 0; i < keys; i++) if (differing.has(bucketOfKey(key(i)))) inDiffering++;
      const before = readSoFar();
      const [result] = await nodes[1]!.antiEntropy.runOnce();
      assert.equal(result?.pulled, n);
      const read = readSoFar() - before;
      // Both sides read the index over the differing buckets (a page's look-ahead may add a batch), no more.
      assert.ok(read >= n, `read ${read}`);
      assert.ok(
        read <= 2 * inDiffering + 2 * n + 256,
        `n ${n}: read ${read}, ${inDiffering} keys in the differing buckets`,
      );
      // Few differing keys: a small part of the store (with 128 arcs here, 40 keys touch most of them).
      if (n <= 10) assert.ok(read < keys / 2, `n ${n}: read ${read} of ${keys}`);
      const [again] = await nodes[1]!.antiEntropy.runOnce();
      assert.equal(again?.equal, true);
    }
  });
});

/** Versions of now, as a node stamps them: tombstones this young are not aged out by a compaction. */
const NOW = BigInt(Date.now()) << 16n;

/** `inner` with some calls replaced (faults injected by the tests below). */
function hooked(
  inner: Engine,
  hooks: {
    write?: (entry: Entry) => Promise<void>;
    get?: (key: Buffer) => Promise<Entry | undefined>;
    scan?: (range: { start: Buffer; end?: Buffer | undefined }) => EntryCursor;
    close?: () => Promise<void>;
    purge?: NonNullable<Engine['purge']>;
  },
): Engine {
  const counting = new Counting(inner);
  return {
    write: hooks.write ?? ((entry) => counting.write(entry)),
    get: hooks.get ?? ((k) => counting.get(k)),
    scan: hooks.scan ?? ((range) => counting.scan(range)),
    flush: () => counting.flush(),
    compact: () => counting.compact(),
    snapshot: (dir) => counting.snapshot(dir),
    purge: hooks.purge ?? ((filter, options) => counting.purge(filter, options)),
    stats: () => counting.stats(),
    close: hooks.close ?? (() => counting.close()),
  };
}

describe('IndexedEngine: failures and shutdown', () => {
  const ring = new Ring(URLS, { vnodesPerNode: 64 });

  async function tempDir(): Promise<string> {
    const dir = await mkdtemp(join(tmpdir(), 'ringkv-aae-'));
    dirs.push(dir);
    return dir;
  }

  async function openOn(
    dir: string,
    options: { beforeRing?: (engine: IndexedEngine) => Promise<void>; main?: (main: Engine) => Engine } = {},
  ) {
    const store = await LsmEngine.open({ dir, sync: false });
    const main = options.main?.(store) ?? store;
    const lines: string[] = [];
    const engine = await IndexedEngine.open({
      main,
      indexes: lsmIndexes(dir),
      treeFile: treeFileIn(dir),
      verifyIntervalMs: 0,
      log: (line) => lines.push(line),
    });
    await options.beforeRing?.(engine);
    engine.watchRing(() => ring);
    await engine.settled();
    return { main, engine, lines };
  }

  it('close() waits for the writes under way before it saves the tree, and refuses writes after it began', async () => {
    const dir = await tempDir();
    let { main, engine } = await openOn(dir);
    for (let i = 0; i < 100; i++) await engine.write(valueEntry(key(i), NOW + 5n, Buffer.from('x')));
    const inFlight = Array.from({ length: 10 }, (_, i) =>
      engine.write(valueEntry(key(100 + i), NOW + 6n, Buffer.from('y'))),
    );
    const closing = engine.close();
    await assert.rejects(engine.write(valueEntry(key(999), NOW + 7n, Buffer.from('z'))), {
      code: 'RINGKV_CLOSED',
    });
    await Promise.all(inFlight);
    await closing;

    // The saved tree is adopted and holds all 110 keys, as the store does.
    ({ main, engine } = await openOn(dir));
    assert.equal(engine.treeStats().rebuilds, 0, 'the tree was saved and adopted');
    const expected = await fromScratch(main, ring);
    assert.equal(expected.index.length, 110);
    assert.deepEqual(await actual(engine, ring), expected);
    // A key written again at its own version changes nothing: it was indexed once.
    await engine.write(valueEntry(key(105), NOW + 6n, Buffer.from('y')));
    assert.deepEqual(await actual(engine, ring), expected);
    await engine.close();
  });

  it('close() abandons a purge under way: it rejects with RINGKV_CLOSED, no tree is saved, and the next start rebuilds', async () => {
    const dir = await tempDir();
    let started!: () => void;
    const purging = new Promise<void>((resolve) => (started = resolve));
    let abandoned = false;
    const { engine } = await openOn(dir, {
      main: (store) =>
        hooked(store, {
          // A purge as long as rewriting a large store: it ends when abandoned, or after 10 s.
          purge: (_filter, options) =>
            new Promise<void>((resolve, reject) => {
              started();
              const timer = setTimeout(resolve, 10_000);
              options?.signal?.addEventListener('abort', () => {
                clearTimeout(timer);
                abandoned = true;
                reject(options.signal?.reason);
              });
            }),
        }),
    });
    for (let i = 0; i < 100; i++) await engine.write(valueEntry(key(i), NOW + 5n, Buffer.from('x')));
    const outcome = (purge: Promise<void>) =>
      purge.then(
        () => 'done',
        (err: unknown) => err,
      );
    const purge = outcome(engine.purge({ hashRanges: [0, 2 ** 31], versionMax: NOW + 5n }));
    const queued = outcome(engine.purge({ hashRanges: [2 ** 31, 2 ** 32], versionMax: NOW + 5n }));
    await purging;
    await engine.close();
    assert.ok(abandoned, "the store's purge was told to stop");
    assert.ok(isRingkvError(await purge, 'RINGKV_CLOSED'), String(await purge));
    assert.ok(isRingkvError(await queued, 'RINGKV_CLOSED'), String(await queued));
    await assert.rejects(engine.purge({ hashRanges: [0, 1], versionMax: NOW }), { code: 'RINGKV_CLOSED' });
    // The digests were out of date: no tree; the next start rebuilds the index from the store, which kept every key.
    await assert.rejects(readFile(join(dir, 'aae', 'TREE')), { code: 'ENOENT' });
    const again = await openOn(dir);
    assert.equal(again.engine.treeStats().rebuilds, 1);
    const expected = await fromScratch(again.main, ring);
    assert.equal(expected.index.length, 100);
    assert.deepEqual(await actual(again.engine, ring), expected);
    await again.engine.close();
  });

  /** A purge's outcome: 'done', or what it rejected with. */
  const outcome = (purge: Promise<void>) =>
    purge.then(
      () => 'done',
      (err: unknown) => err,
    );
  const ALL = { hashRanges: [0, 2 ** 32], versionMax: NOW + 10n };

  it('a purge abandoned while it waits its turn drops nothing: what was written meanwhile stays, store and index alike', async () => {
    const dir = await tempDir();
    /** Set: the store's scans (a rebuild's) wait for it. */
    let hold: Promise<void> | undefined;
    let release!: () => void;
    let scanning!: () => void;
    const scanned = new Promise<void>((resolve) => (scanning = resolve));
    const { main, engine } = await openOn(dir, {
      main: (store) =>
        hooked(store, {
          scan: (range) => {
            const cursor = store.scan(range);
            const gate = hold;
            if (gate === undefined) return cursor;
            scanning();
            return {
              next: async () => {
                await gate;
                return cursor.next();
              },
              close: () => cursor.close(),
            };
          },
        }),
    });
    for (let i = 0; i < 100; i++) await engine.write(valueEntry(key(i), NOW + 5n, Buffer.from('x')));
    hold = new Promise<void>((resolve) => (release = resolve));
    engine.rebuild('a long rebuild');
    await scanned;
    // Its turn comes after the rebuild; meanwhile the membership changes, and a new move streams keys in.
    const abandon = new AbortController();
    const purge = outcome(engine.purge(ALL, { signal: abandon.signal }));
    for (let i = 100; i < 150; i++) await engine.write(valueEntry(key(i), NOW + 6n, Buffer.from('y')));
    const reason = new Error('the membership changed');
    abandon.abort(reason);
    release();
    assert.equal(await purge, reason);
    const expected = await fromScratch(main, ring);
    assert.equal(expected.index.length, 150, 'the store kept every key');
    assert.deepEqual(await actual(engine, ring), expected);
    await engine.close();
  });

  it("a purge abandoned while the store's part runs: that part is told to stop; if it ends all the same, the index follows", async () => {
    const dir = await tempDir();
    const reason = new Error('the membership changed');
    let abandon = new AbortController();
    /** Whether the store's purge heeds its signal, or ends as if the abort came too late for it. */
    let heeds = true;
    const { main, engine } = await openOn(dir, {
      main: (store) =>
        hooked(store, {
          purge: async (filter, options) => {
            // The caller abandons the purge once the store's part runs.
            abandon.abort(reason);
            if (heeds) options?.signal?.throwIfAborted();
            await store.purge!(filter);
          },
        }),
    });
    for (let i = 0; i < 100; i++) await engine.write(valueEntry(key(i), NOW + 5n, Buffer.from('x')));
    assert.equal(await outcome(engine.purge(ALL, { signal: abandon.signal })), reason);
    let expected = await fromScratch(main, ring);
    assert.equal(expected.index.length, 100, 'the store kept every key');
    assert.deepEqual(await actual(engine, ring), expected);
    heeds = false;
    abandon = new AbortController();
    assert.equal(await outcome(engine.purge(ALL, { signal: abandon.signal })), 'done');
    expected = await fromScratch(main, ring);
    assert.equal(expected.index.length, 0, 'the store dropped every key');
    assert.deepEqual(await actual(engine, ring), expected, 'the index dropped them too');
    await engine.close();
  });

  it("an index purge that fails after the store's part rebuilds the index, so no purged key stays in the digests", async () => {
    const dir = await tempDir();
    const store = await LsmEngine.open({ dir, sync: false });
    const lsm = lsmIndexes(dir);
    let failPurge = true;
    // The index's purge fails once (a full disk, say), after the store's has dropped the keys.
    const indexes = {
      clear: (slot: 0 | 1) => lsm.clear(slot),
      open: async (slot: 0 | 1) => {
        const index = await lsm.open(slot);
        return hooked(index, {
          purge: async (filter, options) => {
            if (!failPurge) return index.purge!(filter, options);
            failPurge = false;
            throw new RingkvError('RINGKV_IO', 'index purge failed');
          },
        });
      },
    };
    const engine = await IndexedEngine.open({ main: store, indexes, verifyIntervalMs: 0 });
    engine.watchRing(() => ring);
    await engine.settled();
    for (let i = 0; i < 50; i++) await engine.write(valueEntry(key(i), NOW + 5n, Buffer.from('x')));
    const failed = await outcome(engine.purge(ALL));
    assert.ok(isRingkvError(failed, 'RINGKV_IO'), String(failed));
    const expected = await fromScratch(store, ring);
    assert.equal(expected.index.length, 0, "the store's part dropped every key");
    assert.deepEqual(await actual(engine, ring), expected, 'the index and digests follow the store');
    await engine.close();
  });

  it('saves no tree when the store fails to close, and the next start rebuilds', async () => {
    const dir = await tempDir();
    const { engine } = await openOn(dir, {
      main: (store) =>
        hooked(store, {
          close: async () => {
            await store.close();
            throw new Error('EIO: simulated failure closing the store');
          },
        }),
    });
    await engine.write(valueEntry(key(1), NOW, Buffer.from('x')));
    await assert.rejects(engine.close(), /EIO: simulated/);
    await assert.rejects(readFile(join(dir, 'aae', 'TREE')), { code: 'ENOENT' });
    const again = await openOn(dir);
    assert.ok(
      again.lines.some((l) => l.includes('missing')),
      again.lines.join('\n'),
    );
    assert.deepEqual(await actual(again.engine, ring), await fromScratch(again.main, ring));
    await again.engine.close();
  });

  it('writes that come after the saved tree is opened and before the ring is known are in the digests', async () => {
    const dir = await tempDir();
    let { main, engine } = await openOn(dir);
    for (let i = 0; i < 100; i++) await engine.write(valueEntry(key(i), NOW + 5n, Buffer.from('x')));
    await engine.close();
    ({ main, engine } = await openOn(dir, {
      beforeRing: async (e) => {
        await e.write(valueEntry(key(1000), NOW + 7n, Buffer.from('new')));
        await e.write(valueEntry(key(3), NOW + 9n, Buffer.from('overwrite')));
      },
    }));
    assert.equal(engine.treeStats().rebuilds, 0);
    assert.deepEqual(await actual(engine, ring), await fromScratch(main, ring));
    await engine.close();
  });

  it('indexes what the store kept of a write that failed', async () => {
    const store = new MemoryEngine();
    let failNext = false;
    const main = hooked(store, {
      write: async (entry) => {
        await store.write(entry);
        if (failNext) {
          failNext = false;
          throw new Error('ENOSPC: simulated, after the memtable took the entry');
        }
      },
    });
    const engine = await IndexedEngine.open({
      main,
      indexes: memoryIndexes(),
      verifyIntervalMs: 0,
      scanShare: 1,
    });
    engine.watchRing(() => ring);
    await engine.settled();
    await engine.write(valueEntry(key(1), NOW + 1n, Buffer.from('a')));
    failNext = true;
    await assert.rejects(engine.write(valueEntry(key(2), NOW + 2n, Buffer.from('b'))), /ENOSPC/);
    assert.ok((await main.get(key(2))) !== undefined, 'the store kept it');
    assert.deepEqual(await actual(engine, ring), await fromScratch(main, ring));
    await engine.close();
  });

  it('a rebuild that fails part-way is tried again, and its partial index is never digested', async () => {
    const store = new MemoryEngine();
    for (let i = 0; i < 5000; i++) await store.write(valueEntry(key(i), NOW + 1n, Buffer.from('v')));
    let failScans = false;
    const main = hooked(store, {
      scan: (range) => {
        const cursor = store.scan(range);
        let batches = 0;
        return {
          next: async () => {
            if (failScans && ++batches > 2) throw new Error('EIO: simulated read error');
            return cursor.next();
          },
          close: () => cursor.close(),
        };
      },
    });
    const lines: string[] = [];
    const engine = await IndexedEngine.open({
      main,
      indexes: memoryIndexes(),
      verifyIntervalMs: 0,
      scanShare: 1,
      rebuildRetryMs: 50,
      log: (line) => lines.push(line),
    });
    engine.watchRing(() => ring);
    await engine.settled();
    assert.equal(engine.treeStats().entries, 5000);

    failScans = true;
    engine.rebuild('a test');
    await engine.settled();
    assert.ok(
      lines.some((l) => l.includes('maintenance failed') && l.includes('EIO: simulated')),
      lines.join('\n'),
    );
    // An exchange asks for digests: none, while the index is partial.
    assert.equal(engine.digestsFor(ring), undefined);
    await engine.settled();
    assert.equal(engine.state, 'building');
    assert.equal(engine.digestsFor(ring), undefined);

    // The retry, once reads work again, makes it whole.
    failScans = false;
    const deadline = Date.now() + 10_000;
    while (engine.treeStats().rebuilds < 3 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    assert.equal(engine.treeStats().rebuilds, 3, lines.join('\n'));
    assert.match(engine.treeStats().lastRebuildReason ?? '', /the last rebuild failed \(EIO: simulated/);
    assert.deepEqual(await actual(engine, ring), await fromScratch(main, ring));
    await engine.close();
  });

  it('an open that fails after opening the index closes it', async () => {
    const dir = await tempDir();
    const first = await openOn(dir);
    await first.engine.write(valueEntry(key(1), NOW, Buffer.from('x')));
    await first.engine.close();

    const main = await LsmEngine.open({ dir, sync: false });
    const opened: Engine[] = [];
    const indexes = lsmIndexes(dir);
    const tree = treeFileIn(dir);
    await assert.rejects(
      IndexedEngine.open({
        main,
        indexes: {
          open: async (slot) => {
            const index = await indexes.open(slot);
            opened.push(index);
            return index;
          },
          clear: (slot) => indexes.clear(slot),
        },
        treeFile: {
          path: tree.path,
          read: () => tree.read(),
          write: (bytes) => tree.write(bytes),
          remove: async () => {
            throw new Error('EACCES: simulated');
          },
        },
        verifyIntervalMs: 0,
      }),
      /EACCES/,
    );
    assert.equal(opened.length, 1);
    await assert.rejects(opened[0]!.get(key(1)), { code: 'RINGKV_CLOSED' });
    await main.close();
  });
});
