/**
 * A node's birth version: the clock version at which it first served from an
 * empty data directory, kept in the file BIRTH beside the storage files.
 * Anti-entropy (exchange.ts) pulls keys older than it that a peer holds
 * wherever this node sits in their replica list: a node that lost its disk
 * cannot know which of those writes had targeted it, and a new node in a new
 * cluster has no older keys to pull, so this is the one case where keys may
 * reach a node no write of them was sent to (docs/design/anti-entropy.md).
 *
 *   file BIRTH:  "ringkv-birth 2\n" <version, decimal> "\n" <CRC-32 of what precedes, 8 hex digits> "\n"
 *
 * Version 1 files (no checksum line) still read. A version 2 file whose
 * checksum does not match is corruption: a digit changed on disk would
 * otherwise change the version silently.
 *
 * Rules, decided once at start-up:
 * - BIRTH present: its version, whatever the engine holds.
 * - absent, the engine empty: a new version from the clock (a new node, or a
 *   data directory wiped while the node was away), written durably before the
 *   node serves, so a restart keeps it.
 * - absent, the engine not empty (a directory from before this file existed):
 *   0n, "never lost anything", written too.
 *
 * Example:
 *   const birthVersion = await loadBirthVersion(dataDir, { engine, clock });
 */
import { join } from 'node:path';
import { type Engine, nodeVfs, replaceFileDurably, type Vfs } from '../../storage/index.js';
import { crc32 } from '../../util/bytes.js';
import { errorMessage, RingkvError } from '../../util/errors.js';

/** Name of the file in the data directory. */
export const BIRTH_FILE = 'BIRTH';

export async function loadBirthVersion(
  dataDir: string,
  options: {
    readonly engine: Engine;
    readonly clock: { now(): bigint };
    /** The data directory's file system (default: the real one). */
    readonly vfs?: Vfs;
  },
): Promise<bigint> {
  const vfs = options.vfs ?? nodeVfs;
  const path = join(dataDir, BIRTH_FILE);
  let text: string | undefined;
  try {
    text = (await vfs.readFile(path)).toString('latin1');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new RingkvError('RINGKV_IO', `Cannot read ${path}: ${errorMessage(err)}`, { cause: err });
    }
  }
  if (text !== undefined) return _parse(path, text);
  const version = (await _isEmpty(options.engine)) ? options.clock.now() : 0n;
  await _writeDurably(vfs, dataDir, path, birthFile(version).bytes);
  return version;
}

/**
 * The BIRTH file that records `version` as the node's birth: for a data
 * directory restored from a snapshot, which misses what was written after it
 * as a wiped one misses everything, so that anti-entropy pulls those keys
 * back. The restore writes it before the MANIFEST (storage/snapshot.ts).
 */
export function birthFile(version: bigint): { name: string; bytes: Buffer } {
  const body = `ringkv-birth 2\n${version}\n`;
  return { name: BIRTH_FILE, bytes: Buffer.from(`${body}${_checksum(body)}\n`, 'latin1') };
}

function _checksum(body: string): string {
  return crc32(Buffer.from(body, 'latin1')).toString(16).padStart(8, '0');
}

function _parse(path: string, text: string): bigint {
  const remedy = 'delete it to treat this node as never having lost data';
  const match = /^(ringkv-birth ([12])\n(0|[1-9][0-9]{0,19})\n)(?:([0-9a-f]{8})\n)?$/.exec(text);
  // Version 1 has no checksum line; version 2 must have one.
  const wellFormed = match !== null && (match[2] === '1') === (match[4] === undefined);
  const version = wellFormed ? BigInt(match[3]!) : undefined;
  if (version === undefined || version >= 2n ** 64n) {
    throw new RingkvError(
      'RINGKV_CORRUPTION',
      `Bad ${path}: expected "ringkv-birth 2", a version and its checksum; ${remedy}`,
    );
  }
  const stored = match![4];
  if (stored !== undefined && stored !== _checksum(match![1]!)) {
    throw new RingkvError(
      'RINGKV_CORRUPTION',
      `Bad ${path}: checksum mismatch (stored ${stored}, computed ${_checksum(match![1]!)}); ${remedy}`,
    );
  }
  return version;
}

async function _isEmpty(engine: Engine): Promise<boolean> {
  const cursor = engine.scan({ start: Buffer.alloc(0) });
  try {
    for (let batch = await cursor.next(); batch !== undefined; batch = await cursor.next()) {
      if (batch.length > 0) return false;
    }
    return true;
  } finally {
    await cursor.close();
  }
}

/** Write a temporary file, fsync it, rename it over, fsync the directory: once per data directory. */
async function _writeDurably(vfs: Vfs, dir: string, path: string, bytes: Buffer): Promise<void> {
  try {
    await replaceFileDurably(vfs, dir, path, bytes);
  } catch (err) {
    throw new RingkvError('RINGKV_IO', `Cannot write ${path}: ${errorMessage(err)}`, { cause: err });
  }
}
