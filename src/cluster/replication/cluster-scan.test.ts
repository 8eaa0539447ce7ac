import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Entry, EntryCursor } from '../../storage/index.js';
import { isRingkvError } from '../../util/errors.js';
import type { Transport } from '../transport/index.js';
import { ClusterScanCursor } from './cluster-scan.js';

const SELF = 'http://127.0.0.1:1';
const PEER = 'http://127.0.0.1:2';

/** A cursor over a peer that answers each SCAN with the next of `pages`. */
function cursorOver(pages: { entries: Entry[]; more: boolean }[]): ClusterScanCursor {
  const empty: EntryCursor = { next: async () => undefined, close: async () => {} };
  const transport = {
    scan: async () => pages.shift() ?? { entries: [], more: false },
  } as unknown as Transport;
  return new ClusterScanCursor({
    range: { start: Buffer.from('a'), end: undefined },
    selfUrl: SELF,
    nodes: [SELF, PEER],
    openLocal: () => empty,
    transport,
    pageEntries: 128,
    timeoutMs: 1000,
    batchEntriesMax: 64,
    batchBytesMax: 1 << 20,
  });
}

describe('ClusterScanCursor', () => {
  it('fails on a peer page that holds nothing yet says more follow, rather than ending the range short', async () => {
    const cursor = cursorOver([{ entries: [], more: true }]);
    await assert.rejects(cursor.next(), (err) => {
      assert.ok(isRingkvError(err, 'RINGKV_NOT_ENOUGH_REPLICAS'), String(err));
      assert.match((err as Error).message, /http:\/\/127\.0\.0\.1:2: .*empty page/);
      return true;
    });
    await cursor.close();
  });

  it('ends on an empty last page', async () => {
    const cursor = cursorOver([{ entries: [], more: false }]);
    assert.equal(await cursor.next(), undefined);
    await cursor.close();
  });
});
