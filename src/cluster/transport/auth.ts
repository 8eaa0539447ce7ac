/**
 * Proof of the cluster secret (`--cluster-secret`) for internode requests.
 *
 * The client never sends the secret. It sends, in the `ringkv-proof` header,
 *
 *   <timestamp ms>.<nonce: 16 hex digits>.<HMAC-SHA256(secret, "ringkv-internode/1\n" + timestamp + "\n" + nonce + "\n" + target origin), hex>
 *
 * where the target origin is the peer's URL reduced to scheme://host:port, so
 * a proof made for one node does not open another. The server accepts a proof
 * whose MAC matches (compared in constant time), whose timestamp is within
 * the freshness window of its own clock, and, for Upgrade handshakes, whose
 * nonce it has not seen within the window (a recorded handshake cannot be
 * replayed). The plain-HTTP variant sends one proof on many requests (an HMAC
 * per request would cost more than the request), so it is protected by the
 * window only.
 *
 * What this does not do: encrypt or sign the frames after the handshake. On a
 * network where others can read or inject traffic, run the cluster over a
 * private network or a tunnel.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { PROTOCOL } from './format.js';

/** scheme://host:port of a node URL, the form both sides put in the MAC. */
export function canonicalOrigin(url: string): string {
  return new URL(url).origin.toLowerCase();
}

function _mac(secret: string, timestampMs: number, nonce: string, origin: string): Buffer {
  return createHmac('sha256', secret).update(`${PROTOCOL}\n${timestampMs}\n${nonce}\n${origin}`).digest();
}

/**
 * A proof for requests to `peerUrl` (made now, or at `options.nowMs`).
 *
 * Example: headers['ringkv-proof'] = makeProof(secret, 'http://10.0.0.2:8080');
 */
export function makeProof(secret: string, peerUrl: string, options: { nowMs?: number } = {}): string {
  const nowMs = options.nowMs ?? Date.now();
  const nonce = randomBytes(8).toString('hex');
  return `${nowMs}.${nonce}.${_mac(secret, nowMs, nonce, canonicalOrigin(peerUrl)).toString('hex')}`;
}

export type ProofVerdict = 'accepted' | 'missing' | 'invalid' | 'stale' | 'replayed';

export interface ProofCheckerOptions {
  /** The secret; undefined: every request is accepted (a cluster without a secret). */
  readonly secret?: string | undefined;
  /** This node's URL; left out, the origin is taken from the request's Host header. */
  readonly selfUrl?: string | undefined;
  readonly windowMs: number;
  readonly nonceCacheMax: number;
  readonly nowMs?: () => number;
}

const PROOF_PATTERN = /^(\d{1,15})\.([0-9a-f]{16})\.([0-9a-f]{64})$/;

export class ProofChecker {
  readonly #secret: string | undefined;
  readonly #selfOrigin: string | undefined;
  readonly #windowMs: number;
  readonly #nonceCacheMax: number;
  readonly #nowMs: () => number;
  /** Nonces of accepted handshakes, with the time they may be forgotten, oldest first. */
  readonly #nonces = new Map<string, number>();
  /** Proofs already verified (plain-HTTP variant), with their expiry: one HMAC per proof, not per request. */
  readonly #verified = new Map<string, number>();

  constructor(options: ProofCheckerOptions) {
    this.#secret = options.secret;
    this.#selfOrigin = options.selfUrl === undefined ? undefined : canonicalOrigin(options.selfUrl);
    this.#windowMs = options.windowMs;
    this.#nonceCacheMax = options.nonceCacheMax;
    this.#nowMs = options.nowMs ?? Date.now;
  }

  get required(): boolean {
    return this.#secret !== undefined;
  }

  /**
   * Checks a proof header. `once`: a handshake, whose nonce must be new;
   * otherwise a proof may be reused within its window.
   */
  check(proof: string | undefined, host: string | undefined, once: boolean): ProofVerdict {
    const secret = this.#secret;
    if (secret === undefined) return 'accepted';
    if (proof === undefined || proof === '') return 'missing';
    const now = this.#nowMs();
    if (!once) {
      const expiry = this.#verified.get(proof);
      if (expiry !== undefined && expiry > now) return 'accepted';
    }
    const match = PROOF_PATTERN.exec(proof);
    if (match === null) return 'invalid';
    const timestampMs = Number(match[1]);
    const nonce = match[2]!;
    const origin = this.#origin(host);
    if (origin === undefined) return 'invalid';
    const expected = _mac(secret, timestampMs, nonce, origin);
    if (!timingSafeEqual(expected, Buffer.from(match[3]!, 'hex'))) return 'invalid';
    if (Math.abs(now - timestampMs) > this.#windowMs) return 'stale';
    if (once) return this.#remember(nonce, timestampMs + this.#windowMs, now);
    this.#forgetExpired(this.#verified, now, this.#nonceCacheMax);
    // Only a cache: when it is full of live proofs, start over.
    if (this.#verified.size >= this.#nonceCacheMax) this.#verified.clear();
    this.#verified.set(proof, timestampMs + this.#windowMs);
    return 'accepted';
  }

  #origin(host: string | undefined): string | undefined {
    if (this.#selfOrigin !== undefined) return this.#selfOrigin;
    if (host === undefined || host === '') return undefined;
    try {
      return canonicalOrigin(`http://${host}`);
    } catch {
      return undefined;
    }
  }

  /** Records a handshake's nonce until its proof is too old to be accepted anyway. */
  #remember(nonce: string, forgetAtMs: number, now: number): ProofVerdict {
    if (this.#nonces.has(nonce)) return 'replayed';
    this.#forgetExpired(this.#nonces, now, this.#nonceCacheMax);
    // Still full of live nonces: a flood of handshakes; refusing is safer than forgetting.
    if (this.#nonces.size >= this.#nonceCacheMax) return 'replayed';
    this.#nonces.set(nonce, forgetAtMs);
    return 'accepted';
  }

  /** Drops entries past their expiry, once the map is full (so the sweep is rare). */
  #forgetExpired(map: Map<string, number>, now: number, max: number): void {
    if (map.size < max) return;
    for (const [key, expiry] of map) {
      if (expiry <= now) map.delete(key);
    }
  }
}
