/**
 * The changes of the control log (usage.control.v1): zod schemas, compaction keys, the wire encoding, and the
 * arithmetic between a record's offset and its version. Pure: no I/O.
 */

import { SEAT_TIERS } from "@usage/events";
import { TOPICS } from "@usage/kafka";
import { canonicalMoney, Money } from "@usage/money";
import { parseDay } from "@usage/periods";
import { parseAutoReload, parsePolicy, parsePurchase } from "@usage/policy";
import { z } from "zod";

export const CONTROL_TOPIC = TOPICS.control;

export const CHANGE_KINDS = [
  "policy",
  "auto_reload",
  "credit_purchase",
  "webhook",
  "api_key",
  "contract",
  "seat",
  "limit_request",
  "invoice_final",
] as const;
export type ChangeKind = (typeof CHANGE_KINDS)[number];

/** An org id, key id or reference: a key segment, so never a '/' (SPEC §8 ids have none). */
const segment = z.string().regex(/^[^\s/]{1,128}$/, "expected 1 to 128 characters without spaces or '/'");

const common = {
  org_id: segment,
  /** Who made the change: `operator`, `key:<key id>`, or the service that made it. */
  actor: z.string().min(1).max(256),
  /** When the change was made: an RFC 3339 UTC timestamp. */
  at: z.string().datetime(),
};

/** A new spend policy for the org; `policy` is validated and normalised with @usage/policy on write and on read. */
export const policyChangeSchema = z
  .object({ kind: z.literal("policy"), ...common, policy: z.unknown() })
  .transform((c, ctx) => {
    const parsed = parsePolicy(c.policy, c.org_id);
    if (!parsed.ok) {
      for (const e of parsed.errors) {
        ctx.addIssue({
          code: "custom",
          path: e.path && e.path !== "(root)" ? ["policy", e.path] : ["policy"],
          message: e.message,
        });
      }
      return z.NEVER;
    }
    return { kind: c.kind, org_id: c.org_id, actor: c.actor, at: c.at, policy: parsed.policy };
  });

/** New auto-reload settings for the org (validated with @usage/policy parseAutoReload). */
export const autoReloadChangeSchema = z
  .object({ kind: z.literal("auto_reload"), ...common, settings: z.unknown() })
  .transform((c, ctx) => {
    const parsed = parseAutoReload(c.settings);
    if (!parsed.ok) {
      ctx.addIssue({ code: "custom", path: ["settings", parsed.field], message: parsed.message });
      return z.NEVER;
    }
    return { kind: c.kind, org_id: c.org_id, actor: c.actor, at: c.at, settings: parsed.value };
  });

/** A notice: the API has written this purchase's credit_ledger row. `amount` is a decimal string of USD. */
export const creditPurchaseChangeSchema = z
  .object({
    kind: z.literal("credit_purchase"),
    ...common,
    entry_id: z.string().min(1).max(128),
    reference: segment,
    amount: z.string(),
  })
  .transform((c, ctx) => {
    const parsed = parsePurchase({ amount: c.amount, reference: c.reference });
    if (!parsed.ok) {
      ctx.addIssue({ code: "custom", path: [parsed.field], message: parsed.message });
      return z.NEVER;
    }
    return {
      kind: c.kind,
      org_id: c.org_id,
      actor: c.actor,
      at: c.at,
      entry_id: c.entry_id,
      reference: c.reference,
      amount: parsed.value.amount,
    };
  });

/**
 * A notice that the org's webhook changed: its URL, and whether the secret was rotated with an overlap. Never the
 * secret: unknown fields are dropped on write and on read.
 */
export const webhookChangeSchema = z.object({
  kind: z.literal("webhook"),
  ...common,
  url: z.string().max(2048).optional(),
  overlap_seconds: z.number().int().min(0).optional(),
});

/** The roles an org key can have (SPEC §11); the operator's key is configuration, not a record. */
export const KEY_ROLES = ["owner", "analyst", "group_owner", "member", "surface"] as const;
export type KeyRole = (typeof KEY_ROLES)[number];

/**
 * An API key of the org, as it now stands: created (with its role, scope, expiry and the SHA-256 of its secret —
 * never the secret), or revoked. Every API instance reads these in full and authenticates from memory, so a
 * revocation is refused everywhere as soon as each instance has read it. Notices written before keys carried their
 * role (key_id and action only) still read; their keys live in the api_keys table and act as `owner`.
 */
export const apiKeyChangeSchema = z
  .object({
    kind: z.literal("api_key"),
    ...common,
    key_id: segment,
    action: z.enum(["created", "revoked"]),
    role: z.enum(KEY_ROLES).optional(),
    group: segment.optional(),
    user: segment.optional(),
    expires_at: z.string().datetime().nullable().optional(),
    created_at: z.string().datetime().optional(),
    secret_hash: z
      .string()
      .regex(/^[0-9a-f]{64}$/, "expected a hex SHA-256")
      .optional(),
  })
  .superRefine((c, ctx) => {
    if (c.role === "group_owner" && !c.group) ctx.addIssue({ code: "custom", path: ["group"], message: "required" });
    if (c.role === "member" && !c.user) ctx.addIssue({ code: "custom", path: ["user"], message: "required" });
  });

const PRICE = /^\d{1,30}(?:\.\d{1,6})?$/;
const PCT = /^\d{1,3}(?:\.\d{1,4})?$/;
const day = z
  .string()
  .refine(
    (d) => parseDay(d) !== undefined && d >= "2000-01-01" && d <= "2999-12-31",
    "expected a date YYYY-MM-DD from 2000-01-01 to 2999-12-31",
  );

/**
 * An org's commercial terms (SPEC §13), the operator's alone: the plan (self-serve orgs buy credits that gate usage;
 * sales-assisted orgs are billed in arrears), the term start (seats are billed annually in advance from it), the
 * price per seat per month of each tier, and the discount on usage. Normalised: canonical decimals, tiers in order.
 */
export const contractSchema = z
  .object({
    plan: z.enum(["sales_assisted", "self_serve"], {
      errorMap: () => ({ message: 'expected "sales_assisted" or "self_serve"' }),
    }),
    term_start: day,
    seat_prices: z
      .record(
        z.enum(SEAT_TIERS, { errorMap: () => ({ message: `expected a seat tier: one of ${SEAT_TIERS.join(", ")}` }) }),
        z.string().regex(PRICE, 'expected USD per seat per month as a decimal string such as "30" or "12.5"'),
      )
      .default({}),
    discount_pct: z
      .string()
      .superRefine((s, ctx) => {
        // One check at a time: a string that is not a decimal never reaches the range check.
        if (!PCT.test(s) || new Money(s).gt(100)) {
          ctx.addIssue({
            code: "custom",
            message: 'expected a percentage from 0 to 100 as a decimal string such as "12.5"',
          });
        }
      })
      .default("0"),
  })
  .strict()
  .transform((c) => ({
    plan: c.plan,
    term_start: c.term_start,
    seat_prices: Object.fromEntries(
      SEAT_TIERS.flatMap((t) => (c.seat_prices[t] === undefined ? [] : [[t, canonicalMoney(c.seat_prices[t]!)]])),
    ) as Partial<Record<(typeof SEAT_TIERS)[number], string>>,
    discount_pct: canonicalMoney(c.discount_pct),
  }));
export type Contract = z.output<typeof contractSchema>;

/** The org's contract as it now stands (the operator's PUT). */
export const contractChangeSchema = z.object({ kind: z.literal("contract"), ...common, contract: contractSchema });

/**
 * A seat assignment (SPEC §13): the user holds a seat of `tier` from `effective_at` on. A change of tier is a new
 * assignment; every assignment is kept (its own record key), so the history is the log.
 */
export const seatChangeSchema = z.object({
  kind: z.literal("seat"),
  ...common,
  user_id: segment,
  tier: z.enum(SEAT_TIERS),
  effective_at: z.string().datetime(),
});

/**
 * A limit-increase request as it now stands (SPEC §8): filed (`pending`), then `approved` with the limit granted (the
 * approval also publishes the policy with the user's individual limit) or `denied`.
 */
export const limitRequestChangeSchema = z.object({
  kind: z.literal("limit_request"),
  ...common,
  request_id: segment,
  user_id: segment,
  status: z.enum(["pending", "approved", "denied"]),
  note: z.string().max(2000).nullable(),
  requested_by: z.string().min(1).max(256),
  requested_at: z.string().datetime(),
  limit: z.string().nullable(),
  decided_by: z.string().max(256).nullable(),
  decided_at: z.string().datetime().nullable(),
});

/**
 * A month's invoice was finalized (SPEC §13): the document `finalization_id` (already stored in ClickHouse, with its
 * lines) is the org's invoice for `period`. The first such record of an org and period in log order is the final
 * invoice; a later one (two finalizers racing) is ignored, and so is its document.
 */
export const invoiceFinalChangeSchema = z.object({
  kind: z.literal("invoice_final"),
  ...common,
  period: z.string().regex(/^\d{4}-(0[1-9]|1[0-2])$/, "expected a month YYYY-MM"),
  finalization_id: segment,
  number: z.string().min(1).max(64),
});

const SCHEMAS = {
  policy: policyChangeSchema,
  auto_reload: autoReloadChangeSchema,
  credit_purchase: creditPurchaseChangeSchema,
  webhook: webhookChangeSchema,
  api_key: apiKeyChangeSchema,
  contract: contractChangeSchema,
  seat: seatChangeSchema,
  limit_request: limitRequestChangeSchema,
  invoice_final: invoiceFinalChangeSchema,
} as const;

/** Any change (zod union; {@link parseChange} gives the better error). */
export const changeSchema = z.union([
  policyChangeSchema,
  autoReloadChangeSchema,
  creditPurchaseChangeSchema,
  webhookChangeSchema,
  apiKeyChangeSchema,
  contractChangeSchema,
  seatChangeSchema,
  limitRequestChangeSchema,
  invoiceFinalChangeSchema,
]);

export type PolicyChange = z.output<typeof policyChangeSchema>;
export type AutoReloadChange = z.output<typeof autoReloadChangeSchema>;
export type CreditPurchaseChange = z.output<typeof creditPurchaseChangeSchema>;
export type WebhookChange = z.output<typeof webhookChangeSchema>;
export type ApiKeyChange = z.output<typeof apiKeyChangeSchema>;
export type ContractChange = z.output<typeof contractChangeSchema>;
export type SeatChange = z.output<typeof seatChangeSchema>;
export type LimitRequestChange = z.output<typeof limitRequestChangeSchema>;
export type InvoiceFinalChange = z.output<typeof invoiceFinalChangeSchema>;
export type Change =
  | PolicyChange
  | AutoReloadChange
  | CreditPurchaseChange
  | WebhookChange
  | ApiKeyChange
  | ContractChange
  | SeatChange
  | LimitRequestChange
  | InvoiceFinalChange;

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
/** What a publisher takes: a change whose `at` defaults to the time of publishing. */
export type ChangeInput = DistributiveOmit<Change, "at"> & { at?: string };

/** A change as read from the log: its version (offset + 1) and its record key. */
export type VersionedChange = Change & { version: number; key: string };

export type ParseChangeResult =
  | { ok: true; change: Change }
  | { ok: false; reason: "invalid_encoding" | "invalid_field"; field?: string; message: string };

/** Validates a change (any kind) and returns it normalised, or the first problem with its field. */
export function parseChange(input: unknown): ParseChangeResult {
  if (typeof input !== "object" || input === null || Array.isArray(input)) {
    return { ok: false, reason: "invalid_encoding", message: "a change is a JSON object" };
  }
  const kind = (input as { kind?: unknown }).kind;
  if (typeof kind !== "string" || !(CHANGE_KINDS as readonly string[]).includes(kind)) {
    return {
      ok: false,
      reason: "invalid_field",
      field: "kind",
      message: `kind must be one of ${CHANGE_KINDS.join(", ")}`,
    };
  }
  const parsed = SCHEMAS[kind as ChangeKind].safeParse(input);
  if (parsed.success) return { ok: true, change: parsed.data };
  const issue = parsed.error.issues[0]!;
  return { ok: false, reason: "invalid_field", field: issue.path.join("."), message: issue.message };
}

/** The record key: compaction keeps the latest record per key, so the key says what must be kept. */
export function controlKey(change: Change): string {
  switch (change.kind) {
    // Only the latest policy and settings matter for the state in force; their history is in ClickHouse.
    case "policy":
      return `${change.org_id}/policy`;
    case "auto_reload":
      return `${change.org_id}/auto_reload`;
    // One key per purchase: every purchase notice is kept.
    case "credit_purchase":
      return `${change.org_id}/credit_purchase/${change.reference}`;
    case "webhook":
      return `${change.org_id}/webhook`;
    case "api_key":
      return `${change.org_id}/api_key/${change.key_id}`;
    case "contract":
      return `${change.org_id}/contract`;
    // Every assignment is kept: the seat history is the log. One per user and instant (a same-instant PUT replaces).
    case "seat":
      return `${change.org_id}/seat/${change.user_id}/${change.effective_at}`;
    case "limit_request":
      return `${change.org_id}/limit_request/${change.request_id}`;
    // Every finalization is kept, so compaction never leaves a later (losing) one in place of the first.
    case "invoice_final":
      return `${change.org_id}/invoice_final/${change.period}/${change.finalization_id}`;
  }
}

/** The record value: the change's JSON. */
export function encodeChange(change: Change): string {
  return JSON.stringify(change);
}

const UTF8 = new TextDecoder("utf-8", { fatal: true });

/**
 * Reads one record of the control log: its value must be a valid change, and its key the change's own key (a
 * record under another key would be compacted with the wrong changes).
 */
export function decodeRecord(key: Buffer | null, value: Buffer | null): ParseChangeResult {
  if (value === null) return { ok: false, reason: "invalid_encoding", message: "record has no value" };
  let json: unknown;
  try {
    json = JSON.parse(UTF8.decode(value));
  } catch (err) {
    return { ok: false, reason: "invalid_encoding", message: `value is not UTF-8 JSON: ${(err as Error).message}` };
  }
  const parsed = parseChange(json);
  if (!parsed.ok) return parsed;
  const want = controlKey(parsed.change);
  const got = key === null ? null : key.toString("utf8");
  if (got !== want) {
    return {
      ok: false,
      reason: "invalid_field",
      field: "key",
      message: `record key ${JSON.stringify(got)} is not the change's key ${JSON.stringify(want)}`,
    };
  }
  return parsed;
}

/** The version of the record at `offset` (a Kafka offset, as kafkajs gives it): offset + 1. */
export function versionOfOffset(offset: string | bigint): number {
  const version = BigInt(offset) + 1n;
  if (version < 1n || version > BigInt(Number.MAX_SAFE_INTEGER)) throw new RangeError(`offset ${offset} out of range`);
  return Number(version);
}

/** The offset of the record that is `version`: version − 1. */
export function offsetOfVersion(version: number): string {
  if (!Number.isSafeInteger(version) || version < 1) throw new RangeError(`version ${version} is not a version`);
  return String(version - 1);
}
