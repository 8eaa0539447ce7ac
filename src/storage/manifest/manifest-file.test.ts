import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import fc from 'fast-check';
import { propertyParams } from '../../../test/support/property.js';
import { crc32 } from '../../util/bytes.js';
import { CorruptionError } from '../../util/errors.js';
import {
  decodeManifest,
  encodeManifest,
  MANIFEST_FORMAT_VERSION,
  MANIFEST_NAME,
  type ManifestState,
  readManifest,
  writeManifest,
} from './manifest-file.js';
import { type TableInfo, Version } from './version.js';

const LEVELS = 4;
const PATH = '/data/MANIFEST';

function table(
  fileNumber: number,
  smallest: Buffer,
  largest: Buffer,
  extra: Partial<TableInfo> = {},
): TableInfo {
  return {
    fileNumber,
    fileBytes: 4096 + fileNumber,
    entryCount: 10 + fileNumber,
    smallestKey: smallest,
    largestKey: largest,
    minVersion: 1n,
    maxVersion: 2n,
    ...extra,
  };
}

/** Levels 0, 1 and 3 hold tables; keys with every kind of byte; versions past 2^53. */
const SAMPLE: ManifestState = {
  version: Version.empty(LEVELS).apply({
    removed: [],
    added: [
      { level: 0, table: table(21, Buffer.from('a'), Buffer.from('z')) },
      { level: 0, table: table(22, Buffer.from([0x00]), Buffer.from([0xff, 0xfe])) },
      {
        level: 1,
        table: table(7, Buffer.from('apple'), Buffer.from('banana'), {
          minVersion: 2n ** 53n + 1n,
          maxVersion: 2n ** 64n - 1n,
        }),
      },
      {
        level: 1,
        table: table(8, Buffer.from('cherry\n"'), Buffer.from('date\u00e9'), {
          droppable: { entries: 5, fromMs: 1_700_000_000_123, versionMax: 2n ** 63n + 5n },
        }),
      },
      { level: 3, table: table(3, Buffer.from([0x0a, 0x0d]), Buffer.from([0x7b, 0x22])) },
    ],
  }),
  nextFileNumber: 23,
  logNumber: 20,
};

function assertSameState(actual: ManifestState, expected: ManifestState): void {
  assert.equal(actual.nextFileNumber, expected.nextFileNumber);
  assert.equal(actual.logNumber, expected.logNumber);
  assert.equal(actual.version.levels.length, expected.version.levels.length);
  assert.deepEqual(
    actual.version.levels.map((tables) => [...tables]),
    expected.version.levels.map((tables) => [...tables]),
  );
}

function corruption(fn: () => unknown, offset: number, detail: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof CorruptionError, `not a CorruptionError: ${String(err)}`);
    assert.equal(err.file, PATH);
    assert.equal(err.offset, offset);
    assert.match(err.message, detail);
    return true;
  });
}

describe('manifest encoding', () => {
  it('round-trips the tables of every level, the next file number and the log number', () => {
    assertSameState(decodeManifest(PATH, encodeManifest(SAMPLE), LEVELS), SAMPLE);
    const empty = { version: Version.empty(LEVELS), nextFileNumber: 1, logNumber: 0 };
    assertSameState(decodeManifest(PATH, encodeManifest(empty), LEVELS), empty);
  });

  it('is the documented text: magic and format version, crc32 of the body in hex, JSON body', () => {
    const data = encodeManifest(SAMPLE);
    const [header, crc] = data.toString('utf8').split('\n', 2) as [string, string];
    assert.equal(header, `ringkv-manifest ${MANIFEST_FORMAT_VERSION}`);
    assert.match(crc, /^[0-9a-f]{8}$/);
    const body = data.subarray(header.length + crc.length + 2);
    assert.equal(crc, crc32(body).toString(16).padStart(8, '0'));
    const json = JSON.parse(body.toString('utf8'));
    assert.equal(json.nextFileNumber, 23);
    assert.equal(json.logNumber, 20);
    assert.deepEqual(json.levels[1][0], {
      file: 7,
      bytes: 4103,
      entries: 17,
      smallest: Buffer.from('apple').toString('hex'),
      largest: Buffer.from('banana').toString('hex'),
      minVersion: '9007199254740993',
      maxVersion: '18446744073709551615',
    });
    // Only a table holding something droppable carries the field.
    assert.deepEqual(json.levels[1][1].droppable, {
      entries: 5,
      fromMs: 1_700_000_000_123,
      versionMax: '9223372036854775813',
    });
  });

  it('reads a manifest written before tables counted their droppable entries: none known', () => {
    const body = Buffer.from(
      JSON.stringify({
        nextFileNumber: 3,
        logNumber: 2,
        levels: [
          [],
          [
            {
              file: 1,
              bytes: 100,
              entries: 4,
              smallest: '61',
              largest: '62',
              minVersion: '1',
              maxVersion: '2',
            },
          ],
        ],
      }),
    );
    const crc = crc32(body).toString(16).padStart(8, '0');
    const data = Buffer.concat([Buffer.from(`ringkv-manifest 1\n${crc}\n`), body]);
    const [only] = decodeManifest(PATH, data, LEVELS).version.tables();
    assert.equal(only?.fileNumber, 1);
    assert.equal(only?.droppable, undefined);
    assert.equal('droppable' in only!, false);
  });

  it('decodes into more levels than were stored (the extra ones empty), and refuses more than it has', () => {
    const small = {
      version: Version.empty(2).apply({
        removed: [],
        added: [{ level: 1, table: table(1, Buffer.from('a'), Buffer.from('b')) }],
      }),
      nextFileNumber: 2,
      logNumber: 1,
    };
    const wider = decodeManifest(PATH, encodeManifest(small), 5);
    assert.equal(wider.version.levels.length, 5);
    assert.deepEqual(
      wider.version.tables().map((t) => t.fileNumber),
      [1],
    );
    assert.deepEqual(wider.version.levels[1]!.length, 1);
    const data = encodeManifest(SAMPLE);
    corruption(() => decodeManifest(PATH, data, 3), data.indexOf('{'), /4 levels, more than 3/);
  });

  it('refuses another format version or magic', () => {
    const data = encodeManifest(SAMPLE);
    const newer = Buffer.concat([
      Buffer.from(`ringkv-manifest ${MANIFEST_FORMAT_VERSION + 1}`),
      data.subarray(17),
    ]);
    corruption(() => decodeManifest(PATH, newer, LEVELS), 0, /unknown manifest header "ringkv-manifest 2"/);
    const other = Buffer.from(`something-else 1\n00000000\n{}`);
    corruption(() => decodeManifest(PATH, other, LEVELS), 0, /unknown manifest header/);
  });

  it('refuses a file cut short anywhere', () => {
    const data = encodeManifest(SAMPLE);
    const bodyStart = data.indexOf('{');
    for (let length = 0; length < data.length; length++) {
      const cut = data.subarray(0, length);
      assert.throws(
        () => decodeManifest(PATH, cut, LEVELS),
        (err: unknown) =>
          err instanceof CorruptionError &&
          err.offset === (length < bodyStart ? 0 : bodyStart) &&
          /incomplete|unknown manifest header|checksum mismatch/.test(err.message),
        `cut to ${length} bytes`,
      );
    }
  });

  it('detects every single-byte change anywhere in the file', () => {
    const data = encodeManifest(SAMPLE);
    for (let at = 0; at < data.length; at++) {
      for (const mask of [0x01, 0x20, 0x80, 0xff]) {
        const damaged = Buffer.from(data);
        damaged[at]! ^= mask;
        assert.throws(
          () => decodeManifest(PATH, damaged, LEVELS),
          CorruptionError,
          `byte ${at} ^ 0x${mask.toString(16)}`,
        );
      }
    }
  });

  it('a body changed after its checksum is named by the checksum, at the body offset', () => {
    const data = encodeManifest(SAMPLE);
    const bodyStart = data.indexOf('{');
    const damaged = Buffer.from(data);
    damaged[bodyStart + 20]! ^= 0x04;
    corruption(
      () => decodeManifest(PATH, damaged, LEVELS),
      bodyStart,
      /manifest checksum mismatch \(stored [0-9a-f]{8}, computed [0-9a-f]{8}\)/,
    );
  });

  it('a body with a right checksum but no valid JSON is refused too', () => {
    const body = Buffer.from('{"nextFileNumber": 1, "logNumber": 0, "levels": [[{"file": ');
    const crc = crc32(body).toString(16).padStart(8, '0');
    const data = Buffer.concat([Buffer.from(`ringkv-manifest ${MANIFEST_FORMAT_VERSION}\n${crc}\n`), body]);
    corruption(() => decodeManifest(PATH, data, LEVELS), data.indexOf('{'), /manifest body is invalid/);
  });

  it('random states round-trip, and any damaged byte is detected (property)', () => {
    const tableArb = fc.record({
      key: fc.uint8Array({ minLength: 1, maxLength: 12 }),
      span: fc.uint8Array({ maxLength: 4 }),
      bytes: fc.nat(1 << 30),
      entries: fc.nat(1 << 20),
      minVersion: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
    });
    const stateArb = fc.record({
      levels: fc.array(fc.array(tableArb, { maxLength: 5 }), { minLength: 1, maxLength: LEVELS }),
      logNumber: fc.nat(1 << 30),
      damageAt: fc.nat(),
      mask: fc.integer({ min: 1, max: 255 }),
    });
    fc.assert(
      fc.property(stateArb, ({ levels, logNumber, damageAt, mask }) => {
        // L0 tables may overlap; the deeper ones get distinct, non-overlapping keys from their order.
        let fileNumber = 1;
        const tables = levels.map((specs, level) =>
          specs.map((s, i) => {
            const smallest = level === 0 ? Buffer.from(s.key) : Buffer.from([i, 0, ...s.key]);
            const largest = level === 0 ? Buffer.concat([smallest, s.span]) : Buffer.from([i, 1]);
            return table(fileNumber++, smallest, largest, {
              fileBytes: s.bytes,
              entryCount: s.entries,
              minVersion: s.minVersion,
              maxVersion: s.minVersion + 7n,
            });
          }),
        );
        tables[0]!.sort((a, b) => b.fileNumber - a.fileNumber);
        const state = { version: new Version(tables), nextFileNumber: fileNumber, logNumber };
        const data = encodeManifest(state);
        assertSameState(decodeManifest(PATH, data, levels.length), state);
        const damaged = Buffer.from(data);
        damaged[damageAt % data.length]! ^= mask;
        assert.throws(() => decodeManifest(PATH, damaged, levels.length), CorruptionError);
      }),
      propertyParams({ numRuns: 300 }),
    );
  });
});

describe('manifest file', () => {
  const dirs: string[] = [];
  const newDir = async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ringkv-manifest-'));
    dirs.push(dir);
    return dir;
  };
  after(async () => {
    await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })));
  });

  it('reads back what was written, and a new store has none', async () => {
    const dir = await newDir();
    assert.equal(await readManifest(dir, LEVELS), undefined);
    await writeManifest(dir, SAMPLE);
    assertSameState((await readManifest(dir, LEVELS))!, SAMPLE);
    assert.deepEqual(await readFile(join(dir, MANIFEST_NAME)), encodeManifest(SAMPLE));
  });

  it('a later write replaces the earlier one whole, and leaves no temporary file', async () => {
    const dir = await newDir();
    await writeManifest(dir, SAMPLE);
    const next: ManifestState = {
      version: SAMPLE.version.apply({
        removed: [21, 22, 7],
        added: [{ level: 1, table: table(23, Buffer.from('a'), Buffer.from('az')) }],
      }),
      nextFileNumber: 24,
      logNumber: 22,
    };
    await writeManifest(dir, next);
    assertSameState((await readManifest(dir, LEVELS))!, next);
    assert.deepEqual(await readdir(dir), [MANIFEST_NAME]);
  });

  it('a damaged file on disk is refused with its path and the offset of the damage', async () => {
    const dir = await newDir();
    await writeManifest(dir, SAMPLE);
    const path = join(dir, MANIFEST_NAME);
    const data = await readFile(path);
    data[data.length - 3]! ^= 0x10;
    await writeFile(path, data);
    await assert.rejects(readManifest(dir, LEVELS), (err: unknown) => {
      assert.ok(err instanceof CorruptionError);
      assert.equal(err.file, path);
      assert.equal(err.offset, data.indexOf('{'));
      assert.match(err.message, /checksum mismatch/);
      return true;
    });
  });

  it('an empty MANIFEST is refused, not taken for a new store', async () => {
    const dir = await newDir();
    await writeFile(join(dir, MANIFEST_NAME), Buffer.alloc(0));
    await assert.rejects(readManifest(dir, LEVELS), CorruptionError);
  });
});
