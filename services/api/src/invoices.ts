/**
 * Month-end invoices (SPEC §13): computing a month's invoice, finalizing it, and finalizing on its own after the grace
 * days.
 *
 * A month's invoice is, in this order: the seat lines charged that month (the contract's seat prices, the seat
 * history; @usage/billing), the usage lines (one per user × product × base model, net of the discount in force when
 * each event was recorded, from usage_events FINAL), and the adjustment lines (for every earlier month whose invoice
 * is final: its usage now, less its final invoice's usage lines and the adjustments for it already frozen on later
 * final invoices). A self-serve org's usage is paid from prepaid credits: its invoice ends with a `credits_applied`
 * line of minus that usage. Each line has `amount_exact` and `amount` (half-up to cents); `total` is the sum of the
 * lines' `amount`.
 *
 * Finalization, in this order: (1) compute the invoice; (2) write it (document and lines) to ClickHouse under a
 * fresh finalization id; (3) publish `invoice_final` {period, finalization_id, number} on the control log; (4) wait
 * until this instance's follower has applied it. The first `invoice_final` of an org and month in log order is the
 * final invoice everywhere; from then on the document is read, never recomputed. A crash between (2) and (3) leaves
 * an unnamed document, never read; two finalizers racing (the operator and the grace timer, or two instances) both
 * write documents and publish, and the second record is ignored with its document. Late usage of a final month
 * changes nothing in it: the next draft carries it as an adjustment naming the month.
 */
import { createHash, randomUUID } from "node:crypto";
import {
  adjustmentLines,
  assembleInvoice,
  type Contract as BillingContract,
  type InvoiceLine,
  roundCents,
  seatLines,
  sumDecimals,
  type UsageRow,
  usageLines,
} from "@usage/billing";
import {
  type ClickHouseClient,
  chDateTime,
  insertInvoiceDocument,
  invoiceDocument,
  invoicedUsage,
  monthUsage,
  orgMonthsWithUsage,
} from "@usage/clickhouse";
import type { ContractState, InvoiceFinalState, SeatState } from "@usage/control";
import { periodOf, periodRange, previousPeriod } from "@usage/periods";
import type { Logger } from "@usage/runtime";
import type { ControlWriter } from "./server.js";

/** A line of an invoice document: @usage/billing's lines, plus a self-serve org's credits line. */
export type DocumentLine = Omit<InvoiceLine, "kind"> & { kind: InvoiceLine["kind"] | "credits_applied" };

export interface InvoiceDocument {
  org_id: string;
  period: string;
  status: "draft" | "final";
  number: string | null;
  finalized_at: string | null;
  finalized_by: string | null;
  currency: "USD";
  plan: "sales_assisted" | "self_serve" | null;
  lines: DocumentLine[];
  /** Exact sum of the lines' amount_exact. */
  subtotal_exact: string;
  /** Sum of the lines' amount (cents). */
  total: string;
}

/** What invoices read of the control plane (the process's follower). */
export interface BillingControl {
  contract(orgId: string): ContractState | undefined;
  seats(orgId: string): SeatState[];
  invoiceFinal(orgId: string, period: string): InvoiceFinalState | undefined;
  invoiceFinals(orgId: string): InvoiceFinalState[];
  orgIds(): string[];
}

export interface InvoiceDeps {
  clickhouse: ClickHouseClient;
  control: BillingControl;
  writer: ControlWriter;
  now: () => number;
}

/** The invoice number of an org's month: the same whoever finalizes it, unique per org and month. */
export function invoiceNumber(orgId: string, period: string): string {
  const org = createHash("sha256").update(orgId).digest("hex").slice(0, 10).toUpperCase();
  return `INV-${period.replace("-", "")}-${org}`;
}

function billingContract(c: ContractState | undefined): BillingContract | undefined {
  if (!c) return undefined;
  return {
    plan: c.contract.plan,
    term_start: c.contract.term_start,
    seat_prices: c.contract.seat_prices as Record<string, string>,
    discount_pct: c.contract.discount_pct,
  };
}

function usageRowOf(r: { user_id: string; product: string; model: string; net: string; requests: number }): UsageRow {
  return { user_id: r.user_id, product: r.product, model: r.model, net: r.net, requests: r.requests };
}

/** The invoice of `period` as it stands now, computed (a draft, or the document a finalization is about to freeze). */
export async function computeInvoice(deps: InvoiceDeps, orgId: string, period: string): Promise<InvoiceDocument> {
  const contract = deps.control.contract(orgId);
  const billing = billingContract(contract);
  const seat = billing
    ? seatLines(
        billing,
        deps.control.seats(orgId).map((s) => ({
          user_id: s.user_id,
          tier: s.tier,
          effective_at: s.effective_at,
          version: s.version,
        })),
        period,
      )
    : [];

  // Earlier months already final: their usage now against what final invoices hold for them.
  const finals = deps.control.invoiceFinals(orgId).filter((f) => f.period < period);
  const months = [...finals.map((f) => f.period), period];
  const usage = await monthUsage(deps.clickhouse, orgId, months);
  const invoiced = await invoicedUsage(
    deps.clickhouse,
    orgId,
    finals.map((f) => f.finalization_id),
  );
  const adjustments: InvoiceLine[] = [];
  for (const f of finals) {
    const current = usage.filter((u) => u.period === f.period).map(usageRowOf);
    const held = invoiced
      .filter((l) => l.usage_period === f.period)
      .map((l) => ({
        user_id: l.user_id,
        product: l.product,
        model: l.model,
        net: l.amount_exact,
        requests: l.quantity,
      }));
    adjustments.push(...adjustmentLines(f.period, current, held));
  }
  const invoice = assembleInvoice({
    seat,
    usage: usageLines(usage.filter((u) => u.period === period).map(usageRowOf)),
    adjustments,
  });
  const lines: DocumentLine[] = [...invoice.lines];
  let subtotal = invoice.subtotal_exact;
  let total = invoice.total;
  if (contract?.contract.plan === "self_serve") {
    const paid = sumDecimals(lines.filter((l) => l.kind !== "seat").map((l) => l.amount_exact));
    if (paid !== "0") {
      const exact = paid.startsWith("-") ? paid.slice(1) : `-${paid}`;
      const amount = roundCents(exact);
      lines.push({
        kind: "credits_applied",
        description: "usage paid from prepaid credits",
        quantity: 0,
        unit_price: null,
        user_id: null,
        product: null,
        model: null,
        tier: null,
        from_tier: null,
        date: null,
        period: null,
        amount_exact: exact,
        amount,
      });
      subtotal = sumDecimals([subtotal, exact]);
      total = roundCents(sumDecimals([total, amount]));
    }
  }
  return {
    org_id: orgId,
    period,
    status: "draft",
    number: null,
    finalized_at: null,
    finalized_by: null,
    currency: "USD",
    plan: contract?.contract.plan ?? null,
    lines,
    subtotal_exact: subtotal,
    total,
  };
}

/** The invoice of `period` as the API serves it: the final document (its stored JSON, byte for byte), or a draft. */
export async function readInvoice(
  deps: InvoiceDeps,
  orgId: string,
  period: string,
): Promise<{ json: string; final: boolean }> {
  const final = deps.control.invoiceFinal(orgId, period);
  if (final) {
    const stored = await invoiceDocument(deps.clickhouse, orgId, period, final.finalization_id);
    if (stored === undefined)
      throw new Error(`final invoice ${final.finalization_id} of ${orgId} ${period} not stored`);
    return { json: stored, final: true };
  }
  return { json: JSON.stringify(await computeInvoice(deps, orgId, period)), final: false };
}

/** Whether `period` has ended at `nowMs`. */
export function periodEnded(period: string, nowMs: number): boolean {
  const range = periodRange(period);
  return range !== undefined && range.to <= nowMs;
}

/** Finalizes the org's invoice of `period` (see the header for the order) and answers the final document. */
export async function finalizeInvoice(
  deps: InvoiceDeps,
  orgId: string,
  period: string,
  actor: string,
): Promise<{ json: string; created: boolean }> {
  const held = deps.control.invoiceFinal(orgId, period);
  if (held) return { json: (await readInvoice(deps, orgId, period)).json, created: false };
  const computed = await computeInvoice(deps, orgId, period);
  const at = deps.now();
  const finalizationId = randomUUID();
  const doc: InvoiceDocument = {
    ...computed,
    status: "final",
    number: invoiceNumber(orgId, period),
    finalized_at: new Date(at).toISOString(),
    finalized_by: actor,
  };
  const json = JSON.stringify(doc);
  await insertInvoiceDocument(
    deps.clickhouse,
    {
      org_id: orgId,
      period,
      finalization_id: finalizationId,
      number: doc.number!,
      finalized_at: chDateTime(at),
      finalized_by: actor,
      total: doc.total,
      document: json,
    },
    doc.lines.map((l, i) => ({
      line_no: i + 1,
      kind: l.kind,
      description: l.description,
      quantity: l.quantity,
      user_id: l.user_id ?? "",
      product: l.product ?? "",
      model: l.model ?? "",
      tier: l.tier ?? "",
      from_tier: l.from_tier ?? "",
      charge_day: l.date ?? "",
      adjusts_period: l.period ?? "",
      amount_exact: l.amount_exact,
      amount: l.amount,
    })),
  );
  const version = await deps.writer.publish({
    kind: "invoice_final",
    org_id: orgId,
    period,
    finalization_id: finalizationId,
    number: doc.number!,
    actor,
    at: doc.finalized_at!,
  });
  await deps.writer.waitFor(version, 5000);
  const winner = deps.control.invoiceFinal(orgId, period);
  if (winner?.finalization_id === finalizationId) return { json, created: true };
  return { json: (await readInvoice(deps, orgId, period)).json, created: false };
}

/** The months to look at for finalization on their own: up to 12 months back. */
const LOOKBACK_MONTHS = 12;

/**
 * Finalizes, on its own, every org's invoice of each month that ended more than `graceDays` ago (SPEC §13), for orgs
 * with usage or a contract in that month; runs every `everyMs`. Any number of instances may run it: finalization is
 * first-record-wins (see the header).
 */
export function startInvoiceFinalizer(deps: InvoiceDeps & { logger: Logger; graceDays: number; everyMs?: number }): {
  stop: () => void;
  runOnce: () => Promise<number>;
} {
  const log = deps.logger.child({ component: "invoice-finalizer" });
  let running = false;
  async function runOnce(): Promise<number> {
    if (running) return 0;
    running = true;
    try {
      const now = deps.now();
      // The last month whose grace has passed: months ending at or before now − grace days.
      let last = previousPeriod(periodOf(now));
      while (!periodEnded(last, now - deps.graceDays * 86_400_000)) last = previousPeriod(last);
      let first = last;
      for (let i = 1; i < LOOKBACK_MONTHS; i++) first = previousPeriod(first);
      const due = new Set<string>();
      for (const r of await orgMonthsWithUsage(deps.clickhouse, first, last)) due.add(`${r.org_id}\u0000${r.period}`);
      for (const orgId of deps.control.orgIds()) {
        const c = deps.control.contract(orgId);
        if (!c) continue;
        for (let p = last; p >= first && p >= c.contract.term_start.slice(0, 7); p = previousPeriod(p)) {
          due.add(`${orgId}\u0000${p}`);
        }
      }
      let made = 0;
      for (const key of [...due].sort()) {
        const [orgId, period] = key.split("\u0000") as [string, string];
        if (deps.control.invoiceFinal(orgId, period)) continue;
        const r = await finalizeInvoice(deps, orgId, period, "invoice-finalizer");
        if (r.created) {
          made++;
          log.info({ org_id: orgId, period }, "invoice finalized after its grace days");
        }
      }
      return made;
    } finally {
      running = false;
    }
  }
  const every = deps.everyMs ?? 60_000;
  const timer = setInterval(() => {
    runOnce().catch((err) => log.error({ err }, "invoice finalization failed; retried on the next run"));
  }, every);
  timer.unref();
  return { stop: () => clearInterval(timer), runOnce };
}

export interface InvoiceSide {
  /** The month's own invoice. */
  status: "draft" | "final";
  number: string | null;
  /** Sum of its lines' amount, and whether that is its `total`. */
  total: string;
  total_matches_lines: boolean;
  /** Its usage lines (exact). */
  usage: { requests: number; net: string };
  /** Adjustment lines naming the month on later invoices: final ones, then the next draft that will carry them. */
  adjustments: { invoice_period: string; status: "draft" | "final"; requests: number; net: string }[];
  /** Per user: usage lines + adjustments. */
  users: Map<string, { requests: number; net: string }>;
}

/**
 * The invoice side of a month's reconciliation (SPEC §13): the month's invoice's usage lines (exact) plus the
 * adjustment lines that name the month, on final invoices of later months and on the next draft (the first later
 * month not final yet, which is where usage arriving now goes).
 */
export async function invoiceSide(deps: InvoiceDeps, orgId: string, period: string): Promise<InvoiceSide> {
  const own = JSON.parse((await readInvoice(deps, orgId, period)).json) as InvoiceDocument;
  const users = new Map<string, { requests: number; net: string }>();
  const add = (user: string, requests: number, net: string) => {
    const u = users.get(user) ?? { requests: 0, net: "0" };
    users.set(user, { requests: u.requests + requests, net: sumDecimals([u.net, net]) });
  };
  const usageLines = own.lines.filter((l) => l.kind === "usage");
  for (const l of usageLines) add(l.user_id ?? "", l.quantity, l.amount_exact);
  const adjustments: InvoiceSide["adjustments"] = [];
  /** The adjustment lines naming `period` among an invoice's lines (a document's, or rows of its stored lines). */
  type AdjustmentLike = { kind: string; user_id: string | null; quantity: number; amount_exact: string };
  const addAdjustments = (invoicePeriod: string, status: "draft" | "final", mine: AdjustmentLike[]) => {
    if (mine.length === 0) return;
    for (const l of mine) add(l.user_id ?? "", l.quantity, l.amount_exact);
    adjustments.push({
      invoice_period: invoicePeriod,
      status,
      requests: mine.reduce((n, l) => n + l.quantity, 0),
      net: sumDecimals(mine.map((l) => l.amount_exact)),
    });
  };
  if (own.status === "final") {
    // Final invoices after it: their stored adjustment lines for this month, in one read.
    const later = deps.control.invoiceFinals(orgId).filter((f) => f.period > period);
    const stored = await invoicedUsage(
      deps.clickhouse,
      orgId,
      later.map((f) => f.finalization_id),
    );
    for (const f of later) {
      addAdjustments(
        f.period,
        "final",
        stored.filter((r) => r.invoice_period === f.period && r.kind === "adjustment" && r.usage_period === period),
      );
    }
    // The next draft: the first month after `period` (up to the current one) that is not final.
    const current = periodOf(deps.now());
    let next = nextPeriod(period);
    while (next <= current && deps.control.invoiceFinal(orgId, next)) next = nextPeriod(next);
    if (next <= current) {
      const draft = await computeInvoice(deps, orgId, next);
      addAdjustments(
        next,
        "draft",
        draft.lines.filter((l) => l.kind === "adjustment" && l.period === period),
      );
    }
  }
  const linesTotal = roundCents(sumDecimals(own.lines.map((l) => l.amount)));
  return {
    status: own.status,
    number: own.number,
    total: own.total,
    total_matches_lines: linesTotal === roundCents(own.total),
    usage: {
      requests: usageLines.reduce((n, l) => n + l.quantity, 0),
      net: sumDecimals(usageLines.map((l) => l.amount_exact)),
    },
    adjustments,
    users,
  };
}

function nextPeriod(period: string): string {
  const range = periodRange(period)!;
  return periodOf(range.to);
}
