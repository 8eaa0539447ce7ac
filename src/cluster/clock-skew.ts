/**
 * ClockSkewMonitor: the wall-clock difference between this node and each
 * peer, as the transport's heartbeats measure it (frame-transport.ts), for
 * /v0/status and for one log line each time a peer's skew passes the bound
 * the ordering of writes relies on (--max-clock-skew), and one when it is
 * back within it.
 *
 * A sample is known to within half its round trip, so a peer counts as
 * beyond the bound only when even the most favourable reading of the sample
 * is: |skew| - rtt/2 > bound.
 *
 *   const skew = new ClockSkewMonitor({ boundMs: 1000, log });
 *   transport = createTransport({ onClockSample: (peer, skewMs, rttMs) => skew.sample(peer, skewMs, rttMs) });
 */

export interface SkewSample {
  /** The peer's wall clock minus this node's, ms. */
  readonly skewMs: number;
  readonly rttMs: number;
  /** When it was taken (Date.now()). */
  readonly atMs: number;
}

export class ClockSkewMonitor {
  readonly #boundMs: number;
  readonly #log: (line: string) => void;
  readonly #samples = new Map<string, SkewSample>();
  readonly #beyond = new Set<string>();

  constructor(options: { boundMs: number; log: (line: string) => void }) {
    this.#boundMs = options.boundMs;
    this.#log = options.log;
  }

  sample(peer: string, skewMs: number, rttMs: number): void {
    this.#samples.set(peer, { skewMs, rttMs, atMs: Date.now() });
    const beyond = Math.abs(skewMs) - rttMs / 2 > this.#boundMs;
    if (beyond === this.#beyond.has(peer)) return;
    if (beyond) {
      this.#beyond.add(peer);
      // "Warning: " makes it a warn line (lineLog): writes may be misordered until the clocks agree.
      this.#log(
        `Warning: Clock of ${peer} differs from this node's by ${skewMs} ms (round trip ${rttMs} ms), beyond --max-clock-skew ${this.#boundMs} ms: writes through the two nodes may be misordered; fix the clocks (NTP)`,
      );
    } else {
      this.#beyond.delete(peer);
      this.#log(`Clock of ${peer} is back within --max-clock-skew ${this.#boundMs} ms (skew ${skewMs} ms)`);
    }
  }

  /** The peer left the cluster: its sample goes, and it is no longer named beyond the bound. */
  forget(peer: string): void {
    this.#samples.delete(peer);
    this.#beyond.delete(peer);
  }

  /** Peers whose last sample was beyond the bound. */
  get beyond(): readonly string[] {
    return [...this.#beyond];
  }

  status(): Record<string, unknown> {
    const nowMs = Date.now();
    const peers: Record<string, unknown> = {};
    let maxAbsSkewMs = 0;
    for (const [peer, sample] of this.#samples) {
      peers[peer] = { skewMs: sample.skewMs, rttMs: sample.rttMs, ageMs: nowMs - sample.atMs };
      maxAbsSkewMs = Math.max(maxAbsSkewMs, Math.abs(sample.skewMs));
    }
    return { boundMs: this.#boundMs, maxAbsSkewMs, beyondBound: this.beyond, peers };
  }
}
