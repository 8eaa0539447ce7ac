/**
 * The serving side of one binary internode connection (after the 101):
 * decodes request frames, runs them on the InternodeHandler concurrently, and
 * writes the answers as they complete, every answer ready in one event-loop
 * turn in one socket write.
 *
 * Back-pressure: past `inFlightMax` requests being handled, or when the peer
 * does not read its answers (socket buffer over `queuedBytesMax`), the
 * connection stops reading until it is back under. A frame whose length is
 * out of bounds closes the connection; a well-framed but unknown or malformed
 * request gets an ERROR answer and the connection goes on (so newer peers can
 * add message types).
 *
 * Idle connections: one on which nothing has arrived for `idleTimeoutMs`,
 * with nothing under way (no request being handled, no answer waiting to be
 * written, reading not paused for back-pressure), is ended, and destroyed a
 * bound later if still open. A peer's client sends a PING every heartbeat,
 * so only a peer that went silent while holding the socket open (a stuck
 * process, or not a ringkv node) trips it; TCP keepalive finds a dead host,
 * not that. One timer per connection, set again only when it fires. A
 * connection still busy when its silence passes the bound is looked at again
 * a bound later.
 */
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { InternodeHandler } from './contract.js';
import { decodeMessage, isRequestType, type Message, MessageType } from './format.js';
import { FrameDecoder } from './frame-decoder.js';
import { FrameEncoder } from './frame-encoder.js';
import { pong, type ServeLimits, serveMessage } from './serve.js';

/** end() waits for this long without a frame before it stops reading. */
const QUIET_MS = 40;

export interface FrameServerLimits extends ServeLimits {
  readonly inFlightMax: number;
  readonly queuedBytesMax: number;
  /** Nothing arrived for this long, and nothing under way: the connection is closed (0: never). */
  readonly idleTimeoutMs: number;
}

export interface FrameServerCounters {
  requests: number;
  socketWrites: number;
  /** Connections closed because nothing arrived on them for idleTimeoutMs. */
  idleClosed: number;
}

export class FrameServerConnection {
  readonly #socket: Socket;
  readonly #handler: InternodeHandler;
  readonly #limits: FrameServerLimits;
  readonly #counters: FrameServerCounters;
  readonly #decoder: FrameDecoder;
  readonly #encoder = new FrameEncoder();
  readonly #closed: Promise<void>;
  #inFlight = 0;
  #paused = false;
  #draining = false;
  #flushScheduled = false;
  #ending = false;
  /** Ending, and quiet long enough: the socket is paused and ends once idle. */
  #quiet = false;
  #lastReceiveMs = performance.now();
  #idleTimer: NodeJS.Timeout | undefined;
  /** The socket has ended: the next idle timer destroys it if it is still open. */
  #closeDue = false;

  constructor(
    socket: Socket,
    context: { handler: InternodeHandler; limits: FrameServerLimits; counters: FrameServerCounters },
  ) {
    this.#socket = socket;
    this.#handler = context.handler;
    this.#limits = context.limits;
    this.#counters = context.counters;
    this.#decoder = new FrameDecoder(this.#limits.frameBytesMax, (type, id, body) =>
      this.#onFrame(type, id, body),
    );
    this.#closed = new Promise((resolve) =>
      socket.once('close', () => {
        clearTimeout(this.#idleTimer);
        resolve();
      }),
    );
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 10_000);
    socket.on('data', (chunk: Buffer) => this.receive(chunk));
    socket.on('drain', () => this.#maybeResume());
    // Errors end in 'close'; the client sees its requests fail and reconnects.
    socket.on('error', () => socket.destroy());
    // The peer ended its side: no frame follows, so answer what is in flight and end ours
    // (the upgraded socket keeps the HTTP server's half-open setting, which would leave it open).
    socket.once('end', () => {
      this.#quiet = true;
      this.#endIfIdle();
    });
    if (this.#limits.idleTimeoutMs > 0) this.#armIdleTimer(this.#limits.idleTimeoutMs);
  }

  /** Resolves once the socket closed. */
  get closed(): Promise<void> {
    return this.#closed;
  }

  receive(chunk: Buffer): void {
    if (this.#socket.destroyed) return;
    this.#lastReceiveMs = performance.now();
    try {
      this.#decoder.push(chunk);
    } catch {
      // Out-of-bounds frame length: the stream cannot be resynchronized.
      this.#socket.destroy();
    }
  }

  /**
   * Ends the connection once it is idle: nothing in flight, nothing to send,
   * and no frame received for QUIET_MS. Frames that arrive meanwhile are
   * still served: a peer that has not yet heard this node is leaving (its
   * LEAVING crossed them on the wire) gets answers, not failures.
   */
  end(): Promise<void> {
    if (this.#ending) return this.#closed;
    this.#ending = true;
    const check = setInterval(() => {
      if (this.#socket.destroyed) clearInterval(check);
      else if (performance.now() - this.#lastReceiveMs >= QUIET_MS) {
        clearInterval(check);
        this.#quiet = true;
        this.#socket.pause();
        this.#endIfIdle();
      }
    }, QUIET_MS / 2);
    check.unref();
    return this.#closed;
  }

  destroy(): void {
    this.#socket.destroy();
  }

  #onFrame(type: number, id: number, body: Buffer): void {
    // Once this side has ended (the connection was idle), a frame that crossed the FIN goes unanswered.
    if (this.#socket.destroyed || this.#socket.writableEnded) return;
    this.#counters.requests++;
    if (this.#quiet) {
      // Frames already read when end() paused the socket: a quick refusal beats a timeout.
      this.#answer(id, { type: MessageType.Error, code: 'RINGKV_CLOSED', message: 'Node is shutting down' });
      return;
    }
    const message = isRequestType(type) ? decodeMessage(type, body) : `not a request type: ${type}`;
    if (typeof message === 'string') {
      this.#answer(id, {
        type: MessageType.Error,
        code: 'RINGKV_PROTOCOL',
        message: `Bad request: ${message}`,
      });
      return;
    }
    if (message.type === MessageType.Ping) {
      this.#answer(id, pong(this.#handler));
      return;
    }
    this.#inFlight++;
    if (this.#inFlight >= this.#limits.inFlightMax) this.#pause();
    void serveMessage(this.#handler, message, this.#limits).then((answer) => {
      this.#inFlight--;
      this.#answer(id, answer);
      this.#maybeResume();
      this.#endIfIdle();
    });
  }

  #answer(id: number, answer: Message): void {
    if (this.#socket.destroyed) return;
    this.#encoder.append(answer, id);
    if (this.#flushScheduled) return;
    this.#flushScheduled = true;
    setImmediate(() => {
      this.#flushScheduled = false;
      this.#flush();
    });
  }

  #flush(): void {
    if (this.#socket.destroyed || this.#encoder.frames === 0) return;
    const chunks = this.#encoder.take();
    this.#counters.socketWrites++;
    let writable = true;
    if (chunks.length === 1) {
      writable = this.#socket.write(chunks[0]!);
    } else {
      this.#socket.cork();
      for (const chunk of chunks) writable = this.#socket.write(chunk);
      this.#socket.uncork();
    }
    if (!writable && this.#socket.writableLength > this.#limits.queuedBytesMax) {
      this.#draining = true;
      this.#pause();
    }
    this.#endIfIdle();
  }

  #pause(): void {
    if (this.#paused) return;
    this.#paused = true;
    this.#socket.pause();
  }

  #maybeResume(): void {
    if (this.#socket.writableLength <= this.#limits.queuedBytesMax) this.#draining = false;
    if (!this.#paused || this.#quiet || this.#draining) return;
    if (this.#inFlight > this.#limits.inFlightMax / 2) return;
    this.#paused = false;
    this.#socket.resume();
  }

  #armIdleTimer(delayMs: number): void {
    this.#idleTimer = setTimeout(() => this.#checkIdle(), delayMs);
    this.#idleTimer.unref();
  }

  /**
   * The idle timer fired: ends the connection if it has been silent past the
   * bound with nothing under way, else sets the timer again. Ended, not
   * destroyed, so that answers still on their way out are delivered before
   * the FIN; a connection still open a bound after its end (its peer neither
   * closes its side nor reads what is left), whatever ended it, is destroyed.
   * Timers run before the event loop reads its sockets, so after a pause of
   * this node's loop (a GC, a long synchronous task) the peer's frames that
   * came meanwhile are still unread: the verdict waits for this turn's reads.
   */
  #checkIdle(): void {
    if (this.#socket.destroyed) return;
    if (this.#closeDue) {
      this.#socket.destroy();
      return;
    }
    const idleTimeoutMs = this.#limits.idleTimeoutMs;
    const silentMs = performance.now() - this.#lastReceiveMs;
    if (silentMs < idleTimeoutMs) {
      this.#armIdleTimer(idleTimeoutMs - silentMs);
      return;
    }
    setImmediate(() => {
      if (this.#socket.destroyed) return;
      const silentNowMs = performance.now() - this.#lastReceiveMs;
      if (silentNowMs < idleTimeoutMs) {
        this.#armIdleTimer(idleTimeoutMs - silentNowMs);
        return;
      }
      if (this.#socket.writableEnded) {
        // Ended already (the peer ended its side, or the node is closing): a bound left to close.
        this.#closeDue = true;
      } else if (!this.#hasWork() && !this.#paused) {
        // (Work under way, or reading paused for back-pressure: not the peer's silence.)
        this.#counters.idleClosed++;
        this.#closeDue = true;
        this.#socket.end();
      }
      this.#armIdleTimer(idleTimeoutMs);
    });
  }

  /** Requests being handled, or answers not yet handed to the socket. */
  #hasWork(): boolean {
    return this.#inFlight > 0 || this.#encoder.frames > 0 || this.#flushScheduled;
  }

  #endIfIdle(): void {
    if (this.#quiet && !this.#hasWork()) this.#socket.end();
  }
}
