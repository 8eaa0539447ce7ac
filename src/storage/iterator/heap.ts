/**
 * A binary min-heap by a caller's order, for the k-way merges (merging.ts,
 * record-merge.ts). Merges advance the top item in place and call siftTop(),
 * which costs one pass down instead of a pop and a push.
 */
export class MinHeap<T> {
  readonly items: T[] = [];
  readonly #less: (a: T, b: T) => boolean;

  /** `less` must be a strict total order over the items held at any one time. */
  constructor(less: (a: T, b: T) => boolean) {
    this.#less = less;
  }

  push(item: T): void {
    const items = this.items;
    items.push(item);
    let i = items.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (this.#less(items[parent]!, item)) break;
      items[i] = items[parent]!;
      i = parent;
    }
    items[i] = item;
  }

  /** Restores the order after the top item changed. */
  siftTop(): void {
    const items = this.items;
    const n = items.length;
    const item = items[0]!;
    let i = 0;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= n) break;
      const right = left + 1;
      const child = right < n && this.#less(items[right]!, items[left]!) ? right : left;
      if (this.#less(item, items[child]!)) break;
      items[i] = items[child]!;
      i = child;
    }
    items[i] = item;
  }

  /** Removes the top item (the heap must not be empty). */
  popTop(): void {
    const last = this.items.pop()!;
    if (this.items.length > 0) {
      this.items[0] = last;
      this.siftTop();
    }
  }
}
