/**
 * Snapshots of an engine's tables, and data directories restored from them.
 *
 * A snapshot directory holds:
 *
 *   <n>.sst       the tables of one version of the tree, hard-linked from
 *                 the data directory (copied where a link cannot be made:
 *                 another file system)
 *   MANIFEST      that version, in the engine's own manifest format, with
 *                 no log to replay (logNumber past every table)
 *   SNAPSHOT      JSON, {"created": "<ISO 8601 time>"}: when the snapshot
 *                 began (before the memtable's flush), so that a restore
 *                 can tell its age; snapshots from before it have none
 *   SHA256SUMS    "<sha256 hex>  <name>" per file, in the format of
 *                 `sha256sum -c`; written last, so a snapshot without it
 *                 is incomplete
 *
 * Tables are immutable, so a link is a copy that costs nothing and stays
 * right while the engine goes on compacting (it unlinks its own name only).
 * The engine flushes its memtable first (LsmEngine.snapshot): the snapshot
 * holds every write acknowledged before it began.
 *
 * restoreSnapshot() checks every sum before it writes anything, then builds
 * a data directory an engine opens as it would its own after a clean stop.
 */
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { errorMessage, RingkvError } from '../util/errors.js';
import { fileName, parseFileName } from './files.js';
import { decodeManifest, encodeManifest, MANIFEST_NAME } from './manifest/manifest-file.js';
import type { Version } from './manifest/version.js';
import {
  isFsError,
  pathExists,
  replaceFileDurably,
  type Vfs,
  type VfsFile,
  writeFully,
} from './vfs/index.js';

export const SUMS_NAME = 'SHA256SUMS';
export const SNAPSHOT_INFO_NAME = 'SNAPSHOT';
const CHUNK_BYTES = 1 << 20;

export interface SnapshotInfo {
  readonly dir: string;
  readonly tables: number;
  /** Bytes of the tables. */
  readonly bytes: number;
  /** How many tables were copied because a link could not be made. */
  readonly copied: number;
}

export interface WriteSnapshotOptions {
  /** When the snapshot began (ms since 1970), recorded in SNAPSHOT. */
  readonly createdMs: number;
}

/**
 * Writes the tables of `version` (files of `dataDir`), its manifest and
 * SNAPSHOT into `outDir`, which must not exist or be empty. When a table
 * vanished meanwhile (a compaction replaced it) it rejects with that ENOENT,
 * having removed what it wrote: the caller takes the current version and
 * tries again.
 */
export async function writeSnapshot(
  vfs: Vfs,
  dataDir: string,
  outDir: string,
  version: Version,
  options: WriteSnapshotOptions,
): Promise<SnapshotInfo> {
  await prepareEmptyDir(vfs, outDir, 'snapshot');
  const tables = version.tables();
  const written: string[] = [];
  let copied = 0;
  let bytes = 0;
  try {
    for (const table of tables) {
      const name = fileName(table.fileNumber, 'sst');
      if (await linkOrCopy(vfs, join(dataDir, name), join(outDir, name))) copied++;
      written.push(name);
      bytes += table.fileBytes;
    }
    const past = tables.reduce((max, t) => Math.max(max, t.fileNumber), 0) + 1;
    const manifest = encodeManifest({ version, nextFileNumber: past, logNumber: past });
    await replaceFileDurably(vfs, outDir, join(outDir, MANIFEST_NAME), manifest);
    written.push(MANIFEST_NAME);
    const info = `${JSON.stringify({ created: new Date(options.createdMs).toISOString() })}\n`;
    await replaceFileDurably(vfs, outDir, join(outDir, SNAPSHOT_INFO_NAME), Buffer.from(info));
    written.push(SNAPSHOT_INFO_NAME);
    const sums: string[] = [];
    for (const name of written) sums.push(`${await sha256(vfs, join(outDir, name))}  ${name}\n`);
    await vfs.syncDir(outDir);
    await replaceFileDurably(vfs, outDir, join(outDir, SUMS_NAME), Buffer.from(sums.join('')));
  } catch (err) {
    // replaceFileDurably's temporary files too: the directory is left empty, to be used again.
    for (const name of [
      SUMS_NAME,
      `${SUMS_NAME}.tmp`,
      `${MANIFEST_NAME}.tmp`,
      `${SNAPSHOT_INFO_NAME}.tmp`,
      ...written,
    ])
      await vfs.remove(join(outDir, name)).catch(() => {});
    throw err;
  }
  return { dir: outDir, tables: tables.length, bytes, copied };
}

export interface RestoreInfo {
  readonly tables: number;
  readonly bytes: number;
}

export interface RestoreOptions {
  /** Files written into the data directory, durably, before its MANIFEST (the node's BIRTH). */
  readonly files?: readonly { readonly name: string; readonly bytes: Buffer }[];
  /**
   * Called once the snapshot is checked, before anything is written, with
   * when it was created (ms since 1970; undefined for a snapshot from before
   * SNAPSHOT was written): it throws to refuse the snapshot.
   */
  readonly admit?: (createdMs: number | undefined) => void;
}

/**
 * Builds `dataDir` (absent or empty) from the snapshot in `snapshotDir`,
 * after checking every file against SHA256SUMS and the manifest against the
 * files. A damaged or incomplete snapshot is refused (RINGKV_CORRUPTION,
 * naming the file) before anything is written. The MANIFEST goes in last: a
 * crash before it leaves tables with no MANIFEST, which an engine refuses to
 * open (naming the missing MANIFEST), never taken for a node's data. A
 * failure removes what was written, so that the restore can be run again.
 */
export async function restoreSnapshot(
  vfs: Vfs,
  snapshotDir: string,
  dataDir: string,
  levelCount: number,
  options: RestoreOptions = {},
): Promise<RestoreInfo> {
  const sumsPath = join(snapshotDir, SUMS_NAME);
  let sumsText: string;
  try {
    sumsText = (await vfs.readFile(sumsPath)).toString('utf8');
  } catch (err) {
    throw new RingkvError(
      isFsError(err, 'ENOENT') ? 'RINGKV_CORRUPTION' : 'RINGKV_IO',
      `Not a complete snapshot: cannot read ${sumsPath}: ${errorMessage(err)}`,
      { cause: err },
    );
  }
  const sums = parseSums(sumsPath, sumsText);
  for (const [name, expected] of sums) {
    const path = join(snapshotDir, name);
    let actual: string;
    try {
      actual = await sha256(vfs, path);
    } catch (err) {
      throw new RingkvError(
        'RINGKV_CORRUPTION',
        `Snapshot file ${path} cannot be read: ${errorMessage(err)}`,
        {
          cause: err,
        },
      );
    }
    if (actual !== expected) {
      throw new RingkvError(
        'RINGKV_CORRUPTION',
        `Snapshot file ${path} is damaged: its SHA-256 is ${actual}, ${SUMS_NAME} says ${expected}`,
      );
    }
  }
  // SNAPSHOT is the last line: sums cut short there would read as a snapshot too old to know its age.
  if (!sums.has(SNAPSHOT_INFO_NAME) && (await pathExists(vfs, join(snapshotDir, SNAPSHOT_INFO_NAME)))) {
    throw new RingkvError(
      'RINGKV_CORRUPTION',
      `${sumsPath} does not list ${SNAPSHOT_INFO_NAME}, which is in the snapshot: the sums are cut short`,
    );
  }
  const manifestPath = join(snapshotDir, MANIFEST_NAME);
  if (!sums.has(MANIFEST_NAME))
    throw new RingkvError('RINGKV_CORRUPTION', `${sumsPath} does not list ${MANIFEST_NAME}`);
  const manifest = decodeManifest(manifestPath, await vfs.readFile(manifestPath), levelCount);
  const tables = manifest.version.tables();
  for (const table of tables) {
    const name = fileName(table.fileNumber, 'sst');
    if (!sums.has(name))
      throw new RingkvError('RINGKV_CORRUPTION', `${manifestPath} lists ${name}, which ${sumsPath} does not`);
  }
  options.admit?.(sums.has(SNAPSHOT_INFO_NAME) ? await readCreated(vfs, snapshotDir) : undefined);
  try {
    await prepareEmptyDir(vfs, dataDir, 'restore');
  } catch (err) {
    if (err instanceof RingkvError) throw err;
    // A file in its place or on its path, no permission, /proc: the target's fault, not the snapshot's.
    throw new RingkvError('RINGKV_BAD_REQUEST', `Cannot restore into ${dataDir}: ${errorMessage(err)}`, {
      cause: err,
    });
  }
  // Names this restore created, or may have: replaceFileDurably's temporary ones too.
  const written: string[] = [];
  let bytes = 0;
  try {
    for (const table of tables) {
      const name = fileName(table.fileNumber, 'sst');
      await linkOrCopy(vfs, join(snapshotDir, name), join(dataDir, name));
      written.push(name);
      bytes += table.fileBytes;
    }
    await vfs.syncDir(dataDir);
    for (const file of options.files ?? []) {
      written.push(`${file.name}.tmp`, file.name);
      await replaceFileDurably(vfs, dataDir, join(dataDir, file.name), file.bytes);
    }
    written.push(`${MANIFEST_NAME}.tmp`, MANIFEST_NAME);
    await replaceFileDurably(vfs, dataDir, join(dataDir, MANIFEST_NAME), encodeManifest(manifest));
  } catch (err) {
    // The MANIFEST goes first: were the removal cut short, what is left is tables no MANIFEST lists.
    for (const name of written.reverse()) await vfs.remove(join(dataDir, name)).catch(() => {});
    await vfs.syncDir(dataDir).catch(() => {});
    throw err;
  }
  return { tables: tables.length, bytes };
}

/** SNAPSHOT's creation time (its sum checked already), in ms since 1970. */
async function readCreated(vfs: Vfs, snapshotDir: string): Promise<number> {
  const path = join(snapshotDir, SNAPSHOT_INFO_NAME);
  let created: unknown;
  try {
    created = (JSON.parse((await vfs.readFile(path)).toString('utf8')) as { created?: unknown }).created;
  } catch (err) {
    throw new RingkvError('RINGKV_CORRUPTION', `${path} is not JSON: ${errorMessage(err)}`, { cause: err });
  }
  const ms = typeof created === 'string' ? Date.parse(created) : Number.NaN;
  if (Number.isNaN(ms))
    throw new RingkvError('RINGKV_CORRUPTION', `${path} has no "created" time: ${JSON.stringify(created)}`);
  return ms;
}

/** `dir` created if absent; refused unless empty. */
async function prepareEmptyDir(vfs: Vfs, dir: string, what: string): Promise<void> {
  await vfs.mkdir(dir);
  const names = await vfs.list(dir);
  if (names.length > 0) {
    throw new RingkvError(
      'RINGKV_BAD_REQUEST',
      `Cannot ${what} into ${dir}: it is not empty (${names.length} entries)`,
    );
  }
}

/** Links `from` to `to`, or copies it where a link cannot be made; true when it copied. */
async function linkOrCopy(vfs: Vfs, from: string, to: string): Promise<boolean> {
  try {
    await vfs.link(from, to);
    return false;
  } catch (err) {
    if (!isFsError(err, 'EXDEV') && !isFsError(err, 'EPERM') && !isFsError(err, 'ENOTSUP')) throw err;
  }
  const source = await vfs.open(from, 'r');
  let target: VfsFile;
  try {
    target = await vfs.open(to, 'wx');
  } catch (err) {
    await source.close();
    throw err;
  }
  let done = false;
  try {
    const chunk = Buffer.allocUnsafe(CHUNK_BYTES);
    for (let position = 0; ; ) {
      const read = await source.read(chunk, 0, chunk.length, position);
      if (read === 0) break;
      await writeFully(target, chunk, 0, read, position);
      position += read;
    }
    await target.sync();
    done = true;
  } finally {
    await source.close();
    await target.close();
    // A partial copy (a full disk) is not left for the caller to trip over.
    if (!done) await vfs.remove(to).catch(() => {});
  }
  return true;
}

async function sha256(vfs: Vfs, path: string): Promise<string> {
  const hash = createHash('sha256');
  const file = await vfs.open(path, 'r');
  try {
    const chunk = Buffer.allocUnsafe(CHUNK_BYTES);
    for (let position = 0; ; ) {
      const read = await file.read(chunk, 0, chunk.length, position);
      if (read === 0) break;
      hash.update(chunk.subarray(0, read));
      position += read;
    }
  } finally {
    await file.close();
  }
  return hash.digest('hex');
}

function parseSums(path: string, text: string): Map<string, string> {
  const sums = new Map<string, string>();
  for (const [index, line] of text.split('\n').entries()) {
    if (line === '') continue;
    const match = /^([0-9a-f]{64}) {2}([^/\s]+)$/.exec(line);
    const name = match?.[2];
    if (
      match === null ||
      name === undefined ||
      (name !== MANIFEST_NAME && name !== SNAPSHOT_INFO_NAME && parseFileName(name)?.kind !== 'sst')
    ) {
      throw new RingkvError(
        'RINGKV_CORRUPTION',
        `${path}: line ${index + 1} is not "<sha256>  <table, MANIFEST or SNAPSHOT>"`,
      );
    }
    sums.set(name, match[1]!);
  }
  return sums;
}
