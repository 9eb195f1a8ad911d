/**
 * spend.totals.v1: the running totals the aggregator owns, as a compacted topic that every API instance reads in
 * full (the read model behind allowance and caps; SPEC §12 "the API holds no state of its own").
 *
 * Records are JSON, keyed so that compaction keeps the latest of each entity: `<org_id>` for the org's record and
 * `<org_id> NUL <user_id>` for each user's. They are produced to the same partition number as the usage.priced.v1
 * partition they were computed from (the topics have the same partition count and both are keyed by org), so an
 * org's records stay in order on one partition, and a reader keeps, per key, the latest record in log order (one
 * owner publishes at a time: the aggregator confirms ownership before it publishes). Each record carries the source
 * offset it reflects, for the reader's information.
 * `spend` is the net spend of `period` (caps measure net); a reader treats a record of another period as 0.
 */
import { z } from "zod";

const decimal = z.string().regex(/^-?\d+(?:\.\d+)?$/, "a plain decimal string");
const source = z.object({
  partition: z.number().int().min(0),
  /** The next offset of usage.priced.v1 this record reflects (everything before it is counted). */
  offset: z.string().regex(/^\d+$/),
});

export const orgTotalsSchema = z.object({
  type: z.literal("org"),
  org_id: z.string().min(1),
  period: z.string().regex(/^\d{4}-\d{2}$/),
  spend: decimal,
  /** A prepaid org's account (GET …/credits), or null for an org without credits. */
  credits: z
    .object({
      balance: decimal,
      status: z.enum(["ok", "blocked"]),
      purchased: decimal,
      reloaded: decimal,
      spent: decimal,
      opened_at: z.string(),
      entries: z.number().int().min(0),
      reloads: z.number().int().min(0),
      reloaded_this_month: decimal,
      auto_reload: z.record(z.unknown()).nullable(),
    })
    .nullable(),
  source,
  at: z.string(),
});
export type OrgTotals = z.infer<typeof orgTotalsSchema>;

export const userTotalsSchema = z.object({
  type: z.literal("user"),
  org_id: z.string().min(1),
  user_id: z.string().min(1),
  period: z.string().regex(/^\d{4}-\d{2}$/),
  spend: decimal,
  /** The seat tier on the user's latest event (caps use it when no seat is assigned). */
  seat_tier: z.string().nullable(),
  source,
  at: z.string(),
});
export type UserTotals = z.infer<typeof userTotalsSchema>;

export const totalsRecordSchema = z.discriminatedUnion("type", [orgTotalsSchema, userTotalsSchema]);
export type TotalsRecord = z.infer<typeof totalsRecordSchema>;

export function totalsKey(orgId: string, userId?: string): string {
  return userId === undefined ? orgId : `${orgId}\u0000${userId}`;
}

export type DecodedTotals = { ok: true; record: TotalsRecord } | { ok: false; message: string };

export function decodeTotals(value: Buffer | null | undefined): DecodedTotals {
  if (!value) return { ok: false, message: "empty value" };
  let json: unknown;
  try {
    json = JSON.parse(value.toString("utf8"));
  } catch (err) {
    return { ok: false, message: `not JSON: ${(err as Error).message}` };
  }
  const parsed = totalsRecordSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    return { ok: false, message: `${issue?.path.join(".") || "record"}: ${issue?.message}` };
  }
  return { ok: true, record: parsed.data };
}
