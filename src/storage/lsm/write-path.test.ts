/**
 * The write path's counters (write-path.ts stats()): the log writes and
 * fsyncs are counters (/metrics `ringkv_engine_wal_writes_total` and
 * `_wal_syncs_total`), so they never go down, also while a frozen
 * memtable's log waits for its flush and while it is deleted after it.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { faultTestOptions } from '../../../test/support/lsm-options.js';
import { valueEntry } from '../entry/entry.js';
import { LsmEngine } from '../lsm-engine.js';
import { FaultyVfs, MemoryVfs } from '../vfs/index.js';

describe('WritePath stats', () => {
  test('log writes and syncs never go down across a rotation, a held flush and its end', async () => {
    const vfs = new FaultyVfs(new MemoryVfs());
    const engine = await LsmEngine.open(faultTestOptions(vfs));
    // Flushes fail (and are retried) while this holds: a frozen memtable and its log stay.
    const noTables = vfs.inject({ op: 'write', path: /\.sst$/ });
    let last = engine.stats();
    const notBelowLast = (when: string): void => {
      const now = engine.stats();
      assert.ok(now.walWrites >= last.walWrites, `${when}: log writes ${last.walWrites} -> ${now.walWrites}`);
      assert.ok(now.walSyncs >= last.walSyncs, `${when}: log syncs ${last.walSyncs} -> ${now.walSyncs}`);
      last = now;
    };
    let version = 0n;
    for (let i = 0; i < 1000 && engine.stats().immutableMemtables === 0; i++) {
      await engine.write(valueEntry(Buffer.from(`key-${i}`), ++version, Buffer.alloc(100, 'v')));
      notBelowLast(`write ${i}`);
    }
    assert.equal(engine.stats().immutableMemtables, 1, 'a memtable was frozen');
    assert.ok(last.walWrites > 0 && last.walSyncs > 0);
    noTables.remove();
    // The flush now succeeds and its log is deleted: the counts stay at or above what they were.
    await engine.flush();
    notBelowLast('after the flush');
    await engine.close();
  });
});
