import assert from 'node:assert/strict';
import { readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  drain,
  isCorruption,
  sampleEntries,
  tempDir,
  writeTable,
} from '../../../test/support/sstable-fixtures.js';
import { crc32 } from '../../util/bytes.js';
import { CorruptionError } from '../../util/errors.js';
import { BlockCache } from './cache.js';
import { FOOTER_BYTES, Footer, SECTION_CRC_BYTES } from './format.js';
import { TableReader } from './reader.js';
import { scanTableSync } from './scanner.js';

describe('corrupt tables', () => {
  const tmp = tempDir();
  const good = join(tmp.dir, 'good.sst');
  const entries = sampleEntries(600);
  let original: Buffer;
  let layout: {
    blockCount: number;
    blockOffset: (i: number) => number;
    blockBytes: (i: number) => number;
    lastKey: (i: number) => Buffer;
  };
  let sections: { indexOffset: number; filterOffset: number };
  let serial = 0;

  /** A copy of the good table with `change` applied to its bytes. */
  function damaged(change: (bytes: Buffer) => Buffer): string {
    const path = join(tmp.dir, `damaged-${serial++}.sst`);
    writeFileSync(path, change(Buffer.from(original)));
    return path;
  }

  function flip(at: number): string {
    return damaged((bytes) => {
      bytes[at]! ^= 0x01;
      return bytes;
    });
  }

  before(async () => {
    writeTable(good, entries);
    original = readFileSync(good);
    const reader = await TableReader.open(good, 1, new BlockCache(0));
    const index = reader._index;
    layout = {
      blockCount: index.blockCount,
      blockOffset: (i) => index.blockOffset(i),
      blockBytes: (i) => index.blockBytes(i),
      lastKey: (i) => Buffer.from(index.lastKey(i)),
    };
    const footer = original.subarray(original.length - FOOTER_BYTES);
    sections = {
      indexOffset: footer.readUInt32LE(Footer.indexOffset),
      filterOffset: footer.readUInt32LE(Footer.filterOffset),
    };
    await reader.close();
  });

  after(() => tmp.remove());

  it('a flipped byte in a data block fails get(), cursors and scanTableSync, naming the block', async () => {
    const blockIndex = 3;
    const offset = layout.blockOffset(blockIndex);
    const key = layout.lastKey(blockIndex);
    for (const at of [offset, offset + 20, offset + layout.blockBytes(blockIndex) - 1]) {
      const path = flip(at);
      const reader = await TableReader.open(path, 2, new BlockCache(1 << 20));
      try {
        await assert.rejects(reader.get(key), isCorruption(path, offset));
        // Other blocks still read fine: the damage is contained and named.
        assert.ok(await reader.get(layout.lastKey(0)));
        await assert.rejects(drain(reader.cursor(Buffer.alloc(0))), isCorruption(path, offset));
      } finally {
        await reader.close();
      }
      assert.throws(() => [...scanTableSync(path)], isCorruption(path, offset));
    }
  });

  it('a flipped footer byte fails open()', async () => {
    const footerOffset = original.length - FOOTER_BYTES;
    for (const field of [
      Footer.indexOffset,
      Footer.entryCount,
      Footer.maxVersion,
      Footer.formatVersion,
      Footer.crc,
      Footer.magic + 3,
    ]) {
      const path = flip(footerOffset + field);
      await assert.rejects(TableReader.open(path, 2, new BlockCache(0)), isCorruption(path, footerOffset));
      assert.throws(() => [...scanTableSync(path)], isCorruption(path, footerOffset));
    }
  });

  it('a flipped index or filter byte fails open(), naming the section', async () => {
    const indexPath = flip(sections.indexOffset + 5);
    await assert.rejects(
      TableReader.open(indexPath, 2, new BlockCache(0)),
      isCorruption(indexPath, sections.indexOffset),
    );
    assert.throws(() => [...scanTableSync(indexPath)], isCorruption(indexPath, sections.indexOffset));

    const filterPath = flip(sections.filterOffset + 2);
    await assert.rejects(
      TableReader.open(filterPath, 2, new BlockCache(0)),
      isCorruption(filterPath, sections.filterOffset),
    );
  });

  it('an index whose block count its records cannot hold fails open(), naming the index', async () => {
    // The section's crc recomputed: only the count is wrong, as a file written by a faulty writer would be.
    for (const count of [0xffffffff, 0x10000000, layout.blockCount + 1]) {
      const path = damaged((bytes) => {
        const crcAt = sections.filterOffset - SECTION_CRC_BYTES;
        bytes.writeUInt32LE(count, crcAt - 4);
        bytes.writeUInt32LE(crc32(bytes.subarray(sections.indexOffset, crcAt)), crcAt);
        return bytes;
      });
      await assert.rejects(
        TableReader.open(path, 2, new BlockCache(0)),
        isCorruption(path, sections.indexOffset, /index: /),
      );
      assert.throws(() => [...scanTableSync(path)], isCorruption(path, sections.indexOffset, /index: /));
    }
  });

  it('a truncated file fails open() and scanTableSync', async () => {
    for (const keep of [
      original.length - 1,
      original.length - FOOTER_BYTES,
      Math.floor(original.length / 2),
      10,
      0,
    ]) {
      const path = damaged((bytes) => bytes.subarray(0, keep));
      await assert.rejects(
        TableReader.open(path, 2, new BlockCache(0)),
        CorruptionError,
        `kept ${keep} bytes`,
      );
      assert.throws(() => [...scanTableSync(path)], CorruptionError);
    }
  });

  it('a file truncated after open fails the read that reaches past its end', async () => {
    const path = damaged((bytes) => bytes);
    const reader = await TableReader.open(path, 2, new BlockCache(0));
    try {
      truncateSync(path, layout.blockOffset(2));
      const lastBlock = layout.blockCount - 1;
      await assert.rejects(
        reader.get(layout.lastKey(lastBlock)),
        isCorruption(path, layout.blockOffset(lastBlock)),
      );
    } finally {
      await reader.close();
    }
  });

  it('a file that is not a table fails open()', async () => {
    const path = join(tmp.dir, 'not-a-table.sst');
    writeFileSync(path, Buffer.alloc(4096, 0x20));
    await assert.rejects(
      TableReader.open(path, 2, new BlockCache(0)),
      isCorruption(path, 4096 - FOOTER_BYTES),
    );
  });
});
