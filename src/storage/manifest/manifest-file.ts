/**
 * The manifest: the one file that says which tables are live and which WAL
 * files still hold unflushed writes. It is replaced atomically (write a
 * temporary file, fsync it, rename over MANIFEST, fsync the directory), so a
 * crash at any moment leaves either the old or the new manifest, whole.
 *
 * Layout (text, so an operator can read it):
 *
 *   line 1   "ringkv-manifest <format version>"
 *   line 2   crc32 of the JSON body, 8 lowercase hex digits
 *   rest     JSON body: { nextFileNumber, logNumber, levels: [[table...]...] }
 *            table: { file, bytes, entries, smallest (hex), largest (hex),
 *                     minVersion, maxVersion (decimal strings), and, when the
 *                     table holds tombstones or values with an expiry,
 *                     droppable: { entries, fromMs, versionMax (decimal) } }
 *
 * `droppable` came later, with no new format version: a table listed without
 * it has nothing known to drop (it is never picked for that), and a reader
 * that does not know the field ignores it.
 */
import { join } from 'node:path';
import { crc32 } from '../../util/bytes.js';
import { CorruptionError, RingkvError } from '../../util/errors.js';
import { isFsError, nodeVfs, replaceFileDurably, storageError, type Vfs } from '../vfs/index.js';
import { type TableInfo, Version } from './version.js';

/** On-disk format version: bump on any incompatible change, never reuse. */
export const MANIFEST_FORMAT_VERSION = 1;
export const MANIFEST_NAME = 'MANIFEST';
const MAGIC = 'ringkv-manifest';

export interface ManifestState {
  readonly version: Version;
  /** File numbers at or above this are free. */
  readonly nextFileNumber: number;
  /** WAL files numbered below this are fully flushed into tables. */
  readonly logNumber: number;
}

interface TableJson {
  file: number;
  bytes: number;
  entries: number;
  smallest: string;
  largest: string;
  minVersion: string;
  maxVersion: string;
  droppable?: { entries: number; fromMs: number; versionMax: string };
}

export function encodeManifest(state: ManifestState): Buffer {
  const body = JSON.stringify({
    nextFileNumber: state.nextFileNumber,
    logNumber: state.logNumber,
    levels: state.version.levels.map((tables) =>
      tables.map(
        (t): TableJson => ({
          file: t.fileNumber,
          bytes: t.fileBytes,
          entries: t.entryCount,
          smallest: t.smallestKey.toString('hex'),
          largest: t.largestKey.toString('hex'),
          minVersion: t.minVersion.toString(),
          maxVersion: t.maxVersion.toString(),
          ...(t.droppable === undefined
            ? {}
            : {
                droppable: {
                  entries: t.droppable.entries,
                  fromMs: t.droppable.fromMs,
                  versionMax: t.droppable.versionMax.toString(),
                },
              }),
        }),
      ),
    ),
  });
  const bodyBytes = Buffer.from(body, 'utf8');
  const crc = crc32(bodyBytes).toString(16).padStart(8, '0');
  return Buffer.concat([Buffer.from(`${MAGIC} ${MANIFEST_FORMAT_VERSION}\n${crc}\n`, 'utf8'), bodyBytes]);
}

export function decodeManifest(path: string, data: Buffer, levelCount: number): ManifestState {
  const firstNewline = data.indexOf(10);
  const secondNewline = firstNewline < 0 ? -1 : data.indexOf(10, firstNewline + 1);
  if (secondNewline < 0) throw new CorruptionError(path, 0, 'manifest header is incomplete');
  const header = data.subarray(0, firstNewline).toString('utf8');
  if (header !== `${MAGIC} ${MANIFEST_FORMAT_VERSION}`) {
    throw new CorruptionError(path, 0, `unknown manifest header "${header.slice(0, 40)}"`);
  }
  const body = data.subarray(secondNewline + 1);
  const expected = data.subarray(firstNewline + 1, secondNewline).toString('utf8');
  const actual = crc32(body).toString(16).padStart(8, '0');
  if (expected !== actual) {
    throw new CorruptionError(
      path,
      secondNewline + 1,
      `manifest checksum mismatch (stored ${expected}, computed ${actual})`,
    );
  }
  try {
    const json = JSON.parse(body.toString('utf8')) as {
      nextFileNumber: number;
      logNumber: number;
      levels: TableJson[][];
    };
    const levels: TableInfo[][] = Array.from({ length: levelCount }, (_, level) =>
      (json.levels[level] ?? []).map((t) => ({
        fileNumber: t.file,
        fileBytes: t.bytes,
        entryCount: t.entries,
        smallestKey: Buffer.from(t.smallest, 'hex'),
        largestKey: Buffer.from(t.largest, 'hex'),
        minVersion: BigInt(t.minVersion),
        maxVersion: BigInt(t.maxVersion),
        ...(t.droppable === undefined
          ? {}
          : {
              droppable: {
                entries: t.droppable.entries,
                fromMs: t.droppable.fromMs,
                versionMax: BigInt(t.droppable.versionMax),
              },
            }),
      })),
    );
    if (json.levels.length > levelCount)
      throw new Error(`${json.levels.length} levels, more than ${levelCount}`);
    return { version: new Version(levels), nextFileNumber: json.nextFileNumber, logNumber: json.logNumber };
  } catch (err) {
    throw new CorruptionError(path, secondNewline + 1, `manifest body is invalid: ${(err as Error).message}`);
  }
}

/** Reads dir/MANIFEST, or returns undefined when there is none (a new store). */
export async function readManifest(
  dir: string,
  levelCount: number,
  vfs: Vfs = nodeVfs,
): Promise<ManifestState | undefined> {
  const path = join(dir, MANIFEST_NAME);
  let data: Buffer;
  try {
    data = await vfs.readFile(path);
  } catch (err) {
    if (isFsError(err, 'ENOENT')) return undefined;
    throw err;
  }
  return decodeManifest(path, data, levelCount);
}

/**
 * A MANIFEST write that failed after the new MANIFEST took the name (the
 * directory's fsync failed): the new one is on disk now, and a power loss
 * may bring back the old one. Every table either names must be kept.
 */
export class ManifestInDoubtError extends RingkvError {
  override name = 'ManifestInDoubtError';
}

/**
 * Replaces dir/MANIFEST atomically and durably (through MANIFEST.tmp).
 * Rejects with ManifestInDoubtError when it fails after the rename.
 */
export async function writeManifest(dir: string, state: ManifestState, vfs: Vfs = nodeVfs): Promise<void> {
  const path = join(dir, MANIFEST_NAME);
  let renamed = false;
  try {
    await replaceFileDurably(vfs, dir, path, encodeManifest(state), () => {
      renamed = true;
    });
  } catch (err) {
    if (!renamed) throw err;
    const failed = storageError(`MANIFEST ${path} was replaced but not made durable`, err);
    throw new ManifestInDoubtError(failed.code, failed.message, { cause: err });
  }
}
