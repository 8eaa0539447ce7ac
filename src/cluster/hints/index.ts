/**
 * Hinted handoff: writes a replica missed are kept on disk per peer by the
 * coordinator (HintStore) and handed to the peer once it is back
 * (HintedHandoff), or to where its key lives now if the ring changed
 * meanwhile (hintPlacement). docs/formats/hints.md describes the files.
 */
export {
  type DrainResult,
  type HandoffStats,
  type HandoffTransport,
  HintedHandoff,
  type HintedHandoffOptions,
} from './handoff.js';
export { hintPolicy } from './hint-policy.js';
export {
  type HintBatch,
  type HintCorruption,
  type HintPending,
  HintStore,
  type HintStoreOptions,
  type HintStoreStats,
} from './hint-store.js';
export { hintPlacement } from './placement.js';
