import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { propertyParams } from '../../../test/support/property.js';
import { valueEntry } from '../entry/entry.js';
import { LsmEngine } from '../lsm-engine.js';
import { MemoryVfs } from '../vfs/index.js';
import { lsmOptions, memtableRotateBytes, tableWriterOptions } from './options.js';

describe('memtableRotateBytes', () => {
  test('stays within [max * (1 - jitter), max] for any draw', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 1 << 30 }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
        (max, jitter, draw) => {
          const bytes = memtableRotateBytes({
            memtableBytesMax: max,
            memtableBytesJitter: jitter,
            random: () => draw,
          });
          assert.ok(Number.isInteger(bytes));
          assert.ok(bytes <= max, `${bytes} > ${max}`);
          assert.ok(
            bytes >= Math.max(1, Math.floor(max * (1 - jitter))),
            `${bytes} below the jitter's bound`,
          );
        },
      ),
      propertyParams({ numRuns: 500 }),
    );
  });

  test('no jitter is the maximum itself; a jitter out of [0, 1] is clamped', () => {
    const max = 4 << 20;
    assert.equal(
      memtableRotateBytes({ memtableBytesMax: max, memtableBytesJitter: 0, random: () => 0.9 }),
      max,
    );
    assert.equal(
      memtableRotateBytes({ memtableBytesMax: max, memtableBytesJitter: 0.25, random: () => 0 }),
      max,
    );
    assert.equal(
      memtableRotateBytes({ memtableBytesMax: max, memtableBytesJitter: 2, random: () => 0.5 }),
      max / 2,
    );
    assert.equal(
      memtableRotateBytes({ memtableBytesMax: max, memtableBytesJitter: -1, random: () => 0.5 }),
      max,
    );
  });
});

describe('tableWriterOptions', () => {
  test('tables at compressionLevelMin and every deeper level take the codec; shallower ones are raw', () => {
    const codecs = (compressionLevelMin: number) => {
      const options = lsmOptions({ dir: '/data', sync: false, compression: 'deflate', compressionLevelMin });
      return Array.from({ length: 7 }, (_, level) => tableWriterOptions(options, level).compression);
    };
    assert.deepEqual(codecs(2), ['none', 'none', 'deflate', 'deflate', 'deflate', 'deflate', 'deflate']);
    assert.deepEqual(codecs(1), ['none', 'deflate', 'deflate', 'deflate', 'deflate', 'deflate', 'deflate']);
  });
});

describe('LSM engine memtable jitter', () => {
  /** Writes distinct 100-byte values until the first memtable is frozen; returns its size then. */
  async function frozenAtBytes(options: { jitter?: number; draw: number }): Promise<number> {
    const max = 64 * 1024;
    const engine = await LsmEngine.open({
      dir: '/db',
      sync: false,
      vfs: new MemoryVfs(),
      memtableBytesMax: max,
      ...(options.jitter === undefined ? {} : { memtableBytesJitter: options.jitter }),
      random: () => options.draw,
    });
    try {
      let last = 0;
      for (let i = 0; i < 10_000; i++) {
        await engine.write(valueEntry(Buffer.from(`key-${i}`), BigInt(i + 1), Buffer.alloc(100, i)));
        const stats = engine.stats();
        if (stats.immutableMemtables > 0 || stats.flushes > 0) return last;
        last = stats.memtableBytes;
      }
      throw new Error('No memtable was frozen');
    } finally {
      await engine.close();
    }
  }

  test('a memtable is frozen at its drawn size; without jitter (the default) at the maximum', async () => {
    const max = 64 * 1024;
    const plain = await frozenAtBytes({ draw: 0.99 });
    assert.ok(plain >= max - 512 && plain < max, `frozen at ${plain} without jitter`);
    const early = await frozenAtBytes({ jitter: 0.5, draw: 0.99 });
    // Drawn at 0.99 of a 50% jitter: frozen once past 50.5% of the maximum, one entry's bytes at most later.
    assert.ok(early >= 0.5 * max - 512 && early < 0.505 * max, `frozen at ${early} with jitter`);
  });
});

describe('LSM engine without logged writes (logWrites: false)', () => {
  const key = Buffer.from('k');

  async function reopenAfter(stop: (engine: LsmEngine) => Promise<void>): Promise<boolean> {
    const vfs = new MemoryVfs();
    const engine = await LsmEngine.open({ dir: '/db', sync: false, logWrites: false, vfs });
    await engine.write(valueEntry(key, 1n, Buffer.from('v')));
    assert.equal(engine.stats().walWrites, 0, 'nothing written to the log');
    await stop(engine);
    const again = await LsmEngine.open({ dir: '/db', sync: false, logWrites: false, vfs });
    try {
      return (await again.get(key)) !== undefined;
    } finally {
      await again.close();
    }
  }

  test('a write kept only in the memtable is gone after a close, and kept by a flush before it', async () => {
    assert.equal(await reopenAfter((engine) => engine.close()), false);
    assert.equal(
      await reopenAfter(async (engine) => {
        await engine.flush();
        await engine.close();
      }),
      true,
    );
  });
});
