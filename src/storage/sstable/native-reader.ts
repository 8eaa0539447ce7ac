/**
 * The optional native block reader (native/block-reader.c, built at install
 * by scripts/build-native.mjs): reads an lz4 block, checks its crc and
 * decompresses it in one thread-pool task, where the fallback reads it on
 * the pool and decompresses it on the event loop (compression.ts). An
 * uncached lz4 read then costs the event loop what an uncompressed one does.
 * docs/performance.md (Block compression) has the figures.
 *
 * Loaded once per process; RINGKV_NATIVE=off keeps it unloaded (to compare,
 * or to rule it out). Both paths accept and refuse the same blocks, with the
 * same messages but for the decoder's own words on a block that does not
 * decompress: the tests decode and damage blocks through both.
 */
import { createRequire } from 'node:module';
import { getSystemErrorName } from 'node:util';
import { CorruptionError } from '../../util/errors.js';

interface NativeBlockReader {
  readCompressedBlock(
    fd: number,
    position: number,
    storedBytes: number,
    rawBytes: number,
    dictionary: Buffer,
  ): Promise<Buffer>;
  /** lz4-napi's framing (u32 size, LZ4 block) decoded synchronously; throws the reason. For the tests. */
  decodeLz4(compressed: Buffer, dictionary: Buffer): Buffer;
  /** The crc32 the reader checks. For the tests. */
  crc32(data: Buffer): number;
}

/** Where the build leaves the addon, from dist/src/storage/sstable/. */
const ADDON_PATH = '../../../../build/Release/block_reader.node';

function load(): { reader: NativeBlockReader | undefined; why: string } {
  if (process.env.RINGKV_NATIVE === 'off') return { reader: undefined, why: 'RINGKV_NATIVE=off' };
  try {
    const reader = createRequire(import.meta.url)(ADDON_PATH) as NativeBlockReader;
    return { reader, why: 'loaded' };
  } catch (err) {
    return { reader: undefined, why: `not built (${(err as Error).message.split('\n')[0]})` };
  }
}

const loaded = load();
let active = loaded.reader;

/** The addon while it is in use, else undefined (not built, turned off, or set aside by useNativeBlockReader). */
export function nativeBlockReader(): NativeBlockReader | undefined {
  return active;
}

/** 'loaded', or why the addon is not in use: for the bench's notes. */
export const nativeBlockReaderStatus: string = loaded.why;

/**
 * Sets the addon aside (false) or takes it back (true, if it loaded), for
 * the process; returns whether it was in use. For the tests and the engine
 * bench, which run both paths over the same tables.
 */
export function useNativeBlockReader(on: boolean): boolean {
  const was = active !== undefined;
  active = on ? loaded.reader : undefined;
  return was;
}

let blocksRead = 0;

/** How many blocks the native reader has been asked for in this process: for the tests. */
export function nativeBlocksRead(): number {
  return blocksRead;
}

/**
 * Reads and decompresses the lz4 block stored at `position` (`storedBytes`
 * as stored, `rawBytes` once decompressed) through `reader`, and hands the
 * raw block (a buffer of its own) to `decode`. Damage is a CorruptionError
 * naming `path` and the block's offset; a failed read is the system error,
 * as node:fs would report it. One promise and one reaction per block: this
 * is the hot path of every uncached read.
 */
export function readLz4Block<T>(
  reader: NativeBlockReader,
  fd: number,
  path: string,
  position: number,
  sizes: { storedBytes: number; rawBytes: number; dictionary: Buffer },
  decode: (raw: Buffer) => T,
): Promise<T> {
  blocksRead++;
  let read: Promise<Buffer>;
  try {
    read = reader.readCompressedBlock(fd, position, sizes.storedBytes, sizes.rawBytes, sizes.dictionary);
  } catch (err) {
    // Thrown before the read was queued (the block's buffer not allocated, an argument refused): as
    // a rejection like any other failure, and naming the block, which the addon does not know.
    const message = err instanceof Error ? err.message : String(err);
    return Promise.reject(new Error(`${message}, block at offset ${position} of '${path}'`, { cause: err }));
  }
  return read.then(decode, (err: unknown) => {
    throw readFailure(err, path, position);
  });
}

/** The addon's rejection as ringkv reports it: corruption with file and offset, or a system error. */
function readFailure(err: unknown, path: string, position: number): unknown {
  const failure = err as Error & { errno?: number; corrupt?: boolean };
  if (failure.corrupt === true) return new CorruptionError(path, position, failure.message);
  if (typeof failure.errno !== 'number') return err;
  const code = getSystemErrorName(-failure.errno);
  return Object.assign(new Error(`${code}: ${failure.message.toLowerCase()}, read '${path}'`), {
    errno: -failure.errno,
    code,
    syscall: 'read',
    path,
  });
}
