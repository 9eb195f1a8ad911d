/**
 * Month-end reconciliation (SPEC §8, §13): `GET /v1/orgs/:org/reconciliation?period=YYYY-MM` proves, per user and in
 * total, that
 *   raw usage (usage_events FINAL: each event once) = the rollup (spend_daily, summed)
 *     = the month's invoice's usage lines (exact) + the adjustment lines that name the month on later invoices
 * and that the invoice's `total` is the sum of its lines' `amount`. While the month's invoice is a draft its usage
 * lines are its usage now (so the invoice side holds by construction until it is final); once final, usage that
 * arrived after finalization shows as the adjustments of later invoices (final ones, then the next draft).
 * Late events of the month (arrived after it had closed) are listed with their arrival time.
 */
import { type ClickHouseClient, reconciliation, type SourceTotals } from "@usage/clickhouse";
import { addMoney, canonicalMoney } from "@usage/money";
import { periodRange } from "@usage/periods";
import type {
  FastifyBaseLogger,
  FastifyInstance,
  FastifyRequest,
  RawReplyDefaultExpression,
  RawRequestDefaultExpression,
  RawServerDefault,
} from "fastify";
import { type BillingControl, invoiceSide } from "./invoices.js";
import { ApiError, type ControlWriter } from "./server.js";

const LATE_EVENTS_LIMIT = 10_000;
const PERIOD = /^\d{4}-(0[1-9]|1[0-2])$/;

interface Figures {
  requests: number;
  gross: string;
  net: string;
}

const figures = (t: SourceTotals): Figures => ({
  requests: Number(t.requests),
  gross: canonicalMoney(t.gross),
  net: canonicalMoney(t.net),
});
const isoOf = (chTime: string) => `${chTime.replace(" ", "T")}Z`;

export function registerReconciliationRoutes<L extends FastifyBaseLogger>(
  app: FastifyInstance<RawServerDefault, RawRequestDefaultExpression, RawReplyDefaultExpression, L>,
  deps: {
    clickhouse: ClickHouseClient;
    control: BillingControl;
    writer: ControlWriter;
    authorize: (request: FastifyRequest) => { orgId: string };
    now: () => number;
  },
): void {
  app.get("/v1/orgs/:org/reconciliation", async (request) => {
    const { orgId } = deps.authorize(request);
    const period = (request.query as { period?: unknown }).period;
    if (typeof period !== "string" || !PERIOD.test(period) || periodRange(period) === undefined) {
      throw new ApiError(400, "invalid_period", "period must be a month YYYY-MM");
    }
    const data = await reconciliation(deps.clickhouse, { orgId, period, lateLimit: LATE_EVENTS_LIMIT });
    const invoice = await invoiceSide(deps, orgId, period);

    const zero = (): Figures => ({ requests: 0, gross: "0", net: "0" });
    const raw = zero();
    const rollup = zero();
    const differences: {
      user_id: string;
      raw: Figures;
      rollup: Figures;
      invoice: { requests: number; net: string };
    }[] = [];
    const userIds = new Set([...data.users.map((u) => u.user_id), ...invoice.users.keys()]);
    const byUser = new Map(data.users.map((u) => [u.user_id, u]));
    let invoiced = { requests: 0, net: "0" };
    for (const userId of [...userIds].sort()) {
      const u = byUser.get(userId);
      const r = u ? figures(u.raw) : zero();
      const o = u ? figures(u.rollup) : zero();
      const i = invoice.users.get(userId) ?? { requests: 0, net: "0" };
      for (const [t, f] of [
        [raw, r],
        [rollup, o],
      ] as const) {
        t.requests += f.requests;
        t.gross = addMoney(t.gross, f.gross);
        t.net = addMoney(t.net, f.net);
      }
      invoiced = { requests: invoiced.requests + i.requests, net: addMoney(invoiced.net, i.net) };
      const same =
        r.requests === o.requests &&
        r.gross === o.gross &&
        r.net === o.net &&
        r.requests === i.requests &&
        r.net === canonicalMoney(i.net);
      if (!same)
        differences.push({ user_id: userId, raw: r, rollup: o, invoice: { ...i, net: canonicalMoney(i.net) } });
    }
    const balanced = differences.length === 0 && invoice.total_matches_lines;
    return {
      org_id: orgId,
      period,
      raw,
      rollup,
      invoice: {
        status: invoice.status,
        number: invoice.number,
        total: invoice.total,
        total_matches_lines: invoice.total_matches_lines,
        requests: invoiced.requests,
        net: canonicalMoney(invoiced.net),
        usage_lines: { requests: invoice.usage.requests, net: canonicalMoney(invoice.usage.net) },
        adjustments: invoice.adjustments.map((a) => ({ ...a, net: canonicalMoney(a.net) })),
      },
      differences,
      balanced,
      late_totals: figures(data.lateTotals),
      late_events: data.lateEvents.map((e) => ({
        event_id: e.event_id,
        occurred_at: isoOf(e.occurred_at),
        arrived_at: isoOf(e.arrived_at),
        user_id: e.user_id,
        gross: canonicalMoney(e.gross),
        net: canonicalMoney(e.net),
      })),
      late_events_truncated: data.lateEvents.length < Number(data.lateTotals.requests),
    };
  });
}
