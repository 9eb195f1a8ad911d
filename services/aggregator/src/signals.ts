import { createHash } from "node:crypto";
import type { CapSignalRow } from "@usage/clickhouse";
import type { Message } from "@usage/kafka";
import type { EntityTransition } from "./state.js";

/** A spend.signals.v1 message value (JSON), keyed by org_id. */
export interface CapSignal {
  signal_id: string;
  org_id: string;
  entity: { type: "org" | "user"; id: string };
  period: string;
  kind: "threshold" | "blocked" | "unblocked";
  threshold: string | null;
  limit: string | null;
  spend: string;
  status: "ok" | "warning" | "blocked";
  previous_status: "ok" | "warning" | "blocked";
  policy_version: number;
  cause_event_id: string | null;
  created_at: string;
}

/**
 * The signal id is derived from what the signal is, not when it was made: a threshold once per entity and period;
 * a block or unblock once per entity, period and policy version (within a period spend only grows, so only a new
 * policy can unblock, and only a newer one block again). A replay re-derives the same ids.
 */
export function signalId(
  t: Pick<EntityTransition, "orgId" | "entity" | "period" | "kind" | "threshold" | "policyVersion">,
): string {
  const parts = [
    t.orgId,
    t.entity.type,
    t.entity.id,
    t.period,
    t.kind,
    t.kind === "threshold" ? (t.threshold ?? "") : String(t.policyVersion),
  ];
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
  };
}

export function signalMessage(s: CapSignal): Message {
  return { key: s.org_id, value: JSON.stringify(s) };
}
