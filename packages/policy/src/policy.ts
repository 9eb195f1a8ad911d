/**
 * The org spend policy of SPEC §5: validation (zod) and defaults. The parsed policy is normalised: every decimal
 * is canonical (`"20.50"` → `"20.5"`), thresholds are sorted ascending, group members are de-duplicated.
 */
import { PRODUCTS, type Product, SEAT_TIERS, type SeatTier } from "@usage/events";
import { canonicalLimit, canonicalMoney, Money } from "@usage/money";
import { z } from "zod";

/** A decimal string ≥ 0 (at most 6 decimal places) or `"unlimited"`; an absent key means "not set". */
export type LimitValue = string | "unlimited";

export interface Policy {
  org_id: string;
  mode: "override" | "strict";
  multi_group: "lowest" | "highest";
  discount_pct: string;
  /** Fractions of a limit in (0, 1], ascending, no duplicates. */
  thresholds: string[];
  org_limit?: LimitValue;
  seat_tier_limits: Partial<Record<SeatTier, LimitValue>>;
  groups: Record<string, { limit?: LimitValue; members: string[] }>;
  users: Record<string, { limit?: LimitValue; seat_tier?: SeatTier; products?: Product[] }>;
  /**
   * Products open only to members of the groups named (SPEC §5); a product not listed is open to everyone. A user may
   * be granted more with `users[u].products`.
   */
  product_access: Partial<Record<Product, string[]>>;
  /** Whether members may file limit-increase requests (SPEC §8); `"disabled"` refuses new ones. */
  limit_requests: "enabled" | "disabled";
}

export interface PolicyError {
  path: string;
  message: string;
}

export type ParsePolicyResult = { ok: true; policy: Policy } | { ok: false; errors: PolicyError[] };

export const DEFAULT_THRESHOLDS: readonly string[] = ["0.5", "0.75", "0.9", "1"];

/** Decimal places a limit may have (micro-USD). */
export const LIMIT_SCALE = 6;
/** Decimal places `discount_pct` may have. */
export const DISCOUNT_SCALE = 4;
/** Longest org id, group name or user id (the event's id limit, SPEC §3). */
export const MAX_NAME_LENGTH = 128;

/** A policy with no limits: override mode, lowest of several groups, no discount, the default thresholds. */
export function defaultPolicy(orgId: string): Policy {
  return {
    org_id: orgId,
    mode: "override",
    multi_group: "lowest",
    discount_pct: "0",
    thresholds: [...DEFAULT_THRESHOLDS],
    seat_tier_limits: {},
    groups: {},
    users: {},
    product_access: {},
    limit_requests: "enabled",
  };
}

const UNSIGNED_DECIMAL = /^\d+(?:\.(\d+))?$/;

function decimalWithScale(scale: number, what: string) {
  const message = `expected ${what}: a decimal string such as "12.5" (no exponent, at most ${scale} decimal places)`;
  return z.string({ invalid_type_error: message }).superRefine((s, ctx) => {
    const match = UNSIGNED_DECIMAL.exec(s);
    // Fatal: refinements chained after this one (a range check) only ever see a decimal they can read.
    if (!match || (match[1]?.length ?? 0) > scale) ctx.addIssue({ code: z.ZodIssueCode.custom, message, fatal: true });
  });
}

const LIMIT_MESSAGE = `expected "unlimited" or a decimal string >= 0 such as "200" or "12.5" (no exponent, at most ${LIMIT_SCALE} decimal places)`;

const limitValue = z.string({ invalid_type_error: LIMIT_MESSAGE }).superRefine((s, ctx) => {
  if (s === "unlimited") return;
  const match = UNSIGNED_DECIMAL.exec(s);
  if (!match || (match[1]?.length ?? 0) > LIMIT_SCALE)
    ctx.addIssue({ code: z.ZodIssueCode.custom, message: LIMIT_MESSAGE });
});

/**
 * Org ids, group names and user ids: non-empty, at most 128 characters. `__proto__` is refused because a JSON
 * object cannot safely carry it as a key (zod would drop it silently).
 */
const name = (what: string) =>
  z
    .string({ invalid_type_error: `expected ${what} as a string` })
    .min(1, `expected a non-empty ${what}`)
    .max(MAX_NAME_LENGTH, `expected ${what} of at most ${MAX_NAME_LENGTH} characters`)
    .refine((s) => s !== "__proto__", `"__proto__" is not allowed as ${what}`);

const seatTier = z.enum(SEAT_TIERS, {
  errorMap: () => ({ message: `expected a seat tier: one of ${SEAT_TIERS.join(", ")}` }),
});

const threshold = z
  .string({ invalid_type_error: 'expected a threshold as a decimal string such as "0.75"' })
  .superRefine((s, ctx) => {
    if (!UNSIGNED_DECIMAL.test(s)) {
      ctx.addIssue({
        code: z.ZodIssueCode.custom,
        message: 'expected a threshold as a decimal string such as "0.75" (no exponent)',
      });
      return;
    }
    const d = new Money(s);
    if (d.lte(0) || d.gt(1)) {
      ctx.addIssue({
        code: z.ZodIssueCode.custom,
        message: `expected a threshold greater than 0 and at most 1, got "${s}"`,
      });
    }
  });

const discountPct = decimalWithScale(DISCOUNT_SCALE, "a percentage from 0 to 100").refine(
  (s) => new Money(s).lte(100),
  "expected a percentage from 0 to 100",
);

const seatTierLimits = z
  .object(
    Object.fromEntries(SEAT_TIERS.map((tier) => [tier, limitValue.optional()])) as Record<
      SeatTier,
      z.ZodOptional<typeof limitValue>
    >,
  )
  .strict();

const group = z
  .object({
    limit: limitValue.optional(),
    members: z.array(name("user id"), { invalid_type_error: "expected an array of user ids" }),
  })
  .strict();

const product = z.enum(PRODUCTS, {
  errorMap: () => ({ message: `expected a product: one of ${PRODUCTS.join(", ")}` }),
});

const user = z
  .object({
    limit: limitValue.optional(),
    seat_tier: seatTier.optional(),
    products: z.array(product, { invalid_type_error: "expected an array of products" }).optional(),
  })
  .strict();

const productAccess = z
  .object(
    Object.fromEntries(
      PRODUCTS.map((p) => [p, z.array(name("group name"), { invalid_type_error: "expected an array of group names" })]),
    ) as Record<Product, z.ZodArray<ReturnType<typeof name>>>,
  )
  .partial()
  .strict();

/** The policy document (SPEC §5) as zod checks it: parsePolicy runs it, and the API's OpenAPI document shows it. */
export const policySchema = z
  .object({
    org_id: name("org id").optional(),
    mode: z
      .enum(["override", "strict"], { errorMap: () => ({ message: 'expected "override" or "strict"' }) })
      .default("override"),
    multi_group: z
      .enum(["lowest", "highest"], { errorMap: () => ({ message: 'expected "lowest" or "highest"' }) })
      .default("lowest"),
    discount_pct: discountPct.default("0"),
    thresholds: z
      .array(threshold, { invalid_type_error: "expected an array of thresholds" })
      .min(1, "expected at least one threshold")
      .default([...DEFAULT_THRESHOLDS]),
    org_limit: limitValue.optional(),
    seat_tier_limits: seatTierLimits.default({}),
    groups: z.record(name("group name"), group, { invalid_type_error: "expected an object of groups" }).default({}),
    users: z.record(name("user id"), user, { invalid_type_error: "expected an object of users" }).default({}),
    product_access: productAccess.default({}),
    limit_requests: z
      .enum(["enabled", "disabled"], { errorMap: () => ({ message: 'expected "enabled" or "disabled"' }) })
      .default("enabled"),
  })
  .strict();

const PLAIN_KEY = /^[^.[\]\s"]+$/;

/**
 * `groups.engineering.members[0]`, the way a person would point into the file; `(root)` for the whole. A key that
 * is empty or holds a dot, bracket, quote or space is quoted: `groups[""]`, `users["a.b"]`.
 */
function formatPath(path: readonly (string | number)[]): string {
  if (path.length === 0) return "(root)";
  let out = "";
  for (const part of path) {
    if (typeof part === "number") out += `[${part}]`;
    else if (!PLAIN_KEY.test(part)) out += `[${JSON.stringify(part)}]`;
    else out += out === "" ? part : `.${part}`;
  }
  return out;
}

function zodErrors(error: z.ZodError): PolicyError[] {
  const errors: PolicyError[] = [];
  for (const issue of error.issues) {
    if (issue.code === z.ZodIssueCode.unrecognized_keys) {
      // One error per unknown key, pointing at the key itself: "users.u1.limt: unknown key".
      for (const key of issue.keys) errors.push({ path: formatPath([...issue.path, key]), message: "unknown key" });
    } else {
      errors.push({ path: formatPath(issue.path), message: issue.message });
    }
  }
  return errors;
}

const canonLimit = (limit: string | undefined) => (limit === undefined ? undefined : canonicalLimit(limit));

/**
 * Validates a policy document (SPEC §5) and returns it normalised, or every problem with its path. When `orgId`
 * is given (the org of the route or key), an absent `org_id` takes it and a different one is an error.
 */
export function parsePolicy(input: unknown, orgId?: string): ParsePolicyResult {
  const parsed = policySchema.safeParse(input);
  const errors = parsed.success ? [] : zodErrors(parsed.error);
  const data = parsed.success ? parsed.data : undefined;
  const isObject = typeof input === "object" && input !== null && !Array.isArray(input);
  const rawOrgId = isObject ? (input as Record<string, unknown>).org_id : undefined;

  if (orgId !== undefined && typeof rawOrgId === "string" && rawOrgId !== orgId) {
    errors.push({ path: "org_id", message: `expected "${orgId}" (the policy's org), got "${rawOrgId}"` });
  } else if (orgId === undefined && rawOrgId === undefined && isObject) {
    errors.push({ path: "org_id", message: "required" });
  }

  if (data !== undefined) {
    const seen = new Set<string>();
    data.thresholds.forEach((t, i) => {
      const canonical = canonicalMoney(t);
      if (seen.has(canonical)) errors.push({ path: `thresholds[${i}]`, message: `duplicate threshold "${t}"` });
      seen.add(canonical);
    });
  }
  if (data !== undefined) {
    // A product gated by a group that does not exist would be closed to everyone without saying why: a typo.
    for (const [p, groups] of Object.entries(data.product_access)) {
      (groups ?? []).forEach((g, i) => {
        if (!Object.hasOwn(data.groups, g)) {
          errors.push({ path: `product_access.${p}[${i}]`, message: `unknown group "${g}" (not in groups)` });
        }
      });
    }
  }
  if (errors.length > 0 || data === undefined) return { ok: false, errors };

  const thresholds = data.thresholds.map((t) => canonicalMoney(t));
  thresholds.sort((a, b) => new Money(a).cmp(new Money(b)));

  const seatTierLimits: Partial<Record<SeatTier, LimitValue>> = {};
  for (const tier of SEAT_TIERS) {
    const limit = canonLimit(data.seat_tier_limits[tier]);
    if (limit !== undefined) seatTierLimits[tier] = limit;
  }

  const policy: Policy = {
    org_id: data.org_id ?? (orgId as string),
    mode: data.mode,
    multi_group: data.multi_group,
    discount_pct: canonicalMoney(data.discount_pct),
    thresholds,
    seat_tier_limits: seatTierLimits,
    groups: Object.fromEntries(
      Object.entries(data.groups).map(([groupName, g]) => {
        const limit = canonLimit(g.limit);
        const members = [...new Set(g.members)];
        return [groupName, limit === undefined ? { members } : { limit, members }];
      }),
    ),
    users: Object.fromEntries(
      Object.entries(data.users).map(([userId, u]) => {
        const entry: { limit?: LimitValue; seat_tier?: SeatTier; products?: Product[] } = {};
        const limit = canonLimit(u.limit);
        if (limit !== undefined) entry.limit = limit;
        if (u.seat_tier !== undefined) entry.seat_tier = u.seat_tier;
        if (u.products !== undefined) entry.products = PRODUCTS.filter((p) => u.products!.includes(p));
        return [userId, entry];
      }),
    ),
    product_access: Object.fromEntries(
      PRODUCTS.flatMap((p) => {
        const groups = data.product_access[p];
        return groups === undefined ? [] : [[p, [...new Set(groups)]]];
      }),
    ),
    limit_requests: data.limit_requests,
  };
  if (data.org_limit !== undefined) policy.org_limit = canonicalLimit(data.org_limit);
  return { ok: true, policy };
}
