/**
 * The serving side of internode traffic on a node's own HTTP port: the
 * binary protocol's Upgrade (handleUpgrade) and the plain-HTTP variant's
 * requests (handleHttp), both checked against the cluster secret.
 *
 * Wiring, by the node's HTTP server:
 *   const internode = new InternodeServer(handler, { secret, selfUrl });
 *   server.on('upgrade', internode.handleUpgrade);          // or attachInternode(server, handler, options)
 *   // in the request listener, before other routes:
 *   if (internode.handleHttp(req, res)) return;
 *   // on shutdown, before or with server.close() (upgraded sockets keep it open):
 *   await internode.close();
 *
 * Without a secret every internode connection is accepted: a production
 * cluster should set `--cluster-secret`, or anyone who can reach a node's
 * port can write entries with versions of their choosing.
 */
import { type IncomingMessage, type Server, type ServerResponse, STATUS_CODES } from 'node:http';
import { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { limits } from '../../config/limits.js';
import { ProofChecker } from './auth.js';
import type { InternodeHandler } from './contract.js';
import { NODE_HEADER, PROOF_HEADER, PROTOCOL, UPGRADE_PATH } from './format.js';
import { FrameServerConnection, type FrameServerCounters, type FrameServerLimits } from './frame-server.js';
import { isInternodePath, serveHttp } from './http-endpoint.js';

/** close() waits this long for answers in flight before cutting connections (within the node's 10 s shutdown). */
const CLOSE_GRACE_MS = 3000;

export interface InternodeServerOptions {
  /** The cluster secret; left out, every internode request is accepted. */
  readonly secret?: string | undefined;
  /** This node's URL (`--url`), which proofs are bound to; left out, taken from the Host header. */
  readonly selfUrl?: string | undefined;
  readonly frameBytesMax?: number;
  readonly proofWindowMs?: number;
  readonly inFlightMax?: number;
  /**
   * An upgraded connection on which nothing arrived this long, with nothing
   * under way, is closed (default limits.internodeServerIdleTimeoutMs; 0: never).
   */
  readonly idleTimeoutMs?: number;
  /** Handler failures that are not RingkvErrors (bugs), for the node's log. */
  readonly onError?: (err: unknown) => void;
  /**
   * A peer reached this node (an accepted handshake or request naming its
   * URL): called before the handshake is answered, so that by the time the
   * peer's connection opens this node already tries its own link back.
   */
  readonly onPeerSeen?: (peer: string) => void;
}

export interface InternodeServerStats {
  readonly connections: number;
  readonly handshakesRefused: number;
  /** Connections closed because nothing arrived on them for the idle timeout. */
  readonly idleClosed: number;
  readonly requests: number;
  readonly socketWrites: number;
}

export class InternodeServer {
  readonly #handler: InternodeHandler;
  readonly #checker: ProofChecker;
  readonly #limits: FrameServerLimits;
  readonly #connections = new Set<FrameServerConnection>();
  readonly #counters: FrameServerCounters = { requests: 0, socketWrites: 0, idleClosed: 0 };
  readonly #onPeerSeen: ((peer: string) => void) | undefined;
  #handshakesRefused = 0;
  #leaving = false;
  #closed = false;

  constructor(handler: InternodeHandler, options: InternodeServerOptions = {}) {
    this.#handler = handler;
    this.#checker = new ProofChecker({
      secret: options.secret,
      selfUrl: options.selfUrl,
      windowMs: options.proofWindowMs ?? limits.internodeProofWindowMs,
      nonceCacheMax: limits.internodeNonceCacheMax,
    });
    this.#limits = {
      frameBytesMax: options.frameBytesMax ?? limits.internodeFrameBytesMax,
      scanEntriesMax: limits.internodeScanEntriesMax,
      inFlightMax: options.inFlightMax ?? limits.internodeServerInFlightMax,
      queuedBytesMax: limits.internodeQueuedBytesMax,
      idleTimeoutMs: options.idleTimeoutMs ?? limits.internodeServerIdleTimeoutMs,
      onError: options.onError,
    };
    this.#onPeerSeen = options.onPeerSeen;
  }

  /** For a node:http Server's 'upgrade' event (a bound function: pass it as is); returns the status answered. */
  readonly handleUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): number => {
    // node:http hands the socket over without its 'error' listener: a refused one that the peer
    // resets after reading the answer would otherwise throw, uncaught, and end the process.
    socket.on('error', () => socket.destroy());
    const path = (req.url ?? '').split('?', 1)[0];
    if (
      path !== UPGRADE_PATH ||
      req.headers.upgrade?.toLowerCase() !== PROTOCOL ||
      !(socket instanceof Socket)
    ) {
      return this.#refuse(socket, 400, 'Unsupported upgrade');
    }
    if (this.#closed || this.#leaving) {
      return this.#refuse(socket, 503, 'Node is shutting down');
    }
    const proof = req.headers[PROOF_HEADER];
    const verdict = this.#checker.check(Array.isArray(proof) ? proof[0] : proof, req.headers.host, true);
    if (verdict !== 'accepted') {
      return this.#refuse(socket, verdict === 'missing' ? 401 : 403, `Internode proof ${verdict}`);
    }
    const sender = req.headers[NODE_HEADER];
    if (typeof sender === 'string') this.#onPeerSeen?.(sender);
    // The HTTP server's idle timeout must not cut a persistent internode connection: the
    // connection's own (idleTimeoutMs, which the peer's heartbeat keeps from firing) does.
    socket.setTimeout(0);
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: ${PROTOCOL}\r\n\r\n`);
    const connection = new FrameServerConnection(socket, {
      handler: this.#handler,
      limits: this.#limits,
      counters: this.#counters,
    });
    this.#connections.add(connection);
    void connection.closed.then(() => this.#connections.delete(connection));
    if (head.length > 0) connection.receive(head);
    return 101;
  };

  /**
   * Serves a request of the plain-HTTP variant and returns true, or returns
   * false when the path is not an internode one (the caller routes it).
   */
  readonly handleHttp = (req: IncomingMessage, res: ServerResponse): boolean => {
    if (!isInternodePath(req.url)) return false;
    serveHttp(req, res, {
      handler: this.#handler,
      checker: this.#checker,
      limits: this.#limits,
      leaving: this.#leaving || this.#closed,
      onPeerSeen: this.#onPeerSeen,
    });
    return true;
  };

  /**
   * The node is shutting down: new handshakes are refused (503) and, in the
   * plain-HTTP variant, pings fail, so that peers' probes do not bring it
   * back; open connections go on serving what peers still send.
   */
  leave(): void {
    this.#leaving = true;
  }

  stats(): InternodeServerStats {
    return {
      connections: this.#connections.size,
      handshakesRefused: this.#handshakesRefused,
      idleClosed: this.#counters.idleClosed,
      requests: this.#counters.requests,
      socketWrites: this.#counters.socketWrites,
    };
  }

  /**
   * Refuses new connections, lets each connection answer what it has in
   * flight and what arrives until it has been quiet a moment (peers told of
   * the shutdown send nothing new), then ends it; connections still open
   * after `graceMs` are cut.
   */
  async close(graceMs = CLOSE_GRACE_MS): Promise<void> {
    this.#closed = true;
    const ended = Promise.all([...this.#connections].map((connection) => connection.end()));
    let timer: NodeJS.Timeout | undefined;
    const cut = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        this.destroy();
        resolve();
      }, graceMs);
    });
    await Promise.race([ended, cut]);
    clearTimeout(timer);
  }

  /** Cuts every connection at once. */
  destroy(): void {
    this.#closed = true;
    for (const connection of this.#connections) connection.destroy();
  }

  #refuse(socket: Duplex, status: number, message: string): number {
    this.#handshakesRefused++;
    socket.end(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nConnection: close\r\nContent-Type: text/plain\r\n` +
        `Content-Length: ${Buffer.byteLength(message)}\r\n\r\n${message}`,
    );
    return status;
  }
}

/** Creates an InternodeServer and hands it `server`'s Upgrade requests. */
export function attachInternode(
  server: Server,
  handler: InternodeHandler,
  options: InternodeServerOptions = {},
): InternodeServer {
  const internode = new InternodeServer(handler, options);
  server.on('upgrade', internode.handleUpgrade);
  return internode;
}
