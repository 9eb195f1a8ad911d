import { createHash } from "node:crypto";
import type { CapSignalRow, SignalKind } from "@usage/clickhouse";
import type { CapSignal } from "@usage/events";
import type { Message } from "@usage/kafka";
import type { EntityTransition } from "./state.js";

/** A spend.signals.v1 message value (JSON), keyed by org_id: the wire contract of @usage/events. */
export type { CapSignal };

/** Signals told apart by a sequence number rather than a threshold or a policy version. */
const SEQUENCED: ReadonlySet<SignalKind> = new Set([
  "credits_exhausted",
  "credits_restored",
  "credits_reload",
  "limit_requests_digest",
]);

/**
 * The signal id is derived from what the signal is, not when it was made: a threshold once per entity and period;
 * a block or unblock once per entity, period and policy version (within a period spend only grows, so only a new
 * policy can unblock, and only a newer one block again). A replay re-derives the same ids.
 */
export function signalId(
  t: Pick<EntityTransition, "orgId" | "entity" | "period" | "threshold" | "policyVersion"> & {
    kind: SignalKind;
    sequence?: number;
  },
): string {
  // Credit signals: once per sequence number; a reload limit and a forecast: once per entity and period.
  const discriminator =
    t.kind === "threshold"
      ? (t.threshold ?? "")
      : t.kind === "blocked" || t.kind === "unblocked"
        ? String(t.policyVersion)
        : SEQUENCED.has(t.kind)
          ? `seq:${t.sequence ?? 0}`
          : "";
  const parts = [t.orgId, t.entity.type, t.entity.id, t.period, t.kind, discriminator];
  return createHash("sha256").update(parts.join("\u0000")).digest("hex").slice(0, 32);
}

export function toSignal(t: EntityTransition, causeEventId: string | null, createdAt: number): CapSignal {
  return {
    signal_id: signalId(t),
    org_id: t.orgId,
    entity: t.entity,
    period: t.period,
    kind: t.kind,
    threshold: t.threshold,
    limit: t.limit,
    spend: t.spend,
    status: t.status,
    previous_status: t.previousStatus,
    policy_version: t.policyVersion,
    cause_event_id: causeEventId,
    created_at: new Date(createdAt).toISOString(),
  };
}

export function signalRow(s: CapSignal): CapSignalRow {
  return {
    signal_id: s.signal_id,
    org_id: s.org_id,
    entity_type: s.entity.type,
    entity_id: s.entity.id,
    period: s.period,
    kind: s.kind,
    threshold: s.threshold,
    limit_value: s.limit ?? "",
    spend: s.spend,
    status: s.status,
    policy_version: s.policy_version,
    cause_event_id: s.cause_event_id ?? "",
    created_at: s.created_at.replace("T", " ").replace("Z", ""),
    sequence: s.sequence ?? 0,
    amount: s.amount ?? null,
    balance: s.balance ?? null,
  };
}

export function signalMessage(s: CapSignal): Message {
  return { key: s.org_id, value: JSON.stringify(s) };
}
