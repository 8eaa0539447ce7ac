/**
 * The storage package's public face: the Engine contract and the factory the
 * server uses. Other packages import storage only through this file.
 */
import type { Engine } from './engine.js';
import { MemoryEngine } from './memory-engine.js';

export type { Engine, EngineStats, EntryCursor, ScanRange } from './engine.js';
export * from './entry/index.js';
export { MemoryEngine } from './memory-engine.js';

export interface EngineOptions {
  /** Directory holding this engine's files; created if missing. */
  readonly dir: string;
  /** true: every acknowledged write is fsynced (group commit). false: acknowledged once written to the OS. */
  readonly sync: boolean;
  readonly memtableBytesMax?: number;
  readonly blockCacheBytes?: number;
  readonly tombstoneGraceMs?: number;
}

/** Opens (recovering if needed) the engine in `options.dir`. */
export async function openEngine(_options: EngineOptions): Promise<Engine> {
  // Placeholder until the LSM engine is wired in.
  return new MemoryEngine();
}
