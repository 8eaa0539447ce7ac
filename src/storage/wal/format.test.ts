import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { crc32 } from '../../util/bytes.js';
import { encodedEntryBytes, encodeEntry } from '../entry/codec.js';
import { tombstoneEntry, valueEntry } from '../entry/entry.js';
import {
  CLOSE_PAYLOAD_BYTES,
  CLOSE_RECORD_BYTES,
  CLOSE_RECORD_KIND,
  checkFileHeader,
  decodeClosePayload,
  encodeCloseRecord,
  encodeFileHeader,
  encodeRecord,
  FILE_HEADER_BYTES,
  PAYLOAD_BYTES_MAX,
  PAYLOAD_BYTES_MIN,
  RECORD_HEADER_BYTES,
  readBatch,
  readRecord,
  readWalRecord,
  recordBytes,
  sealRecord,
  WAL_CLOSE_RECORD_VERSION,
  WAL_FORMAT_VERSION,
  WAL_MAGIC,
} from './format.js';

function encoded(entry: Parameters<typeof recordBytes>[0]): Buffer {
  const buf = Buffer.alloc(recordBytes(entry));
  assert.equal(encodeRecord(entry, buf, 0), buf.length);
  return buf;
}

describe('wal format', () => {
  test('the on-disk constants keep their values', () => {
    assert.equal(WAL_MAGIC, 0x524b5657);
    assert.equal(WAL_FORMAT_VERSION, 3);
    assert.equal(WAL_CLOSE_RECORD_VERSION, 3);
    assert.equal(CLOSE_RECORD_KIND, 0xff);
    assert.equal(CLOSE_PAYLOAD_BYTES, 17);
    assert.equal(CLOSE_RECORD_BYTES, 25);
    assert.equal(FILE_HEADER_BYTES, 8);
    assert.equal(RECORD_HEADER_BYTES, 8);
    assert.equal(PAYLOAD_BYTES_MIN, 17);
    assert.equal(PAYLOAD_BYTES_MAX, 15 + 3 + 65_535 + 5 + 268_435_456);
  });

  test('a fresh header is "RKVW" and version 3, and checks clean; versions 1 and 2 are still read', () => {
    const header = encodeFileHeader();
    assert.equal(header.subarray(0, 4).toString('latin1'), 'RKVW');
    assert.equal(header.readUInt32BE(4), 3);
    assert.equal(checkFileHeader(header), undefined);
    for (const older of [1, 2]) {
      const version = Buffer.from(header);
      version.writeUInt32BE(older, 4);
      assert.equal(checkFileHeader(version), undefined);
    }
    const badMagic = Buffer.from(header);
    badMagic[0] = 0x41;
    assert.match(checkFileHeader(badMagic) ?? '', /bad magic 0x414b5657, expected 0x524b5657/);
    const badVersion = Buffer.from(header);
    badVersion.writeUInt32BE(4, 4);
    assert.match(checkFileHeader(badVersion) ?? '', /unsupported format version 4, expected one of 1, 2, 3/);
  });

  test('a close record is 0xFF, where the records end, and their counts, under a checksum', () => {
    const facts = { recordsEnd: 2 ** 32 + 77, batches: 12, entries: 345 };
    const record = encodeCloseRecord(facts);
    assert.equal(record.length, CLOSE_RECORD_BYTES);
    assert.equal(record.readUInt32BE(0), CLOSE_PAYLOAD_BYTES);
    assert.equal(record.readUInt32BE(4), crc32(record.subarray(RECORD_HEADER_BYTES)));
    assert.equal(record[RECORD_HEADER_BYTES], 0xff);
    assert.equal(record.readUInt32BE(RECORD_HEADER_BYTES + 1), 1, 'records end, high 32 bits');
    assert.equal(record.readUInt32BE(RECORD_HEADER_BYTES + 5), 77, 'records end, low 32 bits');
    assert.deepEqual(decodeClosePayload(record, RECORD_HEADER_BYTES, record.length), facts);

    const buf = Buffer.concat([Buffer.from('xyz'), record]);
    assert.deepEqual(readWalRecord(buf, 3, buf.length, true), { close: facts, end: buf.length });
    // Where the version has no close records, the same bytes are not entries.
    const asEntries = readWalRecord(buf, 3, buf.length, false);
    assert.ok('problem' in asEntries && asEntries.problem === 'entry', JSON.stringify(asEntries));
    // Any flipped payload byte fails the checksum; a close record of another length is damage.
    for (let i = 3 + RECORD_HEADER_BYTES; i < buf.length; i++) {
      const flipped = Buffer.from(buf);
      flipped[i] = flipped[i]! ^ 0x01;
      const bad = readWalRecord(flipped, 3, flipped.length, true);
      assert.ok('problem' in bad && bad.problem === 'checksum', `byte ${i}`);
    }
    const long = Buffer.concat([record, Buffer.alloc(1)]);
    sealRecord(long, 0, long.length);
    const wrongLength = readWalRecord(long, 0, long.length, true);
    assert.ok('problem' in wrongLength && wrongLength.problem === 'entry');
    assert.match(wrongLength.detail, /close record of 18 bytes, expected 17/);
    // Batches read as batches either way.
    const entry = valueEntry(Buffer.from('k'), 1n, Buffer.from('v'));
    assert.deepEqual(readWalRecord(encoded(entry), 0, recordBytes(entry), true), {
      entries: [entry],
      end: recordBytes(entry),
    });
  });

  test('a record is length, crc32 of the payload, then the encoded entry', () => {
    const entry = valueEntry(Buffer.from('key'), 42n, Buffer.from('value'), 1234);
    const buf = encoded(entry);
    const payload = buf.subarray(RECORD_HEADER_BYTES);
    assert.equal(buf.readUInt32BE(0), encodedEntryBytes(entry));
    assert.equal(buf.readUInt32BE(4), crc32(payload));
    const expected = Buffer.alloc(encodedEntryBytes(entry));
    encodeEntry(entry, expected, 0);
    assert.deepEqual(payload, expected);
  });

  test('records read back at any offset, as views', () => {
    const a = valueEntry(Buffer.from('a'), 1n, Buffer.alloc(0));
    const b = tombstoneEntry(Buffer.from('b'), 2n);
    const buf = Buffer.concat([Buffer.from('xx'), encoded(a), encoded(b)]);
    const first = readRecord(buf, 2, buf.length);
    assert.ok('entry' in first);
    assert.deepEqual(first.entry, a);
    const second = readRecord(buf, first.end, buf.length);
    assert.ok('entry' in second);
    assert.deepEqual(second.entry, b);
    assert.equal(second.end, buf.length);
    assert.equal(second.entry.key.buffer, buf.buffer, 'the key is a view, not a copy');
  });

  test('a batch is one record of entries back to back, under one checksum', () => {
    const entries = [
      valueEntry(Buffer.from('a'), 1n, Buffer.from('one')),
      tombstoneEntry(Buffer.from('b'), 2n),
      valueEntry(Buffer.from('c'), 3n, Buffer.alloc(0), 99),
    ];
    const payloadBytes = entries.reduce((sum, e) => sum + encodedEntryBytes(e), 0);
    const buf = Buffer.alloc(2 + RECORD_HEADER_BYTES + payloadBytes);
    let at = 2 + RECORD_HEADER_BYTES;
    for (const e of entries) at = encodeEntry(e, buf, at);
    sealRecord(buf, 2, at);
    assert.equal(buf.readUInt32BE(2), payloadBytes);
    assert.equal(buf.readUInt32BE(6), crc32(buf.subarray(2 + RECORD_HEADER_BYTES)));
    const read = readBatch(buf, 2, buf.length);
    assert.ok('entries' in read);
    assert.deepEqual(read.entries, entries);
    assert.equal(read.end, buf.length);
    // One entry per record, as version 1 and hint files hold them, is a batch of one.
    const single = readBatch(encoded(entries[0]!), 0, recordBytes(entries[0]!));
    assert.ok('entries' in single);
    assert.deepEqual(single.entries, [entries[0]]);
    // readRecord takes exactly one entry: a batch of three is not one.
    const asOne = readRecord(buf, 2, buf.length);
    assert.ok('problem' in asOne && asOne.problem === 'entry');
    // A batch whose last entry stops short of the record's end is damaged.
    const padded = Buffer.concat([buf, Buffer.alloc(1)]);
    padded.writeUInt32BE(payloadBytes + 1, 2);
    padded.writeUInt32BE(crc32(padded.subarray(2 + RECORD_HEADER_BYTES)), 6);
    const short = readBatch(padded, 2, padded.length);
    assert.ok('problem' in short && short.problem === 'entry', JSON.stringify(short));
    // Any flipped payload byte fails the one checksum.
    for (let i = 2 + RECORD_HEADER_BYTES; i < buf.length; i += 7) {
      const flipped = Buffer.from(buf);
      flipped[i] = flipped[i]! ^ 0x04;
      const bad = readBatch(flipped, 2, flipped.length);
      assert.ok('problem' in bad && bad.problem === 'checksum', `byte ${i}`);
    }
  });

  test('each kind of damage is named', () => {
    const entry = valueEntry(Buffer.from('key'), 7n, Buffer.from('value'));
    const good = encoded(entry);
    const problemOf = (buf: Buffer, end = buf.length) => {
      const read = readRecord(buf, 0, end);
      assert.ok('problem' in read, 'expected a problem');
      return read.problem;
    };
    assert.equal(problemOf(good.subarray(0, 5)), 'incomplete');
    assert.equal(problemOf(good, good.length - 1), 'incomplete');
    assert.equal(problemOf(Buffer.alloc(32)), 'length-short');
    const huge = Buffer.from(good);
    huge.writeUInt32BE(PAYLOAD_BYTES_MAX + 1, 0);
    assert.equal(problemOf(huge), 'length-over-max');
    const flipped = Buffer.from(good);
    flipped[flipped.length - 1] = flipped[flipped.length - 1]! ^ 0x01;
    assert.equal(problemOf(flipped), 'checksum');
    // A payload one byte longer than its entry, with a matching checksum.
    const padded = Buffer.concat([good, Buffer.alloc(1)]);
    padded.writeUInt32BE(good.length - RECORD_HEADER_BYTES + 1, 0);
    padded.writeUInt32BE(crc32(padded.subarray(RECORD_HEADER_BYTES)), 4);
    assert.equal(problemOf(padded), 'entry');
    const badKind = Buffer.from(good);
    badKind[RECORD_HEADER_BYTES] = 9;
    badKind.writeUInt32BE(crc32(badKind.subarray(RECORD_HEADER_BYTES)), 4);
    assert.equal(problemOf(badKind), 'entry');
  });
});
