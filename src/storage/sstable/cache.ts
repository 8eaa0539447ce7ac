/**
 * The block cache: decoded, checksum-verified data blocks, shared by every
 * open table of an engine, least recently used evicted first once the bytes
 * held pass the capacity.
 *
 * Keyed by (fileNumber, blockOffset): file numbers are never reused within
 * an engine's directory, so a key always means the same immutable bytes.
 * Blocks are charged their buffer size plus a fixed overhead for the objects
 * around them. A block larger than the whole capacity is not kept.
 *
 * Single-threaded (event loop) use only. Lookups allocate nothing: a Map per
 * file keyed by block offset, and an intrusive doubly linked list for recency.
 */
import { assert } from '../../util/assert.js';
import type { Block } from './block.js';

/** Rough heap cost of a cached block besides its bytes: Block object, list node, Map slot. */
export const BLOCK_CACHE_OVERHEAD_BYTES = 160;

class Node {
  prev: Node | undefined = undefined;
  next: Node | undefined = undefined;
  readonly fileNumber: number;
  readonly block: Block;
  readonly charge: number;

  constructor(fileNumber: number, block: Block) {
    this.fileNumber = fileNumber;
    this.block = block;
    this.charge = block.buf.length + BLOCK_CACHE_OVERHEAD_BYTES;
  }
}

export interface BlockCacheStats {
  readonly hits: number;
  readonly misses: number;
  readonly bytes: number;
}

export class BlockCache {
  readonly capacityBytes: number;
  readonly #files = new Map<number, Map<number, Node>>();
  /** Most recently used end. */
  #head: Node | undefined = undefined;
  /** Least recently used end: evicted first. */
  #tail: Node | undefined = undefined;
  #bytes = 0;
  #hits = 0;
  #misses = 0;

  constructor(capacityBytes: number) {
    assert(Number.isSafeInteger(capacityBytes) && capacityBytes >= 0, 'cache capacity must be a byte count');
    this.capacityBytes = capacityBytes;
  }

  stats(): BlockCacheStats {
    return { hits: this.#hits, misses: this.#misses, bytes: this.#bytes };
  }

  /** The cached block, now most recently used; counts a hit or a miss. */
  lookup(fileNumber: number, blockOffset: number): Block | undefined {
    const node = this.#files.get(fileNumber)?.get(blockOffset);
    if (node === undefined) {
      this.#misses++;
      return undefined;
    }
    this.#hits++;
    if (node !== this.#head) {
      this.#unlink(node);
      this.#pushHead(node);
    }
    return node.block;
  }

  /** Adds a block just read (replacing any block cached at the same place), then evicts down to capacity. */
  insert(fileNumber: number, block: Block): void {
    const node = new Node(fileNumber, block);
    if (node.charge > this.capacityBytes) return;
    const old = this.#files.get(fileNumber)?.get(block.fileOffset);
    if (old !== undefined) this.#remove(old);
    let file = this.#files.get(fileNumber);
    if (file === undefined) {
      file = new Map();
      this.#files.set(fileNumber, file);
    }
    file.set(block.fileOffset, node);
    this.#pushHead(node);
    this.#bytes += node.charge;
    while (this.#bytes > this.capacityBytes && this.#tail !== undefined) this.#remove(this.#tail);
  }

  /** Whether a block is cached, without touching recency or counters. */
  has(fileNumber: number, blockOffset: number): boolean {
    return this.#files.get(fileNumber)?.has(blockOffset) === true;
  }

  /**
   * Adds a block read ahead of need (cache warming) at the least recently
   * used end, and only while that evicts nothing: warming never pushes out a
   * block a reader used. Returns false once the cache is full.
   */
  insertCold(fileNumber: number, block: Block): boolean {
    const node = new Node(fileNumber, block);
    if (this.#bytes + node.charge > this.capacityBytes) return false;
    if (this.has(fileNumber, block.fileOffset)) return true;
    let file = this.#files.get(fileNumber);
    if (file === undefined) {
      file = new Map();
      this.#files.set(fileNumber, file);
    }
    file.set(block.fileOffset, node);
    node.prev = this.#tail;
    node.next = undefined;
    if (this.#tail !== undefined) this.#tail.next = node;
    this.#tail = node;
    if (this.#head === undefined) this.#head = node;
    this.#bytes += node.charge;
    return true;
  }

  /** Drops every block of a file (its table was closed or deleted). */
  evictFile(fileNumber: number): void {
    const file = this.#files.get(fileNumber);
    if (file === undefined) return;
    for (const node of file.values()) {
      this.#unlink(node);
      this.#bytes -= node.charge;
    }
    this.#files.delete(fileNumber);
  }

  #remove(node: Node): void {
    this.#unlink(node);
    this.#bytes -= node.charge;
    const file = this.#files.get(node.fileNumber);
    assert(file !== undefined, 'cached node without its file map');
    file.delete(node.block.fileOffset);
    if (file.size === 0) this.#files.delete(node.fileNumber);
  }

  #pushHead(node: Node): void {
    node.prev = undefined;
    node.next = this.#head;
    if (this.#head !== undefined) this.#head.prev = node;
    this.#head = node;
    if (this.#tail === undefined) this.#tail = node;
  }

  #unlink(node: Node): void {
    if (node.prev !== undefined) node.prev.next = node.next;
    else this.#head = node.next;
    if (node.next !== undefined) node.next.prev = node.prev;
    else this.#tail = node.prev;
    node.prev = undefined;
    node.next = undefined;
  }
}
