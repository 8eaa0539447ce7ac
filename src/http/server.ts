/**
 * The node's HTTP front: a node:http server routing shared/API.md's requests
 * to a Store.
 *
 * - The path is cut from req.url by hand and matched exactly; anything not in
 *   API.md's table is 400. Parameters are parsed in params.ts, errors mapped
 *   to statuses in errors.ts, each route lives in routes/.
 * - Hooks for the cluster: `internode` answers paths under /v0/internode, and
 *   `upgrade` takes HTTP Upgrade requests (the internode protocol). Without
 *   them those paths are 400 and upgrades are refused.
 * - The fast path (fast/) reads and answers plain /v0/entity requests off the
 *   socket itself and hands a connection to node:http at its first other
 *   request; `fastPath: false` (RINGKV_HTTP_FAST_PATH=off) leaves everything
 *   to node:http, for comparison.
 * - Limits on header size, header and request time, idle keep-alive and idle
 *   sockets (limits.ts) keep slow or stuck clients from holding resources,
 *   on both paths.
 * - /v0/health answers probes; whether the node is ready is the caller's
 *   (`readiness`). /metrics is written by the caller too (`metrics`); every
 *   answered request is counted and timed for it (request-metrics.ts).
 * - A request with two Host headers is 400 (RFC 9112 requires it; node:http
 *   keeps the first and drops the rest silently), and so is an HTTP/1.1 one
 *   with none, with a reason (node:http's own 400 for it has no body); one
 *   whose Transfer-Encoding is other than chunked alone is 400 too (llhttp
 *   would pass on a `gzip, chunked` body still gzipped), and one of another
 *   HTTP version than 1.0 or 1.1 (which llhttp takes) is 400. An
 *   Expect other than 100-continue is 417 with a reason too. A request with
 *   100-continue that would be refused whatever its body gets its answer
 *   before any 100, so that the client does not upload the value.
 * - A client that half-closes after its requests gets every answer, the
 *   last with `connection: close` (node:http's default would end the socket
 *   at once and drop the answers still due), as on the fast path.
 * - A request node:http's parser refuses (a malformed head, an unknown
 *   method, a head over the limit) gets its status with a one-line reason
 *   and the connection closed; node:http's own answers have no body. A head
 *   cut off inside its request line is 414 (an over-long key, as API.md
 *   says), one cut off later 431. CONNECT is 400, not a silent close.
 * - Requests pipelined on one connection are handled one at a time, in
 *   order, as the fast path does: node:http emits each as soon as its head
 *   is parsed, and a DELETE right behind a PUT would otherwise be stored
 *   first (a PUT is stored once its body has arrived), losing the delete.
 *   Those behind an answer that closed the connection are not acted on.
 * - Shutdown has three steps. beginLeaving() makes new client requests 503
 *   (their connections close), while health, status and the internode paths
 *   and upgrades are still served on open connections, so that clients and
 *   peers move away while the node hands over what it must; stopAccepting(),
 *   called with it, refuses new connections. close() then lets in-flight
 *   requests and range streams finish for a grace period, closes idle
 *   connections once the node has been leaving limits.shutdownIdleCloseMs,
 *   and cuts what is left.
 *
 *   const server = new HttpServer({ store, nodeUrl, cluster, keyBytesMax, valueBytesMax, log });
 *   await server.listen(8080, '127.0.0.1');
 *   ...
 *   server.beginLeaving();
 *   await server.close(5000);
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import net, { type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { Duplex } from 'node:stream';
import type { Store } from '../cluster/store.js';
import { limits } from '../config/limits.js';
import { errorMessage, RingkvError } from '../util/errors.js';
import { FastPath } from './fast/fast-path.js';
import { pathOf } from './params.js';
import { RequestMetrics, RequestOp, requestOp, type SlowRequestReport } from './request-metrics.js';
import {
  NodeReply,
  RequestCounters,
  type RouteContext,
  sendError,
  sendLeaving,
  sendText,
} from './routes/context.js';
import { handleDashboard, isDashboardPath } from './routes/dashboard.js';
import { handleEntities } from './routes/entities.js';
import { handleEntity, putRefusal } from './routes/entity.js';
import { handleHealth, type Readiness } from './routes/health.js';
import { handleMetrics } from './routes/metrics.js';
import { handleSnapshot, SNAPSHOT_PATH } from './routes/snapshot.js';
import { handleStatus } from './routes/status.js';

const KiB = 1024;
const INTERNODE_PREFIX = '/v0/internode';

/**
 * Takes an Upgrade request and answers it on `socket`; returns the status it
 * answered (101 once switched), for the request counts (anything else: not counted).
 */
export type UpgradeHandler = (req: IncomingMessage, socket: Duplex, head: Buffer) => unknown;
export type RequestHandler = (req: IncomingMessage, res: ServerResponse) => void;

export interface HttpServerOptions {
  readonly store: Store;
  /** This node's normalized URL, for /v0/status. */
  readonly nodeUrl: string;
  readonly cluster: readonly string[];
  readonly keyBytesMax: number;
  readonly valueBytesMax: number;
  /** Where unexpected errors are reported, one line each. */
  readonly log: (line: string) => void;
  /** Takes HTTP Upgrade requests; without it they are refused with 400. */
  readonly upgrade?: UpgradeHandler | undefined;
  /** Answers requests whose path starts with /v0/internode; without it they are 400. */
  readonly internode?: RequestHandler | undefined;
  /** The node's wall clock, which TTLs expire by (default Date.now; the node passes its clock's). */
  readonly wallMs?: (() => number) | undefined;
  /** Whether plain entity requests take the fast path (default true). */
  readonly fastPath?: boolean | undefined;
  /** Whether the node is ready for client requests, for /v0/health?ready=1 (default: always ready). */
  readonly readiness?: (() => Readiness) | undefined;
  /** Writes GET /metrics (Prometheus text); without it /metrics is 400 like any unknown path. */
  readonly metrics?: (() => Promise<string>) | undefined;
  /** Writes a snapshot of the node's data (POST /v0/admin/snapshot); without it that path is 400. */
  readonly snapshot?: ((dir: string) => Promise<unknown>) | undefined;
  /** Client requests (get, put, delete) slower than `slowMs` are told to `onSlow` (the node logs them). */
  readonly slowRequests?: { readonly slowMs: number; readonly onSlow: SlowRequestReport } | undefined;
  /** Cluster ranges under way at once; more are answered 503 (default limits.clusterScansMax; tests set fewer). */
  readonly clusterScansMax?: number | undefined;
  /** A connection that moves no bytes this long is closed (default limits.httpSocketIdleTimeoutMs; tests set less). */
  readonly socketIdleTimeoutMs?: number | undefined;
}

/** The fast path's setting from the environment: on unless RINGKV_HTTP_FAST_PATH=off. */
export function fastPathFromEnv(env: NodeJS.ProcessEnv = process.env): boolean {
  return env.RINGKV_HTTP_FAST_PATH !== 'off';
}

export class HttpServer {
  readonly #server: Server;
  readonly #ctx: RouteContext;
  readonly #internode: RequestHandler | undefined;
  readonly #readiness: () => Readiness;
  readonly #metrics: (() => Promise<string>) | undefined;
  readonly #snapshot: ((dir: string) => Promise<unknown>) | undefined;
  readonly #fastPath: FastPath | undefined;
  /** Range streams under way: close() waits for them so that no cursor outlives the store. */
  readonly #streams = new Set<Promise<void>>();
  /** Set by stopAccepting(): resolves on the server's 'close' (listener closed, no connection left). */
  #serverClosed: Promise<void> | undefined;
  /** When beginLeaving() was called (performance.now()): close() holds idle connections until shutdownIdleCloseMs after. */
  #leavingSinceMs: number | undefined;

  constructor(options: HttpServerOptions) {
    this.#ctx = {
      store: options.store,
      // Read per request: the cluster's size changes as nodes join and leave.
      paramLimits: {
        keyBytesMax: options.keyBytesMax,
        get clusterSize() {
          return options.store.clusterSize;
        },
      },
      valueBytesMax: options.valueBytesMax,
      counters: new RequestCounters(),
      requestMetrics: new RequestMetrics(options.slowRequests),
      nodeUrl: options.nodeUrl,
      cluster: options.cluster,
      startedAtMs: Date.now(),
      wallMs: options.wallMs ?? Date.now,
      log: options.log,
      leaving: false,
      closing: false,
      clusterScansMax: options.clusterScansMax ?? limits.clusterScansMax,
    };
    const socketIdleTimeoutMs = options.socketIdleTimeoutMs ?? limits.httpSocketIdleTimeoutMs;
    this.#internode = options.internode;
    this.#readiness = options.readiness ?? (() => 'ready');
    this.#metrics = options.metrics;
    this.#snapshot = options.snapshot;
    // Two keys of up to 9 URL bytes per key byte (%XX of UTF-8) plus ordinary headers.
    const headBytesMax = Math.max(limits.httpHeaderBytesMin, 18 * options.keyBytesMax + 8 * KiB);
    this.#server = createServer(
      {
        maxHeaderSize: headBytesMax,
        headersTimeout: limits.httpHeadersTimeoutMs,
        requestTimeout: limits.httpRequestTimeoutMs,
        keepAliveTimeout: limits.httpKeepAliveTimeoutMs,
        connectionsCheckingInterval: limits.httpTimeoutCheckMs,
        noDelay: true,
        // Checked in #handle, to answer with a reason (node:http's 400 has no body).
        requireHostHeader: false,
      },
      (req, res) => this.#onRequest(req, res, (q, r) => this.#handle(q, r)),
    );
    this.#server.setTimeout(socketIdleTimeoutMs);
    // node:http keeps only the first 2,000 headers in rawHeaders by default, and the Host and
    // Transfer-Encoding checks read rawHeaders: a second Host or a `gzip, chunked` after 2,000
    // filler lines would pass them. The head's size is bounded by maxHeaderSize already.
    this.#server.maxHeadersCount = 0;
    // Requests sent before the client ended its side are answered, as the fast path does: by
    // default node:http ends the socket at the client's end, and answers still due are lost.
    (this.#server as Server & { httpAllowHalfOpen: boolean }).httpAllowHalfOpen = true;
    this.#server.on('clientError', (err: NodeJS.ErrnoException & { rawPacket?: Buffer }, socket: Duplex) =>
      this.#countRefused(answerClientError(err, socket, headBytesMax, options.keyBytesMax)),
    );
    // Without this listener node:http sends 100 (Continue) at once, and the client uploads a value
    // that is then refused (too large, bad parameters, a node leaving).
    this.#server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) =>
      this.#onRequest(req, res, (q, r) => this.#continueOrRefuse(q, r)),
    );
    // Without this listener node:http answers 417 with no body.
    this.#server.on('checkExpectation', (req: IncomingMessage, res: ServerResponse) =>
      this.#onRequest(req, res, (q, r) => this.#refuseExpectation(q, r)),
    );
    this.#server.on('connect', (_req: IncomingMessage, socket: Duplex) => {
      keepSocketGuards(socket);
      this.#countRefused(answerRaw(socket, 400, 'CONNECT is not supported'));
    });
    const upgrade = options.upgrade;
    // Always listened for: without a listener Node 20 would route an upgrade as a plain request.
    // Upgrades are internode handshakes: still taken while leaving, refused once closing.
    this.#server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      keepSocketGuards(socket);
      if (hasDuplicateHost(req.rawHeaders)) this.#countRefused(answerRaw(socket, 400, DUPLICATE_HOST));
      else if (upgrade === undefined) this.#countRefused(answerRaw(socket, 400, 'Upgrade not supported'));
      // A handshake on a connection still open while closing: the peer retries elsewhere or later.
      else if (this.#ctx.closing) this.#countRefused(answerRaw(socket, 503, 'Node is shutting down'));
      else this.#countUpgrade(upgrade(req, socket, head));
    });
    this.#fastPath =
      options.fastPath === false
        ? undefined
        : FastPath.install(this.#server, this.#ctx, {
            headBytesMax,
            timeouts: {
              keepAliveMs: limits.httpKeepAliveTimeoutMs,
              headersMs: limits.httpHeadersTimeoutMs,
              requestMs: limits.httpRequestTimeoutMs,
              socketIdleMs: socketIdleTimeoutMs,
            },
          });
  }

  /** Whether the fast path is in front of node:http. */
  get fastPath(): boolean {
    return this.#fastPath !== undefined;
  }

  /** The underlying node:http server (tests, and the cluster's upgrade plumbing). */
  get server(): Server {
    return this.#server;
  }

  get counters(): RequestCounters {
    return this.#ctx.counters;
  }

  get requestMetrics(): RequestMetrics {
    return this.#ctx.requestMetrics;
  }

  /** Starts listening; rejects with a one-line RINGKV_IO error (port in use, host not local, ...). */
  listen(port: number, host: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException) => {
        reject(listenError(host, port, err));
      };
      this.#server.once('error', onError);
      this.#server.listen({ port, host }, () => {
        this.#server.off('error', onError);
        this.#server.on('error', (err) => this.#ctx.log(`HTTP server error: ${errorMessage(err)}`));
        resolve();
      });
    });
  }

  /** The port actually bound (useful with port 0). */
  port(): number {
    const address = this.#server.address();
    return address !== null && typeof address === 'object' ? address.port : 0;
  }

  /** Whether beginLeaving() was called. */
  get leaving(): boolean {
    return this.#ctx.leaving;
  }

  /**
   * The node starts leaving: from now on every new client request is
   * answered 503 `Node is shutting down` and its connection closed, except
   * /v0/health (whose `ready=1` then answers 503 `leaving`), /v0/status and
   * the internode paths and upgrades. Requests already in flight finish as
   * usual. close() comes after.
   */
  beginLeaving(): void {
    this.#ctx.leaving = true;
    this.#leavingSinceMs ??= performance.now();
  }

  /**
   * Stops accepting connections and keeps the open ones (net.Server's close:
   * node:http's own would also close the idle ones). While leaving, a new
   * connection would only be answered 503, and one accepted just before
   * close() could be closed as idle while its first request is on the way;
   * refused, the client goes elsewhere at once. Called as leaving begins:
   * closing the listener resets the connections the kernel had completed and
   * the server not yet accepted, and clients answered 503 reconnect.
   */
  stopAccepting(): void {
    if (this.#serverClosed !== undefined) return;
    this.#serverClosed = new Promise((resolve) => this.#server.once('close', () => resolve()));
    net.Server.prototype.close.call(this.#server);
  }

  /**
   * Stops accepting connections, closes idle keep-alive ones, and lets
   * requests in flight finish (their answers say `connection: close`). Idle
   * connections are closed once the node has been leaving
   * limits.shutdownIdleCloseMs (at once without beginLeaving()): until then
   * a request on one is answered 503 and the connection closes after it,
   * where closing it idle could reset a request on its way. After `graceMs`,
   * the remaining connections are cut. Resolves once every range stream has
   * closed its cursor.
   */
  async close(graceMs: number): Promise<void> {
    if (this.#ctx.closing) return;
    this.#ctx.closing = true;
    // net.Server's close, not node:http's, which would close the idle connections at once.
    this.stopAccepting();
    // 'close' comes once the listener is closed and the last connection has ended.
    const closed = this.#serverClosed!;
    const idleCloseAtMs =
      this.#leavingSinceMs === undefined ? 0 : this.#leavingSinceMs + limits.shutdownIdleCloseMs;
    const closeIdle = () => {
      if (performance.now() < idleCloseAtMs) return;
      this.#server.closeIdleConnections();
      this.#fastPath?.closeIdle();
    };
    closeIdle();
    // A connection becomes idle when its last answer is sent; sweep until none is left.
    const sweep = setInterval(closeIdle, 50);
    let timer: NodeJS.Timeout | undefined;
    const grace = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, graceMs);
    });
    await Promise.race([closed, grace]);
    clearInterval(sweep);
    clearTimeout(timer);
    this.#server.closeAllConnections();
    this.#fastPath?.destroyAll();
    this.#fastPath?.stop();
    await closed;
    await Promise.all(this.#streams);
  }

  /**
   * Counts a request refused before any route (the parser's refusals, CONNECT), answered straight
   * on the socket: as `other`, with no latency to measure. `status` undefined: nothing was answered.
   */
  #countRefused(status: number | undefined): void {
    if (status === undefined) return;
    this.#ctx.counters.countResponse(status);
    this.#ctx.requestMetrics.observe(RequestOp.Other, status, 0);
  }

  /** Counts the hook's answer to an Upgrade: a handshake taken is `internode`, one refused is refused before any route. */
  #countUpgrade(status: unknown): void {
    if (typeof status !== 'number') return;
    if (status !== 101) {
      this.#countRefused(status);
      return;
    }
    this.#ctx.counters.internode++;
    this.#ctx.counters.countResponse(status);
    this.#ctx.requestMetrics.observe(RequestOp.Internode, status, 0);
  }

  /** Handles `req` once every earlier request on its connection has been answered (module comment). */
  #onRequest(req: IncomingMessage, res: ServerResponse, handle: RequestHandler): void {
    const socket = req.socket as Socket & { [IN_ORDER]?: _InOrder };
    let queue = socket[IN_ORDER];
    if (queue === undefined) {
      const created: _InOrder = { busy: false, waiting: [], last: undefined };
      socket.once('end', () => closeAfterLast(created));
      socket[IN_ORDER] = created;
      queue = created;
    }
    const line = queue;
    line.last = res;
    const run = (): void => {
      line.busy = true;
      // 'close' follows the answer's last byte, or the connection's end: either way the next may go.
      res.once('close', () => {
        // An answer that closed the connection (node:http has ended the socket) was the last: those
        // pipelined behind it would never be answered, so they are not acted on (line stays busy).
        if (socket.writableEnded) {
          line.waiting.length = 0;
          return;
        }
        const next = line.waiting.shift();
        if (next !== undefined) next();
        else line.busy = false;
      });
      handle(req, res);
    };
    if (line.busy) line.waiting.push(run);
    else run();
  }

  #handle(req: IncomingMessage, res: ServerResponse): void {
    const ctx = this.#ctx;
    const url = req.url!;
    const path = pathOf(url);
    // Counted once answered (a connection lost before that is not): the fast path counts its own.
    const op = requestOp(path, req.method);
    const startMs = performance.now();
    res.once('finish', () =>
      ctx.requestMetrics.observe(op, res.statusCode, (performance.now() - startMs) / 1000),
    );
    try {
      const refuse = this.#refusalOfAny(req, path);
      if (refuse !== undefined) {
        answerAfterBody(req, () => refuse(closingReply(res)));
      } else if (path === '/v0/entity') {
        handleEntity(ctx, req, res);
      } else if (path === '/v0/entities' && req.method === 'GET') {
        this.#track(handleEntities(ctx, req, res));
      } else if (path === '/v0/status' && req.method === 'GET') {
        handleStatus(ctx, res, this.#readiness());
      } else if (path === '/v0/health') {
        handleHealth(ctx, req, res, this.#readiness);
      } else if (path === '/metrics' && this.#metrics !== undefined) {
        handleMetrics(ctx, req, res, this.#metrics);
      } else if (path === SNAPSHOT_PATH && this.#snapshot !== undefined) {
        handleSnapshot(ctx, req, res, this.#snapshot);
      } else if (isDashboardPath(path)) {
        handleDashboard(ctx, req, res, path);
      } else if (this.#internode !== undefined && path.startsWith(INTERNODE_PREFIX)) {
        ctx.counters.internode++;
        this.#internode(req, res);
      } else {
        ctx.counters.unknown++;
        sendText(
          ctx,
          new NodeReply(res),
          400,
          `Unknown request: ${req.method} ${path.length > 64 ? 'path' : path}`,
        );
      }
    } catch (err) {
      sendError(ctx, new NodeReply(res), err);
    }
  }

  /**
   * A request with `Expect: 100-continue`: one that would be refused whatever
   * its body is answered at once, with no 100 and `connection: close` (the
   * client may then not send the body, which would otherwise be read as the
   * next request); any other gets its 100 and is handled as usual.
   */
  #continueOrRefuse(req: IncomingMessage, res: ServerResponse): void {
    const refuse = this.#refusalBeforeBody(req);
    if (refuse === undefined) {
      res.writeContinue();
      this.#handle(req, res);
      return;
    }
    const op = requestOp(pathOf(req.url!), req.method);
    res.once('finish', () => this.#ctx.requestMetrics.observe(op, res.statusCode, 0));
    refuse(closingReply(res));
  }

  /** The answer to a request refused before any route (its Host headers, a node leaving), if it is. */
  #refusalOfAny(req: IncomingMessage, path: string): ((reply: NodeReply) => void) | undefined {
    const ctx = this.#ctx;
    // llhttp takes HTTP/2.0 and a request line with no version (HTTP/0.9) as if they were HTTP/1.x.
    if (req.httpVersionMajor !== 1) return (reply) => sendText(ctx, reply, 400, UNSUPPORTED_VERSION);
    const hostProblem = hostHeaderProblem(req);
    if (hostProblem !== undefined) return (reply) => sendText(ctx, reply, 400, hostProblem);
    if (hasOtherTransferCoding(req.rawHeaders)) return (reply) => sendText(ctx, reply, 400, OTHER_CODING);
    if (ctx.leaving && !servedWhileLeaving(path)) return (reply) => sendLeaving(ctx, reply);
    return undefined;
  }

  /** The answer to a request that is refused whatever its body, if it is: #refusalOfAny's, or a PUT's. */
  #refusalBeforeBody(req: IncomingMessage): ((reply: NodeReply) => void) | undefined {
    const ctx = this.#ctx;
    const path = pathOf(req.url!);
    const refuse = this.#refusalOfAny(req, path);
    if (refuse !== undefined) return refuse;
    if (path !== '/v0/entity' || req.method !== 'PUT') return undefined;
    const err = putRefusal(ctx, req);
    if (err === undefined) return undefined;
    return (reply) => {
      ctx.counters.put++;
      sendError(ctx, reply, err);
    };
  }

  /**
   * A request whose Expect is not 100-continue (node:http's 'checkExpectation'): 417 with a
   * reason; node:http reads and drops its body, and the connection carries on.
   */
  #refuseExpectation(req: IncomingMessage, res: ServerResponse): void {
    const ctx = this.#ctx;
    const op = requestOp(pathOf(req.url!), req.method);
    res.once('finish', () => ctx.requestMetrics.observe(op, res.statusCode, 0));
    sendText(ctx, new NodeReply(res), 417, 'Unsupported Expect header: only 100-continue');
  }

  #track(stream: Promise<void>): void {
    this.#streams.add(stream);
    // handleEntities never rejects; finally() only forgets it.
    void stream.finally(() => this.#streams.delete(stream));
  }
}

const DUPLICATE_HOST = 'Duplicate Host header';
const MISSING_HOST = 'Missing Host header';
/** As llhttp's own refusal of HTTP/1.2 (`Invalid HTTP version`): a 4xx, the request is the client's fault. */
const UNSUPPORTED_VERSION = 'Malformed request: unsupported HTTP version, use HTTP/1.1';
const OTHER_CODING = 'Unsupported Transfer-Encoding: only chunked is taken, alone';

/** Per connection: whether a request is being handled, and those waiting behind it. */
const IN_ORDER = Symbol('ringkv.inOrder');
interface _InOrder {
  busy: boolean;
  readonly waiting: (() => void)[];
  /** The answer to the newest request on the connection. */
  last: ServerResponse | undefined;
}

/**
 * The client ended its side: its last request's answer says `connection: close`
 * (node:http ends the socket after it), as the fast path's does.
 */
function closeAfterLast(line: _InOrder): void {
  const res = line.last;
  if (res !== undefined && !res.headersSent && !res.writableEnded) res.setHeader('connection', 'close');
}

/** Paths still served while the node is leaving: the probes, the scrape, and what its peers need of it. */
function servedWhileLeaving(path: string): boolean {
  return (
    path === '/v0/health' || path === '/v0/status' || path === '/metrics' || path.startsWith(INTERNODE_PREFIX)
  );
}

/** Whether the request has more than one Host header line. */
function hasDuplicateHost(raw: readonly string[]): boolean {
  return hostCount(raw) > 1;
}

function hostCount(raw: readonly string[]): number {
  let hosts = 0;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.length === 4 && name.toLowerCase() === 'host') hosts++;
  }
  return hosts;
}

/** Why the request's Host headers are refused (RFC 9112: exactly one in HTTP/1.1, at most one before), if they are. */
function hostHeaderProblem(req: IncomingMessage): string | undefined {
  const hosts = hostCount(req.rawHeaders);
  if (hosts > 1) return DUPLICATE_HOST;
  if (hosts === 0 && req.httpVersionMajor === 1 && req.httpVersionMinor === 1) return MISSING_HOST;
  return undefined;
}

/**
 * Whether the request's Transfer-Encoding is anything but `chunked` alone. llhttp refuses a
 * coding list that does not end in chunked, but takes `gzip, chunked` and hands over the body
 * still gzipped, which would be stored as the value: RFC 9112 has a server refuse a coding it
 * does not apply. The body is still framed by its chunks, so it can be read and dropped.
 */
function hasOtherTransferCoding(raw: readonly string[]): boolean {
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.length === 17 && name.toLowerCase() === 'transfer-encoding') {
      if (raw[i + 1]!.trim().toLowerCase() !== 'chunked') return true;
    }
  }
  return false;
}

/** A NodeReply whose answer closes the connection whatever the route asks. */
function closingReply(res: ServerResponse): NodeReply {
  res.setHeader('connection', 'close');
  return new NodeReply(res);
}

/**
 * Calls `answer` once the request's body has been read and dropped, for an
 * answer that closes the connection: a socket closed with request bytes
 * still unread sends a reset, and a client that gets one may lose the
 * answer before reading it. A body past limits.httpDrainBytesMax cuts the
 * connection instead.
 */
function answerAfterBody(req: IncomingMessage, answer: () => void): void {
  let drained = 0;
  req.on('data', (chunk: Buffer) => {
    drained += chunk.length;
    if (drained > limits.httpDrainBytesMax) req.socket.destroy();
  });
  req.on('end', answer);
}

const STATUS_TEXT: Record<number, string> = {
  400: 'Bad Request',
  408: 'Request Timeout',
  413: 'Content Too Large',
  414: 'URI Too Long',
  431: 'Request Header Fields Too Large',
};

/**
 * node:http hands a socket to 'upgrade' and 'connect' listeners with its
 * 'timeout' and 'error' listeners taken off; this puts both back.
 *
 * The idle timer (socketIdleTimeoutMs) still runs, but fires to no effect. A
 * socket refused there is ended, and a client that never ends its side would
 * then hold it open, half-closed, for good: the idle bound comes back. An
 * upgrade hook that keeps its socket sets the socket's timeout itself (the
 * internode server turns it off and bounds the connection's silence on its
 * own).
 *
 * Without an 'error' listener, a socket error is an uncaught exception that
 * ends the process: a client that reset the connection after reading the
 * refusal (ECONNRESET on the read side, which stays open once the answer is
 * ended) took the node down, exit 1. A `ringkv cluster` stopped as a whole
 * did so to itself: a peer's handshake refused 503 by a leaving node, then
 * reset as the peer stopped too.
 */
function keepSocketGuards(socket: Duplex): void {
  socket.on('timeout', () => socket.destroy());
  socket.on('error', () => socket.destroy());
}

/** Writes a whole answer with a one-line text body straight to `socket`, then ends it; its status, if written. */
function answerRaw(socket: Duplex, status: number, body: string): number | undefined {
  if (socket.destroyed || !socket.writable) {
    socket.destroy();
    return undefined;
  }
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? 'Bad Request'}\r\nconnection: close\r\ncontent-type: text/plain\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
  return status;
}

/**
 * Whether a head over the bound is mostly its request line (a long target,
 * so 414), judging by the bytes the parser read last (`packet`, which may
 * start anywhere in the head) and where in them it stopped (`parsedBytes`).
 * The parser counts a target's bytes as it ends, at the space before the
 * version: stopped there, the target crossed the bound. A packet that starts
 * with the request line: that line is unfinished or at least half the bound.
 * One that starts inside a line and holds no line end: inside the target
 * unless it holds a space or tab (a target has none: a header's).
 */
function requestLineOverflowed(
  packet: Buffer | undefined,
  parsedBytes: number | undefined,
  headBytesMax: number,
): boolean {
  if (packet === undefined) return false;
  if (parsedBytes !== undefined && packet.toString('latin1', parsedBytes, parsedBytes + 6) === ' HTTP/') {
    return true;
  }
  const lineEnd = packet.indexOf('\r\n');
  if (/^[A-Z]+ \S/.test(packet.toString('latin1', 0, 16)))
    return lineEnd === -1 || lineEnd >= headBytesMax / 2;
  return lineEnd === -1 && !packet.includes(0x20) && !packet.includes(0x09);
}

/** node:http's 'clientError': the parser refused the request (module comment); the status answered, if any. */
function answerClientError(
  err: NodeJS.ErrnoException & { rawPacket?: Buffer; bytesParsed?: number; reason?: string },
  socket: Duplex,
  headBytesMax: number,
  keyBytesMax: number,
): number | undefined {
  switch (err.code) {
    case 'ECONNRESET':
    case 'EPIPE':
      socket.destroy();
      return undefined;
    case 'HPE_HEADER_OVERFLOW': {
      const inRequestLine = requestLineOverflowed(err.rawPacket, err.bytesParsed, headBytesMax);
      return answerRaw(
        socket,
        inRequestLine ? 414 : 431,
        inRequestLine
          ? `Request target too long: the head is over ${headBytesMax} bytes (a key is at most ${keyBytesMax} bytes)`
          : `Request head too large: over ${headBytesMax} bytes`,
      );
    }
    case 'HPE_CHUNK_EXTENSIONS_OVERFLOW':
      return answerRaw(socket, 413, 'Chunk extensions too large');
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return answerRaw(socket, 408, 'Request not received in time');
    case 'HPE_INVALID_METHOD':
      return answerRaw(socket, 400, 'Malformed request: unknown method');
    default:
      return answerRaw(socket, 400, `Malformed request: ${err.reason ?? err.message}`);
  }
}

/**
 * Rejects as listen() would (port in use, host not local, ...) by binding
 * the address and letting it go at once. A node checks this before it opens
 * its store: a start that cannot listen then writes nothing in its data
 * directory and logs no record before its one-line error. The port may
 * still be taken in between; listen() reports that the same way.
 */
export function checkListenable(port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', (err: NodeJS.ErrnoException) => reject(listenError(host, port, err)));
    probe.listen({ port, host }, () => probe.close(() => resolve()));
  });
}

function listenError(host: string, port: number, err: NodeJS.ErrnoException): RingkvError {
  const where = `${host}:${port}`;
  const reason =
    err.code === 'EADDRINUSE'
      ? 'the address is in use'
      : err.code === 'EADDRNOTAVAIL'
        ? 'the host is not an address of this machine'
        : err.code === 'EACCES'
          ? 'permission denied'
          : errorMessage(err);
  return new RingkvError('RINGKV_IO', `Cannot listen on ${where}: ${reason}`, { cause: err });
}
