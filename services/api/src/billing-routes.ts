/**
 * Commercial terms, seats and invoices (SPEC §8, §13):
 *
 *   PUT  /v1/orgs/:org/contract                  { plan, term_start, seat_prices, discount_pct } (operator only)
 *   GET  /v1/orgs/:org/contract                  → the contract in force, or 404
 *   PUT  /v1/orgs/:org/seats/:user               { tier, effective_at? } → the assignment (effective now by default)
 *   GET  /v1/orgs/:org/seats                     → { seats: current assignment per user, history: every assignment }
 *   GET  /v1/orgs/:org/invoices?period=YYYY-MM   → the month's invoice: `draft`, or `final` (frozen; byte for byte)
 *   GET  /v1/orgs/:org/invoices/:period/lines.csv → its lines as CSV
 *   POST /v1/orgs/:org/invoices/:period/finalize → freezes it (operator only; a month that has ended)
 *
 * Every change travels on the control plane (its version orders it and every instance applies it within a second);
 * the answer waits until this instance has applied it. The contract's discount applies to usage recorded from then
 * on (each event keeps the discount it was recorded with); with no contract the policy's discount (set by the
 * operator before contracts existed) stays in force.
 */
import type { ClickHouseClient } from "@usage/clickhouse";
import { contractSchema } from "@usage/control";
import { periodOf, periodRange } from "@usage/periods";
import type {
  FastifyBaseLogger,
  FastifyInstance,
  FastifyRequest,
  RawReplyDefaultExpression,
  RawRequestDefaultExpression,
  RawServerDefault,
} from "fastify";
import { csvField, neutralizeFormula } from "./analytics-routes.js";
import { actorOf, type Principal } from "./auth.js";
import {
  type BillingControl,
  type DocumentLine,
  finalizeInvoice,
  type InvoiceDocument,
  periodEnded,
  readInvoice,
} from "./invoices.js";
import { SeatBody } from "./openapi/schemas.js";
import { ApiError, CONTROL_WAIT_MS, type ControlWriter } from "./server.js";
import { parseBody } from "./validate.js";

const USER_ID = /^[^\s/]{1,128}$/;
const PERIOD = /^\d{4}-(0[1-9]|1[0-2])$/;

export interface BillingRouteDeps {
  clickhouse: ClickHouseClient;
  control: BillingControl;
  writer: ControlWriter;
  authorize: (request: FastifyRequest) => { orgId: string; principal: Principal };
  now: () => number;
}

function parsePeriod(value: unknown, nowMs: number): string {
  if (value === undefined) return periodOf(nowMs);
  if (typeof value !== "string" || !PERIOD.test(value) || value < "2000-01") {
    throw new ApiError(400, "invalid_period", "period must be a month YYYY-MM");
  }
  return value;
}

/** The CSV of an invoice's lines, one row per line in the invoice's order. */
export const INVOICE_CSV_COLUMNS = [
  "line_no",
  "kind",
  "description",
  "quantity",
  "unit_price",
  "user_id",
  "product",
  "model",
  "tier",
  "from_tier",
  "date",
  "period",
  "amount_exact",
  "amount",
] as const;

function invoiceCsv(doc: InvoiceDocument): string {
  const rows = doc.lines.map((l: DocumentLine, i) =>
    [
      String(i + 1),
      l.kind,
      l.description,
      String(l.quantity),
      l.unit_price ?? "",
      l.user_id ?? "",
      l.product ?? "",
      l.model ?? "",
      l.tier ?? "",
      l.from_tier ?? "",
      l.date ?? "",
      l.period ?? "",
      l.amount_exact,
      l.amount,
    ]
      .map((v) => csvField(neutralizeFormula(v)))
      .join(","),
  );
  return `${[INVOICE_CSV_COLUMNS.join(","), ...rows].join("\n")}\n`;
}

export function registerBillingRoutes<L extends FastifyBaseLogger>(
  app: FastifyInstance<RawServerDefault, RawRequestDefaultExpression, RawReplyDefaultExpression, L>,
  deps: BillingRouteDeps,
): void {
  const invoiceDeps = {
    clickhouse: deps.clickhouse,
    control: deps.control,
    writer: deps.writer,
    now: deps.now,
  };

  app.put("/v1/orgs/:org/contract", async (request) => {
    const { orgId, principal } = deps.authorize(request);
    const parsed = contractSchema.safeParse(request.body);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      const path = issue.path.join(".") || "contract";
      const message = issue.code === "unrecognized_keys" ? `unknown key ${issue.keys.join(", ")}` : issue.message;
      throw new ApiError(400, "invalid_contract", `${path}: ${message}`);
    }
    const version = await deps.writer.publish({
      kind: "contract",
      org_id: orgId,
      contract: parsed.data,
      actor: actorOf(principal),
      at: new Date(deps.now()).toISOString(),
    });
    await deps.writer.waitFor(version, CONTROL_WAIT_MS);
    return { org_id: orgId, ...parsed.data, version };
  });

  app.get("/v1/orgs/:org/contract", async (request) => {
    const { orgId } = deps.authorize(request);
    const c = deps.control.contract(orgId);
    if (!c) throw new ApiError(404, "not_found", `org ${orgId} has no contract`);
    return { org_id: orgId, ...c.contract, version: c.version, updated_at: c.at, updated_by: c.actor };
  });

  app.put("/v1/orgs/:org/seats/:user", async (request) => {
    const { orgId, principal } = deps.authorize(request);
    const userId = (request.params as { user: string }).user;
    if (!USER_ID.test(userId)) {
      throw new ApiError(400, "invalid_user", "user id must be 1 to 128 characters without spaces or '/'");
    }
    const body = parseBody(SeatBody, request.body, {
      tier: "invalid_tier",
      effective_at: "invalid_effective_at",
      "*": "invalid_seat",
    });
    const tier = body.tier;
    let effective = deps.now();
    if (body.effective_at !== undefined) {
      const t = Date.parse(body.effective_at);
      if (t < Date.UTC(2000, 0, 1) || t >= Date.UTC(3000, 0, 1)) {
        throw new ApiError(400, "invalid_effective_at", "effective_at must be from 2000-01-01 to 2999-12-31");
      }
      effective = t;
    }
    const version = await deps.writer.publish({
      kind: "seat",
      org_id: orgId,
      user_id: userId,
      tier,
      effective_at: new Date(effective).toISOString(),
      actor: actorOf(principal),
      at: new Date(deps.now()).toISOString(),
    });
    await deps.writer.waitFor(version, CONTROL_WAIT_MS);
    return { org_id: orgId, user_id: userId, tier, effective_at: new Date(effective).toISOString(), version };
  });

  app.get("/v1/orgs/:org/seats", async (request) => {
    const { orgId } = deps.authorize(request);
    const now = deps.now();
    const history = deps.control.seats(orgId).map((s) => ({
      user_id: s.user_id,
      tier: s.tier,
      effective_at: s.effective_at,
      assigned_by: s.actor,
      version: s.version,
    }));
    const current = new Map<string, (typeof history)[number]>();
    for (const s of history) if (Date.parse(s.effective_at) <= now) current.set(s.user_id, s);
    const seats = [...current.values()].sort((a, b) => (a.user_id < b.user_id ? -1 : a.user_id > b.user_id ? 1 : 0));
    const byTier: Record<string, number> = {};
    for (const s of seats) byTier[s.tier] = (byTier[s.tier] ?? 0) + 1;
    return { org_id: orgId, assigned: seats.length, by_tier: byTier, seats, history };
  });

  app.get("/v1/orgs/:org/invoices", async (request, reply) => {
    const { orgId } = deps.authorize(request);
    const period = parsePeriod((request.query as { period?: unknown }).period, deps.now());
    const { json } = await readInvoice(invoiceDeps, orgId, period);
    return reply.header("content-type", "application/json; charset=utf-8").send(json);
  });

  app.get("/v1/orgs/:org/invoices/:period/lines.csv", async (request, reply) => {
    const { orgId } = deps.authorize(request);
    const period = parsePeriod((request.params as { period: string }).period, deps.now());
    const { json } = await readInvoice(invoiceDeps, orgId, period);
    const doc = JSON.parse(json) as InvoiceDocument;
    return reply
      .header("content-type", "text/csv; charset=utf-8")
      .header("content-disposition", `attachment; filename="invoice-${orgId}-${period}.csv"`)
      .send(invoiceCsv(doc));
  });

  app.post("/v1/orgs/:org/invoices/:period/finalize", async (request, reply) => {
    const { orgId, principal } = deps.authorize(request);
    const period = parsePeriod((request.params as { period: string }).period, deps.now());
    if (periodRange(period) === undefined || !periodEnded(period, deps.now())) {
      throw new ApiError(409, "period_not_ended", `${period} has not ended: a month is finalized once it is over`);
    }
    const { json, created } = await finalizeInvoice(invoiceDeps, orgId, period, actorOf(principal));
    return reply
      .code(created ? 201 : 200)
      .header("content-type", "application/json; charset=utf-8")
      .send(json);
  });
}
