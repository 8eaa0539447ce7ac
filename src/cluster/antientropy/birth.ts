/**
 * A node's birth version: the clock version at which it first served from an
 * empty data directory, kept in the file BIRTH beside the storage files.
 * Anti-entropy (exchange.ts) pulls keys older than it that a peer holds
 * wherever this node sits in their replica list: a node that lost its disk
 * cannot know which of those writes had targeted it, and a new node in a new
 * cluster has no older keys to pull, so this is the one case where keys may
 * reach a node no write of them was sent to (docs/design/anti-entropy.md).
 *
 *   file BIRTH:  "ringkv-birth 1\n" <version, decimal> "\n"
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
import { errorMessage, RingkvError } from '../../util/errors.js';

/** Name of the file in the data directory. */
export const BIRTH_FILE = 'BIRTH';
const HEADER = 'ringkv-birth 1\n';

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
  await _writeDurably(vfs, dataDir, path, `${HEADER}${version}\n`);
  return version;
}

/**
 * The BIRTH file that records `version` as the node's birth: for a data
 * directory restored from a snapshot, which misses what was written after it
 * as a wiped one misses everything, so that anti-entropy pulls those keys
 * back. The restore writes it before the MANIFEST (storage/snapshot.ts).
 */
export function birthFile(version: bigint): { name: string; bytes: Buffer } {
  return { name: BIRTH_FILE, bytes: Buffer.from(`${HEADER}${version}\n`, 'latin1') };
}

function _parse(path: string, text: string): bigint {
  const match = /^ringkv-birth 1\n(0|[1-9][0-9]{0,19})\n$/.exec(text);
  const version = match === null ? undefined : BigInt(match[1]!);
  if (version === undefined || version >= 2n ** 64n) {
    throw new RingkvError(
      'RINGKV_CORRUPTION',
      `Bad ${path}: expected "ringkv-birth 1" and a version; delete it to treat this node as never having lost data`,
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
async function _writeDurably(vfs: Vfs, dir: string, path: string, text: string): Promise<void> {
  try {
    await replaceFileDurably(vfs, dir, path, Buffer.from(text, 'latin1'));
  } catch (err) {
    throw new RingkvError('RINGKV_IO', `Cannot write ${path}: ${errorMessage(err)}`, { cause: err });
  }
}
