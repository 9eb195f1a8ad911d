/**
 * A bounded set of recently priced event ids, oldest evicted first. It lets the pricing worker drop most
 * duplicates early; it is an optimisation, not the guarantee: the aggregator deduplicates every event id
 * against ClickHouse, so an id forgotten here (eviction, restart, another worker) still counts once.
 */
export class RecentIds {
  private readonly ids = new Set<string>();
  constructor(private readonly capacity: number) {}

  has(id: string): boolean {
    return this.ids.has(id);
  }

  add(id: string): void {
    if (this.ids.has(id)) return;
    this.ids.add(id);
    if (this.ids.size > this.capacity) {
      const oldest = this.ids.values().next().value as string;
      this.ids.delete(oldest);
    }
  }

  get size(): number {
    return this.ids.size;
  }
}
