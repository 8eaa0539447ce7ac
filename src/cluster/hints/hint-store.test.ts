import assert from 'node:assert/strict';
import { appendFile, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { type Entry, tombstoneEntry, valueEntry } from '../../storage/index.js';
import { HINT_HEADER_BYTES, hintFileName, hintRecordBytes, peerDirName } from './format.js';
import { HintStore } from './hint-store.js';

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

function entry(i: number): Entry {
  return i % 5 === 4
    ? tombstoneEntry(Buffer.from(`key-${i}`), BigInt(1000 + i))
    : valueEntry(Buffer.from(`key-${i}`), BigInt(1000 + i), Buffer.from(`value-${i}`.repeat(3)));
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
    const big = valueEntry(Buffer.from('big'), 5n, Buffer.alloc(10_000, 1));
    await store.add(A, big);
    await store.add(A, entry(1));
    const batch = await store.peek(A, 10, 100);
    assert.deepEqual(batch?.entries, [big]);
    await store.acknowledge(batch!);
    assert.deepEqual((await store.peek(A, 10, 100))?.entries, [entry(1)]);
    await store.close();
  });
});
