/**
 * Invoices (schemas/clickhouse/014): frozen documents and their lines, and the month's usage an invoice is computed
 * from. A document is written before the control record that makes it final (see the migration), so a document a
 * reader is pointed at always exists; every read names its finalization id.
 */
import type { ClickHouseClient } from "@clickhouse/client";

export interface InvoiceDocumentLineRow {
  line_no: number;
  kind: string;
  description: string;
  quantity: number;
  user_id: string;
  product: string;
  model: string;
  tier: string;
  from_tier: string;
  charge_day: string;
  adjusts_period: string;
  amount_exact: string;
  amount: string;
}

export interface InvoiceDocumentRow {
  org_id: string;
  period: string;
  finalization_id: string;
  number: string;
  /** `YYYY-MM-DD HH:mm:ss.SSS` (UTC). */
  finalized_at: string;
  finalized_by: string;
  total: string;
  /** The invoice JSON exactly as served. */
  document: string;
}

/** Writes a document and its lines (lines first: a document row is only ever read with its lines in place). */
export async function insertInvoiceDocument(
  client: ClickHouseClient,
  doc: InvoiceDocumentRow,
  lines: InvoiceDocumentLineRow[],
): Promise<void> {
  if (lines.length > 0) {
    await client.insert({
      table: "invoice_document_lines",
      values: lines.map((l) => ({
        org_id: doc.org_id,
        period: doc.period,
        finalization_id: doc.finalization_id,
        ...l,
      })),
      format: "JSONEachRow",
    });
  }
  await client.insert({ table: "invoice_documents", values: [doc], format: "JSONEachRow" });
}

/** The stored document of one finalization, or undefined. */
export async function invoiceDocument(
  client: ClickHouseClient,
  orgId: string,
  period: string,
  finalizationId: string,
): Promise<string | undefined> {
  const rs = await client.query({
    query: `SELECT document FROM invoice_documents FINAL
            WHERE org_id = {org:String} AND period = {period:String} AND finalization_id = {id:String}
            LIMIT 1`,
    query_params: { org: orgId, period, id: finalizationId },
    format: "JSONEachRow",
  });
  return (await rs.json<{ document: string }>())[0]?.document;
}

export interface InvoicedUsageRow {
  /** The period of the invoice holding the line. */
  invoice_period: string;
  kind: "usage" | "adjustment";
  /** The month the usage belongs to: the invoice's own for a usage line, the named month for an adjustment. */
  usage_period: string;
  user_id: string;
  product: string;
  model: string;
  quantity: number;
  amount_exact: string;
}

/** The usage and adjustment lines of the given final documents (by finalization id). */
export async function invoicedUsage(
  client: ClickHouseClient,
  orgId: string,
  finalizationIds: string[],
): Promise<InvoicedUsageRow[]> {
  if (finalizationIds.length === 0) return [];
  const rs = await client.query({
    query: `SELECT period AS invoice_period, kind, if(kind = 'adjustment', adjusts_period, period) AS usage_period,
                   user_id, product, model, quantity, toString(amount_exact) AS amount_exact
            FROM invoice_document_lines FINAL
            WHERE org_id = {org:String} AND finalization_id IN {ids:Array(String)}
              AND kind IN ('usage', 'adjustment')
            ORDER BY period, line_no`,
    query_params: { org: orgId, ids: finalizationIds },
    format: "JSONEachRow",
  });
  return (await rs.json<InvoicedUsageRow & { quantity: string }>()).map((r) => ({
    ...r,
    quantity: Number(r.quantity),
  }));
}

export interface MonthUsageRow {
  period: string;
  user_id: string;
  product: string;
  model: string;
  requests: number;
  /** Exact net (after the discount in force when each event was recorded). */
  net: string;
}

/**
 * The usage of an org in the given months, per user × product × base model, from usage_events FINAL (each event
 * once): what a draft invoice's usage lines are, and what adjustments compare final invoices against.
 */
export async function monthUsage(client: ClickHouseClient, orgId: string, periods: string[]): Promise<MonthUsageRow[]> {
  if (periods.length === 0) return [];
  const rs = await client.query({
    query: `SELECT formatDateTime(occurred_at, '%Y-%m', 'UTC') AS period, user_id, product, model_base AS model,
                   count() AS requests, toString(sum(net_cost)) AS net
            FROM usage_events FINAL
            WHERE org_id = {org:String} AND formatDateTime(occurred_at, '%Y-%m', 'UTC') IN {periods:Array(String)}
            GROUP BY period, user_id, product, model
            ORDER BY period, user_id, product, model`,
    query_params: { org: orgId, periods },
    format: "JSONEachRow",
  });
  return (await rs.json<MonthUsageRow & { requests: string }>()).map((r) => ({ ...r, requests: Number(r.requests) }));
}

/** Orgs with any usage in each month from `fromPeriod` to `toPeriod` (both included), from the rollup. */
export async function orgMonthsWithUsage(
  client: ClickHouseClient,
  fromPeriod: string,
  toPeriod: string,
): Promise<{ org_id: string; period: string }[]> {
  const rs = await client.query({
    query: `SELECT DISTINCT org_id, formatDateTime(day, '%Y-%m') AS period
            FROM spend_daily
            WHERE day >= toDate(concat({from:String}, '-01')) AND day < addMonths(toDate(concat({to:String}, '-01')), 1)
            ORDER BY org_id, period`,
    query_params: { from: fromPeriod, to: toPeriod },
    format: "JSONEachRow",
  });
  return rs.json<{ org_id: string; period: string }>();
}
