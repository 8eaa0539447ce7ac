/**
 * Damage to a stopped node's files: one byte flipped in a write-ahead log
 * record (not the last one of a log a crash left, which the design cuts as a
 * torn write) or anywhere in an SSTable. Layouts: docs/formats/wal.md (an
 * 8-byte header, then records of a 4-byte length, a 4-byte CRC and the
 * payload; a close record, payload byte 0xFF, after a clean stop; zeros
 * after) and docs/formats/sstable.md.
 */
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type { Random } from './random.js';

export interface Damage {
  readonly file: string;
  readonly offset: number;
  /** What was hit, for the card: 'WAL record 3 of 7 payload', 'SSTable (12,345 bytes)'. */
  readonly what: string;
}

const WAL_HEADER_BYTES = 8;
const RECORD_HEADER_BYTES = 8;
const CLOSE_KIND = 0xff;

interface WalLayout {
  readonly path: string;
  /** Start offset and payload length of each record before the close record. */
  readonly records: { start: number; length: number }[];
  readonly closed: boolean;
}

async function filesEnding(dir: string, suffix: string): Promise<string[]> {
  const names = await readdir(dir).catch(() => [] as string[]);
  return names
    .filter((name) => name.endsWith(suffix))
    .sort()
    .map((name) => join(dir, name));
}

async function walLayout(path: string): Promise<WalLayout> {
  const bytes = await readFile(path);
  const records: { start: number; length: number }[] = [];
  let closed = false;
  // Bounded by the file: each step moves forward by at least a record header.
  for (let at = WAL_HEADER_BYTES; at + RECORD_HEADER_BYTES < bytes.length; ) {
    const length = bytes.readUInt32BE(at);
    if (length === 0 || at + RECORD_HEADER_BYTES + length > bytes.length) break;
    if (bytes[at + RECORD_HEADER_BYTES] === CLOSE_KIND) {
      closed = true;
      break;
    }
    records.push({ start: at, length });
    at += RECORD_HEADER_BYTES + length;
  }
  return { path, records, closed };
}

/**
 * A byte in a WAL record that the node must refuse to start with: any record
 * of a cleanly closed log, any but the last of one a crash left. Mostly in
 * the payload; one time in four in the record's length or checksum field.
 * Undefined when no log holds such a record.
 */
export async function pickWalDamage(dataDir: string, random: Random): Promise<Damage | undefined> {
  const candidates: { layout: WalLayout; index: number }[] = [];
  const replayedFrom = (await readManifest(dataDir)).logNumber ?? 0;
  for (const path of await filesEnding(dataDir, '.log')) {
    // A log below the manifest's logNumber is flushed already: recovery does not read it.
    if (Number.parseInt(basename(path), 10) < replayedFrom) continue;
    const layout = await walLayout(path);
    const usable = layout.closed ? layout.records.length : layout.records.length - 1;
    for (let index = 0; index < usable; index++) candidates.push({ layout, index });
  }
  if (candidates.length === 0) return undefined;
  const { layout, index } = random.pick(candidates);
  const record = layout.records[index]!;
  const inHeader = random.chance(0.25);
  const offset = inHeader
    ? record.start + random.int(0, RECORD_HEADER_BYTES - 1)
    : record.start + RECORD_HEADER_BYTES + random.int(0, record.length - 1);
  const field = inHeader ? (offset - record.start < 4 ? 'length' : 'checksum') : 'payload';
  return {
    file: layout.path,
    offset,
    what: `WAL record ${index + 1} of ${layout.records.length} (${layout.closed ? 'closed cleanly' : 'left by a crash'}), ${field}`,
  };
}

interface ManifestBody {
  readonly logNumber?: number;
  readonly levels?: readonly (readonly { readonly file: number }[])[];
}

/** The manifest's body (docs/formats/manifest.md: JSON from line 3 on); {} when there is none. */
async function readManifest(dataDir: string): Promise<ManifestBody> {
  try {
    const text = await readFile(join(dataDir, 'MANIFEST'), 'utf8');
    return JSON.parse(text.split('\n').slice(2).join('\n')) as ManifestBody;
  } catch {
    return {};
  }
}

/** A byte anywhere in one of the node's SSTables; undefined when it has none. */
export async function pickTableDamage(dataDir: string, random: Random): Promise<Damage | undefined> {
  // Only the tables the manifest lists: others are left over from a cut-short flush and deleted at start.
  const listed = new Set(((await readManifest(dataDir)).levels ?? []).flat().map((table) => table.file));
  const tables = (await filesEnding(dataDir, '.sst')).filter((path) =>
    listed.has(Number.parseInt(basename(path), 10)),
  );
  if (tables.length === 0) return undefined;
  const file = random.pick(tables);
  const size = (await readFile(file)).length;
  if (size === 0) return undefined;
  return { file, offset: random.int(0, size - 1), what: `SSTable of ${size} bytes` };
}

/** Flips every bit of the byte at `damage.offset`. */
export async function applyDamage(damage: Damage): Promise<void> {
  const bytes = await readFile(damage.file);
  bytes[damage.offset] = bytes[damage.offset]! ^ 0xff;
  await writeFile(damage.file, bytes);
}
