/**
 * A Bloom filter of event ids: which ids a partition may already hold in usage_events. The aggregator's dedup step
 * asks ClickHouse only about the ids the filter cannot rule out (steps.ts dedupStep), so the common case — a new
 * event — costs two string hashes instead of a lookup whose cost grows with the table.
 *
 * A filter answers "certainly not added" or "maybe added": it never claims an id (a "maybe" is confirmed in
 * ClickHouse, whose stored row is the only dedup record). It is sized for `capacity` ids at a 0.01% false-positive
 * rate (19.2 bits an id: 1 M ids take 2.4 MB); past its capacity the false-positive rate climbs, so the owner
 * rebuilds it larger (`full`). Why 0.01% and not 1%: a lookup is one query per batch whatever it asks, and its cost
 * grows with the table (in the e2e benchmark 7–9 ms a batch in the first minute, 44–51 ms in the third, at 2–3 M
 * rows); at 1% (0.3% with the filter four-fifths full) three batches of 500 new events in four held a false
 * positive, hence a lookup; at 0.01% (0.001%) one in 200.
 *
 * Hashes: FNV-1a and a second, differently seeded FNV-1a over the id's UTF-16 code units, combined as h1 + i·h2
 * (Kirsch and Mitzenmacher), which keeps a Bloom filter's false-positive rate with two hash computations.
 */

const FALSE_POSITIVE_RATE = 0.0001;

export class IdFilter {
  readonly capacity: number;
  private readonly bits: Uint32Array;
  private readonly size: number;
  private readonly hashes: number;
  private added = 0;

  constructor(capacity: number) {
    this.capacity = Math.max(1024, Math.ceil(capacity));
    const m = Math.ceil((-this.capacity * Math.log(FALSE_POSITIVE_RATE)) / (Math.LN2 * Math.LN2));
    this.size = Math.ceil(m / 32) * 32;
    this.bits = new Uint32Array(this.size / 32);
    this.hashes = Math.max(1, Math.round((this.size / this.capacity) * Math.LN2));
  }

  /** Ids added so far (repeats included). */
  get count(): number {
    return this.added;
  }

  /** More ids than it was sized for: rebuild it larger to keep its false-positive rate. */
  get full(): boolean {
    return this.added > this.capacity;
  }

  /** Bytes the filter holds. */
  get bytes(): number {
    return this.bits.byteLength;
  }

  add(id: string): void {
    const [h1, h2] = hashPair(id);
    for (let i = 0; i < this.hashes; i++) {
      const bit = (h1 + Math.imul(i, h2)) >>> 0;
      const at = bit % this.size;
      this.bits[at >>> 5]! |= 1 << (at & 31);
    }
    this.added++;
  }

  /** False: the id was certainly never added. True: it may have been (confirm elsewhere). */
  mightContain(id: string): boolean {
    const [h1, h2] = hashPair(id);
    for (let i = 0; i < this.hashes; i++) {
      const bit = (h1 + Math.imul(i, h2)) >>> 0;
      const at = bit % this.size;
      if ((this.bits[at >>> 5]! & (1 << (at & 31))) === 0) return false;
    }
    return true;
  }
}

const pair: [number, number] = [0, 0];

/** Two 32-bit FNV-1a hashes of `s` with different offset bases; h2 forced odd so every probe differs. */
function hashPair(s: string): [number, number] {
  let a = 0x811c9dc5;
  let b = 0x01000193 ^ 0x5bd1e995;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x01000193);
    b ^= b >>> 15;
  }
  a ^= a >>> 16;
  a = Math.imul(a, 0x85ebca6b);
  a ^= a >>> 13;
  pair[0] = a >>> 0;
  pair[1] = (b | 1) >>> 0;
  return pair;
}
