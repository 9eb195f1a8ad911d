/**
 * The zod schemas of the API's parameters, bodies and answers, for the OpenAPI document (routes.ts lists which
 * operation uses which; document.ts turns them into OpenAPI 3.1). Where a route already validates with zod, the
 * schema here IS that route's schema (the policy body: @usage/policy `policySchema`, which parsePolicy runs; the
 * contract body: @usage/control `contractSchema`); everything else mirrors the route's own checks rule by rule, with
 * the enums taken from the same constants the routes test against (WINDOWS, SPEND_GROUPS, TREND_GROUPS, PRODUCTS,
 * SEAT_TIERS, KEY_ROLES, …), so a value added there shows here. Answers are strict (`additionalProperties: false`):
 * the contract test (openapi.integration.test.ts) fails on any field a route sends that is not documented.
 *
 * `extendZodWithOpenApi(z)` runs here, first, so every schema (the packages' too: there is one zod module) takes
 * `.openapi(...)`.
 */
import { extendZodWithOpenApi } from "@asteasolutions/zod-to-openapi";
import {
  ALERT_STATES,
  COST_REPORT_GROUPS,
  SPEND_GROUPS,
  TOP_USERS_BY,
  TREND_GROUPS,
  USAGE_REPORT_GROUPS,
} from "@usage/clickhouse";
import { contractSchema, KEY_ROLES } from "@usage/control";
import { PRODUCTS, SEAT_TIERS, SIGNAL_KINDS } from "@usage/events";
import { WINDOWS } from "@usage/periods";
import { policySchema } from "@usage/policy";
import { z } from "zod";

extendZodWithOpenApi(z);

type Keys<T> = [keyof T & string, ...(keyof T & string)[]];
const keysOf = <T extends object>(o: T) => Object.keys(o) as Keys<T>;
const strings = <T extends string>(values: readonly T[]) => values as unknown as [T, ...T[]];

// ---------------------------------------------------------------------------------------------------- scalars

/** Ids in paths and bodies: 1 to 128 characters without spaces or '/' (server.ts ORG_ID and its copies). */
export const Id = z.string().regex(/^[^\s/]{1,128}$/);
/** An exact decimal string: money (USD), canonical ("12.5", "0"); negative only where a line subtracts. */
export const Decimal = z
  .string()
  .regex(/^-?\d+(\.\d+)?$/)
  .openapi({ description: "an exact decimal string", example: "12.5" });
/** A limit: a decimal string, "unlimited", or null for none. */
const Limit = z.string().nullable().openapi({ description: 'a decimal string, "unlimited", or null when none' });
export const Day = z.string().date().openapi({ description: "a UTC day YYYY-MM-DD", example: "2026-03-15" });
export const Period = z
  .string()
  .regex(/^\d{4}-(0[1-9]|1[0-2])$/)
  .openapi({ description: "a UTC month YYYY-MM", example: "2026-03" });
const Time = z.string().datetime({ offset: true }).openapi({ description: "an RFC 3339 time" });
const Count = z.number().int().min(0);
const Version = z.number().int().min(0).openapi({ description: "the change's version on the control plane" });

export const Product = z.enum(strings(PRODUCTS));
export const SeatTier = z.enum(strings(SEAT_TIERS));
export const Window = z.enum(strings(WINDOWS)).default("mtd");
const Status = z.enum(["ok", "warning", "blocked"]);
/**
 * A nullable enum as `anyOf: [enum, null]`: the generator writes `.nullable()` on an enum as `type: [string, null]`
 * with an enum that lacks null, which refuses null.
 */
const nullableEnum = <T extends string>(values: readonly [T, ...T[]]) => z.union([z.enum(values), z.null()]);
const BlockedBy = nullableEnum(["user", "org", "credits", "access"]);

// ---------------------------------------------------------------------------------------------------- errors

/**
 * The error body of every route: `{ error: { code, message } }`; `codes` are the codes the operation answers with
 * at that status (an invalid policy also lists every problem in `details`).
 */
export function errorBody(codes: readonly string[], details = false) {
  return z
    .object({
      error: z
        .object({
          code: z.enum(strings(codes)),
          message: z.string(),
          ...(details
            ? { details: z.array(z.object({ path: z.string(), message: z.string() }).strict()).optional() }
            : {}),
        })
        .strict(),
    })
    .strict();
}

// ---------------------------------------------------------------------------------------------------- keys

export const KeyRole = z.enum(KEY_ROLES);
const keySpec = {
  role: KeyRole.default("owner"),
  group: Id.nullable().optional().openapi({ description: "a group_owner key's group (required for it)" }),
  user: Id.nullable().optional().openapi({ description: "a member key's user (required for it)" }),
  expires_at: z.string().datetime().nullable().optional().openapi({ description: "an RFC 3339 time in the future" }),
};
/** POST /v1/orgs/{org}/keys (unknown keys are ignored). */
export const KeySpecBody = z.object(keySpec).openapi("KeySpec");
/** POST /v1/keys: the org's first key, by the operator. */
export const OperatorKeyBody = z.object({ org_id: Id, ...keySpec }).openapi("OperatorKeySpec");
export const RotateBody = z.object({
  overlap_seconds: z.number().int().min(0).max(2_592_000).default(86_400),
});
const createdKey = {
  key: z.string().openapi({ description: "the secret, shown this once" }),
  key_id: z.string(),
  org_id: z.string(),
  role: KeyRole,
  group: z.string().nullable(),
  user: z.string().nullable(),
  expires_at: z.string().nullable(),
  created_at: z.string(),
  version: Version,
};
export const CreatedKey = z.object(createdKey).strict().openapi("CreatedKey");
// Not CreatedKey.extend(): the generator writes an extension as allOf [parent, extra], which a strict parent refuses.
export const RotatedKey = z
  .object({
    ...createdKey,
    replaces: z.object({ key_id: z.string(), expires_at: z.string().nullable() }).strict(),
  })
  .strict()
  .openapi("RotatedKey");
export const KeyList = z
  .object({
    keys: z.array(
      z
        .object({
          key_id: z.string(),
          role: KeyRole,
          group: z.string().nullable(),
          user: z.string().nullable(),
          created_at: z.string().nullable(),
          expires_at: z.string().nullable(),
          last_used_at: z.string().nullable(),
          status: z.enum(["active", "revoked", "expired"]),
        })
        .strict(),
    ),
  })
  .strict()
  .openapi("KeyList");
export const RevokedKey = z
  .object({ key_id: z.string(), status: z.literal("revoked"), revoked_at: z.string(), version: Version })
  .strict();

// ---------------------------------------------------------------------------------------------------- policy

/** The PUT body: the very schema parsePolicy validates with. */
export const PolicyBody = policySchema.openapi("PolicyInput");
/** The policy as answered: every default filled in, `org_id` set, and its version. */
export const PolicyOut = z
  .object(
    Object.fromEntries(
      Object.entries(policySchema.shape).map(([k, v]) => [k, v instanceof z.ZodDefault ? v.removeDefault() : v]),
    ),
  )
  .extend({ org_id: z.string(), version: Version })
  .strict()
  .openapi("Policy");

// ---------------------------------------------------------------------------------------------------- caps

const UserCap = z
  .object({
    limit: Limit,
    source: z.string().openapi({ description: "individual, group:<name>, seat_tier:<tier> or none" }),
    spend: Decimal,
    remaining: Decimal.nullable(),
    status: Status,
    blocked_by: BlockedBy,
    products: z.array(Product).optional(),
  })
  .strict()
  .openapi("UserCap");
export const Caps = z
  .object({
    org: z
      .object({ limit: Limit, spend: Decimal, status: Status })
      .strict()
      .optional()
      .openapi({ description: "absent for a member or group owner key (its users' entries only)" }),
    credits: z
      .object({ balance: Decimal, status: z.enum(["ok", "blocked"]) })
      .strict()
      .optional(),
    users: z.record(z.string(), UserCap),
  })
  .strict()
  .openapi("Caps");
export const Allowance = z
  .object({ allowed: z.boolean(), limit: Limit, spend: Decimal, remaining: Decimal.nullable(), blocked_by: BlockedBy })
  .strict()
  .openapi("Allowance");

// ---------------------------------------------------------------------------------------------------- spend, analytics

const GROUP_NOTE = {
  overlapping: z
    .literal(true)
    .optional()
    .openapi({ description: "group_by=group: a user counts in each of its groups" }),
  note: z.string().optional(),
};
export const SpendQuery = z.object({
  window: Window,
  at: Day.optional(),
  group_by: z.enum([...keysOf(SPEND_GROUPS), "group"]).optional(),
  product: Product.optional(),
});
export const Spend = z
  .object({
    org_id: z.string(),
    window: z.enum(strings(WINDOWS)),
    from: Day,
    to: Day,
    product: Product.optional(),
    group_by: z.literal("group").optional(),
    ...GROUP_NOTE,
    total: Decimal,
    rows: z.array(
      z
        .object({
          key: z.string(),
          spend: Decimal,
          gross_spend: Decimal,
          requests: Count,
          input_tokens: Count,
          output_tokens: Count,
          cache_write_tokens: Count,
          cache_read_tokens: Count,
        })
        .strict(),
    ),
  })
  .strict()
  .openapi("Spend");
export const TopUsersQuery = z.object({
  window: Window,
  at: Day.optional(),
  by: z.enum(keysOf(TOP_USERS_BY)).default("spend"),
  limit: z.coerce.number().int().min(1).max(100).default(10),
});
export const TopUsers = z
  .object({
    org_id: z.string(),
    window: z.enum(strings(WINDOWS)),
    from: Day,
    to: Day,
    by: z.enum(keysOf(TOP_USERS_BY)),
    users: z.array(
      z
        .object({
          rank: z.number().int().min(1),
          user_id: z.string(),
          user_email: z.string(),
          spend: Decimal,
          gross_spend: Decimal,
          requests: Count,
          tokens: Count,
        })
        .strict(),
    ),
  })
  .strict()
  .openapi("TopUsers");
export const TrendsQuery = z.object({
  from: Day.optional().openapi({ description: "default: 6 days before `to`" }),
  to: Day.optional().openapi({ description: "default: today (UTC)" }),
  group_by: z.enum([...keysOf(TREND_GROUPS), "group"]).default("product"),
  product: Product.optional(),
});
export const Trends = z
  .object({
    org_id: z.string(),
    from: Day,
    to: Day,
    group_by: z.enum([...keysOf(TREND_GROUPS), "group"]),
    product: Product.optional(),
    ...GROUP_NOTE,
    days: z.array(
      z
        .object({
          day: Day,
          groups: z.array(
            z
              .object({ key: z.string(), spend: Decimal, gross_spend: Decimal, requests: Count, tokens: Count })
              .strict(),
          ),
        })
        .strict(),
    ),
  })
  .strict()
  .openapi("Trends");
export const ExportQuery = z.object({
  range: z.enum(["mtd", "last_month", "last_90_days"]).optional().openapi({ description: "default mtd" }),
  from: Day.optional(),
  to: Day.optional(),
});
export const ActivityQuery = z.object({ at: Day.optional().openapi({ description: "default: today (UTC)" }) });
const ActiveCounts = z.object({ dau: Count, wau: Count, mau: Count }).strict();
const DayRange = z.object({ from: Day, to: Day }).strict();
export const Activity = z
  .object({
    org_id: z.string(),
    at: Day,
    windows: z.object({ dau: DayRange, wau: DayRange, mau: DayRange }).strict(),
    dau: Count,
    wau: Count,
    mau: Count,
    seats_assigned: Count,
    seats_active_30d: Count,
    utilization: Decimal.nullable().openapi({ description: "seats_active_30d / seats_assigned; null without seats" }),
    by_product: z.record(z.string(), ActiveCounts),
  })
  .strict()
  .openapi("Activity");

// ---------------------------------------------------------------------------------------------------- alerts

export const WebhookBody = z.object({
  url: z.string().url(),
  secret: z.string().min(16).max(1024).openapi({ description: "stored encrypted, never returned or logged" }),
  overlap_seconds: z.number().int().min(0).max(604_800).default(0),
});
export const Webhook = z
  .object({ url: z.string(), updated_at: z.string(), version: Version.optional() })
  .strict()
  .openapi("Webhook");
export const Alerts = z
  .object({
    alerts: z.array(
      z
        .object({
          alert_id: z.string(),
          org_id: z.string(),
          entity: z.object({ type: z.enum(["org", "user"]), id: z.string() }).strict(),
          period: Period,
          kind: z.enum(strings(SIGNAL_KINDS)),
          threshold: z.string().nullable(),
          limit: z.string().nullable(),
          spend: Decimal,
          status: Status,
          created_at: z.string(),
          cause_event_id: z.string().nullable(),
          sequence: z.number().int().optional(),
          amount: Decimal.optional(),
          balance: Decimal.optional(),
          forecast: z
            .object({
              projected: Decimal,
              daily_rate: Decimal,
              reaches_limit_on: z.string().nullable(),
              method: z.string(),
            })
            .strict()
            .optional(),
          limit_requests: z
            .object({
              pending: Count,
              requests: z.array(
                z
                  .object({
                    request_id: z.string(),
                    user_id: z.string(),
                    requested_at: z.string(),
                    note: z.string().nullable(),
                  })
                  .strict(),
              ),
            })
            .strict()
            .optional(),
          delivery: z
            .object({
              state: z.enum(ALERT_STATES),
              attempts: Count,
              last_error: z.string().nullable(),
              delivered_at: z.string().nullable(),
              next_attempt_at: z.string().nullable(),
            })
            .strict(),
        })
        .strict()
        .openapi("Alert"),
    ),
  })
  .strict()
  .openapi("Alerts");

// ---------------------------------------------------------------------------------------------------- reconciliation

const Figures = z.object({ requests: Count, gross: Decimal, net: Decimal }).strict();
const Invoiced = z.object({ requests: Count, net: Decimal }).strict();
export const Reconciliation = z
  .object({
    org_id: z.string(),
    period: Period,
    raw: Figures,
    rollup: Figures,
    invoice: z
      .object({
        status: z.enum(["draft", "final"]),
        number: z.string().nullable(),
        total: Decimal,
        total_matches_lines: z.boolean(),
        requests: Count,
        net: Decimal,
        usage_lines: Invoiced,
        adjustments: z.array(
          z
            .object({ invoice_period: Period, status: z.enum(["draft", "final"]), requests: Count, net: Decimal })
            .strict(),
        ),
      })
      .strict(),
    differences: z.array(z.object({ user_id: z.string(), raw: Figures, rollup: Figures, invoice: Invoiced }).strict()),
    balanced: z.boolean(),
    late_totals: Figures,
    late_events: z.array(
      z
        .object({
          event_id: z.string(),
          occurred_at: z.string(),
          arrived_at: z.string(),
          user_id: z.string(),
          gross: Decimal,
          net: Decimal,
        })
        .strict(),
    ),
    late_events_truncated: z.boolean(),
  })
  .strict()
  .openapi("Reconciliation");

// ---------------------------------------------------------------------------------------------------- credits

/** Mirrors @usage/policy's CREDIT_AMOUNT: at most 12 integer digits and 6 decimal places. */
const CreditAmount = z.string().regex(/^\d{1,12}(\.\d{1,6})?$/);
export const PurchaseBody = z.object({
  amount: CreditAmount.openapi({ description: "USD, greater than 0", example: "100.00" }),
  reference: z
    .string()
    .regex(/^[\w.:-]{1,128}$/)
    .optional()
    .openapi({ description: "an order or invoice number: the same reference is the same purchase" }),
});
export const AutoReloadBody = z
  .object({
    enabled: z.boolean().default(true),
    when_below: CreditAmount,
    amount: CreditAmount.openapi({ description: "greater than 0" }),
    monthly_max: CreditAmount.openapi({ description: "at least amount" }),
  })
  .strict();
export const AutoReload = z
  .object({ enabled: z.boolean(), when_below: Decimal, amount: Decimal, monthly_max: Decimal, version: Version })
  .strict()
  .openapi("AutoReload");
export const Credits = z
  .union([
    z
      .object({
        org_id: z.string(),
        prepaid: z.literal(true),
        balance: Decimal,
        status: z.enum(["ok", "blocked"]),
        purchased: Decimal,
        reloaded: Decimal,
        spent: Decimal,
        opened_at: z.string(),
        entries: Count,
        reloads: Count,
        reloaded_this_month: Decimal,
        auto_reload: z.record(z.string(), z.unknown()).nullable(),
      })
      .strict(),
    z.object({ org_id: z.string(), prepaid: z.literal(false) }).strict(),
  ])
  .openapi("Credits");
const LedgerEntry = z
  .object({
    entry_id: z.string(),
    kind: z.enum(["purchase", "reload"]),
    amount: Decimal,
    reference: z.string(),
    sequence: Count,
    period: Period,
    created_at: z.string(),
    created_by: z.string(),
    balance_after: Decimal.optional(),
  })
  .strict()
  .openapi("LedgerEntry");
export const Ledger = z.object({ org_id: z.string(), entries: z.array(LedgerEntry) }).strict();
export const Purchase = z.object({ entry: LedgerEntry, credits: Credits }).strict();

// ---------------------------------------------------------------------------------------------------- forecast

const Forecast = z
  .object({
    period: Period,
    as_of: z.string(),
    method: z.string(),
    spend_to_date: Decimal,
    daily_rate: Decimal,
    projected: Decimal,
    limit: Limit,
    limit_reached: z.boolean(),
    reaches_limit_on: Day.nullable(),
    will_reach_limit: z.boolean(),
    days_of_data: Count,
  })
  .strict()
  .openapi("Forecast");
export const OrgForecast = z
  .object({
    org_id: z.string(),
    period: Period,
    as_of: z.string(),
    method: z.string(),
    org: Forecast,
    users: z.record(z.string(), Forecast),
  })
  .strict()
  .openapi("OrgForecast");

// ---------------------------------------------------------------------------------------------------- audit

const AuditTime = z
  .string()
  .regex(/^\d{4}-\d{2}-\d{2}(T[\d:.]+Z)?$/)
  .openapi({ description: "a date YYYY-MM-DD (its whole day) or an RFC 3339 UTC time" });
export const AuditQuery = z.object({
  from: AuditTime.optional().openapi({ description: "default: 30 days before `to`" }),
  to: AuditTime.optional().openapi({ description: "exclusive; default: now" }),
});
export const Audit = z
  .object({
    org_id: z.string(),
    from: z.string(),
    to: z.string(),
    entries: z.array(
      z
        .object({
          at: z.string(),
          version: Version,
          actor: z.string(),
          action: z.string(),
          target: z.string(),
          before: z.record(z.string(), z.unknown()).nullable(),
          after: z.record(z.string(), z.unknown()),
        })
        .strict(),
    ),
  })
  .strict()
  .openapi("Audit");

// ---------------------------------------------------------------------------------------------------- billing

/** The PUT body: the very schema the route validates with. */
export const ContractBody = contractSchema.openapi("ContractInput");
const contractOut = {
  org_id: z.string(),
  plan: z.enum(["sales_assisted", "self_serve"]),
  term_start: Day,
  seat_prices: z.record(SeatTier, Decimal),
  discount_pct: Decimal,
  version: Version,
};
export const ContractSet = z.object(contractOut).strict().openapi("Contract");
export const ContractHeld = z
  .object({ ...contractOut, updated_at: z.string(), updated_by: z.string() })
  .strict()
  .openapi("ContractInForce");
export const SeatBody = z
  .object({
    tier: SeatTier,
    effective_at: z.string().datetime().optional().openapi({ description: "an RFC 3339 UTC time (…Z); default: now" }),
  })
  .strict();
export const SeatSet = z
  .object({ org_id: z.string(), user_id: z.string(), tier: SeatTier, effective_at: z.string(), version: Version })
  .strict();
const SeatEntry = z
  .object({ user_id: z.string(), tier: SeatTier, effective_at: z.string(), assigned_by: z.string(), version: Version })
  .strict();
export const Seats = z
  .object({
    org_id: z.string(),
    assigned: Count,
    by_tier: z.record(z.string(), Count),
    seats: z.array(SeatEntry),
    history: z.array(SeatEntry),
  })
  .strict()
  .openapi("Seats");
const nullableText = z.string().nullable();
export const Invoice = z
  .object({
    org_id: z.string(),
    period: Period,
    status: z.enum(["draft", "final"]),
    number: nullableText,
    finalized_at: nullableText,
    finalized_by: nullableText,
    currency: z.literal("USD"),
    plan: nullableEnum(["sales_assisted", "self_serve"]),
    lines: z.array(
      z
        .object({
          kind: z.enum(["seat", "usage", "adjustment", "credits_applied"]),
          description: z.string(),
          quantity: z.number(),
          unit_price: nullableText,
          user_id: nullableText,
          product: nullableText,
          model: nullableText,
          tier: nullableText,
          from_tier: nullableText,
          date: nullableText,
          period: nullableText,
          amount_exact: Decimal,
          amount: Decimal,
        })
        .strict(),
    ),
    subtotal_exact: Decimal,
    total: Decimal,
  })
  .strict()
  .openapi("Invoice");

// ---------------------------------------------------------------------------------------------------- limit requests

const Note = z.string().max(2000).nullable().optional();
export const NoteBody = z.object({ note: Note }).strict();
export const ApproveBody = z
  .object({
    limit: z
      .string()
      .regex(/^(unlimited|\d+(\.\d{1,6})?)$/)
      .openapi({ description: '"unlimited" or a decimal string >= 0 (at most 6 decimal places)', example: "250" }),
    note: Note,
  })
  .strict();
const limitRequest = {
  request_id: z.string(),
  org_id: z.string(),
  user_id: z.string(),
  status: z.enum(["pending", "approved", "denied"]),
  note: nullableText,
  requested_by: z.string(),
  requested_at: z.string(),
  limit: nullableText,
  decided_by: nullableText,
  decided_at: nullableText,
  version: Version,
};
export const LimitRequest = z.object(limitRequest).strict().openapi("LimitRequest");
export const Approved = z
  .object({ ...limitRequest, policy_version: Version.openapi({ description: "the policy version with the limit" }) })
  .strict();
export const LimitRequestList = z.object({ org_id: z.string(), requests: z.array(LimitRequest) }).strict();

// ---------------------------------------------------------------------------------------------------- reports

const reportQuery = {
  starting_at: Time,
  ending_at: Time.optional().openapi({ description: "exclusive; default: the end of the bucket holding now" }),
  page: z.string().max(2048).optional().openapi({ description: "a next_page token, sent with the same query" }),
};
const groupList = <T extends object>(groups: T) =>
  z
    .array(z.enum(keysOf(groups)))
    .optional()
    .openapi({ description: "repeatable: group_by[]=a&group_by[]=b" });
export const UsageReportQuery = z.object({
  ...reportQuery,
  bucket_width: z.enum(["1m", "1h", "1d"]).default("1d"),
  "group_by[]": groupList(USAGE_REPORT_GROUPS),
  limit: z.coerce.number().int().min(1).max(1440).optional().openapi({
    description: "buckets per page: 1d default 7, max 31; 1h default 24, max 168; 1m default 60, max 1440",
  }),
});
export const CostReportQuery = z.object({
  ...reportQuery,
  bucket_width: z.enum(["1d"]).default("1d"),
  "group_by[]": groupList(COST_REPORT_GROUPS),
  limit: z.coerce.number().int().min(1).max(31).default(7),
});
const page = (result: z.ZodTypeAny) =>
  z
    .object({
      data: z.array(z.object({ starting_at: z.string(), ending_at: z.string(), results: z.array(result) }).strict()),
      has_more: z.boolean(),
      next_page: z.string().nullable(),
    })
    .strict();
const groupFields = <T extends object>(groups: T) =>
  Object.fromEntries(keysOf(groups).map((g) => [g, z.string().nullable()]));
export const UsageReport = page(
  z
    .object({
      uncached_input_tokens: Count,
      cache_creation_input_tokens: Count,
      cache_read_input_tokens: Count,
      output_tokens: Count,
      requests: Count,
      ...groupFields(USAGE_REPORT_GROUPS),
    })
    .strict(),
).openapi("UsageReport");
export const CostReport = page(
  z
    .object({
      amount: Decimal.openapi({ description: "US cents, exact, net of the org's discount" }),
      currency: z.literal("USD"),
      cost_type: z.literal("tokens"),
      token_type: z.enum([
        "uncached_input_tokens",
        "output_tokens",
        "cache_creation_input_tokens",
        "cache_read_input_tokens",
      ]),
      ...groupFields(COST_REPORT_GROUPS),
    })
    .strict(),
).openapi("CostReport");

// ---------------------------------------------------------------------------------------------------- misc

export const Health = z.object({ status: z.enum(["ok", "starting"]) }).strict();
export const QueryOfStatus = z.object({ status: z.enum(["pending", "approved", "denied"]).optional() });
export const QueryOfPeriod = z.object({ period: Period.optional().openapi({ description: "default: this month" }) });
export const QueryOfProduct = z.object({ product: Product.optional() });
