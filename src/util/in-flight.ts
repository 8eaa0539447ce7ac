/**
 * InFlight: work under way, each promise with a number (its key's hash), for
 * code that must wait for the work in a range before it goes on. Adding and
 * removing allocate nothing once its arrays have grown to the most work ever
 * under way at once: slots are reused from a stack of free ones.
 *
 * Why not a Map from promise to number: a long-lived Map that gains and
 * loses an entry per write rehashes every few writes, and V8 allocates an
 * old Map's new tables in the old generation; at a few thousand writes per
 * second that garbage brought a full collection every few seconds
 * (docs/performance.md, "In-flight collections").
 *
 *   const slot = inFlight.add(work, hash);
 *   try { await work; } finally { inFlight.remove(slot); }
 *   await Promise.allSettled(inFlight.matching((hash) => hash < 1000));
 */
const CAPACITY_INITIAL = 16;
/** What a reserve()d slot holds until fill(). */
const RESERVED: Promise<unknown> = Promise.resolve();

export class InFlight {
  #work: (Promise<unknown> | undefined)[] = new Array<Promise<unknown> | undefined>(CAPACITY_INITIAL).fill(
    undefined,
  );
  #tags = new Float64Array(CAPACITY_INITIAL);
  /** Free slots, a stack: #free[0 .. #freeCount). */
  #free = Int32Array.from({ length: CAPACITY_INITIAL }, (_, i) => CAPACITY_INITIAL - 1 - i);
  #freeCount = CAPACITY_INITIAL;

  get size(): number {
    return this.#work.length - this.#freeCount;
  }

  /** Files `work` with `tag`; returns its slot, for remove(). */
  add(work: Promise<unknown>, tag: number): number {
    if (this.#freeCount === 0) this.#grow();
    const slot = this.#free[--this.#freeCount]!;
    this.#work[slot] = work;
    this.#tags[slot] = tag;
    return slot;
  }

  /**
   * A slot for work whose promise is not made yet: the work's own async
   * function is what removes it, so it cannot be filed after it starts.
   * fill() files the promise once the call returns; until then matching()
   * gives a resolved promise for it. Between the two no other code runs.
   *
   *   const slot = inFlight.reserve(hash);
   *   const work = this.#run(slot); // removes `slot` in its finally, after an await
   *   inFlight.fill(slot, work);
   */
  reserve(tag: number): number {
    return this.add(RESERVED, tag);
  }

  /** Files the work of a reserve()d slot; nothing if the work already ended and removed it. */
  fill(slot: number, work: Promise<unknown>): void {
    if (this.#work[slot] === RESERVED) this.#work[slot] = work;
  }

  remove(slot: number): void {
    this.#work[slot] = undefined;
    this.#free[this.#freeCount++] = slot;
  }

  /** The work under way whose tag passes `test`. */
  matching(test: (tag: number) => boolean): Promise<unknown>[] {
    const found: Promise<unknown>[] = [];
    for (let slot = 0; slot < this.#work.length; slot++) {
      const work = this.#work[slot];
      if (work !== undefined && test(this.#tags[slot]!)) found.push(work);
    }
    return found;
  }

  #grow(): void {
    const capacity = this.#work.length;
    const grown = capacity * 2;
    this.#work.length = grown;
    this.#work.fill(undefined, capacity);
    const tags = new Float64Array(grown);
    tags.set(this.#tags);
    this.#tags = tags;
    // The stack is empty: the new slots, lowest on top.
    this.#free = Int32Array.from({ length: grown }, (_, i) => (i < capacity ? grown - 1 - i : 0));
    this.#freeCount = capacity;
  }
}
