/**
 * Recovery, at open: read the MANIFEST, open its tables, delete files it does
 * not list (left by a crash mid-flush or mid-compaction), replay the WAL
 * files it still needs, flush what they held to a table, and start a new
 * WAL. A log that close() ended with its close record is read whole; in a
 * log a crash left, a torn last record is cut off and reported (log option,
 * `WalRecovery`). Other damage stops the open with the file, the offset and
 * what an operator can do (walRecoveryAdvice).
 */
import { join } from 'node:path';
import { CorruptionError } from '../../util/errors.js';
import { type JobRunner, jobRunner } from '../compaction/background.js';
import { filePath, parseFileName } from '../files.js';
import { MANIFEST_NAME, readManifest, writeManifest } from '../manifest/manifest-file.js';
import { Version } from '../manifest/version.js';
import { Memtable } from '../memtable/memtable.js';
import { BlockCache, type TableReader } from '../sstable/index.js';
import { TreeState } from '../tree-state.js';
import { readWal, WalWriter } from '../wal/index.js';
import { encodeMemtable, flushJob } from './background.js';
import { type LsmOptions, walOptions } from './options.js';
import { openTable, type TableHome } from './version-set.js';

/** What open found in one write-ahead log it replayed. */
export interface WalRecovery {
  readonly file: string;
  /** Entries replayed from it. */
  readonly entries: number;
  /** It ended with its close record: the engine that wrote it closed it, and nothing was cut. */
  readonly closed: boolean;
  /** A torn last record cut off (1) or none (0): only in a log a crash left. */
  readonly cutRecords: number;
  /** Bytes of that record (its length, or as far as it reached the disk when its header is torn too). */
  readonly cutBytes: number;
  /** Where the cut was made: the end of the intact records. */
  readonly cutOffset: number;
}

/**
 * The second half of the message that refuses to open on a damaged log:
 * what to do. The writes in a log are also on the other replicas of their
 * keys, and the tables hold everything flushed before it, so the node may
 * start without the log (or its damaged end) and be repaired by its peers.
 */
export function walRecoveryAdvice(file: string, offset: number): string {
  return (
    `to recover, truncate ${file} to ${offset} bytes (the writes before the damage are kept) ` +
    `or move it out of the data directory, and restart: the node then lacks the writes from that point, ` +
    `and anti-entropy and read repair copy them back from the other replicas (a one-node cluster has no other copy)`
  );
}

/** An engine's parts as recovery leaves them: the engine takes them over. */
export interface Recovered {
  readonly cache: BlockCache;
  readonly flushWorker: JobRunner;
  readonly compactionWorker: JobRunner;
  /** The tables, each with its reader open. */
  readonly state: TreeState;
  readonly nextFileNumber: number;
  /** The new log that takes writes; the MANIFEST names it as the oldest needed. */
  readonly wal: WalWriter;
  readonly walNumber: number;
  /** What each replayed log held, oldest first. */
  readonly logs: readonly WalRecovery[];
}

/** Recovers the engine in `options.dir` (module comment); on failure, releases what it opened. */
export async function recover(options: LsmOptions): Promise<Recovered> {
  const { dir, vfs } = options;
  await vfs.mkdir(dir);
  const manifest = await readManifest(dir, options.levelCount, vfs);
  let version = manifest?.version ?? Version.empty(options.levelCount);
  const found = await surveyDirectory(options, version, manifest?.nextFileNumber ?? 1);
  // An engine writes its MANIFEST at its first open, before any table: tables with none are not
  // leftovers of this engine's own edits but a MANIFEST lost (or a restore cut short before it).
  // Deleting them would lose every write they hold.
  const tables = manifest === undefined ? found.leftovers.filter((path) => path.endsWith('.sst')).length : 0;
  if (tables > 0) {
    throw new CorruptionError(
      join(dir, MANIFEST_NAME),
      0,
      `missing, but the directory holds ${tables} table${tables === 1 ? '' : 's'} (nothing was deleted): the MANIFEST was lost, or a restore was cut short before writing it. Restore the node from a snapshot into an empty directory, or move the directory aside and start the node on an empty one (its replicas copy its data back; a one-node cluster has no other copy)`,
    );
  }

  const home: TableHome = { dir, vfs, cache: new BlockCache(options.blockCacheBytes) };
  const flushWorker = jobRunner('ringkv-flush', vfs);
  const compactionWorker = jobRunner('ringkv-compaction', vfs);
  const readers = new Map<number, TableReader>();
  let wal: WalWriter | undefined;
  try {
    // Every open settles before a failure is thrown, so that the catch below closes each reader that opened.
    const opening = await Promise.allSettled(
      version.tables().map(async (t) => {
        readers.set(t.fileNumber, await openTable(home, t.fileNumber));
      }),
    );
    for (const o of opening) if (o.status === 'rejected') throw o.reason;
    // Only now: while a listed table is missing or damaged, the MANIFEST is not the whole truth,
    // and the tables it does not list may hold what an operator needs.
    for (const path of found.leftovers) await vfs.remove(path);

    // Replay the logs that may hold writes not yet in a table.
    const needed = found.logs.filter((number) => number >= (manifest?.logNumber ?? 0));
    const { recovered, logs } = await replayLogs(options, needed);
    // Only the newest log can be torn in its creation: a log is made once the one before it is whole
    // (a new memtable, an open), and writes reach it only once it is the log an open left needed.
    const emptied = logs.findIndex(
      (log, i) => log.cutOffset === 0 && logs.slice(i + 1).some((later) => later.entries > 0),
    );
    if (emptied >= 0) {
      const { file } = logs[emptied]!;
      throw new CorruptionError(
        file,
        0,
        `no complete header, yet a later log holds writes: it was emptied or damaged on disk; to recover, move it out of the data directory and restart: the node then lacks its writes, and anti-entropy and read repair copy them back from the other replicas (a one-node cluster has no other copy)`,
      );
    }
    let nextFileNumber = found.nextFileNumber;
    if (recovered.count > 0) {
      const fileNumber = nextFileNumber++;
      recovered.freeze();
      const entries = await encodeMemtable(recovered);
      const result = await flushWorker.run(flushJob(options, { fileNumber, entries }));
      const added = result.tables.map((table) => ({ level: 0, table }));
      version = version.apply({ removed: [], added });
      for (const { table } of added) readers.set(table.fileNumber, await openTable(home, table.fileNumber));
    }

    const walNumber = nextFileNumber++;
    // No live log competes for the disk yet: prefill without rests.
    wal = await WalWriter.create(filePath(dir, walNumber, 'log'), walOptions(options, { restMs: 0 }));
    await writeManifest(dir, { version, nextFileNumber, logNumber: walNumber }, vfs);
    for (const number of found.logs) await vfs.remove(filePath(dir, number, 'log'));
    if (found.logs.length > 0) await vfs.syncDir(dir);

    // Logged once the open succeeded: a refused open prints only why.
    for (const log of logs) {
      if (log.cutOffset === 0) {
        // Read as empty (wal/reader.ts): only a crash inside its creation leaves this legitimately,
        // but a log emptied on disk looks the same, and its writes would go unmentioned.
        options.log(
          `Recovery: ${log.file} has no complete header (a crash while it was created, or a file emptied on disk): read as holding no writes`,
        );
        continue;
      }
      if (log.cutRecords === 0) continue;
      options.log(
        `Recovery: ${log.file} was not closed cleanly (a crash or kill): cut its torn last record, ${log.cutBytes} bytes at offset ${log.cutOffset}; the ${log.entries} writes before it were replayed`,
      );
    }
    return {
      cache: home.cache,
      flushWorker,
      compactionWorker,
      state: new TreeState(version, readers),
      nextFileNumber,
      wal,
      walNumber,
      logs,
    };
  } catch (err) {
    // The new log holds nothing yet: closed like any (the next open replays it empty and deletes it).
    await wal?.close().catch(() => {});
    await Promise.all([...readers.values()].map((r) => r.close()));
    await flushWorker.terminate();
    await compactionWorker.terminate();
    throw err;
  }
}

/**
 * Lists the directory: checks that every table `version` lists is there, and
 * finds the logs (in number order), the first file number not in use, and
 * the leftovers to delete once the listed tables opened (tables `version`
 * does not list, a MANIFEST.tmp).
 */
async function surveyDirectory(
  options: LsmOptions,
  version: Version,
  manifestNextFileNumber: number,
): Promise<{ logs: number[]; nextFileNumber: number; leftovers: string[] }> {
  const { dir, vfs } = options;
  const names = await vfs.list(dir);
  const live = new Set(version.tables().map((t) => t.fileNumber));
  for (const table of version.tables()) {
    if (!names.includes(filePath('', table.fileNumber, 'sst'))) {
      throw new CorruptionError(
        filePath(dir, table.fileNumber, 'sst'),
        0,
        'table listed in the MANIFEST is missing',
      );
    }
  }
  const logs: number[] = [];
  const leftovers: string[] = [];
  let highest = manifestNextFileNumber;
  for (const name of names) {
    const parsed = parseFileName(name);
    if (parsed === undefined) continue;
    highest = Math.max(highest, parsed.fileNumber + 1);
    if (parsed.kind === 'sst' && !live.has(parsed.fileNumber)) leftovers.push(join(dir, name));
    if (parsed.kind === 'log') logs.push(parsed.fileNumber);
  }
  if (names.includes(`${MANIFEST_NAME}.tmp`)) leftovers.push(join(dir, `${MANIFEST_NAME}.tmp`));
  logs.sort((a, b) => a - b);
  return { logs, nextFileNumber: highest, leftovers };
}

/** Reads `numbers`' logs, oldest first, into one memtable; a damaged one stops the open with advice. */
async function replayLogs(
  options: LsmOptions,
  numbers: readonly number[],
): Promise<{ recovered: Memtable; logs: WalRecovery[] }> {
  const recovered = new Memtable(0);
  const logs: WalRecovery[] = [];
  for (const number of numbers) {
    const file = filePath(options.dir, number, 'log');
    const read = await readWal(file, { repair: true, vfs: options.vfs }).catch((err: unknown) => {
      if (!(err instanceof CorruptionError)) throw err;
      const detail = err.message.slice(`Corruption in ${err.file} at offset ${err.offset}: `.length);
      throw new CorruptionError(
        err.file,
        err.offset,
        `${detail}; ${walRecoveryAdvice(err.file, err.offset)}`,
      );
    });
    for (const entry of read.entries) recovered.put(entry);
    const { closed, cutRecords, cutBytes } = read;
    logs.push({
      file,
      entries: read.entries.length,
      closed,
      cutRecords,
      cutBytes,
      cutOffset: read.validBytes,
    });
  }
  return { recovered, logs };
}
