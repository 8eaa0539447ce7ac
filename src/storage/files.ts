/**
 * Names of the files in a data directory:
 *
 *   MANIFEST         live tables and the oldest needed WAL (manifest/)
 *   LOCK             the owning process's PID (dir-lock.ts)
 *   000123.log       a write-ahead log (wal/)
 *   000124.sst       an SSTable (sstable/)
 *
 * Logs and tables share one increasing file-number sequence.
 */
import { join } from 'node:path';

export type FileKind = 'log' | 'sst';

export function fileName(fileNumber: number, kind: FileKind): string {
  return `${String(fileNumber).padStart(6, '0')}.${kind}`;
}

export function filePath(dir: string, fileNumber: number, kind: FileKind): string {
  return join(dir, fileName(fileNumber, kind));
}

/** Parses a name from fileName(); undefined for any other file. */
export function parseFileName(name: string): { fileNumber: number; kind: FileKind } | undefined {
  const match = /^(\d{6,})\.(log|sst)$/.exec(name);
  if (match === null) return undefined;
  return { fileNumber: Number(match[1]), kind: match[2] as FileKind };
}
