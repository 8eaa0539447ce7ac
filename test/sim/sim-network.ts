/**
 * The simulated network of the cluster simulation: which nodes are up, which
 * can reach each other, which messages are lost. Each node's transport is a
 * SimLinks: the Transport and PeerLinks contracts over a SimTransport
 * (src/cluster/transport/sim-transport.ts: real message encoding both ways,
 * seeded delays, deadlines), whose peers are stand-ins that ask this
 * network, when a message arrives, what becomes of it:
 *
 * - the sender and the receiver must be up and on the same side of any
 *   partition, or the message is lost (the sender sees RINGKV_TIMEOUT at its
 *   deadline);
 * - else it is lost with probability lossRate, and so is its answer;
 * - a receiver that crashes before it answers never answers.
 *
 * A crashed node is refused at once (RINGKV_UNAVAILABLE, as a connection
 * refused is); a partition starts as a black hole and, after a seeded delay,
 * the sides mark each other down (as a transport does once its link times
 * out) and refuse at once. When a node restarts or a partition heals, every
 * node that reaches a peer again is told (onPeerUp, as a transport whose link
 * opens tells its node: hints for it are handed off at once).
 *
 * `lieAboutWrites` breaks the network on purpose, for the test that shows the
 * checks can fail: replica writes are answered as stored and dropped.
 */
import type {
  FrameTransportOptions,
  InternodeHandler,
  PeerStatus,
  ScanPage,
} from '../../src/cluster/transport/index.js';
import { SimTransport } from '../../src/cluster/transport/index.js';
import type { ClusterTransport } from '../../src/node/cluster-parts.js';
import type { Entry } from '../../src/storage/index.js';

/**
 * A promise that never settles: a message or an answer the network lost. A
 * new one each time: a shared one would hold every chain waiting on it, and
 * with them every node that ever lost a message, for the life of the process.
 */
function lost(): Promise<never> {
  return new Promise(() => undefined);
}

export interface NetworkCounters {
  /** Requests that reached a receiver. */
  delivered: number;
  /** Requests or answers lost (drops, partitions, crashed receivers). */
  dropped: number;
}

interface _Endpoint {
  /** The node's replica while it is up: what its peers' messages reach. */
  handler: InternodeHandler | undefined;
  /** Bumped at every start: an answer from an earlier life is never delivered. */
  life: number;
  /** The transports of the node's current life. */
  links: SimLinks | undefined;
}

export class SimNetwork {
  readonly #random: () => number;
  readonly #delayMsMax: number;
  readonly #endpoints = new Map<string, _Endpoint>();
  /** Each node's side while a partition lasts; empty: none. */
  #sideOf = new Map<string, number>();
  /** Whether the sides of the partition refuse each other at once yet (else: a black hole). */
  #partitionDetected = false;
  lossRate: number;
  lieAboutWrites = false;
  readonly counters: NetworkCounters = { delivered: 0, dropped: 0 };

  constructor(
    urls: readonly string[],
    options: { random: () => number; delayMsMax: number; lossRate: number },
  ) {
    this.#random = options.random;
    this.#delayMsMax = options.delayMsMax;
    this.lossRate = options.lossRate;
    for (const url of urls) this.#endpoints.set(url, { handler: undefined, life: 0, links: undefined });
  }

  /** The transport for `url`'s new life (ClusterParts' createTransport). */
  linksFor(url: string, options: FrameTransportOptions): SimLinks {
    const endpoint = this.#endpoint(url);
    const handlers = new Map<string, InternodeHandler>();
    for (const peer of this.#endpoints.keys()) {
      if (peer !== url) handlers.set(peer, this.#courier(url, peer));
    }
    const links = new SimLinks(this, url, handlers, {
      seed: Math.floor(this.#random() * 2 ** 32),
      delayMsMax: this.#delayMsMax,
      onPeerUp: options.onPeerUp,
    });
    endpoint.links = links;
    return links;
  }

  /** `url` is up and serves with `handler`; the peers that reach it are told. */
  up(url: string, handler: InternodeHandler): void {
    const endpoint = this.#endpoint(url);
    endpoint.handler = handler;
    endpoint.life++;
    this.#refreshLinks();
  }

  /** `url` lost power: nothing reaches it, it answers nothing more, its transport is gone. */
  down(url: string): void {
    const endpoint = this.#endpoint(url);
    endpoint.handler = undefined;
    endpoint.links = undefined;
    endpoint.life++;
    this.#refreshLinks();
  }

  isUp(url: string): boolean {
    return this.#endpoint(url).handler !== undefined;
  }

  /** Cuts the nodes into sides that cannot talk to each other. */
  partition(sides: readonly (readonly string[])[]): void {
    this.#sideOf = new Map(sides.flatMap((side, i) => side.map((url) => [url, i] as const)));
    this.#partitionDetected = false;
    this.#refreshLinks();
  }

  /** The sides of the partition notice: they refuse each other at once from now on. */
  detectPartition(): void {
    this.#partitionDetected = true;
    this.#refreshLinks();
  }

  heal(): void {
    this.#sideOf = new Map();
    this.#partitionDetected = false;
    this.#refreshLinks();
  }

  get partitioned(): boolean {
    return this.#sideOf.size > 0;
  }

  /** Whether a message from `from` reaches `to` now. */
  reaches(from: string, to: string): boolean {
    return this.isUp(from) && this.isUp(to) && this.#sideOf.get(from) === this.#sideOf.get(to);
  }

  /** Sets each live transport's view of its peers: down when refused at once, told when back. */
  #refreshLinks(): void {
    for (const [url, endpoint] of this.#endpoints) {
      const links = endpoint.links;
      if (links === undefined) continue;
      for (const peer of this.#endpoints.keys()) {
        if (peer === url) continue;
        const refused = !this.isUp(peer) || (this.#partitionDetected && !this.reaches(url, peer));
        links.setPeerState(peer, refused ? 'down' : this.reaches(url, peer) ? 'up' : 'unknown');
      }
    }
  }

  /** What `from`'s transport calls for `to`: the message's fate is decided as it arrives. */
  #courier(from: string, to: string): InternodeHandler {
    const deliver = <T>(write: boolean, call: (handler: InternodeHandler) => Promise<T>): Promise<T> => {
      const receiver = this.#endpoint(to);
      const sender = this.#endpoint(from);
      const handler = receiver.handler;
      if (handler === undefined || !this.reaches(from, to) || this.#lost()) {
        this.counters.dropped++;
        return lost();
      }
      this.counters.delivered++;
      if (write && this.lieAboutWrites) return Promise.resolve(undefined as T);
      const [receiverLife, senderLife] = [receiver.life, sender.life];
      const answer = (): boolean => {
        if (receiver.life !== receiverLife || sender.life !== senderLife) return false;
        if (!this.reaches(from, to) || this.#lost()) {
          this.counters.dropped++;
          return false;
        }
        return true;
      };
      return call(handler).then(
        (value) => (answer() ? value : lost()),
        (err: unknown) => (answer() ? Promise.reject(err) : lost()),
      );
    };
    return {
      write: (entry: Entry) => deliver(true, (h) => h.write(entry)),
      read: (key: Buffer) => deliver(false, (h) => h.read(key)),
      scan: (start: Buffer, end: Buffer | undefined, limit: number): Promise<ScanPage> =>
        deliver(false, (h) => h.scan(start, end, limit)),
      antiEntropy: (body: Buffer) =>
        deliver(false, (h) => {
          if (h.antiEntropy === undefined) throw new Error(`${to} does not serve anti-entropy`);
          return h.antiEntropy(body);
        }),
    };
  }

  #lost(): boolean {
    return this.lossRate > 0 && this.#random() < this.lossRate;
  }

  #endpoint(url: string): _Endpoint {
    const endpoint = this.#endpoints.get(url);
    if (endpoint === undefined) throw new Error(`Not a node of the simulation: ${url}`);
    return endpoint;
  }
}

/** One node's transport for one life: a SimTransport plus the link states a node's transport reports. */
export class SimLinks implements ClusterTransport {
  readonly #network: SimNetwork;
  readonly #selfUrl: string;
  readonly #sim: SimTransport;
  readonly #onPeerUp: ((peer: string) => void) | undefined;
  readonly #state = new Map<string, 'up' | 'down' | 'unknown'>();
  #closed = false;

  constructor(
    network: SimNetwork,
    selfUrl: string,
    handlers: ReadonlyMap<string, InternodeHandler>,
    options: { seed: number; delayMsMax: number; onPeerUp: ((peer: string) => void) | undefined },
  ) {
    this.#network = network;
    this.#selfUrl = selfUrl;
    this.#sim = new SimTransport(handlers, { seed: options.seed, delayMsMax: options.delayMsMax });
    this.#onPeerUp = options.onPeerUp;
  }

  /**
   * The network's view of a peer: 'down' refuses at once, 'up' and
   * 'unknown' (a black hole) send. Coming back from down tells the node.
   */
  setPeerState(peer: string, state: 'up' | 'down' | 'unknown'): void {
    if (this.#closed) return;
    const before = this.#state.get(peer);
    this.#state.set(peer, state);
    this.#sim.setDown(peer, state === 'down');
    if (state === 'up' && before !== 'up') this.#onPeerUp?.(peer);
  }

  write(peer: string, entry: Entry, deadlineMs: number): Promise<bigint | undefined> {
    return this.#sim.write(peer, entry, deadlineMs);
  }

  read(peer: string, key: Buffer, deadlineMs: number): Promise<Entry | undefined> {
    return this.#sim.read(peer, key, deadlineMs);
  }

  scan(peer: string, start: Buffer, end: Buffer | undefined, limit: number, deadlineMs: number) {
    return this.#sim.scan(peer, start, end, limit, deadlineMs);
  }

  antiEntropy(peer: string, body: Buffer, deadlineMs: number): Promise<Buffer> {
    return this.#sim.antiEntropy(peer, body, deadlineMs);
  }

  isUp(peer: string): boolean {
    return this.#sim.isUp(peer);
  }

  /** At start: every peer the network reaches is up (and the node told), the rest refused or unknown. */
  async connect(peers: readonly string[]): Promise<void> {
    for (const peer of peers) {
      const reached = this.#network.reaches(this.#selfUrl, peer);
      this.setPeerState(peer, reached ? 'up' : this.#network.isUp(peer) ? 'unknown' : 'down');
    }
  }

  peerSeen(_peer: string): void {}

  peerLeaving(_peer: string): void {}

  forget(_peer: string): void {}

  async announceLeaving(_deadlineMs: number): Promise<void> {}

  peerStatus(peer: string): PeerStatus {
    return { state: this.#sim.isUp(peer) ? 'up' : 'down', failures: 0 };
  }

  stats() {
    return this.#sim.stats();
  }

  close(): Promise<void> {
    this.#closed = true;
    return this.#sim.close();
  }
}
