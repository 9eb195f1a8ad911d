import { z } from "zod";
import { MAX_TOKENS, PRODUCTS, type Rejection, SEAT_TIERS, type UsageEvent, type Validated } from "./model.js";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
// RFC 3339 in UTC: a `Z` or a zero offset. Fractions below a millisecond are truncated (Avro timestamp-millis).
const RFC3339_UTC = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]00:00)$/;

export const MAX_ID_LENGTH = 128;
export const MAX_OPTIONAL_LENGTH = 512;
export const MAX_FUTURE_MS = 5 * 60 * 1000;
export const DEFAULT_BACKFILL_DAYS = 35;

const id = z
  .string({ required_error: "is required", invalid_type_error: "must be a string" })
  .min(1, "must not be empty")
  .max(MAX_ID_LENGTH, `must be at most ${MAX_ID_LENGTH} characters`);
const optional = z
  .string({ invalid_type_error: "must be a string" })
  .max(MAX_OPTIONAL_LENGTH, `must be at most ${MAX_OPTIONAL_LENGTH} characters`)
  .nullish();
const tokens = z
  .number({ required_error: "is required", invalid_type_error: "must be an integer" })
  .int("must be an integer")
  .min(0, "must be at least 0")
  .max(MAX_TOKENS, `must be at most ${MAX_TOKENS}`);

/** The zod schema of the JSON form (SPEC §3). Time-window rules are applied by `validateUsageEvent`. */
export const usageEventJsonSchema = z.object({
  event_id: z
    .string({ required_error: "is required", invalid_type_error: "must be a string" })
    .regex(UUID, "must be a UUID"),
  occurred_at: z
    .string({ required_error: "is required", invalid_type_error: "must be an RFC 3339 UTC timestamp" })
    .refine((v) => parseTimestamp(v) !== undefined, "must be an RFC 3339 UTC timestamp"),
  org_id: id,
  user_id: id,
  user_email: optional,
  account_uuid: optional,
  request_id: optional,
  region: optional,
  seat_tier: z.enum(SEAT_TIERS, { errorMap: () => ({ message: `must be one of ${SEAT_TIERS.join(", ")}` }) }),
  product: z.enum(PRODUCTS, { errorMap: () => ({ message: `must be one of ${PRODUCTS.join(", ")}` }) }),
  model: z
    .string({ required_error: "is required", invalid_type_error: "must be a string" })
    .min(1, "must not be empty")
    .max(MAX_ID_LENGTH, `must be at most ${MAX_ID_LENGTH} characters`),
  input_tokens: tokens,
  output_tokens: tokens,
  cache_write_tokens: tokens,
  cache_read_tokens: tokens,
});

type UsageEventJson = z.infer<typeof usageEventJsonSchema>;

const SEAT_TIER_SET: ReadonlySet<unknown> = new Set(SEAT_TIERS);
const PRODUCT_SET: ReadonlySet<unknown> = new Set(PRODUCTS);

const isId = (v: unknown): boolean => typeof v === "string" && v.length >= 1 && v.length <= MAX_ID_LENGTH;
const isOptional = (v: unknown): boolean =>
  v === null || v === undefined || (typeof v === "string" && v.length <= MAX_OPTIONAL_LENGTH);
const isTokens = (v: unknown): boolean => typeof v === "number" && Number.isInteger(v) && v >= 0 && v <= MAX_TOKENS;

/**
 * The rules of `usageEventJsonSchema` as plain checks, for the hot path (pricing, the producer library): true only
 * when zod would accept the input as it is (every field, and an input zod takes for an object: not a Map, Set, Date
 * or thenable), except `occurred_at`, of which only the type is checked here (the caller parses it once and goes to
 * zod when it does not parse). False sends the input to zod, which then decides and words the rejection.
 * `validate.test.ts` holds both to the same answer over generated inputs.
 */
export function passesFieldRules(o: Record<string, unknown>): boolean {
  if (o instanceof Map || o instanceof Set || o instanceof Date) return false;
  if (typeof o.then === "function" && typeof o.catch === "function") return false;
  return (
    typeof o.event_id === "string" &&
    UUID.test(o.event_id) &&
    typeof o.occurred_at === "string" &&
    isId(o.org_id) &&
    isId(o.user_id) &&
    isOptional(o.user_email) &&
    isOptional(o.account_uuid) &&
    isOptional(o.request_id) &&
    isOptional(o.region) &&
    SEAT_TIER_SET.has(o.seat_tier) &&
    PRODUCT_SET.has(o.product) &&
    isId(o.model) &&
    isTokens(o.input_tokens) &&
    isTokens(o.output_tokens) &&
    isTokens(o.cache_write_tokens) &&
    isTokens(o.cache_read_tokens)
  );
}

/** The fields as the schema accepts them and `occurred_at` in milliseconds, or zod's first issue. */
function checkFields(input: Record<string, unknown>): { e: UsageEventJson; at: number } | { issue: z.ZodIssue } {
  if (passesFieldRules(input)) {
    // The common case, without zod's allocations: the same fields, the same values zod would hand back.
    const at = parseTimestamp(input.occurred_at as string);
    if (at !== undefined) return { e: input as UsageEventJson, at };
  }
  // zod judges anything the plain checks did not pass, so every rejection (and its message) is zod's.
  const parsed = usageEventJsonSchema.safeParse(input);
  if (!parsed.success) return { issue: parsed.error.issues[0]! };
  return { e: parsed.data, at: parseTimestamp(parsed.data.occurred_at)! };
}

/** Milliseconds since the epoch for an RFC 3339 UTC timestamp, or undefined when it is not one. */
export function parseTimestamp(value: string): number | undefined {
  const m = RFC3339_UTC.exec(value);
  if (!m) return undefined;
  const [, y, mo, d, h, mi, s, frac] = m;
  const ms = frac ? Number(frac.slice(1, 4).padEnd(3, "0")) : 0;
  const t = Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s), ms);
  // Date.UTC rolls over out-of-range parts (Feb 30 → Mar 2); a real timestamp survives the round trip.
  const back = new Date(t);
  if (
    back.getUTCFullYear() !== Number(y) ||
    back.getUTCMonth() !== Number(mo) - 1 ||
    back.getUTCDate() !== Number(d) ||
    back.getUTCHours() !== Number(h) ||
    back.getUTCMinutes() !== Number(mi) ||
    back.getUTCSeconds() !== Number(s)
  ) {
    return undefined;
  }
  return t;
}

export interface ValidationOptions {
  /** The instant to judge `occurred_at` against. */
  now: number;
  /** How far back an event may be (SPEC §3, default 35 days). */
  backfillDays?: number;
}

/**
 * Applies every field rule of SPEC §3 to a decoded event (from JSON or Avro) and returns the normalised
 * event or one rejection with its reason code. The model id is checked against a rate card by pricing,
 * which owns `unknown_model`.
 */
export function validateUsageEvent(input: unknown, options: ValidationOptions): Validated<UsageEvent> {
  const eventId = readEventId(input);
  if (typeof input !== "object" || input === null || Array.isArray(input)) {
    return reject({ code: "invalid_encoding", message: "an event must be a JSON object", event_id: eventId });
  }
  const checked = checkFields(input as Record<string, unknown>);
  if ("issue" in checked) {
    const field = String(checked.issue.path[0] ?? "event");
    return reject({ code: "invalid_field", field, message: `${field} ${checked.issue.message}`, event_id: eventId });
  }
  const { e, at } = checked;
  if (at > options.now + MAX_FUTURE_MS) {
    return reject({
      code: "future_timestamp",
      message: `occurred_at ${e.occurred_at} is more than 5 minutes in the future`,
      event_id: e.event_id,
    });
  }
  const backfillDays = options.backfillDays ?? DEFAULT_BACKFILL_DAYS;
  if (at < options.now - backfillDays * 86_400_000) {
    return reject({
      code: "outside_backfill_window",
      message: `occurred_at ${e.occurred_at} is older than the ${backfillDays}-day backfill window`,
      event_id: e.event_id,
    });
  }
  const event: UsageEvent = {
    event_id: e.event_id.toLowerCase(),
    occurred_at: new Date(at).toISOString(),
    org_id: e.org_id,
    user_id: e.user_id,
    user_email: e.user_email ?? null,
    account_uuid: e.account_uuid ?? null,
    request_id: e.request_id ?? null,
    region: e.region ?? null,
    seat_tier: e.seat_tier,
    product: e.product,
    model: e.model,
    input_tokens: e.input_tokens,
    output_tokens: e.output_tokens,
    cache_write_tokens: e.cache_write_tokens,
    cache_read_tokens: e.cache_read_tokens,
  };
  return { ok: true, value: event };
}

/** Parses one JSON line and validates it; a line that is not JSON is `invalid_encoding`. */
export function validateJsonLine(line: string, options: ValidationOptions): Validated<UsageEvent> {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch (err) {
    return reject({ code: "invalid_encoding", message: `not valid JSON: ${(err as Error).message}` });
  }
  return validateUsageEvent(value, options);
}

function readEventId(input: unknown): string | undefined {
  if (typeof input === "object" && input !== null && "event_id" in input) {
    const v = (input as { event_id: unknown }).event_id;
    if (typeof v === "string" && v.length <= MAX_ID_LENGTH) return v;
  }
  return undefined;
}

function reject(rejection: Rejection): { ok: false; rejection: Rejection } {
  return { ok: false, rejection };
}
