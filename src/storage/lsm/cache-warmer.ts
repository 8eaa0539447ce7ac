/**
 * Loads tables' blocks into the block cache in the background while it has
 * room, after open. LevelDB reads through the OS page cache, which outlives
 * a restart; ringkv's own cache does not, so it refills itself from the
 * files (usually still in the page cache) in large sequential reads rather
 * than one pread per block on the read path. Tables written later are not
 * warmed: that work would land on the event loop in the middle of writes.
 */
import { limits } from '../../config/limits.js';
import type { TableReader } from '../sstable/index.js';
import type { OpenState } from './open-state.js';

export class CacheWarmer {
  readonly #open: OpenState;
  /** Tables waiting to be warmed, one at a time, in the order given. */
  readonly #queue: TableReader[] = [];
  #warming: Promise<void> | undefined;

  constructor(open: OpenState) {
    this.#open = open;
  }

  /** Queues `readers` to warm, in order; stops at close. */
  warm(readers: readonly TableReader[]): void {
    this.#queue.push(...readers);
    if (this.#warming !== undefined) return;
    this.#warming = (async () => {
      for (let reader = this.#queue.shift(); reader !== undefined; reader = this.#queue.shift()) {
        if (this.#open.closed) break;
        // A table closed meanwhile, or a damaged block: nothing to warm; reads report damage.
        await reader.warm(limits.cacheWarmChunkBytes).catch(() => true);
      }
      this.#queue.length = 0;
    })().finally(() => {
      this.#warming = undefined;
    });
  }

  /** Resolves once the warm-up under way, if any, has stopped. */
  async settle(): Promise<void> {
    await this.#warming;
  }
}
