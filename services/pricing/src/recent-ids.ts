/**
 * A bounded set of recently priced event ids, oldest evicted first. It lets the pricing worker drop most
 * duplicates early; it is an optimisation, not the guarantee: the aggregator deduplicates every event id
 * against ClickHouse, so an id forgotten here (eviction, restart, another worker) still counts once.
 *
 * Insertion order lives in a ring of `capacity` slots; the slot about to be overwritten holds the oldest id, which
 * is deleted from the set by key. (Finding the oldest with `set.values().next()` instead costs a scan over every
 * deleted slot V8 keeps at the front of a Set's table until it rehashes: at 200,000 ids that was ~80 µs per add
 * and half of the worker's CPU.)
 */
export class RecentIds {
  private readonly ids = new Set<string>();
  private readonly ring: (string | undefined)[];
  private next = 0;

  constructor(private readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`capacity must be a positive integer`);
    this.ring = new Array<string | undefined>(capacity);
  }

  has(id: string): boolean {
    return this.ids.has(id);
  }

  add(id: string): void {
    if (this.ids.has(id)) return;
    const oldest = this.ring[this.next];
    if (oldest !== undefined) this.ids.delete(oldest);
    this.ring[this.next] = id;
    this.next = (this.next + 1) % this.capacity;
    this.ids.add(id);
  }

  get size(): number {
    return this.ids.size;
  }
}
