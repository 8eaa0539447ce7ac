import assert from 'node:assert/strict';
import { constants, readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import { type FileHandle, mkdtemp, open, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import { propertyParams } from '../../../test/support/property.js';
import { limits } from '../../config/limits.js';
import { isRingkvError } from '../../util/errors.js';
import { encodedEntryBytes } from '../entry/codec.js';
import { type Entry, EntryKind, tombstoneEntry, valueEntry } from '../entry/entry.js';
import { CLOSE_RECORD_BYTES, FILE_HEADER_BYTES, RECORD_HEADER_BYTES, recordBytes } from './format.js';
import { readWal } from './reader.js';
import { type WalFile, WalWriter } from './writer.js';

let dir = '';
let fileCount = 0;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ringkv-wal-writer-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

function freshPath(): string {
  return join(dir, `${String(++fileCount).padStart(6, '0')}.wal`);
}

/** Values, tombstones, empty values, an empty key, expiry, and a large value every 17th. */
function sampleEntries(count: number): Entry[] {
  const entries: Entry[] = [];
  for (let i = 0; i < count; i++) {
    const key = Buffer.from(i === 0 ? '' : `key-${i}`);
    const version = 1_000_000n + BigInt(i);
    if (i % 5 === 0) entries.push(tombstoneEntry(key, version));
    else if (i % 5 === 1) entries.push(valueEntry(key, version, Buffer.alloc(0)));
    else if (i % 5 === 2) entries.push(valueEntry(key, version, Buffer.from(`v${i}`), 1_700_000_000_000 + i));
    else if (i % 17 === 3) entries.push(valueEntry(key, version, Buffer.alloc(100_000 + i, i & 0xff)));
    else entries.push(valueEntry(key, version, Buffer.from(`value-${i}-`.repeat(i % 7))));
  }
  return entries;
}

/** Wraps a real file: counts calls, records write sizes, and fails or slows on demand. */
class ProbeFile implements WalFile {
  readonly writeLengths: number[] = [];
  readonly writePositions: number[] = [];
  datasyncs = 0;
  syncs = 0;
  /** Every call in order: 'write', 'datasync' or 'sync'. */
  readonly calls: string[] = [];
  /** Index of the write() call (0 = header) that throws. */
  failWriteAt = -1;
  failDatasync = false;
  /** Most bytes one write() call takes, to exercise short writes. */
  chunkBytesMax = Number.POSITIVE_INFINITY;
  /** Runs inside write() before the bytes go to the file. */
  beforeWrite: ((buffer: Buffer, offset: number, length: number) => Promise<void>) | undefined;
  readonly #inner: FileHandle;

  constructor(inner: FileHandle) {
    this.#inner = inner;
  }

  async write(buffer: Buffer, offset: number, length: number, position: number): Promise<number> {
    const index = this.writeLengths.length;
    this.calls.push('write');
    this.writeLengths.push(length);
    this.writePositions.push(position);
    if (index === this.failWriteAt) throw new Error('EIO: injected write failure');
    if (this.beforeWrite !== undefined) await this.beforeWrite(buffer, offset, length);
    return (await this.#inner.write(buffer, offset, Math.min(length, this.chunkBytesMax), position))
      .bytesWritten;
  }

  async datasync(): Promise<void> {
    this.datasyncs++;
    this.calls.push('datasync');
    if (this.failDatasync) throw new Error('EIO: injected fdatasync failure');
    await this.#inner.datasync();
  }

  async sync(): Promise<void> {
    this.syncs++;
    this.calls.push('sync');
    await this.#inner.sync();
  }

  async close(): Promise<void> {
    await this.#inner.close();
  }
}

async function createProbed(
  path: string,
  options: {
    sync: boolean;
    batchBytesMax?: number;
    prefillBytes?: number;
    prefillRestMs?: number;
    prefillSignal?: AbortSignal;
  },
  setUp?: (probe: ProbeFile) => void,
): Promise<{ wal: WalWriter; probe: ProbeFile }> {
  let probe: ProbeFile | undefined;
  const wal = await WalWriter.create(path, {
    ...options,
    openFile: async (p) => {
      probe = new ProbeFile(await open(p, 'wx'));
      setUp?.(probe);
      return probe;
    },
  });
  assert.ok(probe !== undefined);
  return { wal, probe };
}

/**
 * Sizes of the records (one per batch) that entries appended in one turn
 * make: packed greedily in append order, a batch closing when the next entry
 * would take it past `batchBytesMax`, an entry too large for any batch alone.
 */
function batchRecordBytes(entries: Entry[], batchBytesMax: number): number[] {
  const sizes: number[] = [];
  for (const e of entries) {
    const size = encodedEntryBytes(e);
    const last = sizes.length - 1;
    if (last >= 0 && sizes[last]! + size <= batchBytesMax) sizes[last]! += size;
    else sizes.push(RECORD_HEADER_BYTES + size);
  }
  return sizes;
}

/** The entries of a log closed cleanly, which must read whole, to its close record and the end of the file. */
async function readBack(path: string): Promise<Entry[]> {
  const contents = await readWal(path, { repair: false });
  assert.equal(contents.closed, true);
  assert.equal(contents.tornBytes, 0);
  assert.equal(contents.validBytes, (await stat(path)).size);
  return contents.entries;
}

async function rejectsWithCode(promise: Promise<unknown>, code: string): Promise<Error> {
  const err = await promise.then(
    () => assert.fail(`expected a rejection with ${code}`),
    (e: unknown) => e,
  );
  assert.ok(isRingkvError(err), `expected a RingkvError, got ${String(err)}`);
  assert.equal(err.code, code);
  return err;
}

/** The open-file flags of this process's descriptor for `path` (Linux: /proc/self/fdinfo). */
function openFlagsOf(path: string): number {
  for (const fd of readdirSync('/proc/self/fd')) {
    let target: string;
    try {
      target = readlinkSync(`/proc/self/fd/${fd}`);
    } catch {
      continue; // closed since the listing
    }
    if (target !== path) continue;
    const flags = /^flags:\s+([0-7]+)$/m.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'));
    assert.ok(flags !== null, 'fdinfo has a flags line');
    return Number.parseInt(flags[1]!, 8);
  }
  assert.fail(`${path} is not open`);
}

describe('WalWriter', () => {
  test('sync on: the log is opened O_DSYNC, so each batch is one write that is also its sync', {
    skip: process.platform !== 'linux',
  }, async () => {
    for (const sync of [true, false]) {
      const path = freshPath();
      const wal = await WalWriter.create(path, { sync });
      try {
        assert.equal((openFlagsOf(path) & constants.O_DSYNC) !== 0, sync, `sync ${sync}`);
        await Promise.all(sampleEntries(20).map((e) => wal.append(e)));
        const stats = wal.stats();
        assert.equal(stats.records, 20);
        assert.equal(stats.syncs, sync ? stats.writes : 0, 'with sync on every batch write counts as a sync');
      } finally {
        await wal.close();
      }
      assert.equal((await readBack(path)).length, 20);
    }
  });

  test('round trip: values, tombstones, empty values, large values, expiry', async () => {
    const path = freshPath();
    const entries = sampleEntries(300);
    const wal = await WalWriter.create(path, { sync: true });
    await Promise.all(entries.map((e) => wal.append(e)));
    const expectedBytes =
      FILE_HEADER_BYTES + batchRecordBytes(entries, limits.walBatchBytesMax).reduce((sum, n) => sum + n, 0);
    assert.equal(wal.bytes, expectedBytes);
    assert.equal(wal.stats().records, 300);
    await wal.close();
    assert.equal(
      (await stat(path)).size,
      expectedBytes + CLOSE_RECORD_BYTES,
      'the records, then the close record',
    );
    const back = await readBack(path);
    assert.deepEqual(back, entries);
    assert.ok(back.some((e) => e.kind === EntryKind.Tombstone));
    assert.ok(back.some((e) => e.value.length >= 100_000));
  });

  test('appends in one event-loop turn share one write and one fdatasync', async () => {
    const path = freshPath();
    const { wal, probe } = await createProbed(path, { sync: true });
    const entries = sampleEntries(50);
    await Promise.all(entries.map((e) => wal.append(e)));
    assert.deepEqual(wal.stats(), { records: 50, writes: 1, syncs: 1 });
    assert.equal(probe.datasyncs, 1);
    await wal.close();
    assert.deepEqual(await readBack(path), entries);
  });

  test('200 concurrent appends with sync on are group-committed, in append order', async () => {
    const path = freshPath();
    const wal = await WalWriter.create(path, { sync: true });
    const appended: Entry[] = [];
    // 20 writers, each appending 10 entries one after another, as request handlers would.
    const writer = async (w: number) => {
      for (let i = 0; i < 10; i++) {
        const entry = valueEntry(
          Buffer.from(`w${w}-${i}`),
          BigInt(w * 100 + i),
          Buffer.from(`value ${w} ${i}`),
        );
        const done = wal.append(entry);
        appended.push(entry); // append() placed the record synchronously
        await done;
      }
    };
    await Promise.all(Array.from({ length: 20 }, (_, w) => writer(w)));
    const stats = wal.stats();
    assert.equal(stats.records, 200);
    assert.equal(stats.syncs, stats.writes, 'sync on: one fdatasync per write');
    assert.ok(stats.syncs <= 40, `expected far fewer fdatasyncs than appends, got ${stats.syncs}`);
    await wal.close();
    assert.deepEqual(await readBack(path), appended);
  });

  test('sync off: appends resolve after write() and nothing is fsynced until close', async () => {
    const path = freshPath();
    const { wal, probe } = await createProbed(path, { sync: false });
    const syncsAfterCreate = probe.syncs;
    const entries = sampleEntries(120);
    await Promise.all(entries.slice(0, 60).map((e) => wal.append(e)));
    for (const e of entries.slice(60)) await wal.append(e);
    assert.equal(wal.stats().syncs, 0);
    assert.ok(wal.stats().writes >= 61);
    assert.equal(probe.datasyncs, 0);
    assert.equal(probe.syncs, syncsAfterCreate);
    // Acknowledged records are in the file before close: readable by another reader now.
    assert.deepEqual((await readWal(path, { repair: false })).entries, entries);
    const callsBeforeClose = probe.calls.length;
    await wal.close();
    assert.equal(wal.stats().syncs, 2, 'close syncs the records, then the close record');
    assert.equal(probe.syncs, syncsAfterCreate + 1);
    // The records are durable before the close record is written: a power cut
    // must never keep the close record and lose a record before it.
    assert.deepEqual(probe.calls.slice(callsBeforeClose), ['datasync', 'write', 'sync']);
  });

  test('sync off: a log with no records is closed with one sync; a failed sync of the records fails close', async () => {
    const empty = await createProbed(freshPath(), { sync: false });
    const callsBeforeClose = empty.probe.calls.length;
    await empty.wal.close();
    assert.deepEqual(empty.probe.calls.slice(callsBeforeClose), ['write', 'sync']);

    const path = freshPath();
    const { wal, probe } = await createProbed(path, { sync: false });
    await wal.append(valueEntry(Buffer.from('k'), 1n, Buffer.from('v')));
    probe.failDatasync = true;
    const err = await rejectsWithCode(wal.close(), 'RINGKV_IO');
    assert.match(err.message, /fdatasync/);
    assert.equal(
      (await readWal(path, { repair: false })).closed,
      false,
      'no close record after a failed sync',
    );
  });

  test('batches respect batchBytesMax; a larger entry goes alone', async () => {
    const path = freshPath();
    const { wal, probe } = await createProbed(path, { sync: true, batchBytesMax: 1024 });
    const small = Array.from({ length: 60 }, (_, i) =>
      valueEntry(Buffer.from(`k${i}`), BigInt(i + 1), Buffer.alloc(60, i)),
    );
    const large = valueEntry(Buffer.from('large'), 1000n, Buffer.alloc(5000, 7));
    const entries = [...small.slice(0, 30), large, ...small.slice(30)];
    await Promise.all(entries.map((e) => wal.append(e)));
    // All appends came in one turn, so batches are packed greedily in append order.
    const expected = batchRecordBytes(entries, 1024);
    assert.ok(expected.length >= 6);
    assert.deepEqual(probe.writeLengths.slice(1), expected); // [0] is the header
    assert.equal(expected.filter((n) => n > 1024).length, 1);
    assert.ok(expected.includes(recordBytes(large)), 'the large entry is a record of its own');
    await wal.close();
    assert.deepEqual(await readBack(path), entries);
  });

  test('short writes are continued until the whole batch is in the file', async () => {
    const path = freshPath();
    const { wal, probe } = await createProbed(path, { sync: false });
    probe.chunkBytesMax = 7;
    const entries = sampleEntries(12).filter((e) => e.value.length < 1000);
    await Promise.all(entries.map((e) => wal.append(e)));
    await wal.close();
    assert.deepEqual(await readBack(path), entries);
  });

  test('a write() that makes no progress fails the batch (and the writer) instead of being asked again forever', async () => {
    const path = freshPath();
    const { wal, probe } = await createProbed(path, { sync: false });
    // A writer that asked again would meet this bound's EIO, not hang the test.
    probe.failWriteAt = 12;
    probe.chunkBytesMax = 0;
    await assert.rejects(wal.append(sampleEntries(1)[0]!), {
      code: 'RINGKV_IO',
      message: /WAL write failed: .*wrote 0 bytes/,
    });
    assert.equal(probe.writeLengths.length, 2, 'the header, then one try of the batch');
    assert.ok(wal.failure !== undefined);
    await assert.rejects(wal.close(), { code: 'RINGKV_IO' });
  });

  test('a batch being written is never changed by later appends', async () => {
    const path = freshPath();
    const { wal, probe } = await createProbed(path, { sync: false });
    const mutated: string[] = [];
    probe.beforeWrite = async (buffer, offset, length) => {
      const before = Buffer.from(buffer.subarray(offset, offset + length));
      // Let later appends run while this write is "in flight".
      await new Promise((resolve) => setTimeout(resolve, 5));
      if (!before.equals(buffer.subarray(offset, offset + length))) mutated.push(`write of ${length}`);
    };
    const entries = sampleEntries(40).filter((e) => e.value.length < 1000);
    const first = Promise.all(entries.slice(0, 10).map((e) => wal.append(e)));
    await new Promise((resolve) => setImmediate(resolve)); // the first batch is now in flight
    const later: Promise<void>[] = [];
    for (const e of entries.slice(10)) {
      later.push(wal.append(e));
      if (later.length % 10 === 0) await new Promise((resolve) => setTimeout(resolve, 2));
    }
    await Promise.all([first, ...later]);
    await wal.close();
    assert.deepEqual(mutated, []);
    assert.ok(probe.writeLengths.length >= 3, 'the test needs writes that overlap later appends');
    assert.deepEqual(await readBack(path), entries);
  });

  test('prefill: records overwrite the zeros written at create; past them the file grows', async () => {
    const path = freshPath();
    const prefillBytes = 64 * 1024;
    const wal = await WalWriter.create(path, { sync: true, prefillBytes });
    assert.equal((await stat(path)).size, FILE_HEADER_BYTES + prefillBytes, 'create writes the zeros');
    const small = [valueEntry(Buffer.from('a'), 1n, Buffer.from('x')), tombstoneEntry(Buffer.from('b'), 2n)];
    await Promise.all(small.map((e) => wal.append(e)));
    assert.equal((await stat(path)).size, FILE_HEADER_BYTES + prefillBytes, 'records went into the zeros');
    const inPrefill = await readWal(path, { repair: false });
    assert.deepEqual(inPrefill.entries, small);
    assert.equal(inPrefill.validBytes, wal.bytes);
    assert.equal(
      inPrefill.tornBytes,
      prefillBytes - (wal.bytes - FILE_HEADER_BYTES),
      'the rest reads as zeros',
    );

    const large = valueEntry(Buffer.from('c'), 3n, Buffer.alloc(prefillBytes, 7));
    await wal.append(large);
    await wal.close();
    assert.equal(
      (await stat(path)).size,
      wal.bytes + CLOSE_RECORD_BYTES,
      'a record past the zeros grows the file',
    );
    assert.deepEqual(await readBack(path), [...small, large]);
  });

  test('prefill: chunk after chunk, the last one short, each where the one before ended', async () => {
    const chunk = 64 * 1024;
    const { wal, probe } = await createProbed(freshPath(), {
      sync: true,
      prefillBytes: 2.5 * chunk,
      prefillRestMs: 1,
    });
    // Write 0 is the header.
    assert.deepEqual(probe.writeLengths.slice(1), [chunk, chunk, chunk / 2]);
    assert.deepEqual(probe.writePositions.slice(1), [
      FILE_HEADER_BYTES,
      FILE_HEADER_BYTES + chunk,
      FILE_HEADER_BYTES + 2 * chunk,
    ]);
    await wal.close();
  });

  test('an aborted prefill stops where it is; the log still takes records, past the zeros', async () => {
    const path = freshPath();
    const hurry = new AbortController();
    const { wal } = await createProbed(
      path,
      { sync: true, prefillBytes: 100 * 64 * 1024, prefillRestMs: 60_000, prefillSignal: hurry.signal },
      (probe) => {
        // Abort once the first chunk is being written: the rest after it must be cut short.
        probe.beforeWrite = async (_buf, _offset, length) => {
          if (length === 64 * 1024) hurry.abort();
        };
      },
    );
    assert.equal((await stat(path)).size, FILE_HEADER_BYTES + 64 * 1024, 'one chunk, then stopped');
    const entries = sampleEntries(40);
    await Promise.all(entries.map((e) => wal.append(e)));
    await wal.close();
    assert.deepEqual(await readBack(path), entries);
  });

  test('prefill must be a whole number of bytes', async () => {
    await assert.rejects(WalWriter.create(freshPath(), { sync: true, prefillBytes: -1 }), /prefillBytes/);
    await assert.rejects(WalWriter.create(freshPath(), { sync: true, prefillBytes: 1.5 }), /prefillBytes/);
  });

  test('bytes counts queued records before they are written', async () => {
    const path = freshPath();
    const wal = await WalWriter.create(path, { sync: false });
    assert.equal(wal.bytes, FILE_HEADER_BYTES);
    const entry = valueEntry(Buffer.from('k'), 1n, Buffer.from('v'));
    const done = wal.append(entry);
    assert.equal(wal.bytes, FILE_HEADER_BYTES + recordBytes(entry));
    // statSync: no event-loop turn may pass, or the write loop gets to run first.
    assert.equal(statSync(path).size, FILE_HEADER_BYTES, 'not written yet');
    await done;
    assert.equal((await stat(path)).size, wal.bytes);
    await wal.close();
  });

  test('append after close rejects with RINGKV_CLOSED; close is idempotent', async () => {
    const path = freshPath();
    const wal = await WalWriter.create(path, { sync: true });
    const entry = valueEntry(Buffer.from('k'), 1n, Buffer.from('v'));
    const pending = wal.append(entry);
    await wal.close(); // writes what is pending
    await pending;
    await wal.close();
    const err = await rejectsWithCode(wal.append(entry), 'RINGKV_CLOSED');
    assert.match(err.message, /WAL is closed/);
    assert.deepEqual(await readBack(path), [entry]);
  });

  test('close ends the log with a close record that counts its records; nothing follows it', async () => {
    const path = freshPath();
    const prefillBytes = 16 * 1024;
    const wal = await WalWriter.create(path, { sync: true, prefillBytes });
    const entries = sampleEntries(40).filter((e) => e.value.length < 1000);
    await Promise.all(entries.slice(0, 10).map((e) => wal.append(e)));
    for (const e of entries.slice(10, 13)) await wal.append(e);
    const batches = wal.stats().writes;
    assert.equal(batches, 4);
    const recordsEnd = wal.bytes;
    await wal.close();
    const bytes = await readFile(path);
    assert.equal(bytes.length, FILE_HEADER_BYTES + prefillBytes, 'the close record went into the zeros');
    const close = bytes.subarray(recordsEnd, recordsEnd + CLOSE_RECORD_BYTES);
    assert.equal(close.readUInt32BE(0), CLOSE_RECORD_BYTES - RECORD_HEADER_BYTES);
    assert.equal(close[RECORD_HEADER_BYTES], 0xff);
    assert.equal(close.readUInt32BE(RECORD_HEADER_BYTES + 5), recordsEnd, 'where the records end');
    assert.equal(close.readUInt32BE(RECORD_HEADER_BYTES + 9), batches);
    assert.equal(close.readUInt32BE(RECORD_HEADER_BYTES + 13), 13);
    const contents = await readWal(path, { repair: false });
    assert.equal(contents.closed, true);
    assert.equal(contents.records, batches);
    assert.deepEqual(contents.entries, entries.slice(0, 13));
    assert.equal(contents.validBytes, recordsEnd + CLOSE_RECORD_BYTES);
    assert.equal(wal.stats().writes, batches, 'the close record is not a batch');
  });

  test('an empty log closed cleanly is a header and a close record', async () => {
    const path = freshPath();
    const wal = await WalWriter.create(path, { sync: false });
    await wal.close();
    const contents = await readWal(path, { repair: false });
    assert.equal((await stat(path)).size, FILE_HEADER_BYTES + CLOSE_RECORD_BYTES);
    assert.deepEqual(contents.entries, []);
    assert.equal(contents.closed, true);
  });

  test('close without the close record leaves the file as a killed process does', async () => {
    const path = freshPath();
    const wal = await WalWriter.create(path, { sync: false });
    const entry = valueEntry(Buffer.from('k'), 1n, Buffer.from('v'));
    await wal.append(entry);
    await wal.close({ closeRecord: false });
    await rejectsWithCode(wal.append(entry), 'RINGKV_CLOSED');
    const contents = await readWal(path, { repair: false });
    assert.equal((await stat(path)).size, FILE_HEADER_BYTES + recordBytes(entry));
    assert.deepEqual(contents.entries, [entry]);
    assert.equal(contents.closed, false);
  });

  test('create refuses an existing file', async () => {
    const path = freshPath();
    await writeFile(path, 'precious');
    const err = await rejectsWithCode(WalWriter.create(path, { sync: true }), 'RINGKV_IO');
    assert.ok(err.message.includes(path));
  });

  test('a failed write rejects its whole batch, later appends and close with RINGKV_IO', async () => {
    const path = freshPath();
    const { wal, probe } = await createProbed(path, { sync: true });
    const entries = sampleEntries(30).filter((e) => e.value.length < 1000);
    await Promise.all(entries.slice(0, 5).map((e) => wal.append(e)));
    probe.failWriteAt = probe.writeLengths.length; // the next batch
    const results = await Promise.allSettled(entries.slice(5).map((e) => wal.append(e)));
    assert.equal(results.length, entries.length - 5);
    for (const result of results) {
      assert.equal(result.status, 'rejected');
      assert.ok(isRingkvError(result.reason, 'RINGKV_IO'));
      assert.ok(result.reason.message.includes(path), 'the error names the file');
    }
    await rejectsWithCode(wal.append(entries[0]!), 'RINGKV_IO');
    await rejectsWithCode(wal.close(), 'RINGKV_IO');
    // What was acknowledged before the failure is intact; no close record claims the rest was written.
    const contents = await readWal(path, { repair: false });
    assert.deepEqual(contents.entries, entries.slice(0, 5));
    assert.equal(contents.closed, false);
  });

  test('a failed fdatasync fails the writer too', async () => {
    const path = freshPath();
    const { wal, probe } = await createProbed(path, { sync: true });
    probe.failDatasync = true;
    const entry = valueEntry(Buffer.from('k'), 1n, Buffer.from('v'));
    const err = await rejectsWithCode(wal.append(entry), 'RINGKV_IO');
    assert.match(err.message, /fdatasync/);
    probe.failDatasync = false;
    await rejectsWithCode(wal.append(entry), 'RINGKV_IO');
    await rejectsWithCode(wal.close(), 'RINGKV_IO');
  });

  test('property: random entry sequences round-trip', async () => {
    const entryArb = fc.oneof(
      fc
        .record({
          key: fc.uint8Array({ maxLength: 40 }),
          version: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
          value: fc.uint8Array({ maxLength: 300 }),
          expiresAtMs: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 2 ** 48 - 1 })),
        })
        .map((r) => valueEntry(Buffer.from(r.key), r.version, Buffer.from(r.value), r.expiresAtMs)),
      fc
        .record({
          key: fc.uint8Array({ maxLength: 40 }),
          version: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
        })
        .map((r) => tombstoneEntry(Buffer.from(r.key), r.version)),
    );
    await fc.assert(
      fc.asyncProperty(
        fc.array(entryArb, { maxLength: 40 }),
        fc.integer({ min: 64, max: 4096 }),
        async (entries, batchBytesMax) => {
          const path = freshPath();
          const wal = await WalWriter.create(path, { sync: false, batchBytesMax });
          // Half at once, half one by one: both batching paths.
          const half = entries.length >> 1;
          await Promise.all(entries.slice(0, half).map((e) => wal.append(e)));
          for (const e of entries.slice(half)) await wal.append(e);
          await wal.close();
          assert.deepEqual(await readBack(path), entries);
          await rm(path);
        },
      ),
      propertyParams({ numRuns: 50 }),
    );
  });
});
