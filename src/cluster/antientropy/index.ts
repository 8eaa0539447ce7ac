/**
 * Anti-entropy: periodic comparison of a node's data with each peer's, by
 * Merkle trees over key-hash buckets, repairing differences both ways. The
 * digests are kept current on every write by IndexedEngine, which wraps the
 * node's engine.
 * AntiEntropy runs the requesting side on a schedule; AntiEntropyResponder
 * answers a peer's requests. docs/design/anti-entropy.md explains the design.
 */
export { BIRTH_FILE, birthFile, loadBirthVersion } from './birth.js';
export type { AntiEntropyTransport, ExchangeResult } from './exchange.js';
export { lsmIndexes } from './index-store.js';
export {
  IndexedEngine,
  type IndexedEngineOptions,
  type IndexStore,
  indexKey,
  type TreeState,
  type TreeStats,
} from './indexed-engine.js';
export { AntiEntropyResponder, type AntiEntropyResponderOptions, type ResponderStats } from './responder.js';
export { ScanPacer } from './scan.js';
export {
  AntiEntropy,
  type AntiEntropyOptions,
  type AntiEntropyStats,
  defaultReplicationFactor,
} from './scheduler.js';
export { claimTree, type TreeFileStore, treeFileIn } from './tree-file.js';
