/**
 * Helpers shared by the SSTable and compaction tests: temporary directories, sample
 * entries, writing a table in one call, draining a cursor.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Entry, tombstoneEntry, valueEntry } from '../../src/storage/entry/entry.js';
import type { TableCursor } from '../../src/storage/sstable/reader.js';
import { type TableMeta, TableWriter, type TableWriterOptions } from '../../src/storage/sstable/writer.js';

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
