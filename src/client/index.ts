/**
 * The client package, what `import ... from 'ringkv'` gives (package.json
 * "exports"): RingkvClient, its errors, and isNodeStatus (the test the client and
 * the dashboard apply to a /v0/status answer). It speaks to nodes over HTTP
 * only and imports nothing of the server (storage, cluster, http, node).
 */
export { RingkvError } from '../util/errors.js';
export {
  type CallOptions,
  type ClientOptions,
  type GetOptions,
  type PutOptions,
  type ReplicaOptions,
  RingkvClient,
  type ScanEntry,
  type ScanOptions,
  type Value,
} from './client.js';
export {
  BadRequestError,
  RequestError,
  type RequestErrorFields,
  ServerError,
  TimeoutError,
  UnavailableError,
} from './errors.js';
export { isNodeStatus, type NodeStatus } from './node-status.js';
export type { Key } from './query.js';
