/**
 * The transport package: how nodes talk to each other. The coordinator
 * uses the Transport contract; the node's HTTP server hosts an
 * InternodeServer for the other side.
 */

import type { MembershipLinks, PeerLinks, Transport, TransportStats } from './contract.js';
import { FrameTransport, type FrameTransportOptions } from './frame-transport.js';
import { HttpTransport } from './http-transport.js';

export type {
  InternodeHandler,
  MembershipLinks,
  PeerLinks,
  PeerStatus,
  ScanPage,
  Transport,
  TransportStats,
} from './contract.js';
export { decodeEntries, FRAME_HEADER_BYTES, PROTOCOL, UPGRADE_PATH } from './format.js';
export { FrameTransport, type FrameTransportOptions } from './frame-transport.js';
export { isInternodePath } from './http-endpoint.js';
export { HttpTransport, type HttpTransportOptions } from './http-transport.js';
export {
  attachInternode,
  InternodeServer,
  type InternodeServerOptions,
  type InternodeServerStats,
} from './server.js';
export { SimTransport, type SimTransportOptions } from './sim-transport.js';

export type TransportKind = 'frame' | 'http';

/** The internode protocol nodes use: RINGKV_INTERNODE=http selects plain HTTP (for benchmarks). */
export function transportKindFromEnv(env: NodeJS.ProcessEnv = process.env): TransportKind {
  return env.RINGKV_INTERNODE === 'http' ? 'http' : 'frame';
}

/**
 * The client side, decided once at start-up.
 *
 * Example: const transport = createTransport({ secret }); // frame unless RINGKV_INTERNODE=http
 */
export function createTransport(
  options: FrameTransportOptions & { readonly kind?: TransportKind } = {},
): Transport & PeerLinks & MembershipLinks & { stats(): TransportStats } {
  const { kind = transportKindFromEnv(), ...rest } = options;
  return kind === 'http' ? new HttpTransport(rest) : new FrameTransport(rest);
}
