/**
 * An in-process Transport for deterministic cluster tests: peers are
 * InternodeHandlers in the same process, reached through a simulated network
 * with seeded delay and loss, and peers can be cut off and brought back.
 *
 * - Every message goes through the real encoding (format.ts) both ways, so
 *   nothing is shared between "nodes" by reference.
 * - Delays and losses come from a xorshift generator seeded by `seed`: the
 *   same seed and the same calls give the same fates.
 * - A lost request (or answer) is never answered: the caller sees
 *   RINGKV_TIMEOUT at its deadline. A peer set down fails at once with
 *   RINGKV_UNAVAILABLE, like a real transport's down state.
 */
import type { Entry } from '../../storage/index.js';
import { RingkvError } from '../../util/errors.js';
import type { InternodeHandler, ScanPage, Transport, TransportStats } from './contract.js';
import { decodeMessage, encodeBody, type Message, MessageType } from './format.js';
import { errorAnswer, serveMessage } from './serve.js';

export interface SimTransportOptions {
  readonly seed: number;
  /** Each direction of each message waits 0..delayMsMax ms (0: the next event-loop turn). */
  readonly delayMsMax?: number;
  /** Share (0..1) of messages lost, each direction drawn apart. */
  readonly lossRate?: number;
}

export class SimTransport implements Transport {
  readonly #handlers: ReadonlyMap<string, InternodeHandler>;
  readonly #delayMsMax: number;
  readonly #lossRate: number;
  readonly #down = new Set<string>();
  readonly #timers = new Set<NodeJS.Timeout>();
  readonly #rejects = new Set<(err: Error) => void>();
  #state: number;
  #closed = false;
  #requests = 0;
  #timeouts = 0;
  #refusedDown = 0;

  constructor(handlers: ReadonlyMap<string, InternodeHandler>, options: SimTransportOptions) {
    this.#handlers = handlers;
    this.#delayMsMax = options.delayMsMax ?? 0;
    this.#lossRate = options.lossRate ?? 0;
    this.#state = options.seed >>> 0 || 0x9e3779b9;
  }

  /** Cuts a peer off (true) or brings it back (false). */
  setDown(peer: string, down: boolean): void {
    if (down) this.#down.add(peer);
    else this.#down.delete(peer);
  }

  write(peer: string, entry: Entry, deadlineMs: number): Promise<bigint | undefined> {
    return this.#request(peer, { type: MessageType.Write, entry }, deadlineMs) as Promise<bigint | undefined>;
  }

  read(peer: string, key: Buffer, deadlineMs: number): Promise<Entry | undefined> {
    return this.#request(peer, { type: MessageType.Read, key }, deadlineMs) as Promise<Entry | undefined>;
  }

  scan(
    peer: string,
    start: Buffer,
    end: Buffer | undefined,
    limit: number,
    deadlineMs: number,
  ): Promise<ScanPage> {
    return this.#request(
      peer,
      { type: MessageType.Scan, start, end, limit },
      deadlineMs,
    ) as Promise<ScanPage>;
  }

  antiEntropy(peer: string, body: Buffer, deadlineMs: number): Promise<Buffer> {
    return this.#request(peer, { type: MessageType.AntiEntropy, body }, deadlineMs) as Promise<Buffer>;
  }

  isUp(peer: string): boolean {
    return !this.#down.has(peer);
  }

  stats(): TransportStats {
    return {
      requests: this.#requests,
      socketWrites: 0,
      connectAttempts: 0,
      connectFailures: 0,
      timeouts: this.#timeouts,
      refusedDown: this.#refusedDown,
    };
  }

  async close(): Promise<void> {
    this.#closed = true;
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
    const err = new RingkvError('RINGKV_CLOSED', 'Transport is closed');
    for (const reject of this.#rejects) reject(err);
    this.#rejects.clear();
  }

  #request(peer: string, message: Message, deadlineMs: number): Promise<unknown> {
    if (this.#closed) return Promise.reject(new RingkvError('RINGKV_CLOSED', 'Transport is closed'));
    const handler = this.#handlers.get(peer);
    if (handler === undefined || this.#down.has(peer)) {
      this.#refusedDown++;
      return Promise.reject(new RingkvError('RINGKV_UNAVAILABLE', `Peer ${peer} is down`));
    }
    if (deadlineMs <= Date.now()) {
      this.#timeouts++;
      return Promise.reject(new RingkvError('RINGKV_TIMEOUT', `Deadline passed before sending to ${peer}`));
    }
    this.#requests++;
    const sent = encodeBody(message);
    const lostGoing = this.#lost();
    const lostComing = this.#lost();
    const delayGoing = this.#delay();
    const delayComing = this.#delay();
    return new Promise((resolve, reject) => {
      let settled = false;
      const finish = (fn: () => void): void => {
        if (settled) return;
        settled = true;
        clearTimeout(deadline);
        this.#timers.delete(deadline);
        this.#rejects.delete(reject);
        fn();
      };
      this.#rejects.add(reject);
      const deadline = this.#after(Math.max(0, deadlineMs - Date.now()), () =>
        finish(() => {
          this.#timeouts++;
          reject(new RingkvError('RINGKV_TIMEOUT', `Peer ${peer} did not answer in time`));
        }),
      );
      if (lostGoing) return;
      this.#after(delayGoing, () => {
        const received = decodeMessage(message.type, sent);
        const answered =
          typeof received === 'string'
            ? Promise.resolve(errorAnswer(new RingkvError('RINGKV_PROTOCOL', received), {}))
            : serveMessage(handler, received, {
                frameBytesMax: Number.MAX_SAFE_INTEGER,
                scanEntriesMax: 4096,
              });
        void answered.then((answer) => {
          if (lostComing || this.#closed) return;
          const bytes = encodeBody(answer);
          this.#after(delayComing, () => finish(() => _settle(peer, answer.type, bytes, resolve, reject)));
        });
      });
    });
  }

  #after(ms: number, fn: () => void): NodeJS.Timeout {
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      fn();
    }, ms);
    this.#timers.add(timer);
    return timer;
  }

  #next(): number {
    let s = this.#state;
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    this.#state = s;
    return s / 0x100000000;
  }

  #lost(): boolean {
    return this.#lossRate > 0 && this.#next() < this.#lossRate;
  }

  #delay(): number {
    return this.#delayMsMax > 0 ? Math.floor(this.#next() * (this.#delayMsMax + 1)) : 0;
  }
}

function _settle(
  peer: string,
  type: number,
  bytes: Buffer,
  resolve: (value: unknown) => void,
  reject: (err: Error) => void,
): void {
  const answer = decodeMessage(type, bytes);
  if (typeof answer === 'string')
    reject(new RingkvError('RINGKV_PROTOCOL', `Bad answer from ${peer}: ${answer}`));
  else if (answer.type === MessageType.Error)
    reject(new RingkvError(answer.code, `Peer ${peer} failed: ${answer.message}`));
  else if (answer.type === MessageType.Entry) resolve(answer.entry);
  else if (answer.type === MessageType.Batch) resolve({ entries: answer.entries, more: answer.more });
  else if (answer.type === MessageType.Ok) resolve(answer.newerVersion);
  else if (answer.type === MessageType.AntiEntropyAnswer) resolve(answer.body);
  else resolve(undefined);
}
