/** Alerts (SPEC §7): identity, payload and the stored row of the alert a cap signal gives rise to. Pure. */
import { createHash } from "node:crypto";
import { type AlertRow, chDateTime } from "@usage/clickhouse";
import type { AlertPayload, CapSignal } from "@usage/events";
import { canonicalMoney } from "@usage/money";

export type { AlertPayload };

/** Where the signal that created an alert was read: the redelivery check of notifier.ts relies on it. */
export interface SignalSource {
  group: string;
  partition: number;
  offset: string;
}

/**
 * The alert id is derived from what the alert is, never from when it was made or from the signal's id: a
 * threshold alert once per (org, entity, period, threshold); a blocked or unblocked alert once per (org, entity,
 * period, policy version). "0.90" and "0.9" are the same threshold. Restarts and replays re-derive the same id.
 */
export function alertId(
  s: Pick<CapSignal, "org_id" | "entity" | "period" | "kind" | "threshold" | "policy_version" | "sequence">,
): string {
  // Credit alerts once per sequence number (each reload, each exhaustion, each restore); a reload limit and a
  // forecast once per entity and period.
  const discriminator =
    s.kind === "threshold"
      ? canonicalDecimal(s.threshold ?? "")
      : s.kind === "blocked" || s.kind === "unblocked"
        ? String(s.policy_version)
        : s.kind === "credits_reload_limit" || s.kind === "forecast"
          ? ""
          : `seq:${s.sequence ?? 0}`;
  const parts = ["alert.v1", s.org_id, s.entity.type, s.entity.id, s.period, s.kind, discriminator];
  return createHash("sha256").update(parts.join("\u0000")).digest("hex").slice(0, 32);
}

export function canonicalDecimal(text: string): string {
  return text === "" ? "" : canonicalMoney(text, "threshold");
}

/** `org` or `user:<id>`: the entity within an org and period that a threshold mark belongs to. */
export function entityKey(entity: { type: string; id: string }): string {
  return entity.type === "org" ? "org" : `user:${entity.id}`;
}

export function toPayload(s: CapSignal, createdAtMs: number): AlertPayload {
  return {
    alert_id: alertId(s),
    org_id: s.org_id,
    entity: { type: s.entity.type, id: s.entity.id },
    period: s.period,
    kind: s.kind,
    threshold: s.threshold === null ? null : canonicalDecimal(s.threshold),
    limit: s.limit,
    spend: s.spend,
    status: s.status,
    created_at: new Date(createdAtMs).toISOString(),
    cause_event_id: s.cause_event_id,
    ...(s.sequence === undefined ? {} : { sequence: s.sequence }),
    ...(s.amount === undefined ? {} : { amount: s.amount }),
    ...(s.balance === undefined ? {} : { balance: s.balance }),
    ...(s.forecast === undefined ? {} : { forecast: s.forecast }),
    ...(s.limit_requests === undefined ? {} : { limit_requests: s.limit_requests }),
  };
}

/** The first row of a new alert: pending, due at once. */
export function newAlertRow(s: CapSignal, source: SignalSource, nowMs: number): AlertRow {
  const payload = toPayload(s, nowMs);
  const at = chDateTime(nowMs);
  return {
    alert_id: payload.alert_id,
    org_id: s.org_id,
    period: s.period,
    entity_type: s.entity.type,
    entity_id: s.entity.id,
    kind: s.kind,
    threshold: payload.threshold,
    limit_value: s.limit ?? "",
    spend: s.spend,
    status: s.status,
    policy_version: s.policy_version,
    cause_event_id: s.cause_event_id ?? "",
    signal_id: s.signal_id,
    created_at: at,
    payload: JSON.stringify(payload),
    source_group: source.group,
    source_partition: source.partition,
    source_offset: source.offset,
    state: "pending",
    attempts: 0,
    last_error: "",
    next_attempt_at: at,
    delivered_at: null,
    updated_at: at,
  };
}
