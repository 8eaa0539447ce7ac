/**
 * aae/TREE: anti-entropy's arc digests as of a clean close, so that a
 * restart does not rebuild the index (indexed-engine.ts). It exists only
 * between a clean close and the next start, which reads it and deletes it.
 * All integers big-endian.
 *
 *   0   8   magic "RKVTREE" then the format's digit, "3": digests of
 *           (key, version, kind, value hash of the value and its expiry);
 *           "1" (no value hash) and "2" (a value hash without the expiry)
 *           are rebuilt, and so is the index they describe
 *   8   u32 index slot (0 or 1: the directory aae/index-<slot> it describes)
 *   12  u32 ring fingerprint (Ring.fingerprint) the digests were computed for
 *   16  u32 P, the ring's points
 *   20  P x (u32 count, u32 h1, u32 h2): each arc's digest
 *   ..  u32 crc32 of every byte before it
 *
 * The file describes the store as it was closed, so a node takes it out of
 * the directory (claimTree) before it opens the store: a start whose store
 * refuses to open (a damaged write-ahead log) leaves no tree behind for the
 * start after the operator's remedy, which may drop writes the tree holds.
 */
import { join } from 'node:path';
import { isFsError, nodeVfs, replaceFileDurably, type Vfs } from '../../storage/index.js';
import { crc32 } from '../../util/bytes.js';
import { errorMessage, RingkvError } from '../../util/errors.js';
import { DIGEST_WORDS } from './merkle.js';

/** The last byte is the format: a tree of another one does not sum what this build sums. */
const MAGIC = Buffer.from('RKVTREE3', 'latin1');
const HEADER_BYTES = 20;

export interface TreeContents {
  readonly slot: 0 | 1;
  readonly ringFingerprint: number;
  readonly words: Uint32Array;
}

/** Reads, writes and removes the file; paths are named in errors. */
export interface TreeFileStore {
  readonly path: string;
  /** The bytes, or undefined when there is no file. */
  read(): Promise<Buffer | undefined>;
  write(bytes: Buffer): Promise<void>;
  remove(): Promise<void>;
}

export function encodeTree(tree: TreeContents): Buffer {
  const points = tree.words.length / DIGEST_WORDS;
  const buf = Buffer.alloc(HEADER_BYTES + 4 * tree.words.length + 4);
  MAGIC.copy(buf, 0);
  buf.writeUInt32BE(tree.slot, 8);
  buf.writeUInt32BE(tree.ringFingerprint >>> 0, 12);
  buf.writeUInt32BE(points, 16);
  for (let i = 0; i < tree.words.length; i++) buf.writeUInt32BE(tree.words[i]!, HEADER_BYTES + 4 * i);
  buf.writeUInt32BE(crc32(buf.subarray(0, buf.length - 4)), buf.length - 4);
  return buf;
}

/** The contents, or why the bytes are not a tree (missing, a checksum mismatch, a bad header). */
export function decodeTree(
  bytes: Buffer | undefined,
): { ok: true; tree: TreeContents } | { ok: false; reason: string; damaged: boolean } {
  if (bytes === undefined) {
    return { ok: false, reason: 'missing (no clean shutdown, or a new index)', damaged: false };
  }
  if (bytes.length >= 8 && bytes.subarray(0, 7).equals(MAGIC.subarray(0, 7)) && bytes[7] !== MAGIC[7]) {
    const format = String.fromCharCode(bytes[7]!);
    return {
      ok: false,
      reason: `format ${format} (this build reads ${String.fromCharCode(MAGIC[7]!)})`,
      damaged: false,
    };
  }
  if (bytes.length < HEADER_BYTES + 4 || !bytes.subarray(0, 8).equals(MAGIC)) {
    return { ok: false, reason: 'not a tree file (bad header)', damaged: true };
  }
  const stored = bytes.readUInt32BE(bytes.length - 4);
  const actual = crc32(bytes.subarray(0, bytes.length - 4));
  if (stored !== actual) {
    return {
      ok: false,
      reason: `checksum mismatch (stored ${stored.toString(16)}, computed ${actual.toString(16)})`,
      damaged: true,
    };
  }
  const slot = bytes.readUInt32BE(8);
  const points = bytes.readUInt32BE(16);
  if ((slot !== 0 && slot !== 1) || bytes.length !== HEADER_BYTES + 4 * DIGEST_WORDS * points + 4) {
    return { ok: false, reason: 'bad header (slot or size)', damaged: true };
  }
  const words = new Uint32Array(DIGEST_WORDS * points);
  for (let i = 0; i < words.length; i++) words[i] = bytes.readUInt32BE(HEADER_BYTES + 4 * i);
  return { ok: true, tree: { slot, ringFingerprint: bytes.readUInt32BE(12), words } };
}

/** The file aae/TREE under `dataDir`. */
export function treeFileIn(dataDir: string, vfs: Vfs = nodeVfs): TreeFileStore {
  const dir = join(dataDir, 'aae');
  const path = join(dir, 'TREE');
  return {
    path,
    async read() {
      try {
        return await vfs.readFile(path);
      } catch (err) {
        if (isFsError(err, 'ENOENT')) return undefined;
        throw new RingkvError('RINGKV_IO', `Cannot read ${path}: ${errorMessage(err)}`, { cause: err });
      }
    },
    async write(bytes) {
      await vfs.mkdir(dir);
      await replaceFileDurably(vfs, dir, path, bytes);
    },
    async remove() {
      try {
        await vfs.remove(path);
        await vfs.syncDir(dir);
      } catch (err) {
        if (!isFsError(err, 'ENOENT')) throw err;
      }
    },
  };
}

/**
 * Reads the file and removes it at once; the store returned hands those bytes
 * to its first read() (IndexedEngine.open) and writes and removes the file as
 * `store` does. Called before the store opens (module comment).
 */
export async function claimTree(store: TreeFileStore): Promise<TreeFileStore> {
  let bytes = await store.read();
  if (bytes !== undefined) await store.remove();
  return {
    path: store.path,
    async read() {
      const claimed = bytes;
      bytes = undefined;
      return claimed;
    },
    write: (next) => store.write(next),
    remove: () => store.remove(),
  };
}
