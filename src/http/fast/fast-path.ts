/**
 * The fast path: plain GET, PUT and DELETE of /v0/entity read and answered
 * straight off the socket, without node:http's per-request objects (request
 * and response streams, header maps, per-socket timers) that cost about as
 * much CPU as the store lookup itself. Everything else (other routes,
 * chunked bodies, Expect, upgrades, malformed requests) is still node:http's:
 * a connection is handed to it at its first such request.
 *
 * It sits in front of node:http's own connection handler on the same server:
 * the server's 'connection' listener is taken out and called for the sockets
 * that are handed over, so node:http's limits, timeouts, connection tracking
 * and close() apply to them as before. If node:http's server ever has other
 * than the one listener this expects, install() declines and node:http
 * serves everything.
 *
 * The fast path's own connections have its own timeouts, checked by one
 * sweep a second rather than a timer per socket: keep-alive idle, head and
 * whole-request deadlines (408), and an answer left unread.
 */
import type { Server } from 'node:http';
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { limits } from '../../config/limits.js';
import type { RouteContext } from '../routes/context.js';
import { type ConnectionHost, type ConnectionTimeouts, FastConnection } from './connection.js';
import { keepAliveLines } from './response.js';

export interface FastPathOptions {
  readonly headBytesMax: number;
  readonly timeouts: ConnectionTimeouts;
}

export class FastPath implements ConnectionHost {
  readonly ctx: RouteContext;
  readonly headBytesMax: number;
  readonly keepAliveLines: string;
  readonly #server: Server;
  readonly #nodeListener: (socket: Socket) => void;
  readonly #timeouts: ConnectionTimeouts;
  readonly #connections = new Set<FastConnection>();
  readonly #sweep: NodeJS.Timeout;

  private constructor(
    server: Server,
    nodeListener: (socket: Socket) => void,
    ctx: RouteContext,
    options: FastPathOptions,
  ) {
    this.ctx = ctx;
    this.headBytesMax = options.headBytesMax;
    this.keepAliveLines = keepAliveLines(options.timeouts.keepAliveMs);
    this.#server = server;
    this.#nodeListener = nodeListener;
    this.#timeouts = options.timeouts;
    this.#sweep = setInterval(() => this.#checkTimeouts(), limits.httpTimeoutCheckMs).unref();
  }

  /** Puts the fast path in front of `server`'s connections; undefined if it cannot. */
  static install(server: Server, ctx: RouteContext, options: FastPathOptions): FastPath | undefined {
    const listeners = server.listeners('connection');
    if (listeners.length !== 1) return undefined;
    const nodeListener = listeners[0] as (socket: Socket) => void;
    const fastPath = new FastPath(server, nodeListener, ctx, options);
    server.removeListener('connection', nodeListener);
    server.on('connection', (socket: Socket) => {
      if (ctx.closing) nodeListener.call(server, socket);
      else fastPath.#connections.add(new FastConnection(socket, fastPath));
    });
    return fastPath;
  }

  get connectionCount(): number {
    return this.#connections.size;
  }

  handOver(socket: Socket, unread: Buffer | undefined): void {
    // Paused so that the bytes put back are not emitted before node:http listens.
    socket.pause();
    if (unread !== undefined) socket.unshift(unread);
    this.#nodeListener.call(this.#server, socket);
    socket.resume();
  }

  forget(connection: FastConnection): void {
    this.#connections.delete(connection);
  }

  /** Shutdown: closes the connections with nothing under way (call again as they finish). */
  closeIdle(): void {
    for (const connection of this.#connections) connection.closeIfIdle();
  }

  /** Shutdown, after the grace period: cuts every connection. */
  destroyAll(): void {
    for (const connection of this.#connections) connection.destroy();
  }

  stop(): void {
    clearInterval(this.#sweep);
  }

  #checkTimeouts(): void {
    const nowMs = performance.now();
    for (const connection of this.#connections) connection.checkTimeouts(nowMs, this.#timeouts);
  }
}
