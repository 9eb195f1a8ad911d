/**
 * The audit log (SPEC §8 `GET /v1/orgs/{org}/audit?from=&to=`): every change to an org — policy, webhook, keys,
 * credit purchases, auto-reload, contract, seats, limit requests and invoice finalizations — with
 * when, who (`operator` or `key:<key id>`), what, and the state before and after.
 *
 * Source: control_changes, the history the control recorder writes of usage.control.v1 (every change is a record
 * there, versioned by its offset), so the log is complete and in one order. `before` is the previous record with the
 * same key (the same policy, webhook, key…), whenever it was made; `after` is this one. Never a secret: webhook
 * records carry none, and a key's secret hash is left out.
 */
import { type ClickHouseClient, controlChangesOf } from "@usage/clickhouse";
import type {
  FastifyBaseLogger,
  FastifyInstance,
  FastifyRequest,
  RawReplyDefaultExpression,
  RawRequestDefaultExpression,
  RawServerDefault,
} from "fastify";
import type { Principal } from "./auth.js";
import { ApiError } from "./server.js";

const DAY = 86_400_000;
/** The longest range one request reads. */
const MAX_DAYS = 366;

export interface AuditEntry {
  at: string;
  version: number;
  actor: string;
  action: string;
  target: string;
  before: Record<string, unknown> | null;
  after: Record<string, unknown>;
}

/** What an entry shows of a change: its content, without the envelope and without any secret hash. */
function content(change: Record<string, unknown>): Record<string, unknown> {
  const { kind: _kind, org_id: _org, actor: _actor, at: _at, secret_hash: _hash, ...rest } = change;
  return rest;
}

function action(kind: string, change: Record<string, unknown>, before: Record<string, unknown> | null): string {
  switch (kind) {
    case "policy":
      return "policy.updated";
    case "auto_reload":
      return "auto_reload.updated";
    case "credit_purchase":
      return "credits.purchased";
    case "webhook":
      return change.overlap_seconds ? "webhook.secret_rotated" : "webhook.updated";
    case "api_key":
      if (change.action === "revoked") return "api_key.revoked";
      return before ? "api_key.updated" : "api_key.created";
    case "contract":
      return before ? "contract.updated" : "contract.created";
    case "seat":
      return "seat.assigned";
    case "limit_request":
      return `limit_request.${change.status === "pending" ? "filed" : change.status}`;
    case "invoice_final":
      return "invoice.finalized";
    default:
      return `${kind}.changed`;
  }
}

/** The org's audit entries made in [fromMs, toMs), oldest first. */
export async function auditEntries(
  clickhouse: ClickHouseClient,
  orgId: string,
  fromMs: number,
  toMs: number,
): Promise<AuditEntry[]> {
  const latest = new Map<string, Record<string, unknown>>();
  const entries: AuditEntry[] = [];
  for (const row of await controlChangesOf(clickhouse, orgId)) {
    const change = JSON.parse(row.change) as Record<string, unknown>;
    const at = Date.parse(`${row.at.replace(" ", "T")}Z`);
    if (at >= toMs) break;
    const before = latest.get(row.key) ?? null;
    const after = content(change);
    latest.set(row.key, after);
    if (at < fromMs) continue;
    entries.push({
      at: new Date(at).toISOString(),
      version: row.version,
      actor: row.actor,
      action: action(row.kind, change, before),
      target: row.key.slice(orgId.length + 1),
      before,
      after,
    });
  }
  return entries;
}

function parseTime(value: string | undefined, name: string): number | undefined {
  if (value === undefined) return undefined;
  const t = /^\d{4}-\d{2}-\d{2}(T[\d:.]+Z)?$/.test(value)
    ? Date.parse(value.length === 10 ? `${value}T00:00:00Z` : value)
    : NaN;
  if (Number.isNaN(t)) {
    throw new ApiError(400, `invalid_${name}`, `${name} must be a date YYYY-MM-DD or an RFC 3339 UTC time`);
  }
  return t;
}

export function registerAuditRoutes<L extends FastifyBaseLogger>(
  app: FastifyInstance<RawServerDefault, RawRequestDefaultExpression, RawReplyDefaultExpression, L>,
  deps: {
    clickhouse: ClickHouseClient;
    authorize: (request: FastifyRequest) => { orgId: string; principal: Principal };
    now: () => number;
  },
): void {
  app.get("/v1/orgs/:org/audit", async (request) => {
    const { orgId } = deps.authorize(request);
    const q = request.query as Record<string, string | undefined>;
    // `to` is exclusive; a date means its whole day. Default: the last 30 days.
    const toGiven = parseTime(q.to, "to");
    const to = toGiven === undefined ? deps.now() + 1 : q.to!.length === 10 ? toGiven + DAY : toGiven;
    const from = parseTime(q.from, "from") ?? to - 30 * DAY;
    if (from >= to) throw new ApiError(400, "invalid_range", "from must be before to");
    if (to - from > MAX_DAYS * DAY)
      throw new ApiError(400, "range_too_wide", `a request spans at most ${MAX_DAYS} days`);
    return {
      org_id: orgId,
      from: new Date(from).toISOString(),
      to: new Date(to).toISOString(),
      entries: await auditEntries(deps.clickhouse, orgId, from, to),
    };
  });
}
