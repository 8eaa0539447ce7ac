/**
 * What the LSM engine does at open with the write-ahead logs it finds: a log
 * closed cleanly is read whole, and any damage in it refuses the open with
 * the file, the offset and a procedure that works; in a log a crash left, a
 * torn last record is cut, reported through the log option and `recovery`,
 * and the writes before it are kept.
 */
import assert from 'node:assert/strict';
import { readdir, readFile, rename, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { type Entry, EntryKind, tombstoneEntry, valueEntry } from '../../src/storage/entry/entry.js';
import { LsmEngine, type LsmOpenOptions } from '../../src/storage/lsm-engine.js';
import { RECORD_HEADER_BYTES } from '../../src/storage/wal/format.js';
import { CorruptionError } from '../../src/util/errors.js';
import { tempDir } from '../support/temp-dir.js';

const b = (s: string) => Buffer.from(s, 'utf8');

/** The four writes, each acknowledged before the next, so each is a record of its own. */
const WRITES: Entry[] = [
  valueEntry(b('a'), 1n, b('v1')),
  valueEntry(b('b'), 2n, b('v1')),
  valueEntry(b('b'), 3n, b('v2')),
  tombstoneEntry(b('a'), 4n),
];

async function writeAll(engine: LsmEngine, entries: Entry[]): Promise<void> {
  for (const entry of entries) await engine.write(entry);
}

/** WRITES through an engine on `dir`, which is then closed cleanly or left as a crash leaves it. */
async function writeThenEnd(dir: string, lines: string[], end: 'close' | 'crash'): Promise<void> {
  const engine = await LsmEngine.open(options(dir, lines));
  await writeAll(engine, WRITES);
  if (end === 'close') await engine.close();
  else await engine.crashForTest();
}
/** The one log that holds records (the others are empty or spares), and where its records start. */
async function logWithRecords(dir: string): Promise<{ path: string; records: number[] }> {
  const found: { path: string; records: number[] }[] = [];
  for (const name of (await readdir(dir)).filter((n) => n.endsWith('.log')).sort()) {
    const path = join(dir, name);
    const bytes = await readFile(path);
    // Walk the length fields: records, then (after a clean close) the 0xFF close record, then zeros.
    const records: number[] = [];
    for (let at = 8; at + RECORD_HEADER_BYTES <= bytes.length; ) {
      const length = bytes.readUInt32BE(at);
      if (length === 0 || bytes[at + RECORD_HEADER_BYTES] === 0xff) break;
      records.push(at);
      at += RECORD_HEADER_BYTES + length;
    }
    if (records.length > 0) found.push({ path, records });
  }
  assert.equal(found.length, 1, 'one log holds the writes');
  return found[0]!;
}

async function flipByte(path: string, offset: number): Promise<void> {
  const bytes = await readFile(path);
  bytes[offset] = bytes[offset]! ^ 0xff;
  await writeFile(path, bytes);
}

async function liveValue(engine: LsmEngine, key: string): Promise<string | undefined> {
  const entry = await engine.get(b(key));
  return entry === undefined || entry.kind !== EntryKind.Value ? undefined : entry.value.toString();
}

function options(dir: string, lines: string[]): LsmOpenOptions {
  return { dir, sync: true, memtableBytesMax: 64 * 1024, log: (line) => lines.push(line) };
}

describe('LSM engine: write-ahead logs at open', () => {
  test('a log closed cleanly whose last record is damaged refuses the open, naming file, offset and remedy', async () => {
    const dir = await tempDir();
    try {
      const lines: string[] = [];
      await writeThenEnd(dir.path, lines, 'close');
      const { path, records } = await logWithRecords(dir.path);
      assert.equal(records.length, WRITES.length);
      const last = records[records.length - 1]!;
      await flipByte(path, last + RECORD_HEADER_BYTES);

      const err = await LsmEngine.open(options(dir.path, lines)).then(
        async (opened) => {
          await opened.close();
          return assert.fail('the open must be refused: the DELETE would be lost silently');
        },
        (e: unknown) => e,
      );
      assert.ok(err instanceof CorruptionError, String(err));
      assert.equal(err.code, 'RINGKV_CORRUPTION');
      assert.equal(err.file, path);
      assert.equal(err.offset, last);
      assert.ok(err.message.startsWith(`Corruption in ${path} at offset ${last}: `), err.message);
      assert.match(err.message, /closed cleanly/);
      assert.ok(err.message.includes(`truncate ${path} to ${last} bytes`), err.message);
      assert.match(err.message, /anti-entropy and read repair copy them back from the other replicas/);
      assert.doesNotMatch(err.message, /\n/, 'one line');
      assert.deepEqual(lines, [], 'a refused open logs nothing else');

      // The remedy, as the message gives it: truncate at the offset, restart. The writes before the damage stay.
      await truncate(path, last);
      const repaired = await LsmEngine.open(options(dir.path, lines));
      try {
        assert.equal(await liveValue(repaired, 'b'), 'v2');
        assert.equal(
          await liveValue(repaired, 'a'),
          'v1',
          'only the damaged write is gone, for replicas to restore',
        );
        assert.equal(repaired.recovery[0]?.closed, false);
      } finally {
        await repaired.close();
      }
    } finally {
      await dir.remove();
    }
  });

  test('the other remedy: the damaged log moved out of the data directory', async () => {
    const dir = await tempDir();
    const aside = await tempDir();
    try {
      let engine = await LsmEngine.open(options(dir.path, []));
      await writeAll(engine, WRITES.slice(0, 1));
      await engine.flush(); // 'a' = v1 is in a table now
      await writeAll(engine, WRITES.slice(1));
      await engine.close();
      const { path, records } = await logWithRecords(dir.path);
      await flipByte(path, records[0]! + RECORD_HEADER_BYTES + 3);
      await assert.rejects(LsmEngine.open(options(dir.path, [])), CorruptionError);

      await rename(path, join(aside.path, 'damaged.log'));
      engine = await LsmEngine.open(options(dir.path, []));
      try {
        assert.equal(await liveValue(engine, 'a'), 'v1', 'tables still hold what was flushed');
        assert.equal(await liveValue(engine, 'b'), undefined);
      } finally {
        await engine.close();
      }
    } finally {
      await dir.remove();
      await aside.remove();
    }
  });

  test('a log closed cleanly is replayed whole and reported closed, with no log line', async () => {
    const dir = await tempDir();
    try {
      const lines: string[] = [];
      await writeThenEnd(dir.path, lines, 'close');
      const engine = await LsmEngine.open(options(dir.path, lines));
      try {
        assert.equal(await liveValue(engine, 'a'), undefined, 'the acknowledged DELETE holds');
        assert.equal(await liveValue(engine, 'b'), 'v2');
        const withWrites = engine.recovery.filter((log) => log.entries > 0);
        assert.equal(withWrites.length, 1);
        assert.equal(withWrites[0]!.entries, WRITES.length);
        assert.ok(engine.recovery.every((log) => log.closed && log.cutRecords === 0));
        assert.deepEqual(lines, []);
      } finally {
        await engine.close();
      }
    } finally {
      await dir.remove();
    }
  });

  test('after a crash, a torn last record is cut, counted and logged; the writes before it are kept', async () => {
    const dir = await tempDir();
    try {
      const lines: string[] = [];
      await writeThenEnd(dir.path, lines, 'crash');
      const { path, records } = await logWithRecords(dir.path);
      const last = records[records.length - 1]!;
      // What a crash in the middle of the last write leaves: its payload never fully reached the disk.
      await flipByte(path, last + RECORD_HEADER_BYTES);

      const engine = await LsmEngine.open(options(dir.path, lines));
      try {
        assert.equal(await liveValue(engine, 'a'), 'v1', 'the torn DELETE is gone');
        assert.equal(await liveValue(engine, 'b'), 'v2');
        const log = engine.recovery.find((l) => l.file === path);
        assert.ok(log, 'the log is reported');
        const lastBytes = RECORD_HEADER_BYTES + 15 + 1 + 1 + 1; // a tombstone of a one-byte key
        assert.deepEqual(
          { ...log, file: undefined },
          {
            file: undefined,
            entries: WRITES.length - 1,
            closed: false,
            cutRecords: 1,
            cutBytes: lastBytes,
            cutOffset: last,
          },
        );
        assert.deepEqual(lines, [
          `Recovery: ${path} was not closed cleanly (a crash or kill): cut its torn last record, ${lastBytes} bytes at offset ${last}; the 3 writes before it were replayed`,
        ]);
      } finally {
        await engine.close();
      }
    } finally {
      await dir.remove();
    }
  });

  test('a log emptied on disk is read as holding no writes, and the start says so, naming it', async () => {
    const dir = await tempDir();
    try {
      const lines: string[] = [];
      await writeThenEnd(dir.path, lines, 'close');
      const { path } = await logWithRecords(dir.path);
      await truncate(path, 0);

      const engine = await LsmEngine.open(options(dir.path, lines));
      try {
        assert.equal(await liveValue(engine, 'b'), undefined, 'its writes are gone');
        assert.deepEqual(lines, [
          `Recovery: ${path} has no complete header (a crash while it was created, or a file emptied on disk): read as holding no writes`,
        ]);
      } finally {
        await engine.close();
      }
    } finally {
      await dir.remove();
    }
  });

  test('an emptied log followed by one that holds writes is refused, naming it: only the newest log can be torn in its creation', async () => {
    const dir = await tempDir();
    try {
      const lines: string[] = [];
      await writeThenEnd(dir.path, lines, 'close');
      const { path } = await logWithRecords(dir.path);
      // A later log that holds writes (as after the memtable moved to a new log), then the older one emptied.
      const number = Number(/(\d+)\.log$/.exec(path)![1]);
      await writeFile(join(dir.path, `${String(number + 1000).padStart(6, '0')}.log`), await readFile(path));
      await truncate(path, 0);

      await assert.rejects(LsmEngine.open(options(dir.path, lines)), (err: unknown) => {
        assert.ok(err instanceof CorruptionError, String(err));
        assert.equal(err.file, path);
        assert.match(err.message, /no complete header, yet a later log holds writes/);
        assert.match(err.message, /move it out of the data directory/);
        return true;
      });
    } finally {
      await dir.remove();
    }
  });

  test('after a crash with nothing torn, every write is replayed and nothing is logged', async () => {
    const dir = await tempDir();
    try {
      const lines: string[] = [];
      await writeThenEnd(dir.path, lines, 'crash');
      const engine = await LsmEngine.open(options(dir.path, lines));
      try {
        assert.equal(await liveValue(engine, 'a'), undefined);
        assert.equal(await liveValue(engine, 'b'), 'v2');
        assert.ok(engine.recovery.some((log) => !log.closed && log.entries === WRITES.length));
        assert.ok(engine.recovery.every((log) => log.cutRecords === 0));
        assert.deepEqual(lines, []);
      } finally {
        await engine.close();
      }
    } finally {
      await dir.remove();
    }
  });

  test('after a crash, a damaged record followed by data is refused like any corruption', async () => {
    const dir = await tempDir();
    try {
      await writeThenEnd(dir.path, [], 'crash');
      const { path, records } = await logWithRecords(dir.path);
      await flipByte(path, records[1]! + RECORD_HEADER_BYTES);
      await assert.rejects(LsmEngine.open(options(dir.path, [])), (err: unknown) => {
        assert.ok(err instanceof CorruptionError);
        assert.equal(err.offset, records[1]);
        assert.match(err.message, /an intact record follows/);
        return true;
      });
    } finally {
      await dir.remove();
    }
  });
});
