/**
 * Prepaid credit routes:
 *
 *   GET  /v1/orgs/:org/credits                 → the balance, what made it, and auto-reload (fresh, from memory)
 *   GET  /v1/orgs/:org/credits/ledger          → { entries: [...] } every purchase and reload, oldest first
 *   POST /v1/orgs/:org/credits/purchases       { amount, reference? } → 201 { entry, credits }
 *   PUT  /v1/orgs/:org/credits/auto-reload     { enabled?, when_below, amount, monthly_max } → the settings
 *   GET  /v1/orgs/:org/credits/auto-reload     → the settings in force, or 404
 *
 * A purchase's `reference` (an order or invoice number) makes it idempotent: the same reference with the same amount
 * is the same entry (200, nothing added); with another amount it is a 409. Without a reference every POST is a new
 * purchase. A purchase is stored, then applied to the running account at once (a blocked org is unblocked before
 * the answer is sent).
 */
import { randomUUID } from "node:crypto";
import {
  type ClickHouseClient,
  type CreditLedgerRow,
  chDateTime,
  creditEntry,
  creditEntryId,
  creditLedger,
  insertCreditEntries,
} from "@usage/clickhouse";
import { canonicalMoney } from "@usage/money";
import { periodOf } from "@usage/periods";
import { parseAutoReload, parsePurchase } from "@usage/policy";
import type {
  FastifyBaseLogger,
  FastifyInstance,
  FastifyReply,
  FastifyRequest,
  RawReplyDefaultExpression,
  RawRequestDefaultExpression,
  RawServerDefault,
} from "fastify";
import { actorOf, type Principal } from "./auth.js";
import type { SpendReader } from "./read-model.js";
import { CONTROL_WAIT_MS, type ControlWriter } from "./server.js";

export interface CreditRouteDeps {
  /** The org's contract plan: prepaid credits are for self-serve orgs (and orgs without a contract). */
  plan: (orgId: string) => "sales_assisted" | "self_serve" | undefined;
  clickhouse: ClickHouseClient;
  reader: SpendReader;
  control: ControlWriter;
  authorize: (request: FastifyRequest) => { orgId: string; principal: Principal };
  now: () => number;
}

function fail(reply: FastifyReply, status: number, code: string, message: string) {
  return reply.code(status).send({ error: { code, message } });
}

/** A ledger row as the API shows it. */
function entryOut(e: CreditLedgerRow) {
  return {
    entry_id: e.entry_id,
    kind: e.kind,
    amount: canonicalMoney(e.amount),
    reference: e.reference,
    sequence: e.sequence,
    period: e.period,
    created_at: `${e.created_at.replace(" ", "T")}Z`,
    created_by: e.created_by,
    ...(e.kind === "reload" ? { balance_after: canonicalMoney(e.balance_after) } : {}),
  };
}

export function registerCreditRoutes<L extends FastifyBaseLogger>(
  app: FastifyInstance<RawServerDefault, RawRequestDefaultExpression, RawReplyDefaultExpression, L>,
  deps: CreditRouteDeps,
): void {
  const view = (orgId: string) => {
    const v = deps.reader.credits(orgId);
    return v ? { ...v, prepaid: true } : { org_id: orgId, prepaid: false };
  };

  app.get("/v1/orgs/:org/credits", async (request) => view(deps.authorize(request).orgId));

  app.get("/v1/orgs/:org/credits/ledger", async (request) => {
    const { orgId } = deps.authorize(request);
    return { org_id: orgId, entries: (await creditLedger(deps.clickhouse, orgId)).map(entryOut) };
  });

  app.post("/v1/orgs/:org/credits/purchases", async (request, reply) => {
    const { orgId, principal } = deps.authorize(request);
    const parsed = parsePurchase(request.body);
    if (!parsed.ok) return fail(reply, 400, "invalid_purchase", `${parsed.field}: ${parsed.message}`);
    if (deps.plan(orgId) === "sales_assisted") {
      return fail(
        reply,
        409,
        "plan_sales_assisted",
        `org ${orgId} is sales-assisted: its usage is invoiced in arrears, credits are for self-serve plans`,
      );
    }
    const reference = parsed.value.reference ?? `purchase-${randomUUID()}`;
    const entryId = creditEntryId(orgId, "purchase", reference);
    const existing = await creditEntry(deps.clickhouse, orgId, entryId);
    if (existing) {
      const recorded = canonicalMoney(existing.amount);
      if (recorded !== parsed.value.amount) {
        return fail(
          reply,
          409,
          "reference_conflict",
          `purchase ${reference} was recorded with amount ${recorded}, not ${parsed.value.amount}`,
        );
      }
      return reply.code(200).send({ entry: entryOut(existing), credits: view(orgId) });
    }
    const at = deps.now();
    const row: CreditLedgerRow = {
      entry_id: entryId,
      org_id: orgId,
      kind: "purchase",
      amount: parsed.value.amount,
      reference,
      sequence: 0,
      period: periodOf(at),
      balance_after: "0",
      created_at: chDateTime(at),
      created_by: actorOf(principal),
    };
    await insertCreditEntries(deps.clickhouse, [row]);
    const entries = (await creditLedger(deps.clickhouse, orgId)).length;
    // Stored first, then announced: the aggregator member owning the org reads the account again on the notice and
    // publishes it; the answer waits (boundedly) until this instance reads the purchase in the balance.
    await deps.control.publish({
      kind: "credit_purchase",
      org_id: orgId,
      entry_id: entryId,
      reference,
      amount: parsed.value.amount,
      actor: actorOf(principal),
      at: new Date(at).toISOString(),
    });
    await deps.reader.waitUntil(() => (deps.reader.credits(orgId)?.entries ?? 0) >= entries, CONTROL_WAIT_MS);
    return reply.code(201).send({ entry: entryOut(row), credits: view(orgId) });
  });

  app.put("/v1/orgs/:org/credits/auto-reload", async (request, reply) => {
    const { orgId, principal } = deps.authorize(request);
    const parsed = parseAutoReload(request.body);
    if (!parsed.ok) return fail(reply, 400, "invalid_auto_reload", `${parsed.field}: ${parsed.message}`);
    const version = await deps.control.publish({
      kind: "auto_reload",
      org_id: orgId,
      settings: parsed.value,
      actor: actorOf(principal),
      at: new Date(deps.now()).toISOString(),
    });
    await deps.control.waitFor(version, CONTROL_WAIT_MS);
    // A prepaid org's account shows the settings once its owner has applied them.
    if (deps.reader.credits(orgId)) {
      await deps.reader.waitUntil(
        () => Number(deps.reader.credits(orgId)?.auto_reload?.version ?? 0) >= version,
        CONTROL_WAIT_MS,
      );
    }
    return { ...parsed.value, version };
  });

  app.get("/v1/orgs/:org/credits/auto-reload", async (request, reply) => {
    const { orgId } = deps.authorize(request);
    const current = deps.reader.autoReload(orgId);
    if (!current) return fail(reply, 404, "no_auto_reload", `org ${orgId} has no auto-reload settings`);
    return { ...current.settings, version: current.version };
  });
}
