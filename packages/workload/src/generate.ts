import { type Product, SEAT_TIERS, type SeatTier, type UsageEvent } from "@usage/events";

/** The nine base model ids of the default rate card (SPEC §4). */
export const MODEL_IDS: readonly string[] = Object.freeze([
  "claude-opus-4-5",
  "claude-haiku-4-5",
  "claude-sonnet-4-5",
  "claude-opus-4-1",
  "claude-sonnet-4",
  "claude-opus-4",
  "claude-3-7-sonnet",
  "claude-3-opus",
  "claude-3-5-haiku",
]);

/** Dated ids of the base models (`<base>-YYYYMMDD`); they price as their base id (SPEC §4). */
export const DATED_MODEL_IDS: readonly string[] = Object.freeze([
  "claude-opus-4-5-20251101",
  "claude-haiku-4-5-20251001",
  "claude-sonnet-4-5-20250929",
  "claude-opus-4-1-20250805",
  "claude-sonnet-4-20250514",
  "claude-opus-4-20250514",
  "claude-3-7-sonnet-20250219",
  "claude-3-opus-20240229",
  "claude-3-5-haiku-20241022",
]);

/** Home regions given to the synthetic users. */
export const REGIONS: readonly string[] = Object.freeze(["us-east-1", "eu-west-1", "ap-southeast-2"]);

/** A prompt (`input + cache_write + cache_read`) over this many tokens is long context (SPEC §4). */
export const LONG_CONTEXT_THRESHOLD = 200_000;
/** How far back a late event may be: one day inside the default 35-day backfill window. */
export const LATE_WINDOW_DAYS = 34;
/** How many of the most recent original events a duplicate is picked from. */
export const DUPLICATE_LOOKBACK = 1000;
/** Fraction of requests whose prompt is exactly {@link LONG_CONTEXT_THRESHOLD} (the boundary, not long context). */
export const BOUNDARY_PROMPT_RATE = 0.005;
/** Fraction of requests with no tokens at all (e.g. a request refused or aborted before it ran). */
export const ZERO_TOKEN_RATE = 0.015;

export interface WorkloadOptions {
  /** Same seed + same options (including `now`) => identical output. Any finite number. */
  seed: number;
  /** Number of events emitted, duplicates included. */
  count: number;
  /** Epoch ms; events are generated relative to it and never after it. */
  now: number;
  /** Default 3; ids `org_1`..`org_N`. */
  orgs?: number;
  /** Default 25; user ids `u_<org#>_<n>`. */
  usersPerOrg?: number;
  /** 0..1, default 0: fraction of emitted lines that are exact re-sends of an earlier original event. */
  duplicateRate?: number;
  /**
   * 0..1, default 0: fraction of original (non-duplicate) events whose `occurred_at` is in the previous UTC
   * calendar month, never older than `now - 34 days`. Should the previous month lie entirely before that
   * bound, no late events are generated (the draw still happens, the event just stays in the current month).
   * Since no month is longer than 31 days, at least the last 3 days of the previous month are always inside.
   */
  lateRate?: number;
  /** 0..1, default 0.05: fraction of requests with a prompt over 200,000 tokens. */
  longContextRate?: number;
  /** Model ids to pick from uniformly. Default: {@link MODEL_IDS} then {@link DATED_MODEL_IDS}. */
  models?: string[];
}

const DAY_MS = 86_400_000;

// ---------------------------------------------------------------------------------------------------------
// PRNG: sfc32 (Small Fast Counting, 128-bit state), seeded by hashing the seed's float64 bits with a salt.

class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: number, salt: number) {
    const view = new DataView(new ArrayBuffer(8));
    view.setFloat64(0, seed === 0 ? 0 : seed); // -0 and 0 are the same seed
    const hi = view.getUint32(0);
    const lo = view.getUint32(4);
    this.a = mix32(lo ^ 0x243f6a88 ^ Math.imul(salt, 0x9e3779b9));
    this.b = mix32(hi ^ 0x85a308d3 ^ this.a);
    this.c = mix32((lo + 0x13198a2e + salt) ^ this.b);
    this.d = mix32(hi ^ 0x03707344 ^ this.c);
    for (let i = 0; i < 20; i++) this.u32();
  }

  /** A uniform unsigned 32-bit integer. */
  u32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }

  /** A uniform float in [0, 1) with 53 bits of precision. */
  float(): number {
    return ((this.u32() >>> 5) * 67_108_864 + (this.u32() >>> 6)) / 9_007_199_254_740_992;
  }

  /** A uniform integer in [lo, hi] (inclusive). */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.float() * (hi - lo + 1));
  }

  chance(p: number): boolean {
    return p > 0 && this.float() < p;
  }

  /** An integer in [lo, hi] (1 <= lo <= hi), log-uniform: small values are much more likely than large ones. */
  logInt(lo: number, hi: number): number {
    const a = Math.log(lo);
    const v = Math.floor(Math.exp(a + this.float() * (Math.log(hi + 1) - a)));
    return Math.min(hi, Math.max(lo, v));
  }

  /** A random UUID v4 (lowercase, version nibble 4, variant 10xx). */
  uuid(): string {
    const w0 = this.u32();
    const w1 = ((this.u32() & 0xffff0fff) | 0x00004000) >>> 0;
    const w2 = ((this.u32() & 0x3fffffff) | 0x80000000) >>> 0;
    const w3 = this.u32();
    const h1 = hex8(w1);
    const h2 = hex8(w2);
    return `${hex8(w0)}-${h1.slice(0, 4)}-${h1.slice(4)}-${h2.slice(0, 4)}-${h2.slice(4)}${hex8(w3)}`;
  }
}

function mix32(x: number): number {
  let h = x | 0;
  h = Math.imul(h ^ (h >>> 16), 0x7feb352d);
  h = Math.imul(h ^ (h >>> 15), 0x846ca68b);
  return (h ^ (h >>> 16)) >>> 0;
}

const HEX_BYTES: readonly string[] = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));

function hex8(w: number): string {
  return (
    HEX_BYTES[(w >>> 24) & 0xff]! + HEX_BYTES[(w >>> 16) & 0xff]! + HEX_BYTES[(w >>> 8) & 0xff]! + HEX_BYTES[w & 0xff]!
  );
}

// ---------------------------------------------------------------------------------------------------------
// Weighted choices.

interface Weighted<T> {
  readonly items: readonly T[];
  /** Cumulative weights, last = total. */
  readonly cumulative: readonly number[];
}

function weighted<T>(pairs: readonly (readonly [T, number])[]): Weighted<T> {
  const items: T[] = [];
  const cumulative: number[] = [];
  let total = 0;
  for (const [item, weight] of pairs) {
    total += weight;
    items.push(item);
    cumulative.push(total);
  }
  return { items, cumulative };
}

function pick<T>(rng: Rng, w: Weighted<T>): T {
  const { cumulative, items } = w;
  const target = rng.float() * cumulative[cumulative.length - 1]!;
  let lo = 0;
  let hi = cumulative.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (cumulative[mid]! > target) hi = mid;
    else lo = mid + 1;
  }
  return items[lo]!;
}

/** How common each seat tier is among the synthetic users. */
const TIER_SHARE: Readonly<Record<SeatTier, number>> = {
  chat: 0.25,
  chat_code: 0.2,
  standard: 0.25,
  premium: 0.2,
  enterprise: 0.1,
};
const SEAT_TIER_WEIGHTS: Weighted<SeatTier> = weighted(SEAT_TIERS.map((t) => [t, TIER_SHARE[t]] as const));

/** Which products a seat tier uses, and how often. A `chat` seat only ever uses the `chat` product. */
const PRODUCTS_BY_TIER: Readonly<Record<SeatTier, Weighted<Product>>> = {
  chat: weighted<Product>([["chat", 1]]),
  chat_code: weighted<Product>([
    ["chat", 0.45],
    ["claude_code", 0.55],
  ]),
  standard: weighted<Product>([
    ["chat", 0.75],
    ["cowork", 0.25],
  ]),
  premium: weighted<Product>([
    ["chat", 0.35],
    ["claude_code", 0.45],
    ["cowork", 0.2],
  ]),
  enterprise: weighted<Product>([
    ["chat", 0.4],
    ["claude_code", 0.4],
    ["cowork", 0.2],
  ]),
};

// ---------------------------------------------------------------------------------------------------------
// Options.

interface Config {
  seed: number;
  count: number;
  now: number;
  orgs: number;
  usersPerOrg: number;
  duplicateRate: number;
  lateRate: number;
  longContextRate: number;
  models: readonly string[];
}

function resolveOptions(options: WorkloadOptions): Config {
  if (typeof options !== "object" || options === null) throw new TypeError("options must be an object");
  const { seed, count, now } = options;
  if (typeof seed !== "number" || !Number.isFinite(seed)) throw new RangeError("seed must be a finite number");
  if (typeof count !== "number" || !Number.isSafeInteger(count) || count < 0) {
    throw new RangeError(`count must be an integer >= 0, got ${String(count)}`);
  }
  if (typeof now !== "number" || !Number.isSafeInteger(now) || Number.isNaN(new Date(now - 62 * DAY_MS).getTime())) {
    throw new RangeError(`now must be an integer epoch-millisecond timestamp, got ${String(now)}`);
  }
  const orgs = options.orgs ?? 3;
  if (typeof orgs !== "number" || !Number.isSafeInteger(orgs) || orgs < 1) {
    throw new RangeError(`orgs must be an integer >= 1, got ${String(orgs)}`);
  }
  const usersPerOrg = options.usersPerOrg ?? 25;
  if (typeof usersPerOrg !== "number" || !Number.isSafeInteger(usersPerOrg) || usersPerOrg < 1) {
    throw new RangeError(`usersPerOrg must be an integer >= 1, got ${String(usersPerOrg)}`);
  }
  const rate = (name: string, value: number | undefined, fallback: number): number => {
    const v = value ?? fallback;
    if (typeof v !== "number" || !(v >= 0 && v <= 1))
      throw new RangeError(`${name} must be within 0..1, got ${String(v)}`);
    return v;
  };
  const models = options.models ?? [...MODEL_IDS, ...DATED_MODEL_IDS];
  if (!Array.isArray(models) || models.length === 0) throw new RangeError("models must be a non-empty array");
  for (const m of models) {
    if (typeof m !== "string" || m.length === 0 || m.length > 128) {
      throw new RangeError(`models must hold non-empty strings of at most 128 characters, got ${String(m)}`);
    }
  }
  return {
    seed,
    count,
    now,
    orgs,
    usersPerOrg,
    duplicateRate: rate("duplicateRate", options.duplicateRate, 0),
    lateRate: rate("lateRate", options.lateRate, 0),
    longContextRate: rate("longContextRate", options.longContextRate, 0.05),
    models: [...models],
  };
}

// ---------------------------------------------------------------------------------------------------------
// Users.

interface User {
  org_id: string;
  user_id: string;
  user_email: string;
  account_uuid: string;
  region: string;
  seat_tier: SeatTier;
  products: Weighted<Product>;
}

function makeUsers(cfg: Config): Weighted<User> {
  const rng = new Rng(cfg.seed, 1);
  const pairs: [User, number][] = [];
  for (let o = 1; o <= cfg.orgs; o++) {
    const org_id = `org_${o}`;
    for (let n = 1; n <= cfg.usersPerOrg; n++) {
      const user_id = `u_${o}_${n}`;
      const seat_tier = pick(rng, SEAT_TIER_WEIGHTS);
      const user: User = {
        org_id,
        user_id,
        user_email: `${user_id}@${org_id}.example.com`,
        account_uuid: rng.uuid(),
        region: REGIONS[rng.int(0, REGIONS.length - 1)]!,
        seat_tier,
        products: PRODUCTS_BY_TIER[seat_tier],
      };
      // Activity varies about 20x between the quietest and the busiest users.
      pairs.push([user, Math.exp(rng.float() * 3)]);
    }
  }
  return weighted(pairs);
}

// ---------------------------------------------------------------------------------------------------------
// Token counts.

interface Tokens {
  input_tokens: number;
  output_tokens: number;
  cache_write_tokens: number;
  cache_read_tokens: number;
}

/** Splits a prompt of exactly `prompt` tokens across input, cache write and cache read. */
function splitPrompt(rng: Rng, prompt: number): [number, number, number] {
  // Dirichlet(1,1,1) weights, so every mix occurs: mostly input, mostly cache read, mostly cache write, even.
  const w0 = -Math.log(1 - rng.float());
  const w1 = -Math.log(1 - rng.float());
  const w2 = -Math.log(1 - rng.float());
  const sum = w0 + w1 + w2 || 1;
  const input = Math.floor((prompt * w0) / sum);
  const cacheWrite = Math.floor((prompt * w1) / sum);
  return [input, cacheWrite, prompt - input - cacheWrite];
}

function makeTokens(rng: Rng, longContextRate: number): Tokens {
  if (rng.chance(ZERO_TOKEN_RATE)) {
    return { input_tokens: 0, output_tokens: 0, cache_write_tokens: 0, cache_read_tokens: 0 };
  }
  const output_tokens = rng.chance(0.03) ? 0 : rng.chance(0.1) ? rng.logInt(1, 50) : rng.logInt(20, 8_000);
  let prompt = 0;
  if (rng.chance(longContextRate)) prompt = rng.int(LONG_CONTEXT_THRESHOLD + 1, 900_000);
  else if (rng.chance(BOUNDARY_PROMPT_RATE)) prompt = LONG_CONTEXT_THRESHOLD;
  if (prompt > 0) {
    const [input_tokens, cache_write_tokens, cache_read_tokens] = splitPrompt(rng, prompt);
    return { input_tokens, output_tokens, cache_write_tokens, cache_read_tokens };
  }
  // Ordinary requests: the three prompt parts are capped so that their sum stays below 200,000.
  return {
    input_tokens: rng.chance(0.02) ? 0 : rng.chance(0.15) ? rng.logInt(1, 300) : rng.logInt(200, 50_000),
    output_tokens,
    cache_write_tokens: rng.chance(0.55) ? 0 : rng.logInt(100, 60_000),
    cache_read_tokens: rng.chance(0.45) ? 0 : rng.logInt(500, 89_999),
  };
}

// ---------------------------------------------------------------------------------------------------------
// Generation.

/**
 * Generates `count` synthetic usage events (SPEC §3). Options are validated eagerly (a `RangeError` naming the
 * option is thrown by this call, before iteration). Output depends only on the options: same options, same
 * events in the same order.
 *
 * - Current-month events lie in [start of the current UTC month, `now`], roughly in stream order.
 * - Late events (`lateRate`) lie in the previous UTC month, no older than `now - 34 days`.
 * - Duplicates (`duplicateRate`) are copies of one of the last 1000 original events, emitted later; the
 *   first line is always an original.
 */
export function generateEvents(options: WorkloadOptions): Generator<UsageEvent> {
  return run(resolveOptions(options));
}

/** {@link generateEvents} collected into an array. */
export function generateEventArray(options: WorkloadOptions): UsageEvent[] {
  return Array.from(generateEvents(options));
}

function* run(cfg: Config): Generator<UsageEvent> {
  const users = makeUsers(cfg);
  const rng = new Rng(cfg.seed, 2);
  const { count, now, models } = cfg;

  const date = new Date(now);
  const monthStart = Date.UTC(date.getUTCFullYear(), date.getUTCMonth(), 1);
  const prevMonthStart = Date.UTC(date.getUTCFullYear(), date.getUTCMonth() - 1, 1);
  const span = now - monthStart;
  const lateFrom = Math.max(prevMonthStart, now - LATE_WINDOW_DAYS * DAY_MS);
  const lateSpan = monthStart - lateFrom; // ms in [lateFrom, monthStart); <= 0 means no late event is possible

  const recent: UsageEvent[] = [];
  let recentNext = 0;

  for (let i = 0; i < count; i++) {
    if (recent.length > 0 && rng.chance(cfg.duplicateRate)) {
      yield { ...recent[rng.int(0, recent.length - 1)]! };
      continue;
    }

    let at: number;
    if (rng.chance(cfg.lateRate) && lateSpan > 0) {
      at = lateFrom + Math.floor(rng.float() * lateSpan);
    } else {
      // Roughly ordered: the i-th line sits near i/count of the month so far, jittered by ±1% of it.
      const f = (i + rng.float()) / count + (rng.float() - 0.5) * 0.02;
      at = Math.min(now, monthStart + Math.floor(Math.min(1, Math.max(0, f)) * span));
    }

    const user = pick(rng, users);
    const product = pick(rng, user.products);
    const model = models[rng.int(0, models.length - 1)]!;
    const tokens = makeTokens(rng, cfg.longContextRate);
    const event: UsageEvent = {
      event_id: rng.uuid(),
      occurred_at: new Date(at).toISOString(),
      org_id: user.org_id,
      user_id: user.user_id,
      user_email: user.user_email,
      account_uuid: user.account_uuid,
      request_id: `req_${hex8(rng.u32())}${hex8(rng.u32())}`,
      region: user.region,
      seat_tier: user.seat_tier,
      product,
      model,
      input_tokens: tokens.input_tokens,
      output_tokens: tokens.output_tokens,
      cache_write_tokens: tokens.cache_write_tokens,
      cache_read_tokens: tokens.cache_read_tokens,
    };

    if (recent.length < DUPLICATE_LOOKBACK) recent.push(event);
    else recent[recentNext] = event;
    recentNext = (recentNext + 1) % DUPLICATE_LOOKBACK;
    yield { ...event };
  }
}
