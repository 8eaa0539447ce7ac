/**
 * The Transport over the multiplexed binary protocol (format.ts): one
 * persistent connection per peer, opened lazily by an HTTP Upgrade on the
 * peer's own port, carrying any number of requests at once, matched to their
 * answers by id.
 *
 * Per peer, a link moves through these states:
 *
 *   idle --request/connect()--> connecting --101--> open --socket error/close--> down
 *                                   |                 |                          |  ^
 *                                   +--refused/failed-|--------------------------+  |
 *                                                     +--peer sent LEAVING--> leaving
 *                                   down --attempt succeeds--> open                 |
 *                                   down --attempt fails----------------------------+
 *
 * - connecting (first use, or connect() at start): requests wait for the
 *   connection (their frames are queued) or for their deadline.
 * - down: a timer makes one connection attempt per probe interval. A request
 *   that finds the link down waits for the attempt under way; with none under
 *   way, it starts one if the last failure is older than the quarantine
 *   (limits.internodeQuarantineMs) and fails at once with RINGKV_UNAVAILABLE
 *   otherwise. A dead peer thus costs at most one attempt per quarantine, a
 *   refused connect fails its waiting requests at once, and a peer that is
 *   back is used by the first request that needs it.
 * - peerSeen(): the peer's own handshake reached this node, so it is up: a
 *   down link attempts a connection at once.
 * - leaving: the peer announced its shutdown (LEAVING). New requests fail at
 *   once, those in flight are still answered; the link goes down when the
 *   peer closes the connection, and requests do not try it again until a
 *   probe or its own handshake (peerSeen) finds it back.
 * - The rules for a down peer (quarantine, hung, leaving, probes) are
 *   PeerHealth's, shared with the HTTP transport.
 * - Entering down rejects every request in flight on the link.
 * - Every open link sends a PING each heartbeat interval: the PONG carries
 *   the peer's wall clock, from which the link estimates the clock skew
 *   (peer clock minus this node's, at the round trip's midpoint), and the
 *   ping counts as a request waiting, so a hung peer is found even on a link
 *   with no other traffic.
 *
 * Frames queued in one event-loop turn, for any number of requests, leave in
 * one socket write (FrameEncoder, flushed from setImmediate). Deadlines share
 * one coarse timer (DeadlineTimer); the same timer closes a connection that
 * has had requests waiting and received nothing for `unresponsiveMs` (a
 * stopped process keeps its sockets open), so that peer too fails fast.
 * Anti-entropy and stream requests do not count as waiting: answering one
 * takes a paced scan of the peer's store, seconds long, with nothing else to
 * send meanwhile on a quiet link. The silence is measured over the time this
 * node ran (DeadlineTimer.runningMs()): a pause of its own event loop (a GC,
 * a long synchronous task) is not the peer's silence, and the tick that
 * follows one reads the answers that arrived meanwhile before it judges.
 *
 * forget() drops a peer (one that left the cluster): its link closes, its
 * probes stop, and a later request starts afresh as for a peer never seen.
 */
import http from 'node:http';
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { limits } from '../../config/limits.js';
import type { Entry } from '../../storage/index.js';
import { encodedEntryBytes } from '../../storage/index.js';
import { DeadlineTimer, Expirable } from '../../util/deadlines.js';
import { errorMessage, isRingkvError, RingkvError } from '../../util/errors.js';
import { makeProof } from './auth.js';
import {
  type MembershipLinks,
  newTransportCounters,
  type PeerLinks,
  type PeerStatus,
  type ScanPage,
  type Transport,
  type TransportCounters,
  type TransportStats,
} from './contract.js';
import {
  answerType,
  decodeMessage,
  FRAME_HEADER_BYTES,
  isSlowRequest,
  type Message,
  MessageType,
  NODE_HEADER,
  PROOF_HEADER,
  PROTOCOL,
  UPGRADE_PATH,
} from './format.js';
import { FrameDecoder } from './frame-decoder.js';
import { FrameEncoder } from './frame-encoder.js';
import { PeerHealth } from './peer-health.js';
import { PendingById } from './pending-by-id.js';

export interface FrameTransportOptions {
  /** The cluster secret: every handshake carries a proof of it (auth.ts). */
  readonly secret?: string | undefined;
  /** This node's URL: sent in handshakes (so a peer knows this node is up) and in LEAVING. */
  readonly selfUrl?: string | undefined;
  /** This node's wall clock (ms), for the clock skew measured against each peer. */
  readonly wallMs?: () => number;
  /** Called each time a link to a peer opens (at start, and whenever a peer is back). */
  readonly onPeerUp?: (peer: string) => void;
  /** Called when a peer that was up (or being connected to) goes down: once per change, not per failed probe. */
  readonly onPeerDown?: (peer: string, cause: RingkvError) => void;
  /** Called with each clock sample (skew: peer minus this node, ms; rtt: the ping's round trip, ms). */
  readonly onClockSample?: (peer: string, skewMs: number, rttMs: number) => void;
  readonly probeIntervalMs?: number;
  readonly quarantineMs?: number;
  readonly heartbeatMs?: number;
  readonly connectTimeoutMs?: number;
  readonly unresponsiveMs?: number;
  readonly frameBytesMax?: number;
  readonly timerResolutionMs?: number;
  readonly inFlightMax?: number;
  readonly queuedBytesMax?: number;
}

interface _Settings {
  readonly secret: string | undefined;
  readonly selfUrl: string | undefined;
  readonly wallMs: () => number;
  readonly onPeerUp: ((peer: string) => void) | undefined;
  readonly onPeerDown: ((peer: string, cause: RingkvError) => void) | undefined;
  readonly onClockSample: ((peer: string, skewMs: number, rttMs: number) => void) | undefined;
  readonly probeIntervalMs: number;
  readonly quarantineMs: number;
  readonly connectTimeoutMs: number;
  readonly unresponsiveMs: number;
  readonly frameBytesMax: number;
  readonly inFlightMax: number;
  readonly queuedBytesMax: number;
}

type _Counters = TransportCounters;

/**
 * Example:
 *   const transport = new FrameTransport({ secret });
 *   await transport.write('http://127.0.0.1:8081', entry, Date.now() + 1000);
 */
export class FrameTransport implements Transport, PeerLinks, MembershipLinks {
  readonly #settings: _Settings;
  readonly #links = new Map<string, _PeerLink>();
  readonly #deadlines: DeadlineTimer;
  readonly #counters: _Counters = newTransportCounters();
  readonly #heartbeat: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(options: FrameTransportOptions = {}) {
    this.#settings = {
      secret: options.secret,
      selfUrl: options.selfUrl,
      wallMs: options.wallMs ?? Date.now,
      onPeerUp: options.onPeerUp,
      onPeerDown: options.onPeerDown,
      onClockSample: options.onClockSample,
      probeIntervalMs: options.probeIntervalMs ?? limits.internodeProbeIntervalMs,
      quarantineMs: options.quarantineMs ?? limits.internodeQuarantineMs,
      connectTimeoutMs: options.connectTimeoutMs ?? limits.internodeConnectTimeoutMs,
      unresponsiveMs: options.unresponsiveMs ?? limits.internodeUnresponsiveMs,
      frameBytesMax: options.frameBytesMax ?? limits.internodeFrameBytesMax,
      inFlightMax: options.inFlightMax ?? limits.internodeInFlightMax,
      queuedBytesMax: options.queuedBytesMax ?? limits.internodeQueuedBytesMax,
    };
    this.#deadlines = new DeadlineTimer({
      resolutionMs: options.timerResolutionMs ?? limits.internodeTimerResolutionMs,
      onTick: () => {
        const runningMs = this.#deadlines.runningMs();
        for (const link of this.#links.values()) link.checkResponsive(runningMs);
      },
    });
    const heartbeatMs = options.heartbeatMs ?? limits.internodeHeartbeatMs;
    if (heartbeatMs > 0) {
      this.#heartbeat = setInterval(() => {
        for (const link of this.#links.values()) link.heartbeat(heartbeatMs);
      }, heartbeatMs);
      this.#heartbeat.unref();
    }
  }

  write(peer: string, entry: Entry, deadlineMs: number): Promise<bigint | undefined> {
    if (FRAME_HEADER_BYTES + encodedEntryBytes(entry) > this.#settings.frameBytesMax) {
      return Promise.reject(
        new RingkvError(
          'RINGKV_VALUE_TOO_LARGE',
          `Entry too large for an internode frame: key ${entry.key.length} bytes, value ${entry.value.length} bytes`,
        ),
      );
    }
    return this.#request(peer, { type: MessageType.Write, entry }, deadlineMs);
  }

  read(peer: string, key: Buffer, deadlineMs: number): Promise<Entry | undefined> {
    return this.#request(peer, { type: MessageType.Read, key }, deadlineMs);
  }

  scan(
    peer: string,
    start: Buffer,
    end: Buffer | undefined,
    limit: number,
    deadlineMs: number,
  ): Promise<ScanPage> {
    return this.#request(peer, { type: MessageType.Scan, start, end, limit }, deadlineMs);
  }

  antiEntropy(peer: string, body: Buffer, deadlineMs: number): Promise<Buffer> {
    if (FRAME_HEADER_BYTES + body.length > this.#settings.frameBytesMax) {
      return Promise.reject(
        new RingkvError(
          'RINGKV_BAD_REQUEST',
          `Anti-entropy request too large for a frame: ${body.length} bytes`,
        ),
      );
    }
    return this.#request(peer, { type: MessageType.AntiEntropy, body }, deadlineMs);
  }

  membership(peer: string, body: Buffer, deadlineMs: number): Promise<Buffer> {
    return this.#opaque(peer, MessageType.Membership, body, deadlineMs);
  }

  stream(peer: string, body: Buffer, deadlineMs: number): Promise<Buffer> {
    return this.#opaque(peer, MessageType.Stream, body, deadlineMs);
  }

  move(peer: string, body: Buffer, deadlineMs: number): Promise<Buffer> {
    return this.#opaque(peer, MessageType.Move, body, deadlineMs);
  }

  /** A round trip that touches no data: health checks and tests. */
  ping(peer: string, deadlineMs: number): Promise<void> {
    return this.#request(peer, { type: MessageType.Ping }, deadlineMs);
  }

  isUp(peer: string): boolean {
    const state = this.#links.get(peer)?.state;
    return state !== 'down' && state !== 'leaving';
  }

  connect(peers: readonly string[]): Promise<void> {
    if (this.#closed) return Promise.resolve();
    return Promise.all(peers.map((peer) => this.#link(peer).connectNow())).then(() => undefined);
  }

  peerSeen(peer: string): void {
    if (!this.#closed) this.#links.get(peer)?.seen();
  }

  peerLeaving(peer: string): void {
    if (!this.#closed) this.#links.get(peer)?.leaving();
  }

  async announceLeaving(deadlineMs: number): Promise<void> {
    const self = this.#settings.selfUrl;
    if (this.#closed || self === undefined) return;
    const told = [...this.#links.values()]
      .filter((link) => link.state === 'open')
      .map((link) =>
        link.request({ type: MessageType.Leaving, node: self }, deadlineMs).catch(() => undefined),
      );
    await Promise.all(told);
  }

  forget(peer: string): void {
    const link = this.#links.get(peer);
    if (link === undefined) return;
    this.#links.delete(peer);
    link.close(new RingkvError('RINGKV_UNAVAILABLE', `Peer ${peer} was forgotten (it left the cluster)`));
  }

  peerStatus(peer: string): PeerStatus {
    const link = this.#links.get(peer);
    if (link === undefined) return { state: 'up', failures: 0 };
    return link.status();
  }

  stats(): TransportStats {
    return { ...this.#counters };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#heartbeat !== undefined) clearInterval(this.#heartbeat);
    for (const link of this.#links.values()) link.close();
    this.#links.clear();
    this.#deadlines.close();
  }

  #link(peer: string): _PeerLink {
    let link = this.#links.get(peer);
    if (link === undefined) {
      link = new _PeerLink(peer, this.#settings, this.#deadlines, this.#counters);
      this.#links.set(peer, link);
    }
    return link;
  }

  #opaque(
    peer: string,
    type: typeof MessageType.Membership | typeof MessageType.Stream | typeof MessageType.Move,
    body: Buffer,
    deadlineMs: number,
  ): Promise<Buffer> {
    if (FRAME_HEADER_BYTES + body.length > this.#settings.frameBytesMax) {
      return Promise.reject(
        new RingkvError(
          'RINGKV_BAD_REQUEST',
          `Request of type ${type} too large for a frame: ${body.length} bytes`,
        ),
      );
    }
    return this.#request(peer, { type, body }, deadlineMs);
  }

  #request<T>(peer: string, message: Message, deadlineMs: number): Promise<T> {
    if (this.#closed) return Promise.reject(new RingkvError('RINGKV_CLOSED', 'Transport is closed'));
    return this.#link(peer).request(message, deadlineMs) as Promise<T>;
  }
}

type _LinkState = 'idle' | 'connecting' | 'open' | 'leaving' | 'down' | 'closed';

/** One request waiting for its answer. */
class _Pending extends Expirable {
  readonly id: number;
  readonly requestType: number;
  readonly deadlineMs: number;
  readonly link: _PeerLink;
  readonly resolve: (value: unknown) => void;
  readonly reject: (err: Error) => void;

  constructor(fields: Pick<_Pending, 'id' | 'requestType' | 'deadlineMs' | 'link' | 'resolve' | 'reject'>) {
    super();
    this.id = fields.id;
    this.requestType = fields.requestType;
    this.deadlineMs = fields.deadlineMs;
    this.link = fields.link;
    this.resolve = fields.resolve;
    this.reject = fields.reject;
  }

  expire(): void {
    this.link.expire(this);
  }
}

/** The connection to one peer, its queue of outgoing frames, and its requests in flight. */
class _PeerLink {
  readonly peer: string;
  state: _LinkState = 'idle';
  readonly #settings: _Settings;
  readonly #deadlines: DeadlineTimer;
  readonly #counters: _Counters;
  readonly #host: string;
  readonly #port: number;
  readonly #configError: RingkvError | undefined;
  readonly #encoder = new FrameEncoder();
  readonly #pending = new PendingById<_Pending>();
  #socket: Socket | undefined;
  /** The handshake in progress, if any. */
  #attempt: http.ClientRequest | undefined;
  #flushScheduled = false;
  readonly #health: PeerHealth;
  /** Called once the attempt under way has settled (opened or failed). */
  #settledWaiters: (() => void)[] = [];
  #pingInFlight = false;
  #skewMs: number | undefined;
  #rttMs: number | undefined;
  #sampledAtMs = 0;
  /** When the link last received anything, on the deadline timer's running clock (as #waitingSinceMs). */
  #lastReceiveMs = 0;
  /** Since when requests that expect a prompt answer (all but anti-entropy and stream) have been waiting. */
  #waitingSinceMs = 0;
  /** Pending requests that expect a prompt answer. */
  #promptPending = 0;

  constructor(peer: string, settings: _Settings, deadlines: DeadlineTimer, counters: _Counters) {
    this.peer = peer;
    this.#settings = settings;
    this.#deadlines = deadlines;
    this.#counters = counters;
    let host = '';
    let port = 0;
    let configError: RingkvError | undefined;
    try {
      const url = new URL(peer);
      if (url.protocol !== 'http:') throw new Error(`unsupported scheme ${url.protocol}`);
      host = url.hostname.replace(/^\[|\]$/g, '');
      port = url.port === '' ? 80 : Number(url.port);
    } catch (err) {
      configError = new RingkvError('RINGKV_CONFIG', `Bad peer URL: ${peer}: ${errorMessage(err)}`);
    }
    this.#host = host;
    this.#port = port;
    this.#configError = configError;
    this.#health = new PeerHealth(peer, settings, () => {
      if (this.state === 'down' && this.#attempt === undefined) this.#connect();
    });
  }

  /**
   * `heartbeat`: the link's own PING, exempt from the in-flight and queue bounds (one at a time,
   * 9 bytes): refused once a peer that stopped reading has filled the queue, it would leave nothing
   * waiting, and the silence check would never find the peer hung.
   */
  request(message: Message, deadlineMs: number, heartbeat = false): Promise<unknown> {
    if (this.#configError !== undefined) return Promise.reject(this.#configError);
    const now = Date.now();
    if (this.state === 'down') {
      if (!this.#health.mayTry(now, deadlineMs, this.#attempt !== undefined)) {
        this.#counters.refusedDown++;
        return Promise.reject(this.#health.unavailable());
      }
      if (this.#attempt === undefined) this.#connect();
    }
    if (this.state === 'leaving' && message.type !== MessageType.Leaving) {
      this.#counters.refusedDown++;
      return Promise.reject(new RingkvError('RINGKV_UNAVAILABLE', `Peer ${this.peer} is leaving`));
    }
    if (this.state === 'closed')
      return Promise.reject(new RingkvError('RINGKV_CLOSED', 'Transport is closed'));
    if (deadlineMs <= now) {
      this.#counters.timeouts++;
      return Promise.reject(
        new RingkvError('RINGKV_TIMEOUT', `Deadline passed before sending to ${this.peer}`),
      );
    }
    if (!heartbeat && this.#pending.size >= this.#settings.inFlightMax) {
      return Promise.reject(
        new RingkvError(
          'RINGKV_UNAVAILABLE',
          `Too many requests in flight to ${this.peer}: ${this.#pending.size}`,
        ),
      );
    }
    const queued = this.#encoder.queuedBytes + (this.#socket?.writableLength ?? 0);
    if (!heartbeat && queued > this.#settings.queuedBytesMax) {
      return Promise.reject(
        new RingkvError('RINGKV_UNAVAILABLE', `Peer ${this.peer} is not keeping up: ${queued} bytes queued`),
      );
    }
    if (this.state === 'idle') this.#connect();

    const id = this.#pending.nextId();
    // Encoded before the request is registered: a message that cannot be encoded fails alone,
    // rather than leaving a registered request whose deadline would reject with nobody listening.
    try {
      this.#encoder.append(message, id);
    } catch (err) {
      return Promise.reject(
        new RingkvError(
          'RINGKV_BAD_REQUEST',
          `Cannot encode a request to ${this.peer}: ${errorMessage(err)}`,
        ),
      );
    }
    const promise = new Promise<unknown>((resolve, reject) => {
      const pending = new _Pending({
        id,
        requestType: message.type,
        deadlineMs,
        link: this,
        resolve,
        reject,
      });
      if (!isSlowRequest(message.type) && this.#promptPending++ === 0)
        this.#waitingSinceMs = this.#deadlines.runningMs();
      this.#pending.add(pending);
      this.#deadlines.add(pending);
    });
    this.#counters.requests++;
    if (this.state === 'open' || this.state === 'leaving') this.#scheduleFlush();
    return promise;
  }

  /** Called by the shared timer when a request's deadline passed. */
  expire(pending: _Pending): void {
    if (this.#pending.get(pending.id) !== pending) return;
    this.#forget(pending);
    this.#counters.timeouts++;
    pending.reject(new RingkvError('RINGKV_TIMEOUT', `Peer ${this.peer} did not answer in time`));
  }

  /** Closes a connection that has requests waiting and has been silent too long (`runningMs`: DeadlineTimer.runningMs()). */
  checkResponsive(runningMs: number): void {
    if ((this.state !== 'open' && this.state !== 'leaving') || this.#promptPending === 0) return;
    const silentMs = runningMs - Math.max(this.#lastReceiveMs, this.#waitingSinceMs);
    if (silentMs > this.#settings.unresponsiveMs) {
      this.#fail(new RingkvError('RINGKV_TIMEOUT', `Peer ${this.peer} sent nothing for ${silentMs} ms`));
    }
  }

  /** Opens the link now if it is idle; resolves once the attempt under way (if any) has settled. */
  connectNow(): Promise<void> {
    if (this.#configError !== undefined || this.state === 'closed') return Promise.resolve();
    if (this.state === 'idle') this.#connect();
    else if (this.state === 'down' && this.#attempt === undefined) this.#connect();
    if (this.#attempt === undefined) return Promise.resolve();
    return new Promise((resolve) => this.#settledWaiters.push(resolve));
  }

  /** The peer's handshake reached this node: it is up, so a down link tries at once. */
  seen(): void {
    if (this.state !== 'down') return;
    // It reached us, so it is not hung (a probe under way against the hung process may still be waiting).
    this.#health.seen();
    if (this.#attempt === undefined) this.#connect();
  }

  /** The peer announced its shutdown: nothing new is sent; what is in flight is still answered. */
  leaving(): void {
    if (this.state === 'closed' || this.state === 'leaving') return;
    this.#health.left();
    if (this.state === 'open') {
      this.state = 'leaving';
      return;
    }
    // Not connected: a handshake under way would open a link to a node that is going away.
    const attempt = this.#attempt;
    this.#attempt = undefined;
    attempt?.destroy();
    // Idle, connecting or down: down now, its queued requests refused (not a failed connection).
    this.state = 'down';
    this.#rejectAll(this.#health.unavailable());
    this.#encoder.clear();
    this.#health.scheduleProbe();
    this.#settled();
  }

  status(): PeerStatus {
    const state = this.state === 'down' || this.state === 'leaving' ? this.state : 'up';
    const failures = this.#health.failures;
    if (this.#skewMs === undefined) return { state, failures };
    return { state, failures, skewMs: this.#skewMs, rttMs: this.#rttMs!, sampledAtMs: this.#sampledAtMs };
  }

  /** Sends a PING on an open link with none in flight: a clock sample, and a check that the peer is alive. */
  heartbeat(intervalMs: number): void {
    if (this.state !== 'open' || this.#pingInFlight) return;
    this.#pingInFlight = true;
    const wallMs = this.#settings.wallMs;
    const sentMs = wallMs();
    // The round trip by the monotonic clock: a wall clock set meanwhile must not lengthen it.
    const sentMonoMs = performance.now();
    // Past the silence bound by an interval: a ping that expired first would end the wait the
    // silence is measured over, and the next ping start a new one, so a hung peer never be found.
    const deadlineMs = Date.now() + this.#settings.unresponsiveMs + intervalMs;
    (this.request({ type: MessageType.Ping }, deadlineMs, true) as Promise<number | undefined>).then(
      (peerWallMs) => {
        this.#pingInFlight = false;
        if (peerWallMs === undefined) return;
        this.#rttMs = performance.now() - sentMonoMs;
        this.#skewMs = Math.round(peerWallMs - (sentMs + this.#rttMs / 2));
        this.#sampledAtMs = wallMs();
        this.#settings.onClockSample?.(this.peer, this.#skewMs, this.#rttMs);
      },
      () => {
        this.#pingInFlight = false;
      },
    );
  }

  /** Ends the link for good (the transport closed, or forgot the peer): what waits rejects with `err`. */
  close(err: RingkvError = new RingkvError('RINGKV_CLOSED', 'Transport is closed')): void {
    this.state = 'closed';
    this.#health.close();
    this.#attempt?.destroy();
    this.#attempt = undefined;
    this.#socket?.destroy();
    this.#socket = undefined;
    this.#encoder.clear();
    this.#rejectAll(err);
    this.#settled();
  }

  #forget(pending: _Pending): void {
    this.#pending.delete(pending);
    if (!isSlowRequest(pending.requestType)) this.#promptPending--;
  }

  /** Starts a handshake: the first connection (state connecting) or a probe (state stays down). */
  #connect(): void {
    if (this.state === 'idle') this.state = 'connecting';
    this.#counters.connectAttempts++;
    const headers: http.OutgoingHttpHeaders = { Connection: 'Upgrade', Upgrade: PROTOCOL };
    if (this.#settings.selfUrl !== undefined) headers[NODE_HEADER] = this.#settings.selfUrl;
    if (this.#settings.secret !== undefined)
      headers[PROOF_HEADER] = makeProof(this.#settings.secret, this.peer);
    const request = http.request({
      host: this.#host,
      port: this.#port,
      path: UPGRADE_PATH,
      method: 'GET',
      headers,
      agent: false,
    });
    this.#attempt = request;
    // One timer per attempt is fine: attempts are at most one per probe interval. It gives up a turn
    // later: timers run before the loop reads its sockets, and after a pause of this node's loop the
    // answer may be waiting unread.
    const timer = setTimeout(() => {
      setImmediate(() => {
        if (this.#attempt !== request) return;
        request.destroy(new RingkvError('RINGKV_TIMEOUT', `Internode handshake with ${this.peer} timed out`));
      });
    }, this.#settings.connectTimeoutMs);
    timer.unref();
    const settle = (): boolean => {
      clearTimeout(timer);
      if (this.#attempt !== request) return false;
      this.#attempt = undefined;
      return true;
    };
    request.once('upgrade', (response, socket, head) => {
      if (!settle()) {
        socket.destroy();
        return;
      }
      if (response.headers.upgrade?.toLowerCase() !== PROTOCOL) {
        socket.destroy();
        this.#fail(new RingkvError('RINGKV_PROTOCOL', `Peer ${this.peer} upgraded to another protocol`));
        return;
      }
      this.#opened(socket, head);
    });
    request.once('response', (response) => {
      // Only the status matters; the connection (agent: false, never reused) is closed rather than
      // drained, so that a body that never ends (not a ringkv node) does not hold it open forever.
      response.on('error', () => undefined);
      response.destroy();
      if (!settle()) return;
      const status = response.statusCode ?? 0;
      this.#fail(
        status === 401 || status === 403
          ? new RingkvError(
              'RINGKV_UNAUTHORIZED',
              `Peer ${this.peer} refused the cluster secret proof: ${status}`,
            )
          : new RingkvError(
              'RINGKV_PROTOCOL',
              `Peer ${this.peer} answered the internode upgrade with ${status}`,
            ),
      );
    });
    request.on('error', (err) => {
      if (!settle()) return;
      this.#fail(
        isRingkvError(err)
          ? err
          : new RingkvError('RINGKV_UNAVAILABLE', `Cannot reach ${this.peer}: ${errorMessage(err)}`, {
              cause: err,
            }),
      );
    });
    request.end();
  }

  #opened(socket: Socket, head: Buffer): void {
    this.state = 'open';
    this.#health.recovered();
    this.#socket = socket;
    this.#lastReceiveMs = this.#deadlines.runningMs();
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 10_000);
    const decoder = new FrameDecoder(this.#settings.frameBytesMax, (type, id, body) =>
      this.#onFrame(type, id, body),
    );
    const receive = (chunk: Buffer): void => {
      if (this.#socket !== socket) return;
      this.#lastReceiveMs = this.#deadlines.runningMs();
      try {
        decoder.push(chunk);
      } catch (err) {
        this.#fail(err as RingkvError);
      }
    };
    socket.on('data', receive);
    socket.on('error', (err) => {
      if (this.#socket === socket) {
        this.#fail(
          new RingkvError('RINGKV_UNAVAILABLE', `Connection to ${this.peer} failed: ${err.message}`, {
            cause: err,
          }),
        );
      }
    });
    socket.on('close', () => {
      if (this.#socket === socket)
        this.#fail(new RingkvError('RINGKV_UNAVAILABLE', `Peer ${this.peer} closed the connection`));
    });
    this.#flush();
    this.#settled();
    this.#settings.onPeerUp?.(this.peer);
    // Bytes that came with the 101, read once the link is up: a bad frame among them fails it,
    // and the news of that failure must come after the news that it opened, not before.
    if (head.length > 0) receive(head);
  }

  #settled(): void {
    const waiters = this.#settledWaiters;
    if (waiters.length === 0) return;
    this.#settledWaiters = [];
    for (const resolve of waiters) resolve();
  }

  #onFrame(type: number, id: number, body: Buffer): void {
    const pending = this.#pending.get(id);
    // An answer whose request timed out or was never sent: nothing waits for it.
    if (pending === undefined) return;
    this.#forget(pending);
    this.#deadlines.remove(pending);
    const message = decodeMessage(type, body);
    if (typeof message === 'string') {
      pending.reject(new RingkvError('RINGKV_PROTOCOL', `Bad answer from ${this.peer}: ${message}`));
    } else if (message.type === MessageType.Error) {
      pending.reject(new RingkvError(message.code, `Peer ${this.peer} failed: ${message.message}`));
    } else if (message.type !== answerType(pending.requestType)) {
      pending.reject(
        new RingkvError(
          'RINGKV_PROTOCOL',
          `Peer ${this.peer} answered type ${type} to type ${pending.requestType}`,
        ),
      );
    } else {
      pending.resolve(_answerValue(message));
    }
  }

  #scheduleFlush(): void {
    if (this.#flushScheduled) return;
    this.#flushScheduled = true;
    setImmediate(() => {
      this.#flushScheduled = false;
      this.#flush();
    });
  }

  #flush(): void {
    const socket = this.#socket;
    if (socket === undefined || this.#encoder.frames === 0) return;
    const chunks = this.#encoder.take();
    this.#counters.socketWrites++;
    if (chunks.length === 1) {
      socket.write(chunks[0]!);
      return;
    }
    // Several buffers (a large frame started a new one): one writev.
    socket.cork();
    for (const chunk of chunks) socket.write(chunk);
    socket.uncork();
  }

  /** The connection (or the attempt to make one) failed: reject what waits, mark down, probe later. */
  #fail(cause: RingkvError): void {
    if (this.state === 'closed') return;
    const wasConnected = this.#socket !== undefined;
    if (!wasConnected) this.#counters.connectFailures++;
    this.#health.failed(cause);
    const wasDown = this.state === 'down';
    this.state = 'down';
    this.#pingInFlight = false;
    const socket = this.#socket;
    this.#socket = undefined;
    socket?.destroy();
    this.#encoder.clear();
    this.#rejectAll(cause.code === 'RINGKV_UNAUTHORIZED' ? cause : this.#health.unavailable());
    this.#settled();
    if (!wasDown) this.#settings.onPeerDown?.(this.peer, this.#health.unavailable());
  }

  #rejectAll(err: RingkvError): void {
    const pending = this.#pending.takeAll();
    this.#promptPending = 0;
    for (const p of pending) {
      this.#deadlines.remove(p);
      p.reject(err);
    }
  }
}

/** What the caller's promise resolves to, per answer type. */
function _answerValue(message: Message): unknown {
  switch (message.type) {
    case MessageType.Entry:
      return message.entry;
    case MessageType.Batch:
      return { entries: message.entries, more: message.more };
    case MessageType.Ok:
      return message.newerVersion;
    case MessageType.AntiEntropyAnswer:
    case MessageType.MembershipAnswer:
    case MessageType.StreamPage:
    case MessageType.MoveAnswer:
      return message.body;
    case MessageType.Pong:
      return message.wallMs;
    default:
      return undefined;
  }
}
