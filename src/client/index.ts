/**
 * The client package, what `import ... from 'ringkv'` gives (package.json
 * "exports"): RingkvClient and its errors. It speaks to nodes over HTTP
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
export type { NodeStatus } from './node-status.js';
export type { Key } from './query.js';
