/**
 * Usage lines, adjustment lines and the assembled invoice (SPEC §13):
 *
 *   - Usage: one line per user × product × model of the month, net of the contract's discount (rows arrive net);
 *     rows with the same key are merged by summing `net` and `requests` exactly. Nothing is skipped: a key whose net
 *     is 0 is still a line. quantity = requests. Sorted by user_id, product, model (by UTF-16 code units, so the
 *     order does not depend on a locale).
 *   - Adjustments: usage of a month whose invoice is final never changes it; the difference between the month's
 *     usage now and what invoices already hold for it (its final invoice's usage lines plus adjustment lines already
 *     frozen on later final invoices) becomes adjustment lines on the next open invoice, one per
 *     user × product × model, naming the month (`period`). A key gets a line when its net difference is not 0 or
 *     its request difference is not 0 (so requests reconcile as well as money); equal keys give no line. A
 *     negative difference (usage that left the month, e.g. a correction) is a negative line. Same order as usage.
 *   - Invoice: seat lines, then usage lines, then adjustment lines, each part in the order given.
 *     subtotal_exact = exact sum of amount_exact; total = sum of the lines' `amount` (each already rounded to
 *     cents), which may differ from the subtotal rounded to cents.
 *   - Every line's `amount` is its `amount_exact` rounded half-up to cents, 2 decimals; nothing is rounded before.
 */
import { canonical, roundCents, subtractDecimals, sumCents, sumDecimals } from "./amounts.js";
import type { Invoice, InvoiceLine, UsageRow } from "./types.js";

const MONTH = /^\d{4}-(0[1-9]|1[0-2])$/;

interface Merged {
  user_id: string;
  product: string;
  model: string;
  net: string;
  requests: number;
}

const keyOf = (r: { user_id: string; product: string; model: string }) =>
  JSON.stringify([r.user_id, r.product, r.model]);

const byKey = (a: Merged, b: Merged): number => {
  for (const f of ["user_id", "product", "model"] as const) {
    if (a[f] !== b[f]) return a[f] < b[f] ? -1 : 1;
  }
  return 0;
};

/** Rows merged per user × product × model, exactly; validates every row. */
function merge(rows: UsageRow[], what: string): Map<string, Merged> {
  const out = new Map<string, Merged>();
  rows.forEach((r, i) => {
    const where = `${what}[${i}]`;
    for (const f of ["user_id", "product", "model"] as const) {
      if (typeof r[f] !== "string") throw new RangeError(`${where}.${f} must be a string`);
    }
    if (!Number.isSafeInteger(r.requests)) throw new RangeError(`${where}.requests must be an integer`);
    const net = canonical(r.net, `${where}.net`);
    const key = keyOf(r);
    const seen = out.get(key);
    if (seen) {
      seen.net = sumDecimals([seen.net, net]);
      seen.requests += r.requests;
      if (!Number.isSafeInteger(seen.requests)) throw new RangeError(`${where}: requests overflow`);
    } else {
      out.set(key, { user_id: r.user_id, product: r.product, model: r.model, net, requests: r.requests });
    }
  });
  return out;
}

const usageText = (r: Merged) => `${r.product} · ${r.model} · ${r.user_id}`;

function lineOf(kind: "usage" | "adjustment", r: Merged, description: string, period: string | null): InvoiceLine {
  return {
    kind,
    description,
    quantity: r.requests,
    unit_price: null,
    user_id: r.user_id,
    product: r.product,
    model: r.model,
    tier: null,
    from_tier: null,
    date: null,
    period,
    amount_exact: r.net,
    amount: roundCents(r.net),
  };
}

/** One usage line per user × product × model (duplicates summed exactly), zero-net keys included. */
export function usageLines(rows: UsageRow[]): InvoiceLine[] {
  return [...merge(rows, "rows").values()].sort(byKey).map((r) => lineOf("usage", r, usageText(r), null));
}

/**
 * Adjustment lines for a `month` (YYYY-MM) whose invoice is final: per user × product × model, `current` (the
 * month's usage now) minus `invoiced` (what invoices already hold for it), where that difference is not zero.
 */
export function adjustmentLines(month: string, current: UsageRow[], invoiced: UsageRow[]): InvoiceLine[] {
  if (typeof month !== "string" || !MONTH.test(month)) {
    throw new RangeError(`month must be YYYY-MM, got ${JSON.stringify(month)}`);
  }
  const now = merge(current, "current");
  const held = merge(invoiced, "invoiced");
  const diffs: Merged[] = [];
  for (const key of new Set([...now.keys(), ...held.keys()])) {
    const a = now.get(key);
    const b = held.get(key);
    const base = (a ?? b)!;
    const net = subtractDecimals(a?.net ?? "0", b?.net ?? "0");
    const requests = (a?.requests ?? 0) - (b?.requests ?? 0);
    if (net === "0" && requests === 0) continue;
    diffs.push({ user_id: base.user_id, product: base.product, model: base.model, net, requests });
  }
  return diffs.sort(byKey).map((r) => {
    const what = r.net.startsWith("-") ? "usage correction of" : "late usage of";
    return lineOf("adjustment", r, `${what} ${month}: ${usageText(r)}`, month);
  });
}

/** The month's invoice: seat, then usage, then adjustment lines; exact subtotal; total = Σ rounded amounts. */
export function assembleInvoice(parts: {
  seat: InvoiceLine[];
  usage: InvoiceLine[];
  adjustments: InvoiceLine[];
}): Invoice {
  const lines = [...parts.seat, ...parts.usage, ...parts.adjustments];
  return {
    lines,
    subtotal_exact: sumDecimals(
      lines.map((l) => l.amount_exact),
      "amount_exact",
    ),
    total: sumCents(lines.map((l) => l.amount)),
  };
}
