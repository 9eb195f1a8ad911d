/**
 * The fault suite's workload and its independent expectations: generated good events (with duplicates and late
 * ones), policies tuned so that caps and thresholds are crossed all through the stream, malformed messages of many
 * kinds with the DLQ reason each must get, and every figure the pipeline must end at, recomputed offline: each
 * distinct event priced with the published rate card, the discount applied per event, sums in exact decimals.
 */
import { randomBytes } from "node:crypto";
import { knownSchemas, pricedUsageEventV1, type UsageEvent, usageEventV1, validateUsageEvent } from "@usage/events";
import type { Message } from "@usage/kafka";
import { periodOf, type Window, windowAsOf } from "@usage/periods";
import { createPricer, loadRateCard } from "@usage/pricing";
import { generateEventArray } from "@usage/workload";
import avro from "avsc";
import { Exact } from "../../harness/exact.js";

export const THRESHOLDS = ["0.1", "0.2", "0.3", "0.4", "0.5", "0.6", "0.7", "0.8", "0.9", "1"];
const DISCOUNTS: Record<string, string> = { org_1: "12.5", org_2: "0", org_3: "3.75" };
/** The org total ends at spend / limit = 1 / factor: org_1 at 0.8 (warning), org_2 past its cap (blocked). */
const ORG_LIMIT_FACTOR: Record<string, number> = { org_1: 1.25, org_2: 0.9 };
/** Per-user final spend / limit, cycled through the users: blocked, warning at various thresholds, ok. */
const USER_RATIOS = [1.6, 0.74, 1.04, 0.45, 0.95, 2.2, 0.59, 0.33, 0.86];

export interface PolicyBody {
  discount_pct: string;
  thresholds: string[];
  org_limit?: string;
  users: Record<string, { limit: string }>;
}

export interface PricedExpectation {
  org: string;
  user: string;
  at: number;
  gross: Exact;
  net: Exact;
}

/** Where an entity (an org or a user with a limit) must end in the current period, and the alerts that follow. */
export interface EntityExpectation {
  org: string;
  type: "org" | "user";
  id: string;
  limit: Exact;
  spend: Exact;
  /** The highest threshold reached, canonical (`"0.7"`), or null. */
  threshold: string | null;
  blocked: boolean;
}

export interface Workload {
  now: number;
  period: string;
  events: UsageEvent[];
  /** JSON lines in publish order (generated duplicates included). */
  lines: string[];
  /** How many times each event id occurs in `lines`. */
  copies: Map<string, number>;
  distinct: Map<string, UsageEvent>;
  priced: Map<string, PricedExpectation>;
  orgs: string[];
  policies: Record<string, PolicyBody>;
  entities: EntityExpectation[];
  bad: BadMessage[];
}

export interface WorkloadOptions {
  seed: number;
  count: number;
  badCount: number;
  orgs?: number;
  usersPerOrg?: number;
  duplicateRate?: number;
  lateRate?: number;
}

export function makeWorkload(options: WorkloadOptions): Workload {
  const now = Date.now();
  const events = generateEventArray({
    seed: options.seed,
    count: options.count,
    now,
    orgs: options.orgs ?? 3,
    usersPerOrg: options.usersPerOrg ?? 12,
    duplicateRate: options.duplicateRate ?? 0.05,
    lateRate: options.lateRate ?? 0.01,
  });
  const lines = events.map((e) => JSON.stringify(e));
  const copies = new Map<string, number>();
  const distinct = new Map<string, UsageEvent>();
  for (const e of events) {
    copies.set(e.event_id, (copies.get(e.event_id) ?? 0) + 1);
    distinct.set(e.event_id, e);
  }
  const orgs = [...new Set(events.map((e) => e.org_id))].sort();

  // Price every distinct event offline (published rate card), discount per event, exactly.
  const price = createPricer(loadRateCard());
  const priced = new Map<string, PricedExpectation>();
  for (const e of distinct.values()) {
    const v = validateUsageEvent(e, { now });
    if (!v.ok) throw new Error(`generated event rejected: ${v.rejection.message}`);
    const p = price(v.value);
    if (!p.ok) throw new Error(`generated event not priced: ${p.rejection.message}`);
    const gross = Exact.of(p.value.total_cost);
    const pct = Exact.of(DISCOUNTS[e.org_id] ?? "0");
    priced.set(e.event_id, {
      org: e.org_id,
      user: e.user_id,
      at: Date.parse(e.occurred_at),
      gross,
      net: gross.times(Exact.of(100).minus(pct)).div(100),
    });
  }

  // Policies from the current month's spend, so that every limited entity crosses thresholds as the stream goes.
  const period = periodOf(now);
  const current = currentSpend(priced, period);
  const policies: Record<string, PolicyBody> = {};
  const entities: EntityExpectation[] = [];
  for (const org of orgs) {
    const spend = current.get(org) ?? { total: Exact.of(0), users: new Map<string, Exact>() };
    const policy: PolicyBody = { discount_pct: DISCOUNTS[org] ?? "0", thresholds: THRESHOLDS, users: {} };
    const factor = ORG_LIMIT_FACTOR[org];
    if (factor !== undefined && spend.total.gt(0)) {
      const limit = cents(spend.total.times(String(factor)));
      policy.org_limit = limit.toFixed();
      entities.push(entity(org, "org", org, limit, spend.total));
    }
    const users = [...spend.users.keys()].sort();
    users.forEach((user, i) => {
      // org_3 caps only every third user: users without a limit must never be alerted on.
      if (org === "org_3" && i % 3 !== 0) return;
      const userSpend = spend.users.get(user)!;
      if (!userSpend.gt(0)) return;
      const limit = cents(userSpend.div(String(USER_RATIOS[(i + org.length) % USER_RATIOS.length]!)));
      policy.users[user] = { limit: limit.toFixed() };
      entities.push(entity(org, "user", user, limit, userSpend));
    });
    policies[org] = policy;
  }

  return {
    now,
    period,
    events,
    lines,
    copies,
    distinct,
    priced,
    orgs,
    policies,
    entities,
    bad: malformedMessages(options.badCount, options.seed, now),
  };
}

function cents(d: Exact): Exact {
  const c = d.round(2, "up");
  return c.lt("0.01") ? Exact.of("0.01") : c;
}

function entity(org: string, type: "org" | "user", id: string, limit: Exact, spend: Exact): EntityExpectation {
  let threshold: string | null = null;
  for (const t of THRESHOLDS) if (spend.gte(limit.times(t))) threshold = Exact.of(t).toFixed();
  return { org, type, id, limit, spend, threshold, blocked: spend.gte(limit) };
}

export function currentSpend(
  priced: Map<string, PricedExpectation>,
  period: string,
): Map<string, { total: Exact; users: Map<string, Exact> }> {
  const out = new Map<string, { total: Exact; users: Map<string, Exact> }>();
  for (const x of priced.values()) {
    if (periodOf(x.at) !== period) continue;
    let o = out.get(x.org);
    if (!o) {
      o = { total: Exact.of(0), users: new Map() };
      out.set(x.org, o);
    }
    o.total = o.total.plus(x.net);
    o.users.set(x.user, (o.users.get(x.user) ?? Exact.of(0)).plus(x.net));
  }
  return out;
}

/** Net spend and request count of an org (or one of its users) over a window as of `now`. */
export function windowSum(
  wl: Workload,
  org: string,
  window: Window,
  user?: string,
): { spend: Exact; requests: number } {
  const range = windowAsOf(window, wl.now);
  let spend = Exact.of(0);
  let requests = 0;
  for (const x of wl.priced.values()) {
    if (x.org !== org || (user !== undefined && x.user !== user)) continue;
    if (x.at < range.fromMs || x.at >= range.toExclusiveMs) continue;
    spend = spend.plus(x.net);
    requests++;
  }
  return { spend, requests };
}

// ---------------------------------------------------------------------------------------------------------------
// Malformed messages.

export interface BadMessage {
  message: Message & { key: string };
  kind: string;
  /** The DLQ reason (`dlq.reason`) it must get, and the field for invalid_field. */
  reason: string;
  field?: string;
}

const TOKEN_FIELDS = ["input_tokens", "output_tokens", "cache_write_tokens", "cache_read_tokens"] as const;
const HEADER_LENGTH = 10;

type AvroRecord = Record<string, unknown>;
type AvroSchema = Parameters<typeof avro.Type.forSchema>[0];

/** Avro types for hand-made bodies: the v1 schema with one field's type changed ("wrong type" on the wire). */
function variantType(mutate: (field: { name: string; type: unknown }) => void): avro.Type {
  const schema = JSON.parse(JSON.stringify(usageEventV1.type.schema())) as {
    fields: { name: string; type: unknown }[];
  };
  for (const f of schema.fields) mutate(f);
  return avro.Type.forSchema(schema as unknown as AvroSchema, { registry: {} });
}
const V1_FIELDS = (usageEventV1.type.schema() as { fields: { name: string }[] }).fields;
function partialType(from: number, to: number): avro.Type {
  const schema = JSON.parse(JSON.stringify(usageEventV1.type.schema())) as { name: string; fields: unknown[] };
  return avro.Type.forSchema(
    { ...schema, name: `Part${from}_${to}`, fields: schema.fields.slice(from, to) } as unknown as AvroSchema,
    { registry: {} },
  );
}
const INPUT_INDEX = V1_FIELDS.findIndex((f) => f.name === "input_tokens");
const BEFORE_INPUT = partialType(0, INPUT_INDEX);
const AFTER_INPUT = partialType(INPUT_INDEX + 1, V1_FIELDS.length);
const TOKENS_AS_STRING = variantType((f) => {
  if (f.name.endsWith("_tokens")) f.type = "string";
});
const TOKENS_AS_DOUBLE = variantType((f) => {
  if (f.name.endsWith("_tokens")) f.type = "double";
});
const ORG_AS_LONG = variantType((f) => {
  if (f.name === "org_id") f.type = "long";
});
const TIME_AS_STRING = variantType((f) => {
  if (f.name === "occurred_at") f.type = "string";
});

/** Zig-zag varint of any 64-bit value: Avro's long encoding, for values avsc refuses to write. */
function avroLong(n: bigint): Buffer {
  let z = BigInt.asUintN(64, (n << 1n) ^ (n >> 63n));
  const out: number[] = [];
  do {
    let b = Number(z & 0x7fn);
    z >>= 7n;
    if (z) b |= 0x80;
    out.push(b);
  } while (z);
  return Buffer.from(out);
}

/**
 * `count` malformed messages, cycling through the kinds below. Each is built from a valid event of its own (a fresh
 * event id, never one of the good events') and keyed `bad_<n>`, so its DLQ copy can be matched to it.
 */
export function malformedMessages(count: number, seed: number, now: number): BadMessage[] {
  if (count === 0) return [];
  const templates = generateEventArray({ seed: seed + 7919, count, now, orgs: 3, usersPerOrg: 12 });
  const price = createPricer(loadRateCard());
  const known = new Set(Object.values(knownSchemas()));
  const header = usageEventV1.encode(templates[0]!).subarray(0, HEADER_LENGTH);
  let rnd = seed >>> 0 || 1;
  const next = () => {
    rnd ^= rnd << 13;
    rnd ^= rnd >>> 17;
    rnd ^= rnd << 5;
    return (rnd >>> 0) / 4_294_967_296;
  };
  const pickOf = <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)]!;
  const avroOf = (e: UsageEvent, patch: AvroRecord = {}): AvroRecord => ({
    ...e,
    user_email: e.user_email ?? null,
    account_uuid: e.account_uuid ?? null,
    request_id: e.request_id ?? null,
    region: e.region ?? null,
    occurred_at: Date.parse(e.occurred_at),
    ...patch,
  });
  const withFields = (e: UsageEvent, patch: AvroRecord) =>
    Buffer.concat([header, usageEventV1.type.toBuffer(avroOf(e, patch))]);
  const undecodable = (body: Buffer) => {
    try {
      usageEventV1.type.fromBuffer(body);
      return false;
    } catch {
      return true;
    }
  };

  type Make = (e: UsageEvent) => { reason: string; field?: string; value: Buffer | null };
  const kinds: [string, Make][] = [
    [
      "truncated Avro body",
      (e) => {
        const good = usageEventV1.encode(e);
        const cut = 1 + Math.floor(next() * (good.length - HEADER_LENGTH - 1));
        return { reason: "invalid_encoding", value: good.subarray(0, good.length - cut) };
      },
    ],
    [
      "truncated header",
      (e) => ({
        reason: "invalid_encoding",
        value: usageEventV1.encode(e).subarray(0, Math.floor(next() * HEADER_LENGTH)),
      }),
    ],
    [
      "unknown schema fingerprint",
      (e) => {
        let fp = randomBytes(8);
        while (known.has(fp.toString("hex"))) fp = randomBytes(8);
        const good = usageEventV1.encode(e);
        return {
          reason: "invalid_encoding",
          value: Buffer.concat([good.subarray(0, 2), fp, good.subarray(HEADER_LENGTH)]),
        };
      },
    ],
    [
      "priced schema on the events topic",
      (e) => {
        const p = price(e);
        if (!p.ok) throw new Error(p.rejection.message);
        return { reason: "invalid_encoding", value: pricedUsageEventV1.encode(p.value) };
      },
    ],
    ["JSON instead of Avro", (e) => ({ reason: "invalid_encoding", value: Buffer.from(JSON.stringify(e)) })],
    ["null value", () => ({ reason: "invalid_encoding", value: null })],
    ["empty value", () => ({ reason: "invalid_encoding", value: Buffer.alloc(0) })],
    [
      "wrong type: token counts as strings",
      (e) => {
        const body = TOKENS_AS_STRING.toBuffer(
          avroOf(e, Object.fromEntries(TOKEN_FIELDS.map((f) => [f, `${e[f]} tokens`]))),
        );
        return { reason: "invalid_encoding", value: Buffer.concat([header, body]) };
      },
    ],
    [
      "wrong type: token counts as doubles",
      (e) => ({
        reason: "invalid_encoding",
        value: Buffer.concat([header, TOKENS_AS_DOUBLE.toBuffer(avroOf(e, { input_tokens: e.input_tokens + 0.5 }))]),
      }),
    ],
    [
      "wrong type: org_id as a long",
      (e) => ({
        reason: "invalid_encoding",
        value: Buffer.concat([header, ORG_AS_LONG.toBuffer(avroOf(e, { org_id: 1000 + Math.floor(next() * 1e6) }))]),
      }),
    ],
    [
      "wrong type: occurred_at as a string",
      (e) => ({
        reason: "invalid_encoding",
        value: Buffer.concat([header, TIME_AS_STRING.toBuffer(avroOf(e, { occurred_at: e.occurred_at }))]),
      }),
    ],
    [
      "occurred_at not an instant",
      (e) => ({
        reason: "invalid_field",
        field: "occurred_at",
        value: withFields(e, { occurred_at: 9_000_000_000_000_000 }),
      }),
    ],
    [
      "huge token count",
      (e) => {
        const field = pickOf(TOKEN_FIELDS);
        const value = pickOf([1_000_000_001, 2 ** 40, 2 ** 52]);
        return { reason: "invalid_field", field, value: withFields(e, { [field]: value }) };
      },
    ],
    [
      "token count beyond 2^53",
      (e) => {
        const rec = avroOf(e);
        const body = Buffer.concat([
          BEFORE_INPUT.toBuffer(rec),
          avroLong(2n ** 60n + BigInt(Math.floor(next() * 1e9))),
          AFTER_INPUT.toBuffer(rec),
        ]);
        return { reason: "invalid_encoding", value: Buffer.concat([header, body]) };
      },
    ],
    [
      "negative token count",
      (e) => {
        const field = pickOf(TOKEN_FIELDS);
        return { reason: "invalid_field", field, value: withFields(e, { [field]: -1 - Math.floor(next() * 1e6) }) };
      },
    ],
    ["empty event_id", (e) => ({ reason: "invalid_field", field: "event_id", value: withFields(e, { event_id: "" }) })],
    [
      "event_id not a UUID",
      (e) => ({
        reason: "invalid_field",
        field: "event_id",
        value: withFields(e, { event_id: `evt-${e.event_id}` }),
      }),
    ],
    ["empty org_id", (e) => ({ reason: "invalid_field", field: "org_id", value: withFields(e, { org_id: "" }) })],
    ["empty user_id", (e) => ({ reason: "invalid_field", field: "user_id", value: withFields(e, { user_id: "" }) })],
    [
      "unknown seat tier",
      (e) => ({ reason: "invalid_field", field: "seat_tier", value: withFields(e, { seat_tier: "gold" }) }),
    ],
    [
      "future timestamp",
      (e) => ({
        reason: "future_timestamp",
        // At least 10 minutes past the publish time (the rule allows 5), up to 30 days.
        value: withFields(e, { occurred_at: Date.now() + 600_000 + Math.floor(next() * 30 * 86_400_000) }),
      }),
    ],
    [
      "outside the backfill window",
      (e) => ({
        reason: "outside_backfill_window",
        value: withFields(e, { occurred_at: now - (36 + Math.floor(next() * 300)) * 86_400_000 }),
      }),
    ],
    ["unknown model", (e) => ({ reason: "unknown_model", value: withFields(e, { model: "gpt-4o-mini" }) })],
  ];

  const out: BadMessage[] = [];
  for (let i = 0; i < count; i++) {
    const [kind, make] = kinds[i % kinds.length]!;
    const made = make(templates[i]!);
    if (made.reason === "invalid_encoding" && made.value && made.value.length >= HEADER_LENGTH) {
      // By construction these bodies cannot be read as v1; make sure no random cut happens to stay readable.
      const sameSchema = made.value.subarray(2, HEADER_LENGTH).equals(header.subarray(2));
      if (sameSchema && !undecodable(made.value.subarray(HEADER_LENGTH))) {
        throw new Error(`malformed message of kind "${kind}" decodes as v1`);
      }
    }
    out.push({
      kind,
      reason: made.reason,
      ...(made.field ? { field: made.field } : {}),
      message: { key: `bad_${i}`, value: made.value },
    });
  }
  return out;
}
