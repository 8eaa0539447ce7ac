/**
 * The membership package: who is in the cluster, as data (membership.ts),
 * its bytes (format.ts) and file (file.ts), the rings computed from it
 * (topology.ts), how views spread (gossip.ts), and moves: streaming ranges
 * to their new owners (streaming.ts) and the flip that ends a move (mover.ts).
 */
export { loadMembership, MEMBERSHIP_FILE, saveMembership } from './file.js';
export {
  decodeMembership,
  decodeMoveRequest,
  decodeStreamPage,
  decodeStreamRequest,
  encodeMembership,
  encodeMoveRequest,
  encodeStreamPage,
  encodeStreamRequest,
  MoveKind,
  type StreamPage,
  type StreamRequest,
} from './format.js';
export { answersExchange, Gossip, type GossipOptions, type GossipStats } from './gossip.js';
export {
  bootstrapMembership,
  cancelled,
  compareMemberships,
  currentMembers,
  describeMove,
  EMPTY_MEMBERSHIP,
  findMember,
  flipped,
  futureMembers,
  liveMembers,
  MEMBER_STATE_NAMES,
  type Member,
  MemberState,
  type Membership,
  mergeMemberships,
  moveUnderWay,
  withJoining,
  withLeaving,
} from './membership.js';
export {
  type MoveProgressAnswer,
  Mover,
  type MoverOptions,
  newOwners,
  subtractRanges,
  unheldRanges,
} from './mover.js';
export { MembershipService, type MembershipServiceOptions, type MembershipStart } from './service.js';
export {
  type ReceiveProgress,
  StreamReceiver,
  StreamSource,
  streamedTo,
  type TransferProgress,
} from './streaming.js';
export { replicationFactor, ringOf, Topology, type TopologyOptions } from './topology.js';
