import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { crc32 } from '../../util/bytes.js';
import { CorruptionError, isRingkvError } from '../../util/errors.js';
import { type Entry, tombstoneEntry, valueEntry } from '../entry/entry.js';
import {
  CLOSE_RECORD_BYTES,
  encodeCloseRecord,
  encodeFileHeader,
  encodeRecord,
  FILE_HEADER_BYTES,
  PAYLOAD_BYTES_MAX,
  RECORD_HEADER_BYTES,
  recordBytes,
} from './format.js';
import { type LogHeader, type LogRead, parseRecordLog, parseWal, readWal } from './reader.js';
import { WalWriter } from './writer.js';

let dir = '';
let fileCount = 0;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ringkv-wal-reader-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

function freshPath(): string {
  return join(dir, `${String(++fileCount).padStart(6, '0')}.wal`);
}

const ENTRIES: Entry[] = [
  valueEntry(Buffer.from('alpha'), 10n, Buffer.from('first value')),
  tombstoneEntry(Buffer.from('beta'), 11n),
  valueEntry(Buffer.from('gamma'), 12n, Buffer.alloc(0), 1_700_000_000_000),
  valueEntry(Buffer.from('delta'), 13n, Buffer.alloc(3000, 0x5a)),
  valueEntry(Buffer.from('epsilon'), 14n, Buffer.from('last one')),
];

/** Where each record starts in a file of ENTRIES (and, last, where the file ends). */
const OFFSETS: number[] = [FILE_HEADER_BYTES];
for (const e of ENTRIES) OFFSETS.push(OFFSETS[OFFSETS.length - 1]! + recordBytes(e));

/**
 * The bytes of a log holding `entries`, written by WalWriter so the test
 * covers what it produces: one append at a time, so each entry is a batch,
 * and so a record, of its own (OFFSETS), unless `oneBatch`. Unless `closed`,
 * the log is left as a crash leaves it: without its close record.
 */
async function logBytes(
  entries: Entry[],
  options: { oneBatch?: boolean; closed?: boolean } = {},
): Promise<Buffer> {
  const path = freshPath();
  const wal = await WalWriter.create(path, { sync: false });
  if (options.oneBatch === true) await Promise.all(entries.map((e) => wal.append(e)));
  else for (const e of entries) await wal.append(e);
  await wal.close({ closeRecord: options.closed === true });
  const bytes = await readFile(path);
  await rm(path);
  return bytes;
}

/** A log of `first`, one append at a time, then all of `batch` appended in one turn: one record. */
async function batchedLog(first: Entry[], batch: Entry[]): Promise<Buffer> {
  const path = freshPath();
  const wal = await WalWriter.create(path, { sync: false });
  for (const e of first) await wal.append(e);
  await Promise.all(batch.map((e) => wal.append(e)));
  assert.equal(wal.stats().writes, first.length + 1, 'the batch went in one write');
  await wal.close({ closeRecord: false });
  const bytes = await readFile(path);
  await rm(path);
  return bytes;
}

/** How a read ended, without the record count. */
function ending(read: LogRead) {
  const { entries, validBytes, closed, cutRecords, cutBytes } = read;
  return { entries, validBytes, closed, cutRecords, cutBytes };
}

/** A read that found no close record and cut nothing but zeros. */
function uncut(entries: Entry[], validBytes: number) {
  return { entries, validBytes, closed: false, cutRecords: 0, cutBytes: 0 };
}

async function fileWith(bytes: Uint8Array): Promise<string> {
  const path = freshPath();
  await writeFile(path, bytes);
  return path;
}

function flipped(bytes: Buffer, offset: number): Buffer {
  const copy = Buffer.from(bytes);
  copy[offset] = copy[offset]! ^ 0x10;
  return copy;
}

async function corruption(path: string): Promise<CorruptionError> {
  const err = await readWal(path, { repair: true }).then(
    () => assert.fail('expected a CorruptionError'),
    (e: unknown) => e,
  );
  assert.ok(err instanceof CorruptionError, `expected a CorruptionError, got ${String(err)}`);
  assert.equal(err.code, 'RINGKV_CORRUPTION');
  assert.equal(err.file, path);
  assert.ok(err.message.includes(path), 'the message names the file');
  assert.ok(err.message.includes(`offset ${err.offset}`), 'the message names the offset');
  return err;
}

describe('readWal', () => {
  let good: Buffer = Buffer.alloc(0);
  before(async () => {
    good = await logBytes(ENTRIES);
    assert.equal(good.length, OFFSETS[ENTRIES.length]);
  });

  test('an intact log reads back whole', async () => {
    const path = await fileWith(good);
    const contents = await readWal(path, { repair: true });
    assert.deepEqual(contents.entries, ENTRIES);
    assert.equal(contents.validBytes, good.length);
    assert.equal(contents.tornBytes, 0);
    assert.equal((await stat(path)).size, good.length, 'an intact file is left alone');
  });

  test('a log cut at every byte inside its last record loses only that record; repair truncates', async () => {
    const lastStart = OFFSETS[ENTRIES.length - 1]!;
    const path = freshPath();
    for (let cut = lastStart; cut < good.length; cut++) {
      await writeFile(path, good.subarray(0, cut));
      const contents = await readWal(path, { repair: false });
      assert.deepEqual(contents.entries, ENTRIES.slice(0, -1), `cut at ${cut}`);
      assert.equal(contents.validBytes, lastStart);
      assert.equal(contents.tornBytes, cut - lastStart);
      // One record cut, counted to its last non-zero byte (a version's high bytes are zeros).
      let dataEnd = cut;
      while (dataEnd > lastStart && good[dataEnd - 1] === 0) dataEnd--;
      assert.equal(contents.cutRecords, dataEnd > lastStart ? 1 : 0, `cut at ${cut}`);
      assert.equal(contents.cutBytes, dataEnd - lastStart, `cut at ${cut}`);
      assert.equal(contents.closed, false);
      assert.equal((await stat(path)).size, cut, 'without repair the file is untouched');

      const repaired = await readWal(path, { repair: true });
      assert.equal(repaired.tornBytes, cut - lastStart);
      assert.equal((await stat(path)).size, lastStart, `repair truncates (cut at ${cut})`);
      const again = await readWal(path, { repair: false });
      assert.equal(again.tornBytes, 0);
      assert.deepEqual(again.entries, ENTRIES.slice(0, -1));
    }
  });

  test('a log cut inside the large middle record keeps the records before it', async () => {
    const start = OFFSETS[3]!;
    for (const cut of [start + 1, start + RECORD_HEADER_BYTES, start + 1000, OFFSETS[4]! - 1]) {
      const contents = parseWal('cut.wal', good.subarray(0, cut));
      assert.deepEqual(contents.entries, ENTRIES.slice(0, 3));
      assert.equal(contents.validBytes, start);
    }
  });

  test('a file cut inside its header is an empty, torn log', async () => {
    for (let cut = 0; cut < FILE_HEADER_BYTES; cut++) {
      const path = await fileWith(good.subarray(0, cut));
      const contents = await readWal(path, { repair: true });
      assert.deepEqual(contents.entries, []);
      assert.equal(contents.validBytes, 0);
      assert.equal(contents.tornBytes, cut);
      assert.equal((await stat(path)).size, 0);
    }
  });

  test('a create torn with its size on disk: a prefix of the header, then zeros, is an empty, torn log', () => {
    // What a power loss during create() can leave: the file's size reached the disk, some of its bytes did not.
    for (let kept = 0; kept < FILE_HEADER_BYTES; kept++) {
      for (const size of [FILE_HEADER_BYTES, FILE_HEADER_BYTES + 4096]) {
        const bytes = Buffer.alloc(size);
        good.copy(bytes, 0, 0, kept);
        const contents = parseWal('torn-create.wal', bytes);
        assert.deepEqual(ending(contents), { ...uncut([], 0), cutBytes: contents.cutBytes });
        assert.ok(contents.cutBytes <= kept);
      }
    }
    // A header that is not a prefix of one, or anything but zeros after it, is damage.
    const wrong = Buffer.from(good.subarray(0, FILE_HEADER_BYTES));
    wrong[1] = wrong[1]! ^ 0xff;
    assert.throws(() => parseWal('wrong.wal', Buffer.concat([wrong, Buffer.alloc(64)])), /bad magic/);
    const followed = Buffer.alloc(FILE_HEADER_BYTES + 64);
    good.copy(followed, 0, 0, 5);
    followed[FILE_HEADER_BYTES + 10] = 1;
    assert.throws(() => parseWal('followed.wal', followed), /unsupported format version/);
  });

  test('a zero-filled tail is torn', async () => {
    const path = await fileWith(Buffer.concat([good, Buffer.alloc(8192)]));
    const contents = await readWal(path, { repair: true });
    assert.deepEqual(contents.entries, ENTRIES);
    assert.equal(contents.tornBytes, 8192);
    assert.equal((await stat(path)).size, good.length);
  });

  test('MiBs of zeros after the records (a prefilled log) end the log, and a record hidden in them is found', async () => {
    const zeros = Buffer.alloc(4 * 1024 * 1024);
    const clean = parseWal('prefilled.wal', Buffer.concat([good, zeros]));
    assert.deepEqual(ending(clean), uncut(ENTRIES, good.length));

    // One intact record far inside the zeros is not a torn tail: what precedes it was lost.
    const hidden = Buffer.concat([good, zeros]);
    good.copy(hidden, good.length + 3 * 1024 * 1024, OFFSETS[1]!, OFFSETS[2]!);
    assert.throws(
      () => parseWal('hidden.wal', hidden),
      (err: Error) => err.message.includes('hidden.wal') && /intact record follows/.test(err.message),
    );
  });

  test('a prefilled log whose last batch reached the disk in part, its first page lost, is torn', async () => {
    // Two batches: the first synced, the second (many entries, several pages) written over zeros
    // when the power failed, with its first page lost and later pages, whole entries among them, on disk.
    const first = ENTRIES.slice(0, 2);
    const batch = Array.from({ length: 60 }, (_, i) =>
      valueEntry(Buffer.from(`batch-${i}`), 100n + BigInt(i), Buffer.alloc(200, i)),
    );
    const batchStart = (await logBytes(first)).length;
    const whole = await batchedLog(first, batch);
    assert.deepEqual(parseWal('whole.wal', whole).entries, [...first, ...batch]);
    assert.ok(whole.length - batchStart > 3 * 4096, 'the batch spans several pages');
    const torn = Buffer.concat([whole, Buffer.alloc(1024 * 1024)]);
    torn.fill(0, batchStart, Math.ceil((batchStart + 1) / 4096) * 4096);
    // The torn batch is the one record cut, counted up to its last byte on disk.
    const cut = { closed: false, cutRecords: 1, cutBytes: whole.length - batchStart };
    assert.deepEqual(ending(parseWal('torn-batch.wal', torn)), {
      entries: first,
      validBytes: batchStart,
      ...cut,
    });
    // Its middle page lost instead: the same.
    const middle = Buffer.concat([whole, Buffer.alloc(1024 * 1024)]);
    const middlePage = Math.ceil(batchStart / 4096) * 4096 + 4096;
    middle.fill(0, middlePage, middlePage + 4096);
    assert.deepEqual(ending(parseWal('torn-middle.wal', middle)), {
      entries: first,
      validBytes: batchStart,
      ...cut,
    });
  });

  test('a last record whose later pages never reached the disk is torn', async () => {
    // The large record's second half and everything after it are zeros.
    const bytes = Buffer.from(good);
    bytes.fill(0, OFFSETS[3]! + 1500);
    const contents = parseWal('zeros.wal', Buffer.concat([bytes, Buffer.alloc(4096)]));
    assert.deepEqual(ending(contents), {
      ...uncut(ENTRIES.slice(0, 3), OFFSETS[3]!),
      cutRecords: 1,
      cutBytes: recordBytes(ENTRIES[3]!),
    });
  });

  test('a checksum failure on the record that reaches EOF is torn', async () => {
    const bytes = flipped(good, good.length - 2);
    const contents = parseWal('tail.wal', bytes);
    const lastStart = OFFSETS[ENTRIES.length - 1]!;
    assert.deepEqual(ending(contents), {
      ...uncut(ENTRIES.slice(0, -1), lastStart),
      cutRecords: 1,
      cutBytes: good.length - lastStart,
    });
  });

  test('a file of zeros is an empty, torn log', async () => {
    const contents = parseWal('zero.wal', Buffer.alloc(4096));
    assert.deepEqual(ending(contents), uncut([], 0));
  });

  test('a flipped byte inside a middle record is corruption at that record', async () => {
    for (const [record, within] of [
      [1, RECORD_HEADER_BYTES + 3], // payload
      [3, 2000], // payload of the large record
      [2, 5], // checksum field
    ] as const) {
      const path = await fileWith(flipped(good, OFFSETS[record]! + within));
      const err = await corruption(path);
      assert.equal(err.offset, OFFSETS[record]);
      assert.match(err.message, /intact record follows/);
      assert.equal((await stat(path)).size, good.length, 'a corrupt file is not repaired');
    }
  });

  test('a flipped bit in a middle record length is corruption, not a torn tail', async () => {
    // The length now points past EOF; trusting it would drop records 2 to 4 silently.
    const bytes = Buffer.from(good);
    bytes.writeUInt32BE(bytes.readUInt32BE(OFFSETS[1]!) | 0x0010_0000, OFFSETS[1]!);
    const err = await corruption(await fileWith(bytes));
    assert.equal(err.offset, OFFSETS[1]);
  });

  test('zeros over a middle record with intact records after it are corruption', async () => {
    const bytes = Buffer.from(good);
    bytes.fill(0, OFFSETS[1]!, OFFSETS[2]!);
    const err = await corruption(await fileWith(bytes));
    assert.equal(err.offset, OFFSETS[1]);
  });

  test('a length over the maximum is corruption even at the end', async () => {
    const tail = Buffer.alloc(RECORD_HEADER_BYTES + 20);
    tail.writeUInt32BE(PAYLOAD_BYTES_MAX + 1, 0);
    const err = await corruption(await fileWith(Buffer.concat([good, tail])));
    assert.equal(err.offset, good.length);
    assert.match(err.message, /over the maximum/);
  });

  test('bad magic or an unknown format version is corruption at offset 0', async () => {
    const badMagic = flipped(good, 1);
    const magicErr = await corruption(await fileWith(badMagic));
    assert.equal(magicErr.offset, 0);
    assert.match(magicErr.message, /bad magic/);

    const badVersion = Buffer.from(good);
    badVersion.writeUInt32BE(99, 4);
    const versionErr = await corruption(await fileWith(badVersion));
    assert.equal(versionErr.offset, 0);
    assert.match(versionErr.message, /format version 99/);

    const shortForeign = await corruption(await fileWith(Buffer.from('{"a"')));
    assert.equal(shortForeign.offset, 0);
  });

  test('records written by hand with the format functions read back, in version 2 and version 1', async () => {
    const entry = valueEntry(Buffer.from('k'), 5n, Buffer.from('v'));
    const buf = Buffer.alloc(FILE_HEADER_BYTES + recordBytes(entry));
    encodeFileHeader().copy(buf, 0);
    encodeRecord(entry, buf, FILE_HEADER_BYTES);
    assert.deepEqual(parseWal('hand.wal', buf).entries, [entry]);
    // A version-1 file (one entry per record) from an older node.
    const old = Buffer.concat([good]);
    old.writeUInt32BE(1, 4);
    assert.deepEqual(ending(parseWal('version1.wal', old)), uncut(ENTRIES, good.length));
    // A version-2 file (no close records) reads the same.
    const version2 = Buffer.from(good);
    version2.writeUInt32BE(2, 4);
    assert.deepEqual(ending(parseWal('version2.wal', version2)), uncut(ENTRIES, good.length));
  });

  test('a missing file is RINGKV_IO', async () => {
    const path = join(dir, 'absent.wal');
    const err = await readWal(path, { repair: false }).then(
      () => assert.fail('expected an error'),
      (e: unknown) => e,
    );
    assert.ok(isRingkvError(err, 'RINGKV_IO'));
    assert.ok(err.message.includes(path));
  });
});

describe('readWal: a log closed cleanly, or left by a crash', () => {
  let good: Buffer = Buffer.alloc(0);
  let closed: Buffer = Buffer.alloc(0);
  const closeAt = OFFSETS[ENTRIES.length]!;
  const lastStart = OFFSETS[ENTRIES.length - 1]!;
  before(async () => {
    good = await logBytes(ENTRIES);
    closed = await logBytes(ENTRIES, { closed: true });
    assert.equal(closed.length, closeAt + CLOSE_RECORD_BYTES, 'the records, then the close record');
    assert.deepEqual(closed.subarray(0, closeAt), good);
  });

  test('a log closed cleanly reads whole and closed, with prefill zeros after it or not', async () => {
    for (const zeros of [0, 4 * 1024 * 1024]) {
      const path = await fileWith(Buffer.concat([closed, Buffer.alloc(zeros)]));
      const contents = await readWal(path, { repair: true });
      assert.deepEqual(ending(contents), { ...uncut(ENTRIES, closed.length), closed: true });
      assert.equal(contents.records, ENTRIES.length);
      assert.equal(contents.tornBytes, zeros);
    }
  });

  test('a damaged last record of a log closed cleanly is refused, naming the close record', async () => {
    // The reproduction: the last acknowledged write's first payload byte flipped, the log closed by a clean stop.
    for (const zeros of [0, 64 * 1024]) {
      const bytes = flipped(Buffer.concat([closed, Buffer.alloc(zeros)]), lastStart + RECORD_HEADER_BYTES);
      const path = await fileWith(bytes);
      const err = await corruption(path);
      assert.equal(err.offset, lastStart);
      assert.match(err.message, /checksum 0x[0-9a-f]{8}, expected 0x[0-9a-f]{8}/);
      assert.ok(
        err.message.includes(`close record follows at offset ${closeAt}: the log was closed cleanly`),
        err.message,
      );
      assert.equal((await stat(path)).size, bytes.length, 'a refused log is not truncated');
    }
  });

  test('any one flipped byte in a log closed cleanly is refused at its record, or loses nothing', () => {
    const recordOf = (at: number) => OFFSETS.filter((start) => start <= at).pop()!;
    let refused = 0;
    for (let at = FILE_HEADER_BYTES; at < closed.length; at++) {
      for (const mask of [0x01, 0x80]) {
        const bytes = Buffer.from(closed);
        bytes[at] = bytes[at]! ^ mask;
        let read: LogRead;
        try {
          read = parseWal('flipped.wal', bytes);
        } catch (err) {
          assert.ok(err instanceof CorruptionError, String(err));
          assert.equal(err.offset, recordOf(at), `byte ${at} ^ ${mask}: ${err.message}`);
          refused++;
          continue;
        }
        // Only the close record's own damage may be read past, and then every entry is there.
        assert.ok(at >= closeAt, `byte ${at} ^ ${mask} in a record was read past`);
        assert.deepEqual(read.entries, ENTRIES);
        assert.equal(read.closed, false);
      }
    }
    assert.ok(refused >= 2 * (closeAt - FILE_HEADER_BYTES), 'every flip in a record was refused');
  });

  test('data after the close record is refused', async () => {
    const path = await fileWith(Buffer.concat([closed, Buffer.alloc(100), Buffer.from('stray')]));
    const err = await corruption(path);
    assert.equal(err.offset, closed.length + 100);
    assert.match(err.message, new RegExp(`data after the close record at offset ${closeAt}`));
  });

  test('a close record that does not match the records before it is refused', async () => {
    for (const facts of [
      { recordsEnd: closeAt, batches: ENTRIES.length - 1, entries: ENTRIES.length },
      { recordsEnd: closeAt, batches: ENTRIES.length, entries: ENTRIES.length + 1 },
      { recordsEnd: OFFSETS[2]!, batches: ENTRIES.length, entries: ENTRIES.length },
    ]) {
      const err = await corruption(await fileWith(Buffer.concat([good, encodeCloseRecord(facts)])));
      assert.equal(err.offset, closeAt);
      assert.match(err.message, /close record says \d+ records of \d+ entries ending at offset \d+/);
    }
    // A close record after the first records, with the last two records gone: they were lost, not torn.
    const early = Buffer.concat([
      good.subarray(0, OFFSETS[3]),
      encodeCloseRecord({ recordsEnd: closeAt, batches: ENTRIES.length, entries: ENTRIES.length }),
    ]);
    assert.equal((await corruption(await fileWith(early))).offset, OFFSETS[3]);
  });

  test('after a crash, a torn last record is cut and counted, and repair truncates it', async () => {
    const zeros = 64 * 1024;
    const path = await fileWith(
      Buffer.concat([flipped(good, lastStart + RECORD_HEADER_BYTES), Buffer.alloc(zeros)]),
    );
    const contents = await readWal(path, { repair: true });
    assert.deepEqual(ending(contents), {
      ...uncut(ENTRIES.slice(0, -1), lastStart),
      cutRecords: 1,
      cutBytes: recordBytes(ENTRIES[ENTRIES.length - 1]!),
    });
    assert.equal(contents.records, ENTRIES.length - 1);
    assert.equal(contents.tornBytes, good.length - lastStart + zeros);
    assert.equal((await stat(path)).size, lastStart);
  });

  test('after a crash, a complete record that fails its checksum is refused when data follows it', async () => {
    const torn = flipped(good, lastStart + RECORD_HEADER_BYTES);
    const followers: [string, Buffer][] = [
      ['bytes that are no record', Buffer.alloc(10, 0xab)],
      ['a record cut off by the end of the file', encodedRecord(ENTRIES[0]!).subarray(0, 12)],
      ['one byte deep in zeros', Buffer.concat([Buffer.alloc(4096), Buffer.from([1]), Buffer.alloc(4096)])],
    ];
    for (const [what, after] of followers) {
      const err = await corruption(await fileWith(Buffer.concat([torn, after])));
      assert.equal(err.offset, lastStart, what);
      assert.match(err.message, /data follows the record at offset \d+/, what);
    }
  });

  test('a record whose checksum matches but whose entries do not fill it is refused, even at the end', async () => {
    const last = encodedRecord(ENTRIES[ENTRIES.length - 1]!);
    const padded = Buffer.concat([last, Buffer.alloc(3)]);
    padded.writeUInt32BE(last.length - RECORD_HEADER_BYTES + 3, 0);
    sealRecordAt(padded);
    const err = await corruption(await fileWith(Buffer.concat([good.subarray(0, lastStart), padded])));
    assert.equal(err.offset, lastStart);
    assert.match(err.message, /matching checksum/);
  });

  test('hint-style logs keep their own tail rules: a last bad record with data after it is cut', () => {
    const header: LogHeader = {
      name: 'test',
      batched: false,
      bytes: FILE_HEADER_BYTES,
      encode: encodeFileHeader,
      check: () => undefined,
    };
    const bytes = Buffer.concat([flipped(good, lastStart + RECORD_HEADER_BYTES), Buffer.alloc(10, 0xab)]);
    const read = parseRecordLog('test.hint', bytes, header);
    assert.deepEqual(read.entries, ENTRIES.slice(0, -1));
    assert.equal(read.validBytes, lastStart);
  });
});

function encodedRecord(entry: Entry): Buffer {
  const buf = Buffer.alloc(recordBytes(entry));
  encodeRecord(entry, buf, 0);
  return buf;
}

/** Recomputes the checksum of the record filling `buf`, keeping its length field. */
function sealRecordAt(buf: Buffer): void {
  buf.writeUInt32BE(crc32(buf.subarray(RECORD_HEADER_BYTES)), 4);
}
