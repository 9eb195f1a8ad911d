/**
 * spend.alerts.v1 (a wire contract): the alert the notifier publishes (keyed by org_id) and POSTs, signed, to the
 * org's webhook (SPEC §7). Webhook receivers and downstream consumers deduplicate on `alert_id`.
 */
import type { SignalKind } from "./signals.js";

/** The JSON published on spend.alerts.v1 (keyed by org_id) and POSTed, signed, to the org's webhook. */
export interface AlertPayload {
  alert_id: string;
  org_id: string;
  entity: { type: "org" | "user"; id: string };
  period: string;
  kind: SignalKind;
  threshold: string | null;
  limit: string | null;
  spend: string;
  status: "ok" | "warning" | "blocked";
  created_at: string;
  cause_event_id: string | null;
  /** Credit alerts: the reload number, or the ledger size at an exhaustion or a restore. */
  sequence?: number;
  /** credits_reload: the amount reloaded. */
  amount?: string;
  /** Credit alerts: the prepaid balance after the change. */
  balance?: string;
  /** forecast: the projected month-end spend and the day the limit is projected to be reached. */
  forecast?: { projected: string; daily_rate: string; reaches_limit_on: string | null; method: string };
  /** limit_requests_digest (one per org per UTC day while any is pending): the pending requests. */
  limit_requests?: {
    pending: number;
    requests: { request_id: string; user_id: string; requested_at: string; note: string | null }[];
  };
}
