/**
 * A synchronous front-to-back read of a whole table, for the compaction
 * worker thread (never the event loop). Footer, index and every data block
 * are checksum-verified; the filter is not read. Blocks are read in chunks
 * of about SCAN_CHUNK_BYTES, each into a fresh buffer, so the entries yielded
 * (views into those chunks) stay valid after the generator moves on.
 *
 * The file is closed when the generator finishes, throws, or is returned
 * early (for...of with break).
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { CorruptionError } from '../../util/errors.js';
import type { Entry } from '../entry/entry.js';
import { Block } from './block.js';
import { decodeFooter, decodeIndex, FOOTER_BYTES, openSection } from './format.js';

/** One read call's worth: 1 MiB is a quarter of a default-size table. */
export const SCAN_CHUNK_BYTES = 1024 * 1024;

export function* scanTableSync(path: string): Generator<Entry> {
  const fd = openSync(path, 'r');
  try {
    const size = fstatSync(fd).size;
    if (size < FOOTER_BYTES) {
      throw new CorruptionError(
        path,
        0,
        `truncated: ${size} bytes, less than the ${FOOTER_BYTES}-byte footer`,
      );
    }
    const footer = decodeFooter(readAtSync(fd, path, size - FOOTER_BYTES, FOOTER_BYTES), path, size);
    const indexSection = readAtSync(fd, path, footer.indexOffset, footer.indexBytes);
    const indexPayload = openSection(indexSection, path, footer.indexOffset, 'index');
    const index = decodeIndex(indexPayload, path, footer.indexOffset, footer.indexOffset);

    let blockIndex = 0;
    while (blockIndex < index.blockCount) {
      // Gather whole blocks into one read of at most SCAN_CHUNK_BYTES (or one bigger block alone).
      const chunkStart = index.blockOffset(blockIndex);
      let chunkEnd = chunkStart + index.blockBytes(blockIndex);
      let lastBlock = blockIndex + 1;
      while (
        lastBlock < index.blockCount &&
        chunkEnd + index.blockBytes(lastBlock) - chunkStart <= SCAN_CHUNK_BYTES
      ) {
        chunkEnd += index.blockBytes(lastBlock);
        lastBlock++;
      }
      const chunk = readAtSync(fd, path, chunkStart, chunkEnd - chunkStart);
      for (; blockIndex < lastBlock; blockIndex++) {
        const offset = index.blockOffset(blockIndex);
        const start = offset - chunkStart;
        const block = Block.decode(chunk.subarray(start, start + index.blockBytes(blockIndex)), path, offset);
        for (let i = 0; i < block.entryCount; i++) yield block.entryAt(i);
      }
    }
  } finally {
    closeSync(fd);
  }
}

function readAtSync(fd: number, path: string, position: number, length: number): Buffer {
  const buf = Buffer.allocUnsafeSlow(length);
  let done = 0;
  while (done < length) {
    const bytesRead = readSync(fd, buf, done, length - done, position + done);
    if (bytesRead === 0) {
      throw new CorruptionError(path, position, `truncated: wanted ${length} bytes, file ends after ${done}`);
    }
    done += bytesRead;
  }
  return buf;
}
