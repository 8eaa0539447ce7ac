/**
 * What a transport knows of a peer that failed, and the rules both
 * transports follow for it: the failure state machine of the internode
 * links, written once.
 *
 * - A failure (refused or lost connection, unanswered handshake, silence)
 *   marks the peer down: requests are refused with RINGKV_UNAVAILABLE and a
 *   probe is scheduled once per probe interval.
 * - After the quarantine, a request starts a connection attempt itself and
 *   waits for it within its deadline; a request that finds an attempt under
 *   way waits for that one. A dead peer thus costs at most one attempt per
 *   quarantine, and a peer that is back is used by the first request.
 * - A peer that hung (its last failure a timeout) is refused at once: its
 *   attempts take their whole timeout, which would turn every request into
 *   a timeout. Probes, and the peer's own handshake (seen()), bring it back.
 * - A peer that announced it is leaving is not tried by requests, only by
 *   probes and its own handshake when it returns; its cause is kept, so
 *   refusals say it left rather than how its connection ended.
 *
 * The transport owns the connection itself (a link's socket, or the HTTP
 * agent) and calls failed(), recovered(), seen() and left() as it changes.
 */
import { RingkvError } from '../../util/errors.js';

export interface PeerHealthSettings {
  readonly probeIntervalMs: number;
  readonly quarantineMs: number;
}

export class PeerHealth {
  readonly #peer: string;
  readonly #settings: PeerHealthSettings;
  readonly #probe: () => void;
  #probeTimer: NodeJS.Timeout | undefined;
  #cause: RingkvError | undefined;
  /** When the last attempt failed or the connection was lost (Date.now()). */
  #lastFailMs = 0;
  #hung = false;
  #leaving = false;
  #closed = false;
  #failures = 0;

  /** `probe` makes one connection attempt; it is called once per probe interval while the peer is down. */
  constructor(peer: string, settings: PeerHealthSettings, probe: () => void) {
    this.#peer = peer;
    this.#settings = settings;
    this.#probe = probe;
  }

  get leaving(): boolean {
    return this.#leaving;
  }

  /** Calls of failed() so far: attempts refused or unanswered, links lost (for /metrics). */
  get failures(): number {
    return this.#failures;
  }

  /** An attempt failed or the connection was lost: down, and a probe later. */
  failed(cause: RingkvError): void {
    // A leaving peer closing its connection is the end of its shutdown, not a new cause.
    this.#failures++;
    if (!this.#leaving || this.#cause === undefined) this.#cause = cause;
    this.#lastFailMs = Date.now();
    this.#hung = cause.code === 'RINGKV_TIMEOUT';
    this.scheduleProbe();
  }

  /** The peer answered: the failure is forgotten. */
  recovered(): void {
    this.#cause = undefined;
    this.#hung = false;
    this.#leaving = false;
    if (this.#probeTimer !== undefined) clearTimeout(this.#probeTimer);
    this.#probeTimer = undefined;
  }

  /** The peer's own handshake reached this node: whatever it was, it is not hung. */
  seen(): void {
    this.#hung = false;
  }

  /** The peer announced its shutdown. */
  left(): void {
    this.#leaving = true;
    this.#cause = new RingkvError('RINGKV_UNAVAILABLE', `Peer ${this.#peer} is leaving`);
    this.#lastFailMs = Date.now();
  }

  /** Whether a request to the down peer may wait for a connection attempt (the one under way, or one it starts). */
  mayTry(nowMs: number, deadlineMs: number, attemptUnderWay: boolean): boolean {
    if (this.#hung || deadlineMs <= nowMs) return false;
    if (attemptUnderWay) return true;
    return !this.#leaving && nowMs - this.#lastFailMs >= this.#settings.quarantineMs;
  }

  /** The error a refused request gets. */
  unavailable(): RingkvError {
    const cause = this.#cause;
    if (cause?.code === 'RINGKV_UNAVAILABLE') return cause;
    const detail = cause === undefined ? '' : `: ${cause.message}`;
    return new RingkvError('RINGKV_UNAVAILABLE', `Peer ${this.#peer} is down${detail}`, { cause });
  }

  scheduleProbe(): void {
    if (this.#probeTimer !== undefined || this.#closed) return;
    this.#probeTimer = setTimeout(() => {
      this.#probeTimer = undefined;
      this.#probe();
    }, this.#settings.probeIntervalMs);
    this.#probeTimer.unref();
  }

  close(): void {
    this.#closed = true;
    if (this.#probeTimer !== undefined) clearTimeout(this.#probeTimer);
    this.#probeTimer = undefined;
  }
}
