/** The ring package: consistent hashing of keys onto the cluster's nodes. */
export { hash32 } from './hash.js';
export { Ring, type RingOptions, VNODES_PER_NODE_DEFAULT } from './ring.js';
