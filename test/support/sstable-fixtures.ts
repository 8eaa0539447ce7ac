/**
 * Helpers shared by the SSTable and compaction tests: temporary directories, sample
 * entries, writing a table in one call, draining a cursor.
 */

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Entry, tombstoneEntry, valueEntry } from '../../src/storage/entry/entry.js';
import type { TableCursor } from '../../src/storage/sstable/reader.js';
import { type TableMeta, TableWriter, type TableWriterOptions } from '../../src/storage/sstable/writer.js';
import { CorruptionError } from '../../src/util/errors.js';

export const SMALL_TABLE: TableWriterOptions = { blockBytes: 256, bloomBitsPerKey: 10 };

/** A fresh directory and a function that removes it. */
export function tempDir(): { dir: string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'ringkv-sst-'));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

export function sampleKey(i: number): Buffer {
  return Buffer.from(`key-${String(i).padStart(6, '0')}`);
}

/**
 * Entries for keys sampleKey(0, step, 2*step, ...): every 7th a tombstone,
 * every 5th with an expiry, the rest plain values of varying length.
 */
export function sampleEntries(count: number, step = 2): Entry[] {
  const out: Entry[] = [];
  for (let n = 0; n < count; n++) {
    const key = sampleKey(n * step);
    const version = 1000n + BigInt(n);
    if (n % 7 === 3) out.push(tombstoneEntry(key, version));
    else
      out.push(
        valueEntry(key, version, Buffer.from(`value-${n}-${'x'.repeat(n % 13)}`), n % 5 === 1 ? 1e12 + n : 0),
      );
  }
  return out;
}

/**
 * Entries whose values are small JSON documents that share their field names
 * and some values (compressible, as real documents are), with a random-looking
 * id in each; every 9th a tombstone.
 */
export function documentEntries(count: number): Entry[] {
  const out: Entry[] = [];
  const cities = ['Berlin', 'Lisbon', 'Tokyo', 'Oslo', 'Austin'];
  for (let n = 0; n < count; n++) {
    const key = sampleKey(n);
    const version = 5000n + BigInt(n);
    if (n % 9 === 4) {
      out.push(tombstoneEntry(key, version));
      continue;
    }
    const doc = {
      id: `ord_${((n * 2654435761) >>> 0).toString(36)}`,
      status: n % 3 === 0 ? 'shipped' : 'pending',
      customer: { name: `Customer ${n % 17}`, city: cities[n % cities.length] },
      items: Array.from({ length: 1 + (n % 4) }, (_, i) => ({
        sku: `SKU-${(n * 31 + i) % 1000}`,
        qty: 1 + i,
      })),
    };
    out.push(valueEntry(key, version, Buffer.from(JSON.stringify(doc))));
  }
  return out;
}

/** An assert.throws/rejects check: a CorruptionError naming `path` and `offset`. */
export function isCorruption(path: string, offset: number, detail?: RegExp) {
  return (err: unknown): boolean => {
    assert.ok(err instanceof CorruptionError, `expected CorruptionError, got ${String(err)}`);
    assert.equal(err.code, 'RINGKV_CORRUPTION');
    assert.equal(err.file, path);
    assert.equal(err.offset, offset, err.message);
    assert.ok(err.message.includes(path));
    if (detail !== undefined) assert.match(err.message, detail);
    return true;
  };
}

export function writeTable(
  path: string,
  entries: readonly Entry[],
  options = SMALL_TABLE,
  fileNumber = 1,
): TableMeta {
  const writer = new TableWriter(path, fileNumber, options);
  try {
    for (const entry of entries) writer.add(entry);
    return writer.finish();
  } catch (err) {
    writer.abort();
    throw err;
  }
}

/** Every batch of a cursor, concatenated; asserts batches are never empty. */
export async function drain(cursor: TableCursor, batchLimit = 100_000): Promise<Entry[]> {
  const out: Entry[] = [];
  for (let i = 0; i < batchLimit; i++) {
    const batch = await cursor.next();
    if (batch === undefined) return out;
    if (batch.length === 0) throw new Error('Cursor returned an empty batch');
    out.push(...batch);
  }
  throw new Error(`Cursor did not end within ${batchLimit} batches`);
}

/** A plain-object form for deepStrictEqual: Buffers become hex strings. */
export function plain(entry: Entry | undefined): unknown {
  if (entry === undefined) return undefined;
  return {
    key: entry.key.toString('hex'),
    version: entry.version,
    kind: entry.kind,
    expiresAtMs: entry.expiresAtMs,
    value: entry.value.toString('hex'),
  };
}
