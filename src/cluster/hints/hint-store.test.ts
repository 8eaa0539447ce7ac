import assert from 'node:assert/strict';
import { appendFile, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { limits } from '../../config/limits.js';
import {
  type Entry,
  encodeRecord,
  FaultyVfs,
  MemoryVfs,
  makeVersion,
  recordBytes,
  seededRandom,
  tombstoneEntry,
  type Vfs,
  valueEntry,
} from '../../storage/index.js';
import {
  checkHintFile,
  encodeHintRecord,
  HINT_FORMAT_VERSION,
  HINT_HEADER_BYTES,
  HINT_MAGIC,
  hintFileName,
  hintRecordBytes,
  peerDirName,
} from './format.js';
import { HintStore, hintAgeMaxMs } from './hint-store.js';

/** `target` with some of its methods replaced (the others bound to it, private fields and all). */
function delegate<T extends object>(target: T, overrides: Partial<Record<keyof T, unknown>>): T {
  return new Proxy(target, {
    get(obj, prop) {
      if (Object.hasOwn(overrides, prop)) return overrides[prop as keyof T];
      const value = Reflect.get(obj, prop, obj);
      return typeof value === 'function' ? value.bind(obj) : value;
    },
  });
}

const A = 'http://127.0.0.1:9001';
const B = 'http://127.0.0.1:9002';
const dirs: string[] = [];

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'ringkv-hints-'));
  dirs.push(dir);
  return dir;
}

after(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

/** Versions of now: hints of values older than the tombstone grace are not kept. */
const BASE_VERSION = makeVersion(Date.now(), 0);

function entry(i: number): Entry {
  return i % 5 === 4
    ? tombstoneEntry(Buffer.from(`key-${i}`), BASE_VERSION + BigInt(i))
    : valueEntry(Buffer.from(`key-${i}`), BASE_VERSION + BigInt(i), Buffer.from(`value-${i}`.repeat(3)));
}

/** Every pending hint of a peer, peeked and acknowledged batch by batch. */
async function takeAll(store: HintStore, peer: string): Promise<Entry[]> {
  const out: Entry[] = [];
  for (let i = 0; i < 1000; i++) {
    const batch = await store.peek(peer, 7, 1 << 20);
    if (batch === undefined) return out;
    out.push(...batch.entries.map((e) => ({ ...e, key: Buffer.from(e.key), value: Buffer.from(e.value) })));
    await store.acknowledge(batch);
  }
  throw new Error('takeAll did not end');
}

function firstFile(dir: string, peer: string): string {
  return join(dir, peerDirName(peer), hintFileName(1));
}

/** Three hints for A in a new file, the second damaged, delivery reaching it: the file is set aside. */
async function addAndSpoil(store: HintStore, peerDir: string): Promise<void> {
  for (let i = 0; i < 3; i++) assert.equal(await store.add(A, entry(i)), true);
  const [name] = (await readdir(peerDir)).filter((n) => n.endsWith('.hint'));
  const bytes = await readFile(join(peerDir, name!));
  bytes[HINT_HEADER_BYTES + hintRecordBytes(entry(0)) + 12]! ^= 0xff;
  await writeFile(join(peerDir, name!), bytes);
  assert.equal(await store.peek(A, 10, 1 << 20), undefined);
}

describe('HintStore', () => {
  it('keeps hints across a reopen, in append order, per peer', async () => {
    const dir = await tempDir();
    const store = await HintStore.open(dir);
    const added = await Promise.all([
      ...Array.from({ length: 10 }, (_, i) => store.add(A, entry(i))),
      store.add(B, entry(100)),
    ]);
    assert.ok(added.every((ok) => ok));
    assert.deepEqual(store.pending(A), {
      entries: 10,
      bytes: Array.from({ length: 10 }, (_, i) => hintRecordBytes(entry(i))).reduce((a, b) => a + b),
    });
    await store.close();
    await assert.rejects(store.add(A, entry(1)), { code: 'RINGKV_CLOSED' });

    const reopened = await HintStore.open(dir);
    assert.equal(reopened.pending(A).entries, 10);
    assert.equal(reopened.stats().reloaded, 11);
    assert.deepEqual(reopened.peers().sort(), [A, B]);
    assert.deepEqual(
      await takeAll(reopened, A),
      Array.from({ length: 10 }, (_, i) => entry(i)),
    );
    assert.deepEqual(await takeAll(reopened, B), [entry(100)]);
    assert.equal(reopened.pending(A).entries, 0);
    assert.equal(reopened.stats().delivered, 11);
    assert.deepEqual(reopened.stats().deliveredByPeer, { [A]: 10, [B]: 1 });
    await reopened.close();
  });

  it('groups the adds of one event-loop turn into one file write', async () => {
    const dir = await tempDir();
    const store = await HintStore.open(dir, { sync: false });
    await Promise.all(Array.from({ length: 50 }, (_, i) => store.add(A, entry(i))));
    // One file with all 50 records, written by one write: its size is exactly header + records.
    const size = (await stat(firstFile(dir, A))).size;
    assert.equal(size, HINT_HEADER_BYTES + store.pending(A).bytes);
    assert.equal(store.pending(A).entries, 50);
    await store.close();
  });

  it("keeps each hint's `from`; reads a version-1 file, whose hints record none", async () => {
    const dir = await tempDir();
    // A file an older version wrote: header version 1, records of the entry alone.
    const old = [entry(0), entry(1)];
    const header = Buffer.alloc(HINT_HEADER_BYTES);
    header.writeUInt32BE(HINT_MAGIC, 0);
    header.writeUInt32BE(1, 4);
    const records = old.map((e) => {
      const record = Buffer.alloc(recordBytes(e));
      encodeRecord(e, record, 0);
      return record;
    });
    await mkdir(join(dir, peerDirName(A)), { recursive: true });
    await writeFile(firstFile(dir, A), Buffer.concat([header, ...records]));

    const store = await HintStore.open(dir);
    assert.equal(store.pending(A).entries, 2);
    await store.add(A, entry(2), 3);
    await store.add(A, entry(3));
    const froms: (number | undefined)[] = [];
    const peeked: Entry[] = [];
    for (let i = 0; i < 10; i++) {
      const batch = await store.peek(A, 10, 1 << 20);
      if (batch === undefined) break;
      froms.push(...batch.froms);
      peeked.push(
        ...batch.entries.map((e) => ({ ...e, key: Buffer.from(e.key), value: Buffer.from(e.value) })),
      );
      await store.acknowledge(batch);
    }
    assert.deepEqual(peeked, [entry(0), entry(1), entry(2), entry(3)]);
    assert.deepEqual(froms, [undefined, undefined, 3, undefined]);
    assert.deepEqual(await readdir(join(dir, peerDirName(A))), [], 'delivered files are deleted');
    await store.close();
  });

  it('writes new files in the current format version', async () => {
    const dir = await tempDir();
    const store = await HintStore.open(dir);
    await store.add(A, entry(0), 2);
    await store.close();
    const bytes = await readFile(firstFile(dir, A));
    assert.equal(bytes.readUInt32BE(4), HINT_FORMAT_VERSION);
    assert.equal(HINT_FORMAT_VERSION, 2);
    assert.equal(bytes.length, HINT_HEADER_BYTES + hintRecordBytes(entry(0)));
    assert.equal(bytes.readUInt16BE(bytes.length - 2), 2, 'the record ends with its from');
  });

  it('cuts a torn tail on open and keeps the intact records', async () => {
    const dir = await tempDir();
    const store = await HintStore.open(dir);
    for (let i = 0; i < 3; i++) await store.add(A, entry(i));
    await store.close();
    const file = firstFile(dir, A);
    const intact = (await stat(file)).size;
    // Half a record: what a crash during an append leaves.
    const record = Buffer.alloc(hintRecordBytes(entry(3)));
    record.writeUInt32BE(record.length - 8, 0);
    await appendFile(file, record.subarray(0, 20));

    const logs: string[] = [];
    const reopened = await HintStore.open(dir, { log: (line) => logs.push(line) });
    assert.equal(reopened.pending(A).entries, 3);
    assert.equal(reopened.stats().tornBytes, 20);
    assert.equal((await stat(file)).size, intact, 'the file was truncated');
    assert.ok(logs.some((line) => line.includes('torn tail')));
    assert.deepEqual(await takeAll(reopened, A), [entry(0), entry(1), entry(2)]);
    await reopened.close();
  });

  it('sets a corrupt file aside, naming file and offset, and opens anyway', async () => {
    const dir = await tempDir();
    const store = await HintStore.open(dir);
    for (let i = 0; i < 3; i++) await store.add(A, entry(i));
    await store.add(B, entry(9));
    await store.close();
    const file = firstFile(dir, A);
    const bytes = await readFile(file);
    // Flip a byte inside the second record's payload: intact records follow it.
    const second = HINT_HEADER_BYTES + hintRecordBytes(entry(0));
    bytes[second + 12] = bytes[second + 12]! ^ 0xff;
    await writeFile(file, bytes);

    const logs: string[] = [];
    const reopened = await HintStore.open(dir, { log: (line) => logs.push(line) });
    const [corrupt] = reopened.stats().corruptFiles;
    assert.equal(corrupt?.file, file);
    assert.equal(corrupt?.offset, second);
    assert.ok(
      logs.some((line) => line.includes(file) && line.includes(`offset ${second}`)),
      logs.join('\n'),
    );
    assert.equal(reopened.pending(A).entries, 0);
    assert.deepEqual(await readdir(join(dir, peerDirName(A))), ['0000000001.hint.corrupt']);
    assert.deepEqual(await takeAll(reopened, B), [entry(9)], 'other peers are untouched');
    // New hints for the peer go to a new file, never over the set-aside one.
    assert.equal(await reopened.add(A, entry(5)), true);
    assert.deepEqual((await readdir(join(dir, peerDirName(A)))).sort(), [
      '0000000001.hint.corrupt',
      '0000000002.hint',
    ]);
    await reopened.close();
  });

  it('keeps at most limits.hintCorruptFilesPerPeerMax set-aside files per peer, deleting the oldest with a log line', async () => {
    const dir = await tempDir();
    const peerDir = join(dir, peerDirName(A));
    const logs: string[] = [];
    const store = await HintStore.open(dir, { sync: false, log: (line) => logs.push(line) });
    const kept = limits.hintCorruptFilesPerPeerMax;
    for (let round = 0; round < kept + 2; round++) await addAndSpoil(store, peerDir);
    const corrupt = (await readdir(peerDir)).filter((n) => n.endsWith('.hint.corrupt')).sort();
    assert.equal(corrupt.length, kept, corrupt.join(' '));
    // The newest are kept: files are numbered in order, one per round here.
    assert.deepEqual(
      corrupt,
      Array.from({ length: kept }, (_, i) => `${String(i + 3).padStart(10, '0')}.hint.corrupt`),
    );
    const deleted = logs.filter((line) => line.includes('Deleted set-aside hint file'));
    assert.equal(deleted.length, 2, logs.join('\n'));
    assert.ok(deleted[0]!.includes('0000000001.hint.corrupt'), deleted[0]);
    await store.close();
  });

  it('numbers files after forget() above every file of the peer: a set-aside file is never overwritten', async () => {
    const dir = await tempDir();
    const peerDir = join(dir, peerDirName(A));
    const store = await HintStore.open(dir, { sync: false });
    await addAndSpoil(store, peerDir);
    assert.equal(await store.add(A, entry(7)), true);
    assert.equal(await store.forget(A), 1);
    // The peer is back (say it rejoined): its new hints must not take a number its directory holds.
    await addAndSpoil(store, peerDir);
    assert.equal(store.stats().corruptFiles.length, 2);
    const corrupt = (await readdir(peerDir)).filter((n) => n.endsWith('.hint.corrupt'));
    assert.equal(corrupt.length, 2, `both set-aside files kept: ${corrupt.join(' ')}`);
    await store.close();
  });

  it("sets aside a file whose header's version does not match its records, rather than cut them as torn", async () => {
    for (const [wrote, says] of [
      [2, 1],
      [1, 2],
    ] as const) {
      const dir = await tempDir();
      const header = Buffer.alloc(HINT_HEADER_BYTES);
      header.writeUInt32BE(HINT_MAGIC, 0);
      header.writeUInt32BE(says, 4);
      const records = [entry(0), entry(1)].map((e) => {
        const record = Buffer.alloc(wrote === 1 ? recordBytes(e) : hintRecordBytes(e));
        if (wrote === 1) encodeRecord(e, record, 0);
        else encodeHintRecord(e, 3, record, 0);
        return record;
      });
      await mkdir(join(dir, peerDirName(A)), { recursive: true });
      await writeFile(firstFile(dir, A), Buffer.concat([header, ...records]));

      const store = await HintStore.open(dir);
      const label = `records of version ${wrote} under a header of version ${says}`;
      assert.equal(store.stats().tornBytes, 0, label);
      assert.equal(store.stats().corruptFiles[0]?.offset, HINT_HEADER_BYTES, label);
      assert.deepEqual(await readdir(join(dir, peerDirName(A))), ['0000000001.hint.corrupt'], label);
      await store.close();
    }
  });

  it('drops and counts hints past the per-peer and total budgets', async () => {
    const dir = await tempDir();
    const one = hintRecordBytes(entry(0));
    const store = await HintStore.open(dir, {
      bytesPerPeerMax: 3 * one,
      bytesTotalMax: 5 * one,
      sync: false,
    });
    const forA = await Promise.all(Array.from({ length: 5 }, () => store.add(A, entry(0))));
    assert.deepEqual(forA, [true, true, true, false, false]);
    const forB = await Promise.all(Array.from({ length: 3 }, () => store.add(B, entry(0))));
    assert.deepEqual(forB, [true, true, false], 'the total budget is shared');
    const stats = store.stats();
    assert.equal(stats.dropped, 3);
    assert.equal(stats.droppedBytes, 3 * one);
    assert.equal(stats.pendingBytes, 5 * one);
    // Delivering frees budget.
    const batch = await store.peek(A, 10, 1 << 20);
    assert.ok(batch !== undefined);
    await store.acknowledge(batch);
    assert.equal(await store.add(B, entry(0)), true);
    await store.close();
  });

  it('counts the batch being written against the per-peer budget', async () => {
    const dir = await tempDir();
    const one = hintRecordBytes(entry(0));
    const store = await HintStore.open(dir, {
      bytesPerPeerMax: 10 * one,
      bytesTotalMax: 100 * one,
      sync: false,
    });
    const first = Array.from({ length: 10 }, () => store.add(A, entry(0)));
    // The write loop has taken the first ten: they are neither queued nor pending yet.
    await nextTurn();
    const second = Array.from({ length: 10 }, () => store.add(A, entry(0)));
    assert.deepEqual(await Promise.all(first), Array(10).fill(true));
    assert.deepEqual(await Promise.all(second), Array(10).fill(false));
    assert.equal(store.pending(A).bytes, 10 * one);
    assert.equal(store.stats().dropped, 10);
    await store.close();
  });

  it('keeps no hint of a value older than its age bound; tombstones have none', async () => {
    const dir = await tempDir();
    let nowMs = Date.now();
    const at = (ageMs: number, i: number, tombstone = false): Entry => {
      const version = makeVersion(nowMs - ageMs, 0);
      const k = Buffer.from(`old-${i}`);
      return tombstone ? tombstoneEntry(k, version) : valueEntry(k, version, Buffer.from(`v${i}`));
    };
    const options = { ageMaxMs: 10_000, wallMs: () => nowMs, sync: false };
    const store = await HintStore.open(dir, options);
    // A write already too old is not stored; a tombstone of that age is.
    assert.equal(await store.add(A, at(20_000, 0)), false);
    assert.equal(await store.add(A, at(20_000, 1, true)), true);
    assert.deepEqual([store.stats().tooOld, store.stats().dropped, store.pending(A).entries], [1, 0, 1]);
    for (let i = 2; i < 5; i++) assert.equal(await store.add(A, at(0, i)), true);
    const kept = at(0, 5, true);
    assert.equal(await store.add(A, kept), true);
    // They age while they wait: peek leaves the values out, and acknowledging drops them all.
    nowMs += 15_000;
    const batch = await store.peek(A, 100, 1 << 20);
    assert.deepEqual(
      batch?.entries.map((e) => e.key.toString()),
      ['old-1', 'old-5'],
    );
    assert.equal(batch?.tooOld, 3);
    await store.acknowledge(batch!);
    assert.deepEqual(store.pending(A), { entries: 0, bytes: 0 });
    assert.deepEqual([store.stats().tooOld, store.stats().delivered], [4, 2]);

    // At open: a file of old values only is deleted; one with a tombstone too is kept, its values left out.
    nowMs -= 15_000;
    for (let i = 6; i < 9; i++) assert.equal(await store.add(A, at(0, i)), true);
    assert.equal(await store.add(B, at(0, 9)), true);
    assert.equal(await store.add(B, kept), true);
    await store.close();
    nowMs += 15_000;
    const logs: string[] = [];
    const reopened = await HintStore.open(dir, { ...options, log: (line) => logs.push(line) });
    assert.deepEqual(reopened.peers(), [B]);
    assert.deepEqual(await readdir(join(dir, peerDirName(A))), []);
    assert.equal(reopened.stats().tooOld, 3);
    assert.ok(
      logs.some((line) => line.includes(`Dropped 3 hints for ${A}`)),
      logs.join('\n'),
    );
    assert.deepEqual(await takeAll(reopened, B), [kept]);
    assert.equal(reopened.stats().tooOld, 4);
    await reopened.close();
  });

  it('keeps a hint of a value that has expired, however old: like a tombstone, it hides older versions', async () => {
    const dir = await tempDir();
    const nowMs = Date.now();
    const store = await HintStore.open(dir, { ageMaxMs: 10_000, wallMs: () => nowMs, sync: false });
    const version = makeVersion(nowMs - 20_000, 0);
    const expired = {
      ...valueEntry(Buffer.from('short'), version, Buffer.from('v')),
      expiresAtMs: nowMs - 1,
    };
    const live = {
      ...valueEntry(Buffer.from('long'), version, Buffer.from('v')),
      expiresAtMs: nowMs + 60_000,
    };
    assert.equal(await store.add(A, expired), true);
    // A value still live is aged as any other.
    assert.equal(await store.add(A, live), false);
    assert.deepEqual(
      (await takeAll(store, A)).map((e) => e.key.toString()),
      ['short'],
    );
    assert.equal(store.stats().tooOld, 1);
    await store.close();
  });

  it('ages hints against the tombstone grace less a margin', () => {
    const hourMs = 60 * 60 * 1000;
    assert.equal(hintAgeMaxMs(24 * hourMs), 23 * hourMs, 'an hour short of a day');
    assert.equal(hintAgeMaxMs(3000), 2700, 'a tenth short of a short grace');
    assert.ok(hintAgeMaxMs(limits.tombstoneGraceMs) < limits.tombstoneGraceMs);
  });

  it('rotates files and deletes each once delivered', async () => {
    const dir = await tempDir();
    const one = hintRecordBytes(entry(0));
    const store = await HintStore.open(dir, { segmentBytesMax: HINT_HEADER_BYTES + 4 * one, sync: false });
    for (let i = 0; i < 10; i++) await store.add(A, entry(i));
    const peerDir = join(dir, peerDirName(A));
    assert.ok((await readdir(peerDir)).length >= 3, 'several files');
    assert.equal((await takeAll(store, A)).length, 10);
    assert.deepEqual(await readdir(peerDir), [], 'delivered files are gone');
    assert.equal(await store.add(A, entry(11)), true);
    assert.equal((await readdir(peerDir)).length, 1);
    await store.close();
    const reopened = await HintStore.open(dir);
    assert.deepEqual(await takeAll(reopened, A), [entry(11)], 'delivered hints are not delivered again');
    await reopened.close();
  });

  it('hands a record larger than the batch byte bound out alone', async () => {
    const dir = await tempDir();
    const store = await HintStore.open(dir, { sync: false });
    const big = valueEntry(Buffer.from('big'), BASE_VERSION, Buffer.alloc(10_000, 1));
    await store.add(A, big);
    await store.add(A, entry(1));
    const batch = await store.peek(A, 10, 100);
    assert.deepEqual(batch?.entries, [big]);
    await store.acknowledge(batch!);
    assert.deepEqual((await store.peek(A, 10, 100))?.entries, [entry(1)]);
    await store.close();
  });
});

/** A value hint of `valueBytes` bytes; the number `i` fixes its key and version (keys all of one length). */
function sized(i: number, valueBytes: number): Entry {
  return valueEntry(
    Buffer.from(`hint-${String(i).padStart(4, '0')}`),
    BASE_VERSION + BigInt(i),
    Buffer.alloc(valueBytes, i),
  );
}

interface _HintFileOnDisk {
  readonly name: string;
  readonly bytes: number;
  readonly records: number;
}

/** The hint files of `peer` under `dir` on `vfs`, oldest first: size and intact records. */
async function hintFiles(vfs: Vfs, dir: string, peer: string): Promise<_HintFileOnDisk[]> {
  const peerDir = join(dir, peerDirName(peer));
  const names = (await vfs.list(peerDir).catch(() => [])).filter((n) => n.endsWith('.hint')).sort();
  const files: _HintFileOnDisk[] = [];
  for (const name of names) {
    const buf = await vfs.readFile(join(peerDir, name));
    files.push({ name, bytes: buf.length, records: checkHintFile(buf).entries.length });
  }
  return files;
}

/** Every file within `bound` bytes, or holding exactly one record (one larger than the bound alone). */
function assertFilesWithin(files: readonly _HintFileOnDisk[], bound: number, what = 'hint file'): void {
  for (const file of files) {
    assert.ok(
      file.bytes <= bound || file.records === 1,
      `${what}: ${file.name} holds ${file.records} records in ${file.bytes} bytes, past the bound of ${bound}`,
    );
  }
}

/** Seeds for the power-loss test: RINGKV_POWER_LOSS_RUNS from a random start, or from RINGKV_POWER_LOSS_SEED. */
const POWER_LOSS_RUNS = Number(process.env.RINGKV_POWER_LOSS_RUNS ?? 30);
const POWER_LOSS_SEED =
  process.env.RINGKV_POWER_LOSS_SEED === undefined
    ? Math.floor(Math.random() * 2 ** 31)
    : Number(process.env.RINGKV_POWER_LOSS_SEED);

const key = (e: Entry) => `${e.key.toString()}@${e.version}`;

describe('HintStore on the in-memory and fault-injecting vfs', () => {
  it('keeps hints across a reopen, and a new peer directory survives a power loss', async () => {
    const vfs = new MemoryVfs();
    const store = await HintStore.open('/node/hints', { vfs });
    for (let i = 0; i < 5; i++) assert.equal(await store.add(A, entry(i)), true);
    // Acknowledged, so durable: its file, the file's name and the peer directory's name.
    for (let seed = 1; seed <= 20; seed++) {
      const reopened = await HintStore.open('/node/hints', { vfs: vfs.crash(seededRandom(seed)) });
      assert.deepEqual(
        await takeAll(reopened, A),
        Array.from({ length: 5 }, (_, i) => entry(i)),
      );
      await reopened.close();
    }
  });

  it('a write that fails answers RINGKV_IO, and later hints go to a new file', async () => {
    const vfs = new FaultyVfs(new MemoryVfs());
    const store = await HintStore.open('/node/hints', { vfs });
    assert.equal(await store.add(A, entry(0)), true);
    vfs.inject({ op: 'fdatasync', times: 1, error: 'ENOSPC' });
    await assert.rejects(store.add(A, entry(1)), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'RINGKV_IO');
      assert.match(err.message, /Cannot write hints for .*ENOSPC/);
      return true;
    });
    assert.equal(store.stats().writeErrors, 1);
    assert.equal(await store.add(A, entry(2)), true);
    const peerDir = join('/node/hints', peerDirName(A));
    assert.equal((await vfs.list(peerDir)).length, 2);
    await store.close();
    const reopened = await HintStore.open('/node/hints', { vfs });
    const taken = (await takeAll(reopened, A)).map(key);
    assert.ok(taken.includes(key(entry(0))) && taken.includes(key(entry(2))), taken.join(' '));
    await reopened.close();
  });

  it('a hint written to a file that delivery sets aside meanwhile goes to a new file, not lost', async () => {
    const memory = new MemoryVfs();
    // While `held` is set, an fdatasync waits for it: the write stays under way.
    let held: Promise<void> | undefined;
    const vfs = delegate(memory, {
      open: async (path: string, mode: Parameters<Vfs['open']>[1]) => {
        const file = await memory.open(path, mode);
        return delegate(file, {
          datasync: async () => {
            await held;
            await file.datasync();
          },
        });
      },
    });
    const store = await HintStore.open('/node/hints', { vfs });
    for (let i = 0; i < 3; i++) assert.equal(await store.add(A, entry(i)), true);
    // Damage the second record, intact records after it: corruption, found as delivery reaches it.
    const file = join('/node/hints', peerDirName(A), hintFileName(1));
    const at = HINT_HEADER_BYTES + hintRecordBytes(entry(0)) + 12;
    const handle = await memory.open(file, 'r+');
    const byte = Buffer.alloc(1);
    await handle.read(byte, 0, 1, at);
    byte[0] = byte[0]! ^ 0xff;
    await handle.write(byte, 0, 1, at);
    await handle.close();

    let release!: () => void;
    held = new Promise((resolve) => {
      release = resolve;
    });
    const added = store.add(A, entry(3));
    for (let i = 0; i < 3; i++) await nextTurn(); // its write is under way, to the damaged file
    assert.equal(await store.peek(A, 10, 1 << 20), undefined, 'the damaged file is set aside');
    assert.equal(store.stats().corruptFiles.length, 1);
    held = undefined;
    release();
    assert.equal(await added, true);
    assert.deepEqual(await takeAll(store, A), [entry(3)]);
    assert.deepEqual(store.pending(A), { entries: 0, bytes: 0 });
    await store.close();
  });

  it('never lets a hint file grow past segmentBytesMax, unless it holds one hint larger than that alone', async () => {
    const vfs = new MemoryVfs();
    const small = hintRecordBytes(sized(0, 20));
    // Four small records fit, with half a record to spare; a fifth does not.
    const bound = HINT_HEADER_BYTES + 4 * small + Math.floor(small / 2);
    const store = await HintStore.open('/node/hints', { vfs, segmentBytesMax: bound, sync: false });
    const added: Entry[] = [];
    const addTogether = async (hints: Entry[]) => {
      added.push(...hints);
      const kept = await Promise.all(hints.map((h) => store.add(A, h)));
      assert.ok(kept.every((ok) => ok));
    };
    // Ten in one turn: one write whose sum crosses the bound more than twice.
    await addTogether(Array.from({ length: 10 }, (_, i) => sized(i, 20)));
    // One at a time: the third file fills to just under the bound (its fourth record), then one goes over.
    for (let i = 10; i < 13; i++) await addTogether([sized(i, 20)]);
    // A hint larger than the bound alone, in a write between small ones, and then on its own.
    const bigValueBytes = bound; // its record is larger than the bound, header or not
    await addTogether([sized(13, 20), sized(14, bigValueBytes), sized(15, 20), sized(16, 20)]);
    await addTogether([sized(17, bigValueBytes)]);
    // Records of about a third of the bound: three do not fit, two do.
    const thirdValueBytes = Math.floor((bound - HINT_HEADER_BYTES) / 3) - small + 20 + 1;
    await addTogether(Array.from({ length: 5 }, (_, i) => sized(18 + i, thirdValueBytes)));
    await addTogether([sized(23, 20)]);

    const files = await hintFiles(vfs, '/node/hints', A);
    assertFilesWithin(files, bound);
    // Each file as full as the bound lets it be: the two large hints alone, the thirds two to a file.
    assert.deepEqual(
      files.map((f) => f.records),
      [4, 4, 4, 2, 1, 2, 1, 2, 2, 2],
    );
    assert.ok(
      files[4]!.bytes > bound && files[6]!.bytes > bound,
      'a hint larger than the bound has a file of its own',
    );
    assert.equal(
      files.reduce((sum, f) => sum + f.records, 0),
      added.length,
      'every hint is in a file',
    );
    await store.close();
    const reopened = await HintStore.open('/node/hints', { vfs });
    assert.deepEqual((await takeAll(reopened, A)).map(key), added.map(key), 'every hint, in the order added');
    await reopened.close();
  });

  it('a write over two files that fails in the second answers RINGKV_IO; the hints in the first stay, budgets are whole', async () => {
    const vfs = new FaultyVfs(new MemoryVfs());
    const small = hintRecordBytes(sized(0, 20));
    const budget = 6 * small;
    const store = await HintStore.open('/node/hints', {
      vfs,
      segmentBytesMax: HINT_HEADER_BYTES + 2 * small + Math.floor(small / 2),
      bytesPerPeerMax: budget,
      bytesTotalMax: budget,
    });
    // Two records go to the first file, then the second file's sync fails.
    vfs.inject({ op: 'fdatasync', path: hintFileName(2), times: 1, error: 'EIO' });
    const results = await Promise.allSettled(Array.from({ length: 5 }, (_, i) => store.add(A, sized(i, 20))));
    for (const result of results) {
      assert.equal(result.status, 'rejected');
      assert.equal((result.reason as { code?: string }).code, 'RINGKV_IO');
    }
    assert.equal(store.stats().writeErrors, 1);
    assert.deepEqual(store.pending(A), { entries: 2, bytes: 2 * small }, 'the first file was written whole');
    assert.equal(await store.add(A, sized(5, 20)), true);
    assert.deepEqual(
      (await takeAll(store, A)).map(key),
      [0, 1, 5].map((i) => key(sized(i, 20))),
    );
    // Nothing of the failed write is left counted: a write of the whole budget is taken.
    const kept = await Promise.all(Array.from({ length: 6 }, (_, i) => store.add(A, sized(6 + i, 20))));
    assert.ok(kept.every((ok) => ok));
    assertFilesWithin(
      await hintFiles(vfs, '/node/hints', A),
      HINT_HEADER_BYTES + 2 * small + Math.floor(small / 2),
    );
    await store.close();
  });

  it('keeps the file bound over random writes, sizes and deliveries, hints in order', async () => {
    const small = hintRecordBytes(sized(0, 0));
    for (let seed = 1; seed <= 20; seed++) {
      const rng = seededRandom(seed);
      const vfs = new MemoryVfs();
      const bound = HINT_HEADER_BYTES + small + Math.floor(rng() * 8 * small);
      const store = await HintStore.open('/node/hints', { vfs, segmentBytesMax: bound, sync: rng() < 0.5 });
      const added: Entry[] = [];
      const taken: Entry[] = [];
      let next = 0;
      for (let round = 0; round < 30; round++) {
        if (rng() < 0.8) {
          // Value sizes up to a little past the bound, so that some records are larger than it.
          const hints = Array.from({ length: 1 + Math.floor(rng() * 8) }, () =>
            sized(next++, Math.floor(rng() ** 2 * (bound + small))),
          );
          added.push(...hints);
          const kept = await Promise.all(hints.map((h) => store.add(A, h)));
          assert.ok(
            kept.every((ok) => ok),
            `seed ${seed}: a hint was dropped`,
          );
        } else {
          // Files only grow, until delivery deletes them: checked before each delivery and at the end, each is seen at its largest.
          assertFilesWithin(await hintFiles(vfs, '/node/hints', A), bound, `seed ${seed}`);
          const batch = await store.peek(A, 1 + Math.floor(rng() * 4), 1 + Math.floor(rng() * bound));
          if (batch !== undefined) {
            taken.push(
              ...batch.entries.map((e) => ({ ...e, key: Buffer.from(e.key), value: Buffer.from(e.value) })),
            );
            await store.acknowledge(batch);
          }
        }
      }
      assertFilesWithin(await hintFiles(vfs, '/node/hints', A), bound, `seed ${seed}`);
      taken.push(...(await takeAll(store, A)));
      assert.deepEqual(taken.map(key), added.map(key), `seed ${seed}: every hint, in the order added`);
      await store.close();
    }
  });

  it(`power loss at random moments, ${POWER_LOSS_RUNS} seeds from ${POWER_LOSS_SEED}: every acknowledged, undelivered hint is kept, opening never fails`, async () => {
    for (let seed = POWER_LOSS_SEED; seed < POWER_LOSS_SEED + POWER_LOSS_RUNS; seed++) {
      try {
        await powerLossRun(seed);
      } catch (err) {
        throw new Error(
          `seed ${seed}: ${err instanceof Error ? err.message : String(err)}\nReplay: RINGKV_POWER_LOSS_SEED=${seed} RINGKV_POWER_LOSS_RUNS=1 node --test --test-name-pattern="power loss" dist/src/cluster/hints/hint-store.test.js`,
          { cause: err },
        );
      }
    }
  });
});

/**
 * Adds and deliveries for two peers, with small files so that they rotate
 * and are deleted, until the power goes at a random file operation; then
 * the crashed state is opened and read out.
 */
async function powerLossRun(seed: number): Promise<void> {
  const rng = seededRandom(seed);
  const memory = new MemoryVfs({ dsync: rng() < 0.5 });
  const one = hintRecordBytes(entry(0));
  const options = { vfs: memory, segmentBytesMax: HINT_HEADER_BYTES + 3 * one, log: () => {} };
  const crashed = memory.crashAtOperation(1 + Math.floor(rng() * 150), seededRandom(seed ^ 0x5bd1e995));
  const added = new Map<string, Entry[]>([
    [A, []],
    [B, []],
  ]);
  /** Acknowledged by add() and not delivered, by peer: what must be there after the crash. */
  const owed = new Map<string, Set<string>>([
    [A, new Set()],
    [B, new Set()],
  ]);
  let store: HintStore | undefined;
  try {
    store = await HintStore.open('/node/hints', options);
    for (let i = 0; i < 200 && !memory.stopped; i++) {
      const peer = rng() < 0.6 ? A : B;
      if (rng() < 0.75) {
        const hints = Array.from({ length: 1 + Math.floor(rng() * 3) }, (_, j) => entry(10 * i + j));
        added.get(peer)!.push(...hints);
        const results = await Promise.allSettled(hints.map((h) => store!.add(peer, h)));
        results.forEach((r, j) => {
          if (r.status === 'fulfilled' && r.value) owed.get(peer)!.add(key(hints[j]!));
        });
      } else {
        const batch = await store.peek(peer, 1 + Math.floor(rng() * 4), 1 << 20);
        if (batch !== undefined) {
          await store.acknowledge(batch);
          for (const e of batch.entries) owed.get(peer)!.delete(key(e));
        }
      }
    }
  } catch (err) {
    assert.ok(memory.stopped, `failed without a crash: ${String(err)}`);
  }
  const after = memory.stopped ? await crashed : memory.crash(seededRandom(seed));
  await store?.close().catch(() => {});

  for (const peer of [A, B]) {
    assertFilesWithin(await hintFiles(after, '/node/hints', peer), options.segmentBytesMax, peer);
  }
  const reopened = await HintStore.open('/node/hints', { vfs: after, log: () => {} });
  try {
    assert.deepEqual(reopened.stats().corruptFiles, [], 'a crash leaves no corrupt hint file');
    for (const peer of [A, B]) {
      const taken = (await takeAll(reopened, peer)).map(key);
      const order = added.get(peer)!.map(key);
      for (const hint of owed.get(peer)!) assert.ok(taken.includes(hint), `${peer}: hint ${hint} lost`);
      // Only hints that were added, each once, in the order they were added.
      let at = -1;
      for (const hint of taken) {
        const next = order.indexOf(hint, at + 1);
        assert.ok(next > at, `${peer}: ${hint} out of order or never added`);
        at = next;
      }
    }
  } finally {
    await reopened.close();
  }
}
