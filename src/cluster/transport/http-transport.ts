/**
 * The Transport over plain HTTP/1.1 (http-endpoint.ts has the paths): one
 * request per message on keep-alive connections. It keeps the same contract
 * and failure behaviour as the binary protocol (a peer that fails is marked
 * down, refused at once, probed once per interval; deadlines on one shared
 * timer) so that the benchmark compares framing and batching, nothing else.
 * Nodes use it when RINGKV_INTERNODE=http.
 *
 * Its PeerLinks side: connect() pings each peer; a request to a peer marked
 * down after the quarantine waits for a probe (a ping) started then, or for
 * the one under way; LEAVING is a POST; no heartbeats, so no clock skew.
 *
 * As over the binary protocol, a peer with prompt requests waiting (all but
 * anti-entropy and stream) that sends nothing for `unresponsiveMs` of this
 * node's running time is marked down, and a connection lost before its
 * answer ended fails the request with RINGKV_UNAVAILABLE and marks the peer
 * down. forget() drops a peer: its requests fail, its probes stop.
 */
import http from 'node:http';
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
  type TransportStats,
} from './contract.js';
import {
  decodeBatchBody,
  decodeMessage,
  ERROR_HEADER,
  encodeBody,
  FRAME_HEADER_BYTES,
  HTTP_PATH_PREFIX,
  isSlowRequest,
  MessageType,
  NODE_HEADER,
  PROOF_HEADER,
  toWireErrorCode,
} from './format.js';
import { PeerHealth } from './peer-health.js';

export interface HttpTransportOptions {
  readonly secret?: string | undefined;
  readonly selfUrl?: string | undefined;
  readonly onPeerUp?: (peer: string) => void;
  /** Called when a peer that was up (or being connected to) goes down: once per change, not per failed probe. */
  readonly onPeerDown?: (peer: string, cause: RingkvError) => void;
  readonly probeIntervalMs?: number;
  readonly quarantineMs?: number;
  readonly unresponsiveMs?: number;
  readonly frameBytesMax?: number;
  readonly timerResolutionMs?: number;
  readonly inFlightMax?: number;
  /** Sockets per peer (default 64): HTTP/1.1 carries one request at a time per socket. */
  readonly socketsPerPeer?: number;
}

interface _Settings {
  readonly secret: string | undefined;
  readonly selfUrl: string | undefined;
  readonly onPeerUp: ((peer: string) => void) | undefined;
  readonly onPeerDown: ((peer: string, cause: RingkvError) => void) | undefined;
  readonly probeIntervalMs: number;
  readonly quarantineMs: number;
  readonly unresponsiveMs: number;
  readonly frameBytesMax: number;
  readonly inFlightMax: number;
}

type _Parse = (status: number, body: Buffer) => unknown;

/** A request to send: `type` is the message's (format.ts), which tells whether its answer is prompt. */
interface _Spec {
  readonly type: number;
  readonly method: string;
  readonly path: string;
  readonly body?: Buffer;
  readonly deadlineMs: number;
}

/** One request waiting for its answer. */
class _HttpPending extends Expirable {
  request: http.ClientRequest | undefined;
  retried = false;
  readonly deadlineMs: number;
  /** An anti-entropy or stream request: its answer may take seconds, so it is not waited on as prompt. */
  readonly slow: boolean;
  readonly peer: _HttpPeer;
  readonly resolve: (value: unknown) => void;
  readonly reject: (err: Error) => void;

  constructor(fields: Pick<_HttpPending, 'deadlineMs' | 'slow' | 'peer' | 'resolve' | 'reject'>) {
    super();
    this.deadlineMs = fields.deadlineMs;
    this.slow = fields.slow;
    this.peer = fields.peer;
    this.resolve = fields.resolve;
    this.reject = fields.reject;
  }

  expire(): void {
    this.peer.expire(this);
  }
}

interface _HttpPeer {
  readonly url: string;
  readonly host: string;
  readonly port: number;
  up: boolean;
  readonly health: PeerHealth;
  /** Bumped by peerLeaving(): a probe started before answers for a peer that has left since. */
  epoch: number;
  /** The probe under way: resolves to whether it brought the peer back. */
  probing: Promise<boolean> | undefined;
  /** Its request, cut if the peer is forgotten. */
  probe: http.ClientRequest | undefined;
  readonly pending: Set<_HttpPending>;
  /** Pending requests that expect a prompt answer (not slow). */
  promptPending: number;
  proof: string | undefined;
  proofMadeMs: number;
  /** When an answer last brought bytes, and since when prompt requests wait: DeadlineTimer.runningMs(). */
  lastReceiveMs: number;
  waitingSinceMs: number;
  expire(pending: _HttpPending): void;
}

export class HttpTransport implements Transport, PeerLinks, MembershipLinks {
  readonly #settings: _Settings;
  readonly #agent: http.Agent;
  readonly #peers = new Map<string, _HttpPeer>();
  readonly #deadlines: DeadlineTimer;
  readonly #counters = newTransportCounters();
  #closed = false;

  constructor(options: HttpTransportOptions = {}) {
    this.#settings = {
      secret: options.secret,
      selfUrl: options.selfUrl,
      onPeerUp: options.onPeerUp,
      onPeerDown: options.onPeerDown,
      probeIntervalMs: options.probeIntervalMs ?? limits.internodeProbeIntervalMs,
      quarantineMs: options.quarantineMs ?? limits.internodeQuarantineMs,
      unresponsiveMs: options.unresponsiveMs ?? limits.internodeUnresponsiveMs,
      frameBytesMax: options.frameBytesMax ?? limits.internodeFrameBytesMax,
      inFlightMax: options.inFlightMax ?? limits.internodeInFlightMax,
    };
    const sockets = options.socketsPerPeer ?? 64;
    this.#agent = new http.Agent({
      keepAlive: true,
      maxSockets: sockets,
      maxFreeSockets: sockets,
      scheduling: 'lifo',
    });
    this.#deadlines = new DeadlineTimer({
      resolutionMs: options.timerResolutionMs ?? limits.internodeTimerResolutionMs,
      onTick: () => this.#checkResponsive(this.#deadlines.runningMs()),
    });
  }

  write(peer: string, entry: Entry, deadlineMs: number): Promise<bigint | undefined> {
    if (FRAME_HEADER_BYTES + encodedEntryBytes(entry) > this.#settings.frameBytesMax) {
      return Promise.reject(
        new RingkvError(
          'RINGKV_VALUE_TOO_LARGE',
          `Entry too large for an internode request: value ${entry.value.length} bytes`,
        ),
      );
    }
    const body = encodeBody({ type: MessageType.Write, entry });
    return this.#request(
      peer,
      { type: MessageType.Write, method: 'POST', path: 'write', body, deadlineMs },
      _parseWrite,
    ) as Promise<bigint | undefined>;
  }

  read(peer: string, key: Buffer, deadlineMs: number): Promise<Entry | undefined> {
    const path = `read?key=${key.toString('base64url')}`;
    return this.#request(
      peer,
      { type: MessageType.Read, method: 'GET', path, deadlineMs },
      _parseEntry,
    ) as Promise<Entry | undefined>;
  }

  scan(
    peer: string,
    start: Buffer,
    end: Buffer | undefined,
    limit: number,
    deadlineMs: number,
  ): Promise<ScanPage> {
    let path = `scan?start=${start.toString('base64url')}&limit=${limit}`;
    if (end !== undefined) path += `&end=${end.toString('base64url')}`;
    return this.#request(
      peer,
      { type: MessageType.Scan, method: 'GET', path, deadlineMs },
      _parseBatch,
    ) as Promise<ScanPage>;
  }

  antiEntropy(peer: string, body: Buffer, deadlineMs: number): Promise<Buffer> {
    if (FRAME_HEADER_BYTES + body.length > this.#settings.frameBytesMax) {
      return Promise.reject(
        new RingkvError('RINGKV_BAD_REQUEST', `Anti-entropy request too large: ${body.length} bytes`),
      );
    }
    return this.#request(
      peer,
      { type: MessageType.AntiEntropy, method: 'POST', path: 'anti-entropy', body, deadlineMs },
      _parseAntiEntropy,
    ) as Promise<Buffer>;
  }

  membership(peer: string, body: Buffer, deadlineMs: number): Promise<Buffer> {
    return this.#opaque(peer, MessageType.Membership, 'membership', body, deadlineMs);
  }

  stream(peer: string, body: Buffer, deadlineMs: number): Promise<Buffer> {
    return this.#opaque(peer, MessageType.Stream, 'stream', body, deadlineMs);
  }

  move(peer: string, body: Buffer, deadlineMs: number): Promise<Buffer> {
    return this.#opaque(peer, MessageType.Move, 'move', body, deadlineMs);
  }

  #opaque(peer: string, type: number, path: string, body: Buffer, deadlineMs: number): Promise<Buffer> {
    if (FRAME_HEADER_BYTES + body.length > this.#settings.frameBytesMax) {
      return Promise.reject(new RingkvError('RINGKV_BAD_REQUEST', `Request too large: ${body.length} bytes`));
    }
    return this.#request(
      peer,
      { type, method: 'POST', path, body, deadlineMs },
      _parseAntiEntropy,
    ) as Promise<Buffer>;
  }

  ping(peer: string, deadlineMs: number): Promise<void> {
    return this.#request(
      peer,
      { type: MessageType.Ping, method: 'GET', path: 'ping', deadlineMs },
      _parseEmpty,
    ) as Promise<void>;
  }

  isUp(peer: string): boolean {
    return this.#peers.get(peer)?.up ?? true;
  }

  async connect(peers: readonly string[]): Promise<void> {
    await Promise.all(
      peers.map(async (url) => {
        const peer = this.#peer(url);
        if (peer instanceof RingkvError || this.#closed) return;
        peer.up = false;
        await this.#probe(peer);
      }),
    );
  }

  peerSeen(url: string): void {
    const peer = this.#peers.get(url);
    if (peer === undefined || peer.up || this.#closed) return;
    // It reached us, so it is not hung.
    peer.health.seen();
    void this.#probe(peer);
  }

  peerLeaving(url: string): void {
    const peer = this.#peers.get(url);
    if (peer === undefined || this.#closed) return;
    peer.up = false;
    // A probe under way started before the peer said it leaves: its answer must not bring it back.
    peer.epoch++;
    peer.health.left();
    peer.health.scheduleProbe();
  }

  async announceLeaving(deadlineMs: number): Promise<void> {
    const self = this.#settings.selfUrl;
    if (this.#closed || self === undefined) return;
    const body = encodeBody({ type: MessageType.Leaving, node: self });
    const told = [...this.#peers.values()]
      .filter((peer) => peer.up)
      .map((peer) =>
        this.#request(
          peer.url,
          { type: MessageType.Leaving, method: 'POST', path: 'leaving', body, deadlineMs },
          _parseEmpty,
        ).catch(() => undefined),
      );
    await Promise.all(told);
  }

  forget(url: string): void {
    const peer = this.#peers.get(url);
    if (peer === undefined) return;
    this.#peers.delete(url);
    peer.health.close();
    peer.probe?.destroy();
    this.#rejectAll(
      peer,
      new RingkvError('RINGKV_UNAVAILABLE', `Peer ${url} was forgotten (it left the cluster)`),
    );
  }

  peerStatus(url: string): PeerStatus {
    const peer = this.#peers.get(url);
    const failures = peer?.health.failures ?? 0;
    if (peer === undefined || peer.up) return { state: 'up', failures };
    return { state: peer.health.leaving ? 'leaving' : 'down', failures };
  }

  stats(): TransportStats {
    return { ...this.#counters };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const err = new RingkvError('RINGKV_CLOSED', 'Transport is closed');
    for (const peer of this.#peers.values()) {
      peer.health.close();
      this.#rejectAll(peer, err);
    }
    this.#deadlines.close();
    this.#agent.destroy();
  }

  #peer(url: string): _HttpPeer | RingkvError {
    const known = this.#peers.get(url);
    if (known !== undefined) return known;
    let parsed: URL;
    try {
      parsed = new URL(url);
      if (parsed.protocol !== 'http:') throw new Error(`unsupported scheme ${parsed.protocol}`);
    } catch (err) {
      return new RingkvError('RINGKV_CONFIG', `Bad peer URL: ${url}: ${errorMessage(err)}`);
    }
    const peer: _HttpPeer = {
      url,
      host: parsed.hostname.replace(/^\[|\]$/g, ''),
      port: parsed.port === '' ? 80 : Number(parsed.port),
      up: true,
      health: new PeerHealth(url, this.#settings, () => void this.#probe(peer)),
      epoch: 0,
      probing: undefined,
      probe: undefined,
      pending: new Set(),
      promptPending: 0,
      proof: undefined,
      proofMadeMs: 0,
      lastReceiveMs: 0,
      waitingSinceMs: 0,
      expire: (pending) => {
        if (!_take(peer, pending)) return;
        this.#counters.timeouts++;
        pending.request?.destroy();
        pending.reject(new RingkvError('RINGKV_TIMEOUT', `Peer ${url} did not answer in time`));
      },
    };
    this.#peers.set(url, peer);
    return peer;
  }

  #request(url: string, spec: _Spec, parse: _Parse): Promise<unknown> {
    if (this.#closed) return Promise.reject(new RingkvError('RINGKV_CLOSED', 'Transport is closed'));
    const peer = this.#peer(url);
    if (peer instanceof RingkvError) return Promise.reject(peer);
    const now = Date.now();
    if (!peer.up) {
      // A request may wait for a probe (the one under way, or one it starts), within its deadline.
      if (!peer.health.mayTry(now, spec.deadlineMs, peer.probing !== undefined)) {
        this.#counters.refusedDown++;
        return Promise.reject(peer.health.unavailable());
      }
      return _within(peer.probing ?? this.#probe(peer), spec.deadlineMs, url).then((up) => {
        if (!up) {
          this.#counters.refusedDown++;
          throw peer.health.unavailable();
        }
        return this.#request(url, spec, parse);
      });
    }
    if (spec.deadlineMs <= now) {
      this.#counters.timeouts++;
      return Promise.reject(new RingkvError('RINGKV_TIMEOUT', `Deadline passed before sending to ${url}`));
    }
    if (peer.pending.size >= this.#settings.inFlightMax) {
      return Promise.reject(new RingkvError('RINGKV_UNAVAILABLE', `Too many requests in flight to ${url}`));
    }
    return new Promise((resolve, reject) => {
      const slow = isSlowRequest(spec.type);
      const pending = new _HttpPending({ deadlineMs: spec.deadlineMs, slow, peer, resolve, reject });
      if (!slow && peer.promptPending++ === 0) peer.waitingSinceMs = this.#deadlines.runningMs();
      peer.pending.add(pending);
      this.#deadlines.add(pending);
      this.#send(pending, spec, parse);
    });
  }

  #send(pending: _HttpPending, spec: _Spec, parse: _Parse): void {
    const peer = pending.peer;
    const headers: http.OutgoingHttpHeaders = {};
    const proof = this.#proof(peer);
    if (proof !== undefined) headers[PROOF_HEADER] = proof;
    if (this.#settings.selfUrl !== undefined) headers[NODE_HEADER] = this.#settings.selfUrl;
    if (spec.body !== undefined) {
      headers['content-type'] = 'application/octet-stream';
      headers['content-length'] = spec.body.length;
    }
    this.#counters.requests++;
    this.#counters.socketWrites++;
    const request = http.request({
      agent: this.#agent,
      host: peer.host,
      port: peer.port,
      method: spec.method,
      path: HTTP_PATH_PREFIX + spec.path,
      headers,
    });
    pending.request = request;
    // The connection ended before the answer did (the peer died or cut it): as a lost link, not a timeout.
    const cut = (): void => {
      if (pending.request !== request || !peer.pending.has(pending)) return;
      this.#markDown(
        peer,
        new RingkvError('RINGKV_UNAVAILABLE', `Connection to ${peer.url} lost mid-answer`),
      );
    };
    let answer: http.IncomingMessage | undefined;
    request.on('response', (response) => {
      answer = response;
      const chunks: Buffer[] = [];
      let bytes = 0;
      response.on('aborted', cut);
      response.on('error', cut);
      response.on('data', (chunk: Buffer) => {
        peer.lastReceiveMs = this.#deadlines.runningMs();
        bytes += chunk.length;
        if (bytes > this.#settings.frameBytesMax) {
          request.destroy(new RingkvError('RINGKV_PROTOCOL', `Answer from ${peer.url} too large`));
          return;
        }
        chunks.push(chunk);
      });
      response.on('end', () => {
        peer.lastReceiveMs = this.#deadlines.runningMs();
        if (!this.#settle(pending)) return;
        const body = Buffer.concat(chunks, bytes);
        const status = response.statusCode ?? 0;
        try {
          pending.resolve(_parseAnswer(peer.url, status, response, body, parse));
        } catch (err) {
          pending.reject(err as Error);
        }
      });
    });
    request.on('error', (err) => {
      if (!peer.pending.has(pending)) return;
      // A kept-alive socket the server closed while idle: retry once on a fresh one (every message is idempotent).
      if (request.reusedSocket && (err as NodeJS.ErrnoException).code === 'ECONNRESET' && !pending.retried) {
        pending.retried = true;
        this.#send(pending, spec, parse);
        return;
      }
      this.#markDown(
        peer,
        isRingkvError(err)
          ? err
          : new RingkvError('RINGKV_UNAVAILABLE', `Cannot reach ${peer.url}: ${err.message}`, { cause: err }),
      );
    });
    // Closed with the answer incomplete and no error said why (the peer closed the connection).
    request.on('close', () => {
      if (answer?.complete !== true) cut();
    });
    request.end(spec.body);
  }

  /** Removes a finished request from its peer; false when it had already timed out or failed. */
  #settle(pending: _HttpPending): boolean {
    if (!_take(pending.peer, pending)) return false;
    this.#deadlines.remove(pending);
    pending.request = undefined;
    return true;
  }

  /** A proof reused for half its freshness window: an HMAC per request would cost more than the request. */
  #proof(peer: _HttpPeer): string | undefined {
    const secret = this.#settings.secret;
    if (secret === undefined) return undefined;
    const now = Date.now();
    if (peer.proof === undefined || now - peer.proofMadeMs > limits.internodeProofWindowMs / 2) {
      peer.proof = makeProof(secret, peer.url, { nowMs: now });
      peer.proofMadeMs = now;
    }
    return peer.proof;
  }

  #markDown(peer: _HttpPeer, cause: RingkvError): void {
    const wasUp = peer.up;
    peer.up = false;
    peer.health.failed(cause);
    this.#rejectAll(peer, cause.code === 'RINGKV_UNAUTHORIZED' ? cause : peer.health.unavailable());
    if (wasUp) this.#settings.onPeerDown?.(peer.url, peer.health.unavailable());
  }

  /** One ping on a fresh connection (one at a time per peer); success brings the peer back. */
  #probe(peer: _HttpPeer): Promise<boolean> {
    if (this.#closed || peer.up) return Promise.resolve(peer.up);
    peer.probing ??= new Promise<boolean>((resolve) => {
      const epoch = peer.epoch;
      this.#counters.connectAttempts++;
      const headers: http.OutgoingHttpHeaders = {};
      const proof = this.#proof(peer);
      if (proof !== undefined) headers[PROOF_HEADER] = proof;
      if (this.#settings.selfUrl !== undefined) headers[NODE_HEADER] = this.#settings.selfUrl;
      const request = http.request({
        agent: false,
        host: peer.host,
        port: peer.port,
        method: 'GET',
        path: `${HTTP_PATH_PREFIX}ping`,
        headers,
        timeout: this.#settings.probeIntervalMs * 4,
      });
      peer.probe = request;
      const failed = (cause: RingkvError, timedOut = false): void => {
        peer.probing = undefined;
        peer.probe = undefined;
        // Forgotten meanwhile: its probe was cut, not refused.
        if (this.#peers.get(peer.url) !== peer) {
          resolve(false);
          return;
        }
        this.#counters.connectFailures++;
        peer.health.failed(timedOut ? new RingkvError('RINGKV_TIMEOUT', cause.message, { cause }) : cause);
        resolve(false);
      };
      request.on('response', (response) => {
        response.resume();
        if (response.statusCode === 204 && peer.epoch === epoch && this.#peers.get(peer.url) === peer) {
          peer.up = true;
          peer.health.recovered();
          peer.probing = undefined;
          peer.probe = undefined;
          resolve(true);
          this.#settings.onPeerUp?.(peer.url);
          return;
        }
        failed(
          new RingkvError(
            response.statusCode === 401 || response.statusCode === 403
              ? 'RINGKV_UNAUTHORIZED'
              : 'RINGKV_PROTOCOL',
            `Peer ${peer.url} answered ${response.statusCode} to a ping`,
          ),
        );
      });
      let timedOut = false;
      let answered = false;
      request.on('response', () => {
        answered = true;
      });
      // A turn later: after a pause of this node's loop, the answer may be waiting unread.
      request.on('timeout', () => {
        setImmediate(() => {
          if (answered) return;
          timedOut = true;
          request.destroy(new Error('probe timed out'));
        });
      });
      request.on('error', (err) => {
        failed(
          new RingkvError('RINGKV_UNAVAILABLE', `Cannot reach ${peer.url}: ${err.message}`, { cause: err }),
          timedOut,
        );
      });
      request.end();
    });
    return peer.probing;
  }

  #rejectAll(peer: _HttpPeer, err: RingkvError): void {
    const pending = [...peer.pending];
    peer.pending.clear();
    peer.promptPending = 0;
    for (const p of pending) {
      this.#deadlines.remove(p);
      p.request?.destroy();
      p.reject(err);
    }
  }

  /** Marks down a peer that has prompt requests waiting and has been silent too long (`runningMs`: DeadlineTimer.runningMs()). */
  #checkResponsive(runningMs: number): void {
    for (const peer of this.#peers.values()) {
      if (!peer.up || peer.promptPending === 0) continue;
      const silentMs = runningMs - Math.max(peer.lastReceiveMs, peer.waitingSinceMs);
      if (silentMs > this.#settings.unresponsiveMs) {
        this.#markDown(
          peer,
          new RingkvError('RINGKV_TIMEOUT', `Peer ${peer.url} sent nothing for ${silentMs} ms`),
        );
      }
    }
  }
}

/** Removes a request from its peer's pending ones; false when it was not there (timed out, failed). */
function _take(peer: _HttpPeer, pending: _HttpPending): boolean {
  if (!peer.pending.delete(pending)) return false;
  if (!pending.slow) peer.promptPending--;
  return true;
}

/** `probe`'s outcome, or a RINGKV_TIMEOUT rejection at `deadlineMs` if it comes later. */
function _within(probe: Promise<boolean>, deadlineMs: number, url: string): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new RingkvError('RINGKV_TIMEOUT', `Peer ${url} did not answer in time`)),
      Math.max(0, deadlineMs - Date.now()),
    );
  });
  return Promise.race([probe, deadline]).finally(() => clearTimeout(timer));
}

function _parseAnswer(
  url: string,
  status: number,
  response: http.IncomingMessage,
  body: Buffer,
  parse: _Parse,
): unknown {
  if (status === 200 || status === 204) return parse(status, body);
  if (status === 401 || status === 403) {
    throw new RingkvError('RINGKV_UNAUTHORIZED', `Peer ${url} refused the cluster secret proof: ${status}`);
  }
  const code = response.headers[ERROR_HEADER];
  if (typeof code === 'string')
    throw new RingkvError(toWireErrorCode(code), `Peer ${url} failed: ${body.toString()}`);
  throw new RingkvError('RINGKV_PROTOCOL', `Peer ${url} answered ${status}`);
}

function _parseEmpty(): undefined {
  return undefined;
}

/** 204: stored; 200: stored, and the body is an OK body naming the newer version the peer knew. */
function _parseWrite(status: number, body: Buffer): bigint | undefined {
  if (status === 204) return undefined;
  const message = decodeMessage(MessageType.Ok, body);
  if (typeof message === 'string' || message.type !== MessageType.Ok) {
    throw new RingkvError('RINGKV_PROTOCOL', `Bad write answer: ${String(message)}`);
  }
  return message.newerVersion;
}

/** The answer body as is: Buffer.concat made it a buffer of its own. */
/** An opaque answer (anti-entropy, membership, stream, move): 200 and the body. */
function _parseAntiEntropy(status: number, body: Buffer): Buffer {
  if (status !== 200) throw new RingkvError('RINGKV_PROTOCOL', `Bad answer status ${status}`);
  return body;
}

function _parseEntry(_status: number, body: Buffer): Entry | undefined {
  const message = decodeMessage(MessageType.Entry, body);
  if (typeof message === 'string' || message.type !== MessageType.Entry) {
    throw new RingkvError('RINGKV_PROTOCOL', `Bad read answer: ${String(message)}`);
  }
  return message.entry;
}

function _parseBatch(_status: number, body: Buffer): ScanPage {
  const message = decodeBatchBody(body);
  if (typeof message === 'string') throw new RingkvError('RINGKV_PROTOCOL', `Bad scan answer: ${message}`);
  return { entries: message.entries, more: message.more };
}
