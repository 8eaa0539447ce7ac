/**
 * HintStore: writes that a replica missed, kept on disk per peer until the
 * handoff loop (handoff.ts) delivers them. format.ts owns the bytes.
 *
 * Contract:
 * - add() appends the entry, with the `from` of the write it is of (what
 *   delivery places it by: handoff.ts), to the peer's newest hint file and resolves once
 *   it is durable per the sync mode (sync on: fdatasync'ed). Adds that arrive
 *   in one event-loop turn share one write and one sync (group commit), one
 *   write in flight per peer; those that do not fit in the newest file go
 *   on, in order, into new ones, with a write and a sync per file. It
 *   resolves false, without writing, when the peer's or the store's byte
 *   budget is full: the hint is dropped and counted; anti-entropy and read
 *   repair cover what it carried. Bytes being written count against the
 *   budget until they are pending. The entry's bytes are copied at once;
 *   the caller may reuse them.
 * - A hint of a value older than ageMaxMs (by its version's physical time)
 *   is never stored nor handed out: add() refuses it, open() deletes files
 *   that hold nothing else, and peek() leaves such hints out of its batch
 *   (acknowledge() drops them with it); each is counted (tooOld). Past the
 *   tombstone grace a replica may have dropped the tombstone that shadows
 *   the value, which would come back. Tombstones, and values that have
 *   expired, have no age limit: a late one brings nothing back, and hides
 *   what a replica that was away longer than the grace still holds.
 * - peek() hands out the oldest undelivered hints of a peer, in append order,
 *   without removing them; acknowledge() removes them once delivered. One
 *   delivery per peer at a time: handoff.ts serializes them (asserted).
 *   Delivery progress is kept in memory; a file is deleted once every hint in
 *   it was acknowledged, so after a restart at most the rest of one file per
 *   peer is delivered twice, which is harmless since the newest version wins.
 * - open() reloads every peer's files: a torn tail is cut (and the file
 *   truncated), a file with corruption is renamed to *.hint.corrupt, reported
 *   through `log` and stats() with file and offset, and skipped, never fatal.
 *   At most limits.hintCorruptFilesPerPeerMax such files are kept per peer
 *   (the newest); older ones are deleted, with a log line.
 *   Appends after a restart go to a new file; old files are only read.
 *   Delivery sets a file aside the same way when it finds corruption in it;
 *   a write under way to that file is written again to a new one.
 * - A file holds at most segmentBytesMax bytes (limits.hintSegmentBytesMax),
 *   header included, or else one record alone that is larger than that (a
 *   hint of a large value: records are never split); see #appendTarget.
 * - After close() (which waits for queued writes), add() rejects with RINGKV_CLOSED.
 *
 * - Files go through a vfs (default: the real file system), the engine's
 *   seam: tests crash the store on an in-memory one, or inject faults.
 *   A new peer directory is made durable in its parent (vfs.mkdir), so
 *   that a power loss cannot take acknowledged hints away with it.
 *
 * Example:
 *   const hints = await HintStore.open(join(dataDir, 'hints'), { sync: true });
 *   await hints.add('http://10.0.0.2:8080', entry); // the replica's write failed
 */
import { dirname, join } from 'node:path';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { limits } from '../../config/limits.js';
import {
  type Entry,
  EntryKind,
  nodeVfs,
  truncateDurably,
  type Vfs,
  type VfsFile,
  versionPhysicalMs,
  writeFully,
} from '../../storage/index.js';
import { assert } from '../../util/assert.js';
import { errorMessage, RingkvError } from '../../util/errors.js';
import {
  checkHintFile,
  encodeHintHeader,
  encodeHintRecord,
  HINT_CORRUPT_SUFFIX,
  HINT_FORMAT_VERSION,
  HINT_HEADER_BYTES,
  HINT_RECORD_HEADER_BYTES,
  hintFileName,
  hintFileSequence,
  hintRecordBytes,
  peerDirName,
  peerFromDirName,
  readHintRecord,
} from './format.js';

export interface HintStoreOptions {
  /** true (default): add() resolves after fdatasync. false: once written to the OS. */
  readonly sync?: boolean;
  readonly bytesPerPeerMax?: number;
  readonly bytesTotalMax?: number;
  readonly segmentBytesMax?: number;
  /** One line per notable event (corruption found, files set aside). */
  readonly log?: (line: string) => void;
  /** The file system (default: the real one). */
  readonly vfs?: Vfs;
  /** Values whose version is older than this are not kept (default: hintAgeMaxMs of the tombstone grace). */
  readonly ageMaxMs?: number;
  /** Wall clock in ms, that versions are aged by (default Date.now; tests move it). */
  readonly wallMs?: () => number;
}

/**
 * The oldest a hint of a value may be, by its version, to be stored or
 * delivered: the tombstone grace less a margin (limits.hintGraceMarginMsMax
 * says why), so that a replica gets it while it still holds any tombstone
 * newer than it.
 */
export function hintAgeMaxMs(tombstoneGraceMs: number): number {
  return tombstoneGraceMs - Math.min(tombstoneGraceMs / 10, limits.hintGraceMarginMsMax);
}

/** Hints of one peer handed out by peek(), acknowledged as a whole. */
export interface HintBatch {
  readonly peer: string;
  /** In append order, hints too old to deliver left out; keys and values are views into a buffer nothing reuses. */
  readonly entries: readonly Entry[];
  /** The `from` of the write each entry is of, by index; undefined when not known (a version-1 file). */
  readonly froms: readonly (number | undefined)[];
  /** Hints of the batch's records left out as too old: acknowledge() drops them too. */
  readonly tooOld: number;
  /** Record bytes (framing included) the batch frees once acknowledged. */
  readonly bytes: number;
  readonly segment: number;
  readonly start: number;
  readonly end: number;
}

export interface HintPending {
  readonly entries: number;
  readonly bytes: number;
}

export interface HintCorruption {
  readonly file: string;
  readonly offset: number;
  readonly detail: string;
}

export interface HintStoreStats {
  /** Undelivered hints per peer (durable ones; queued writes not yet). */
  readonly pending: Record<string, HintPending>;
  readonly pendingBytes: number;
  readonly added: number;
  readonly dropped: number;
  readonly droppedBytes: number;
  /** Hints of values too old to deliver (ageMaxMs): refused by add(), deleted at open, or left out of a batch. */
  readonly tooOld: number;
  readonly delivered: number;
  /** Of those, per peer (peers with none delivered since open are left out). */
  readonly deliveredByPeer: Record<string, number>;
  /** Records found intact in files loaded at open, and torn bytes cut then. */
  readonly reloaded: number;
  readonly tornBytes: number;
  readonly writeErrors: number;
  /** Files set aside as corrupt, at open or during delivery. */
  readonly corruptFiles: readonly HintCorruption[];
}

interface _Segment {
  readonly sequence: number;
  readonly path: string;
  /** Its format version (files of an older one are loaded at open, and only read). */
  readonly version: number;
  /** Durable size: header plus records written (and synced with sync on). */
  bytes: number;
  entries: number;
}

interface _Queued {
  readonly records: Buffer[];
  /** Bytes of its records not yet written (all of them until its write starts). */
  bytes: number;
  readonly done: Promise<void>;
  readonly resolve: () => void;
  readonly reject: (err: Error) => void;
}

/** One peer's files and the state of appends and delivery. */
interface _PeerHints {
  readonly peer: string;
  readonly dir: string;
  /** Oldest first; the last one takes appends when `active` is open. */
  segments: _Segment[];
  /** Delivered up to here in segments[0]... */
  headOffset: number;
  /** ...which is this many of its entries. */
  headEntries: number;
  pendingEntries: number;
  pendingBytes: number;
  /** Hints delivered to this peer since open. */
  delivered: number;
  /** Bytes added and not yet pending: queued, or in the write under way (they count against the budget). */
  queuedBytes: number;
  active: VfsFile | undefined;
  /** The file a write is under way to: #setAside leaves it to the writer to close. */
  writing: VfsFile | undefined;
  queue: _Queued | undefined;
  /** The running write loop, if any: it takes queues until none is left. */
  flushing: Promise<void> | undefined;
  delivering: boolean;
  /** The next file's number; shared with the peer's state before a forget() (#peer says why). */
  readonly sequence: { next: number };
  dirReady: boolean;
}

export class HintStore {
  readonly #dir: string;
  readonly #vfs: Vfs;
  readonly #sync: boolean;
  readonly #bytesPerPeerMax: number;
  readonly #bytesTotalMax: number;
  readonly #segmentBytesMax: number;
  readonly #ageMaxMs: number;
  readonly #wallMs: () => number;
  readonly #log: (line: string) => void;
  readonly #peers = new Map<string, _PeerHints>();
  readonly #corrupt: HintCorruption[] = [];
  /** Sequence counters of forgotten peers, taken up if they get hints again. */
  readonly #forgottenSequences = new Map<string, { next: number }>();
  #totalBytes = 0;
  #closed = false;
  #added = 0;
  #dropped = 0;
  #droppedBytes = 0;
  #tooOld = 0;
  #delivered = 0;
  #reloaded = 0;
  #tornBytes = 0;
  #writeErrors = 0;

  private constructor(dir: string, options: HintStoreOptions) {
    this.#dir = dir;
    this.#vfs = options.vfs ?? nodeVfs;
    this.#sync = options.sync ?? true;
    this.#bytesPerPeerMax = options.bytesPerPeerMax ?? limits.hintBytesPerPeerMax;
    this.#bytesTotalMax = options.bytesTotalMax ?? limits.hintBytesTotalMax;
    this.#segmentBytesMax = options.segmentBytesMax ?? limits.hintSegmentBytesMax;
    // Read at open, as the engine reads its grace.
    this.#ageMaxMs = options.ageMaxMs ?? hintAgeMaxMs(limits.tombstoneGraceMs);
    this.#wallMs = options.wallMs ?? (() => Date.now());
    this.#log = options.log ?? (() => {});
    assert(this.#bytesPerPeerMax <= this.#bytesTotalMax, 'per-peer hint budget above the total');
  }

  /** Opens (creating if missing) the hint directory and reloads what it holds. */
  static async open(dir: string, options: HintStoreOptions = {}): Promise<HintStore> {
    const store = new HintStore(dir, options);
    await store.#load();
    return store;
  }

  /**
   * Stores a hint for `peer` of a write made with `from` (undefined: not
   * known); false when it was dropped because a budget is full or it is too old.
   */
  add(peer: string, entry: Entry, from?: number): Promise<boolean> {
    if (this.#closed) return Promise.reject(new RingkvError('RINGKV_CLOSED', 'Hint store is closed'));
    if (this.tooOld(entry)) {
      this.#tooOld++;
      return Promise.resolve(false);
    }
    const bytes = hintRecordBytes(entry);
    const hints = this.#peer(peer);
    if (
      hints.pendingBytes + hints.queuedBytes + bytes > this.#bytesPerPeerMax ||
      this.#totalBytes + bytes > this.#bytesTotalMax
    ) {
      this.#dropped++;
      this.#droppedBytes += bytes;
      return Promise.resolve(false);
    }
    const record = Buffer.allocUnsafe(bytes);
    encodeHintRecord(entry, from, record, 0);
    this.#added++;
    this.#totalBytes += bytes;
    hints.queuedBytes += bytes;
    let queued = hints.queue;
    if (queued === undefined) {
      queued = _newQueued();
      hints.queue = queued;
      // Adds made in this turn join the same write; the first starts the loop.
      hints.flushing ??= this.#flush(hints);
    }
    queued.records.push(record);
    queued.bytes += bytes;
    return queued.done.then(() => true);
  }

  /**
   * Whether a hint of `entry` is too old to be stored or delivered (ageMaxMs).
   * A tombstone never is, nor a value that has expired: both hide older
   * versions, and both are collected a grace after they took effect, so a
   * late one brings nothing back, and dropping it could.
   */
  tooOld(entry: Entry): boolean {
    if (entry.kind === EntryKind.Tombstone) return false;
    const nowMs = this.#wallMs();
    if (entry.expiresAtMs !== 0 && entry.expiresAtMs <= nowMs) return false;
    return versionPhysicalMs(entry.version) < nowMs - this.#ageMaxMs;
  }

  /** Undelivered hints of `peer`. */
  pending(peer: string): HintPending {
    const hints = this.#peers.get(peer);
    return { entries: hints?.pendingEntries ?? 0, bytes: hints?.pendingBytes ?? 0 };
  }

  /** Peers with undelivered hints. */
  peers(): string[] {
    return [...this.#peers.values()].filter((h) => h.pendingEntries > 0).map((h) => h.peer);
  }

  /**
   * The oldest undelivered hints of `peer`: at most `entriesMax` records and,
   * beyond the first, about `bytesMax` bytes, those too old left out (the
   * batch may hold no entry then). Undefined when there are none. Call
   * acknowledge() once they are delivered, or nothing to retry them later.
   */
  async peek(peer: string, entriesMax: number, bytesMax: number): Promise<HintBatch | undefined> {
    assert(entriesMax >= 1 && bytesMax >= 1, 'a hint batch holds at least one entry');
    const hints = this.#peers.get(peer);
    if (hints === undefined || this.#closed) return undefined;
    assert(!hints.delivering, `one delivery at a time for ${peer}`);
    hints.delivering = true;
    try {
      for (;;) {
        await this.#dropDelivered(hints);
        const segment = hints.segments[0];
        if (segment === undefined || hints.headOffset >= segment.bytes) return undefined;
        const batch = await this.#readBatch(hints, segment, entriesMax, bytesMax);
        if (batch !== undefined) return batch;
        // The file was set aside as corrupt: go on with the next one.
      }
    } finally {
      hints.delivering = false;
    }
  }

  /**
   * Removes a delivered batch (and its hints too old to deliver); deletes its
   * file once every hint in it was. `rerouted`: how many of its entries went
   * to other nodes than the peer (they are not counted as delivered to it).
   */
  async acknowledge(batch: HintBatch, rerouted = 0): Promise<void> {
    const hints = this.#peers.get(batch.peer);
    const segment = hints?.segments[0];
    assert(hints !== undefined && segment !== undefined, `no hints to acknowledge for ${batch.peer}`);
    assert(
      segment.sequence === batch.segment && hints.headOffset === batch.start,
      'acknowledged out of order',
    );
    const records = batch.entries.length + batch.tooOld;
    hints.headOffset = batch.end;
    hints.headEntries += records;
    hints.pendingEntries -= records;
    hints.pendingBytes -= batch.bytes;
    this.#totalBytes -= batch.bytes;
    this.#tooOld += batch.tooOld;
    this.#delivered += batch.entries.length - rerouted;
    hints.delivered += batch.entries.length - rerouted;
    await this.#dropDelivered(hints);
  }

  /**
   * Deletes the head file once every hint in it was delivered. The last file
   * stops taking appends first (so the next add() starts a new file with a
   * new sequence number), unless a write to it is under way: then it goes on
   * a later call.
   */
  async #dropDelivered(hints: _PeerHints): Promise<void> {
    const segment = hints.segments[0];
    if (segment === undefined || hints.headOffset < segment.bytes) return;
    const isLast = hints.segments.length === 1;
    if (isLast && hints.flushing !== undefined) return;
    hints.segments.shift();
    hints.headOffset = HINT_HEADER_BYTES;
    hints.headEntries = 0;
    let active: VfsFile | undefined;
    if (isLast) {
      active = hints.active;
      hints.active = undefined;
    }
    await active?.close().catch(() => undefined);
    await this.#remove(segment.path);
  }

  stats(): HintStoreStats {
    const pending: Record<string, HintPending> = {};
    const deliveredByPeer: Record<string, number> = {};
    let pendingBytes = 0;
    for (const hints of this.#peers.values()) {
      if (hints.delivered > 0) deliveredByPeer[hints.peer] = hints.delivered;
      if (hints.pendingEntries === 0) continue;
      pending[hints.peer] = { entries: hints.pendingEntries, bytes: hints.pendingBytes };
      pendingBytes += hints.pendingBytes;
    }
    return {
      pending,
      pendingBytes,
      added: this.#added,
      dropped: this.#dropped,
      droppedBytes: this.#droppedBytes,
      tooOld: this.#tooOld,
      delivered: this.#delivered,
      deliveredByPeer,
      reloaded: this.#reloaded,
      tornBytes: this.#tornBytes,
      writeErrors: this.#writeErrors,
      corruptFiles: [...this.#corrupt],
    };
  }

  /**
   * Deletes every hint of `peer` (it left the cluster and will not be back
   * for them): its files go once the write under way ended; set-aside files
   * stay, and later hints for it number their files above them. Returns how many
   * undelivered hints went. The caller makes sure no delivery to the peer is
   * under way (handoff.ts calls it in place of one).
   */
  async forget(peer: string): Promise<number> {
    const hints = this.#peers.get(peer);
    if (hints === undefined || this.#closed) return 0;
    assert(!hints.delivering, `no delivery to ${peer} while its hints are forgotten`);
    // Adds from now on (there should be none) start afresh, numbering on from these files.
    this.#peers.delete(peer);
    this.#forgottenSequences.set(peer, hints.sequence);
    await hints.flushing;
    const active = hints.active;
    hints.active = undefined;
    await active?.close().catch(() => undefined);
    const forgotten = hints.pendingEntries;
    this.#totalBytes -= hints.pendingBytes;
    hints.pendingEntries = 0;
    hints.pendingBytes = 0;
    for (const segment of hints.segments.splice(0)) await this.#remove(segment.path);
    return forgotten;
  }

  /** Writes what is queued, closes files; later adds reject with RINGKV_CLOSED. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const hints of this.#peers.values()) {
      // No add is taken any more, so the loop ends once it wrote what is queued.
      await hints.flushing;
      const active = hints.active;
      hints.active = undefined;
      await active?.close().catch(() => undefined);
    }
  }

  #peer(peer: string): _PeerHints {
    let hints = this.#peers.get(peer);
    if (hints === undefined) {
      hints = {
        peer,
        dir: join(this.#dir, peerDirName(peer)),
        segments: [],
        headOffset: HINT_HEADER_BYTES,
        headEntries: 0,
        pendingEntries: 0,
        pendingBytes: 0,
        delivered: 0,
        queuedBytes: 0,
        active: undefined,
        writing: undefined,
        queue: undefined,
        flushing: undefined,
        delivering: false,
        // After a forget() its directory may still hold set-aside files, and files the forget (or a
        // write it waits for) has not deleted yet: new numbers go on above them, never reused.
        sequence: this.#forgottenSequences.get(peer) ?? { next: 1 },
        dirReady: false,
      };
      this.#forgottenSequences.delete(peer);
      this.#peers.set(peer, hints);
    }
    return hints;
  }

  /**
   * The peer's write loop: from the next event-loop turn (so that adds of
   * this turn join), one write (and sync) per queue, until none is left.
   */
  async #flush(hints: _PeerHints): Promise<void> {
    await nextTurn();
    for (let queued = hints.queue; queued !== undefined; queued = hints.queue) {
      hints.queue = undefined;
      await this.#writeQueued(hints, queued);
    }
    hints.flushing = undefined;
  }

  /**
   * Writes a queue's records in order, over as many files as the bound on
   * a file's size takes (#appendTarget), one write and one sync per file;
   * resolves the queue once all are durable.
   * Records written reach pending file by file, so that delivery may go on
   * with a file while the next is written.
   */
  async #writeQueued(hints: _PeerHints, queued: _Queued): Promise<void> {
    const { records } = queued;
    // Records before this one are durable and pending.
    let first = 0;
    let handle: VfsFile | undefined;
    try {
      while (first < records.length) {
        const segment = await this.#appendTarget(hints, records[first]!.length);
        // As many records as fit within the bound, and always the first: one larger than the
        // bound alone goes by itself, to the new file #appendTarget gave it.
        let end = first + 1;
        let bytes = records[first]!.length;
        while (
          end < records.length &&
          segment.bytes + bytes + records[end]!.length <= this.#segmentBytesMax
        ) {
          bytes += records[end]!.length;
          end++;
        }
        const count = end - first;
        const data = count === 1 ? records[first]! : Buffer.concat(records.slice(first, end), bytes);
        handle = hints.active!;
        hints.writing = handle;
        try {
          await writeFully(handle, data, 0, data.length, segment.bytes);
          if (this.#sync) await handle.datasync();
        } finally {
          hints.writing = undefined;
        }
        if (hints.active !== handle) {
          // Delivery found corruption in this file meanwhile and set it aside (#setAside): these
          // records would be lost in it, and counted pending with no file, so they go to a new one.
          await handle.close().catch(() => undefined);
          handle = undefined;
          continue;
        }
        segment.bytes += bytes;
        segment.entries += count;
        assert(
          segment.bytes <= this.#segmentBytesMax || segment.entries === 1,
          `hint file ${segment.path} of ${segment.bytes} bytes holds ${segment.entries} records, past ${this.#segmentBytesMax} bytes`,
        );
        // From queued to pending at once: the budget check in add() sees them all along.
        hints.queuedBytes -= bytes;
        queued.bytes -= bytes;
        hints.pendingEntries += count;
        hints.pendingBytes += bytes;
        first = end;
      }
      queued.resolve();
    } catch (err) {
      // Nobody knows what reached the file: later records go to a new one, so
      // the damage stays a torn tail that the next open cuts off. Records that
      // reached an earlier file of this queue stay there, pending, and are
      // delivered; the adds of the queue are all told that it failed.
      this.#writeErrors++;
      hints.queuedBytes -= queued.bytes;
      this.#totalBytes -= queued.bytes;
      // The file written to, even when #setAside took it away meanwhile.
      const active = hints.active ?? handle;
      hints.active = undefined;
      await active?.close().catch(() => undefined);
      queued.reject(
        new RingkvError('RINGKV_IO', `Cannot write hints for ${hints.peer}: ${errorMessage(err)}`, {
          cause: err,
        }),
      );
    }
  }

  /**
   * The file the next record, of `bytes` bytes, goes to: the newest file
   * while it takes appends and the record fits within segmentBytesMax, or
   * while it holds no record yet; a new file otherwise. So a file never
   * grows past the bound but by a record that is alone larger than it:
   * values go up to limits.valueBytesMax (8 MiB), past the bound (1 MiB),
   * and a record is never split, so such a hint goes alone into a file of
   * its own, and the record after it starts another.
   */
  async #appendTarget(hints: _PeerHints, bytes: number): Promise<_Segment> {
    const last = hints.segments.at(-1);
    if (hints.active !== undefined && last !== undefined) {
      if (last.entries === 0 || last.bytes + bytes <= this.#segmentBytesMax) return last;
      const full = hints.active;
      hints.active = undefined;
      await full.close();
    }
    if (!hints.dirReady) {
      await this.#vfs.mkdir(hints.dir);
      hints.dirReady = true;
    }
    const sequence = hints.sequence.next++;
    const path = join(hints.dir, hintFileName(sequence));
    const handle = await this.#vfs.open(path, 'wx');
    try {
      const header = encodeHintHeader();
      await writeFully(handle, header, 0, header.length, 0);
      if (this.#sync) {
        await handle.datasync();
        await this.#vfs.syncDir(hints.dir);
      }
    } catch (err) {
      await handle.close().catch(() => undefined);
      throw err;
    }
    const segment: _Segment = {
      sequence,
      path,
      version: HINT_FORMAT_VERSION,
      bytes: HINT_HEADER_BYTES,
      entries: 0,
    };
    if (hints.segments.length === 0) {
      hints.headOffset = HINT_HEADER_BYTES;
      hints.headEntries = 0;
    }
    hints.segments.push(segment);
    hints.active = handle;
    return segment;
  }

  /** Reads the next batch of the head segment; undefined when the file turned out corrupt and was set aside. */
  async #readBatch(
    hints: _PeerHints,
    segment: _Segment,
    entriesMax: number,
    bytesMax: number,
  ): Promise<HintBatch | undefined> {
    const start = hints.headOffset;
    const available = segment.bytes - start;
    let buf = await this.#read(
      segment.path,
      start,
      Math.min(available, Math.max(bytesMax, HINT_RECORD_HEADER_BYTES)),
    );
    const first = readHintRecord(buf, 0, buf.length, segment.version);
    if ('problem' in first && first.problem === 'incomplete' && buf.length >= HINT_RECORD_HEADER_BYTES) {
      // One record larger than bytesMax goes alone.
      const whole = HINT_RECORD_HEADER_BYTES + buf.readUInt32BE(0);
      if (whole <= available) buf = await this.#read(segment.path, start, whole);
    }
    const entries: Entry[] = [];
    const froms: (number | undefined)[] = [];
    let tooOld = 0;
    let offset = 0;
    while (offset < buf.length && entries.length + tooOld < entriesMax) {
      const read = readHintRecord(buf, offset, buf.length, segment.version);
      if ('entry' in read) {
        if (this.tooOld(read.entry)) {
          tooOld++;
        } else {
          entries.push(read.entry);
          froms.push(read.from);
        }
        offset = read.end;
        continue;
      }
      if (read.problem === 'incomplete' && offset > 0) break;
      await this.#setAside(hints, segment, start + offset, read.detail);
      return undefined;
    }
    return {
      peer: hints.peer,
      entries,
      froms,
      tooOld,
      bytes: offset,
      segment: segment.sequence,
      start,
      end: start + offset,
    };
  }

  async #read(path: string, position: number, length: number): Promise<Buffer> {
    const handle = await this.#vfs.open(path, 'r');
    try {
      const buf = Buffer.allocUnsafe(length);
      let done = 0;
      while (done < length) {
        const bytesRead = await handle.read(buf, done, length - done, position + done);
        if (bytesRead === 0) break;
        done += bytesRead;
      }
      return buf.subarray(0, done);
    } finally {
      await handle.close();
    }
  }

  /** Corruption found while delivering: forget the rest of the file and rename it. */
  async #setAside(hints: _PeerHints, segment: _Segment, offset: number, detail: string): Promise<void> {
    const index = hints.segments.indexOf(segment);
    assert(index === 0, 'only the head file is read');
    const lostBytes = segment.bytes - hints.headOffset;
    const lostEntries = segment.entries - hints.headEntries;
    hints.pendingBytes -= lostBytes;
    hints.pendingEntries -= lostEntries;
    this.#totalBytes -= lostBytes;
    hints.segments.shift();
    hints.headOffset = HINT_HEADER_BYTES;
    hints.headEntries = 0;
    if (hints.segments.length === 0) {
      const active = hints.active;
      hints.active = undefined;
      // A write under way to it closes it once done, and writes its records again to a new file.
      if (active !== hints.writing) await active?.close().catch(() => undefined);
    }
    await this.#quarantine(segment.path, offset, detail);
  }

  async #quarantine(path: string, offset: number, detail: string): Promise<void> {
    this.#corrupt.push({ file: path, offset, detail });
    this.#log(`Corruption in hint file ${path} at offset ${offset}: ${detail}; file set aside`);
    try {
      await this.#vfs.rename(path, path.slice(0, -'.hint'.length) + HINT_CORRUPT_SUFFIX);
    } catch (err) {
      this.#log(`Cannot set aside hint file ${path}: ${errorMessage(err)}`);
    }
    await this.#pruneSetAside(dirname(path));
  }

  /**
   * Deletes the oldest set-aside files of a peer's directory beyond
   * limits.hintCorruptFilesPerPeerMax, one log line each: repeated damage
   * must not fill the disk with files whose hints are lost anyway.
   */
  async #pruneSetAside(peerDir: string): Promise<void> {
    let names: string[];
    try {
      names = await this.#vfs.list(peerDir);
    } catch (err) {
      this.#log(`Cannot list hint directory ${peerDir}: ${errorMessage(err)}`);
      return;
    }
    // Names are zero-padded sequence numbers: sorted, oldest first.
    const setAside = names.filter((name) => name.endsWith(HINT_CORRUPT_SUFFIX)).sort();
    for (const name of setAside.slice(0, Math.max(0, setAside.length - limits.hintCorruptFilesPerPeerMax))) {
      const path = join(peerDir, name);
      try {
        await this.#vfs.remove(path);
        this.#log(
          `Deleted set-aside hint file ${path}: more than ${limits.hintCorruptFilesPerPeerMax} damaged hint files for this peer, the newest kept`,
        );
      } catch (err) {
        this.#log(`Cannot delete set-aside hint file ${path}: ${errorMessage(err)}`);
      }
    }
  }

  async #remove(path: string): Promise<void> {
    try {
      await this.#vfs.remove(path);
    } catch (err) {
      this.#log(`Cannot delete delivered hint file ${path}: ${errorMessage(err)}`);
    }
  }

  async #load(): Promise<void> {
    try {
      await this.#vfs.mkdir(this.#dir);
    } catch (err) {
      throw new RingkvError('RINGKV_IO', `Cannot use hint directory ${this.#dir}: ${errorMessage(err)}`, {
        cause: err,
      });
    }
    for (const name of (await this.#vfs.list(this.#dir)).sort()) {
      if (!(await this.#vfs.stat(join(this.#dir, name))).isDirectory) continue;
      const peer = peerFromDirName(name);
      if (peer === undefined) {
        this.#log(`Ignoring ${join(this.#dir, name)}: not a peer's hint directory`);
        continue;
      }
      await this.#loadPeer(this.#peer(peer));
    }
  }

  async #loadPeer(hints: _PeerHints): Promise<void> {
    hints.dirReady = true;
    const names = await this.#vfs.list(hints.dir);
    let sequenceMax = 0;
    const sequences: number[] = [];
    for (const name of names) {
      const corrupt = name.endsWith(HINT_CORRUPT_SUFFIX)
        ? hintFileSequence(`${name.slice(0, 10)}.hint`)
        : undefined;
      const sequence = hintFileSequence(name);
      sequenceMax = Math.max(sequenceMax, sequence ?? 0, corrupt ?? 0);
      if (sequence !== undefined) sequences.push(sequence);
    }
    hints.sequence.next = sequenceMax + 1;
    let tooOld = 0;
    for (const sequence of sequences.sort((a, b) => a - b)) {
      const path = join(hints.dir, hintFileName(sequence));
      const buf = await this.#vfs.readFile(path);
      const check = checkHintFile(buf);
      if (check.corruption !== undefined) {
        await this.#quarantine(path, check.corruption.offset, check.corruption.detail);
        continue;
      }
      if (check.validBytes < buf.length) {
        this.#tornBytes += buf.length - check.validBytes;
        this.#log(`Hint file ${path}: torn tail of ${buf.length - check.validBytes} bytes cut`);
        await truncateDurably(this.#vfs, path, check.validBytes);
      }
      const entries = check.entries.length;
      if (entries === 0) {
        await this.#remove(path);
        continue;
      }
      // A file of hints all too old goes now; others are left out as delivery reaches them.
      if (check.entries.every((entry) => this.tooOld(entry))) {
        this.#tooOld += entries;
        tooOld += entries;
        await this.#remove(path);
        continue;
      }
      hints.segments.push({ sequence, path, version: check.version, bytes: check.validBytes, entries });
      const recordBytes = check.validBytes - HINT_HEADER_BYTES;
      hints.pendingEntries += entries;
      hints.pendingBytes += recordBytes;
      this.#totalBytes += recordBytes;
      this.#reloaded += entries;
    }
    if (tooOld > 0) {
      this.#log(
        `Dropped ${tooOld} hints for ${hints.peer}: older than hints are kept (${this.#ageMaxMs} ms)`,
      );
    }
  }
}

function _newQueued(): _Queued {
  let resolve!: () => void;
  let reject!: (err: Error) => void;
  const done = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  // Callers await it through add(); this keeps a failed batch nobody waits on from crashing the process.
  done.catch(() => undefined);
  return { records: [], bytes: 0, done, resolve, reject };
}
