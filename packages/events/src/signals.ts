/**
 * spend.signals.v1 (a wire contract): the cap, credit, forecast and limit-request digest signals the aggregator publishes (JSON, keyed by
 * org_id) and the notifier reads. The aggregator builds them with this type; the notifier validates every message
 * with this schema because a consumer does not trust its input: an unreadable message is logged (with its
 * partition and offset), sent to usage.dlq.v1 with its reason, and skipped, never allowed to stop the partition.
 */
import { z } from "zod";

// Money and thresholds fit the ClickHouse columns they are stored in (Decimal(38, 18), Decimal(9, 6)).
const SPEND = /^\d{1,20}(\.\d{1,18})?$/;
const THRESHOLD = /^\d{1,3}(\.\d{1,6})?$/;
const STATUS = z.enum(["ok", "warning", "blocked"]);
const SIGNED_AMOUNT = /^-?\d{1,20}(\.\d{1,18})?$/;

/** Cap signals, credit signals (credits_*) and forecast signals (services/aggregator/src/signals.ts). */
export const SIGNAL_KINDS = [
  "threshold",
  "blocked",
  "unblocked",
  "credits_exhausted",
  "credits_restored",
  "credits_reload",
  "credits_reload_limit",
  "forecast",
  "limit_requests_digest",
] as const;
export type SignalKind = (typeof SIGNAL_KINDS)[number];

export const capSignalSchema = z
  .object({
    signal_id: z.string().min(1).max(128),
    org_id: z.string().min(1).max(128),
    entity: z.object({ type: z.enum(["org", "user"]), id: z.string().min(1).max(128) }),
    period: z.string().regex(/^\d{4}-(0[1-9]|1[0-2])$/, "expected YYYY-MM"),
    kind: z.enum(SIGNAL_KINDS),
    threshold: z.string().regex(THRESHOLD, "expected a decimal threshold").nullable(),
    limit: z.string().max(64).nullable(),
    spend: z.string().regex(SPEND, "expected a decimal amount"),
    status: STATUS,
    previous_status: STATUS,
    policy_version: z.number().int().nonnegative(),
    cause_event_id: z.string().max(128).nullable(),
    created_at: z.string().datetime({ offset: true }),
    sequence: z.number().int().nonnegative().optional(),
    amount: z.string().regex(SPEND, "expected a decimal amount").optional(),
    balance: z.string().regex(SIGNED_AMOUNT, "expected a decimal amount").optional(),
    forecast: z
      .object({
        projected: z.string().regex(SPEND, "expected a decimal amount"),
        daily_rate: z.string().regex(SPEND, "expected a decimal amount"),
        reaches_limit_on: z
          .string()
          .regex(/^\d{4}-\d{2}-\d{2}$/, "expected YYYY-MM-DD")
          .nullable(),
        method: z.string().max(64),
      })
      .optional(),
    /** limit_requests_digest: how many requests are pending, and the oldest of them (at most 50). */
    limit_requests: z
      .object({
        pending: z.number().int().nonnegative(),
        requests: z
          .array(
            z.object({
              request_id: z.string().min(1).max(128),
              user_id: z.string().min(1).max(128),
              requested_at: z.string().datetime(),
              note: z.string().max(2000).nullable(),
            }),
          )
          .max(50),
      })
      .optional(),
  })
  .refine((s) => s.kind !== "threshold" || s.threshold !== null, {
    path: ["threshold"],
    message: "a threshold signal names its threshold",
  })
  .refine(
    (s) => !["credits_exhausted", "credits_restored", "credits_reload"].includes(s.kind) || s.sequence !== undefined,
    { path: ["sequence"], message: "a credit signal carries its sequence number" },
  )
  .refine((s) => s.kind !== "limit_requests_digest" || (s.sequence !== undefined && s.limit_requests !== undefined), {
    path: ["limit_requests"],
    message: "a digest carries its day (sequence YYYYMMDD) and the pending requests",
  });
export type CapSignal = z.infer<typeof capSignalSchema>;

/**
 * Why a message is not a signal, as a usage.dlq.v1 reason (SPEC §3): `invalid_encoding` when it is not a JSON
 * object at all, `invalid_field` (with the field) when it is one that breaks a rule.
 */
export type SignalRejection = {
  ok: false;
  code: "invalid_encoding" | "invalid_field";
  message: string;
  field?: string;
  signalId?: string;
};

export type DecodedSignal = { ok: true; signal: CapSignal } | SignalRejection;

export function decodeSignal(value: Buffer | null): DecodedSignal {
  if (value === null) return { ok: false, code: "invalid_encoding", message: "empty message" };
  let json: unknown;
  try {
    json = JSON.parse(value.toString("utf8"));
  } catch {
    return { ok: false, code: "invalid_encoding", message: "not JSON" };
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    return { ok: false, code: "invalid_encoding", message: "not a JSON object" };
  }
  const parsed = capSignalSchema.safeParse(json);
  if (parsed.success) return { ok: true, signal: parsed.data };
  const first = parsed.error.issues[0];
  const field = first?.path.join(".") || undefined;
  const signalId = (json as { signal_id?: unknown }).signal_id;
  return {
    ok: false,
    code: "invalid_field",
    message: `${field ?? "signal"}: ${first?.message}`,
    field,
    signalId: typeof signalId === "string" ? signalId.slice(0, 128) : undefined,
  };
}
