/**
 * The registry of the API's operations: every route buildApi registers, with its parameters, body, answers and the
 * error codes it answers with. document.ts turns it into the OpenAPI 3.1 document of `GET /openapi.json`.
 *
 * Per operation: method and path as Fastify registers them (`:param`; the document writes `{param}`), a summary, the
 * path parameters, query and body as zod schemas (schemas.ts), the success answers per status, and the error codes
 * the route itself answers with per status. document.ts adds what every route of a kind shares, so it is said once:
 *   - every /v1 route: bearer security; 401 `unauthorized`; 403 `forbidden_role` (the role may not: ROUTE_ACCESS in
 *     access.ts, whose roles go into the description); 429 `rate_limited`; and with `{org}`, 400 `invalid_org` and
 *     403 `forbidden` (a key of another org);
 *   - a route with a body: 400 `bad_request` (not JSON, empty JSON body), 413 `fst_err_ctp_body_too_large`, 415
 *     `fst_err_ctp_invalid_media_type` (Fastify's own, in the API's error shape);
 *   - every /v1 route that changes something: 503 `control_lagging` (the change is in the control log, and this
 *     instance has not applied it within 5 s; Retry-After: 1);
 *   - every route: 500 `internal`.
 *
 * A test (openapi/document.test.ts) checks that this list and the routes buildApi registers are the same set, and
 * the contract test (openapi.integration.test.ts) calls every operation and checks each answer against its schema.
 */
import type { ZodTypeAny } from "zod";
import { z } from "zod";
import * as s from "./schemas.js";

export type Method = "GET" | "POST" | "PUT" | "DELETE";

export interface Answer {
  description: string;
  /** The body's schema; none for a body-less answer (a redirect). */
  schema?: ZodTypeAny;
  /** application/json unless said. */
  contentType?: string;
}

export interface Operation {
  method: Method;
  /** As Fastify registers it: `/v1/orgs/:org/spend`. */
  path: string;
  operationId: string;
  summary: string;
  description?: string;
  tag: string;
  params?: z.AnyZodObject;
  query?: z.AnyZodObject;
  body?: ZodTypeAny;
  /** Whether a request without a body is accepted (default: a body is required). */
  bodyOptional?: boolean;
  /** Success answers by status. */
  answers: Record<number, Answer>;
  /** The error codes the route itself answers with, by status (document.ts adds the shared ones). */
  errors?: Record<number, readonly string[]>;
  /** The 400 body of this operation also carries `details` (an invalid policy). */
  errorDetails?: boolean;
}

const json = (description: string, schema: ZodTypeAny): Answer => ({ description, schema });
const csv = (description: string): Answer => ({
  description,
  contentType: "text/csv; charset=utf-8",
  schema: z.string(),
});

const Org = z.object({ org: s.Id.openapi({ description: "the org id" }) });
const OrgUser = Org.extend({ user: s.Id.openapi({ description: "the user id" }) });
const OrgKey = Org.extend({ key_id: z.string().openapi({ description: "the key's id" }) });
const OrgRequest = Org.extend({ id: z.string().openapi({ description: "the limit request's id" }) });
const OrgPeriod = Org.extend({ period: s.Period });

export const OPERATIONS: readonly Operation[] = [
  // ------------------------------------------------------------------------------------------ unauthenticated
  {
    method: "GET",
    path: "/healthz",
    operationId: "health",
    summary: "Readiness: 200 once consumers and storage are ready, else 503",
    tag: "service",
    answers: { 200: json("ready", s.Health), 503: json("not ready yet", s.Health) },
  },
  {
    method: "GET",
    path: "/metrics",
    operationId: "metrics",
    summary: "Prometheus metrics (text exposition format)",
    tag: "service",
    answers: { 200: { description: "the metrics", contentType: "text/plain; version=0.0.4", schema: z.string() } },
  },
  {
    method: "GET",
    path: "/dashboard",
    operationId: "dashboard",
    summary: "The built-in dashboard page (it asks for an API key and sends it on every call it makes)",
    tag: "service",
    answers: { 200: { description: "the page", contentType: "text/html; charset=utf-8", schema: z.string() } },
  },
  {
    method: "GET",
    path: "/",
    operationId: "root",
    summary: "Redirects to /dashboard",
    tag: "service",
    answers: { 302: { description: "Location: /dashboard" } },
  },
  {
    method: "GET",
    path: "/openapi.json",
    operationId: "openapi",
    summary: "This document: OpenAPI 3.1 of every route, request and answer",
    tag: "service",
    answers: { 200: json("the document", z.object({ openapi: z.string() }).passthrough()) },
  },

  // ------------------------------------------------------------------------------------------ keys
  {
    method: "POST",
    path: "/v1/keys",
    operationId: "createOrgKey",
    summary: "Create a key for any org (an org's first key)",
    tag: "keys",
    body: s.OperatorKeyBody,
    answers: { 201: json("the key; its secret is shown this once", s.CreatedKey) },
    errors: { 400: ["invalid_org", "invalid_role", "invalid_group", "invalid_user", "invalid_expires_at"] },
  },
  {
    method: "POST",
    path: "/v1/orgs/:org/keys",
    operationId: "createKey",
    summary: "Create a key of the org (role owner by default)",
    tag: "keys",
    params: Org,
    body: s.KeySpecBody,
    bodyOptional: true,
    answers: { 201: json("the key; its secret is shown this once", s.CreatedKey) },
    errors: { 400: ["invalid_role", "invalid_group", "invalid_user", "invalid_expires_at"] },
  },
  {
    method: "GET",
    path: "/v1/orgs/:org/keys",
    operationId: "listKeys",
    summary: "The org's keys (never a secret), with when each was last used",
    tag: "keys",
    params: Org,
    answers: { 200: json("the keys", s.KeyList) },
  },
  {
    method: "DELETE",
    path: "/v1/orgs/:org/keys/:key_id",
    operationId: "revokeKey",
    summary: "Revoke a key (refused everywhere within a second)",
    tag: "keys",
    params: OrgKey,
    answers: { 200: json("revoked", s.RevokedKey) },
    errors: { 404: ["not_found"] },
  },
  {
    method: "POST",
    path: "/v1/orgs/:org/keys/:key_id/rotate",
    operationId: "rotateKey",
    summary: "A new key with the same role and scope; the old one expires after the overlap (default 24 h)",
    tag: "keys",
    params: OrgKey,
    body: s.RotateBody,
    bodyOptional: true,
    answers: { 201: json("the new key and the old one's expiry", s.RotatedKey) },
    errors: { 400: ["invalid_overlap"], 404: ["not_found"] },
  },

  // ------------------------------------------------------------------------------------------ policy, caps
  {
    method: "PUT",
    path: "/v1/orgs/:org/policy",
    operationId: "putPolicy",
    summary: "Replace the org's spend policy (SPEC §5); validated with the schema shown",
    description:
      "`discount_pct` is a commercial term: a PUT carrying it is accepted from the operator only (403 forbidden_role " +
      "from any other key).",
    tag: "policy",
    params: Org,
    body: s.PolicyBody,
    answers: { 200: json("the policy in force, normalised, and its version", s.PolicyOut) },
    errors: { 400: ["invalid_policy"] },
    errorDetails: true,
  },
  {
    method: "GET",
    path: "/v1/orgs/:org/policy",
    operationId: "getPolicy",
    summary: "The org's spend policy in force (the contract's discount when there is a contract)",
    tag: "policy",
    params: Org,
    answers: { 200: json("the policy and its version", s.PolicyOut) },
  },
  {
    method: "GET",
    path: "/v1/orgs/:org/caps",
    operationId: "getCaps",
    summary: "Every known user's limit, spend, remaining and status, and the org's",
    tag: "policy",
    params: Org,
    answers: { 200: json("the caps (a member or group owner key: its users only, no org figures)", s.Caps) },
  },
  {
    method: "GET",
    path: "/v1/orgs/:org/users/:user/allowance",
    operationId: "getAllowance",
    summary: "May this user make a request now? (what product surfaces ask before each request)",
    tag: "policy",
    params: OrgUser,
    query: s.QueryOfProduct,
    answers: { 200: json("the allowance", s.Allowance) },
    errors: { 400: ["invalid_user", "invalid_product"] },
  },

  // ------------------------------------------------------------------------------------------ analytics
  {
    method: "GET",
    path: "/v1/orgs/:org/spend",
    operationId: "getSpend",
    summary: "Spend and tokens in a window, grouped",
    description:
      "group_by=group folds users into the policy's groups: a user in several groups counts in each (the answer " +
      "says so with `overlapping` and `note`), users in none under `(none)`; `total` is the org's. A member or " +
      "group owner key must ask for group_by=user (403 forbidden_role otherwise) and sees its users' rows.",
    tag: "analytics",
    params: Org,
    query: s.SpendQuery,
    answers: { 200: json("the spend", s.Spend) },
    errors: { 400: ["invalid_window", "invalid_at", "invalid_group_by", "invalid_product"] },
  },
  {
    method: "GET",
    path: "/v1/orgs/:org/top-users",
    operationId: "getTopUsers",
    summary: "Users ranked by spend or tokens in a window",
    tag: "analytics",
    params: Org,
    query: s.TopUsersQuery,
    answers: { 200: json("the ranking", s.TopUsers) },
    errors: { 400: ["invalid_window", "invalid_at", "invalid_by", "invalid_limit"] },
  },
  {
    method: "GET",
    path: "/v1/orgs/:org/trends",
    operationId: "getTrends",
    summary: "Daily spend and tokens per group (every day of the window listed)",
    description:
      "A request spans at most 31 days, starts within the last 365 days and not before 2026-01-01. group_by=group " +
      "folds users into the policy's groups (a user in several groups counts in each).",
    tag: "analytics",
    params: Org,
    query: s.TrendsQuery,
    answers: { 200: json("the trend", s.Trends) },
    errors: {
      400: [
        "invalid_group_by",
        "invalid_product",
        "invalid_range",
        "trends_start_too_old",
        "trends_start_before_2026",
        "trends_window_too_wide",
      ],
    },
  },
  {
    method: "GET",
    path: "/v1/orgs/:org/export.csv",
    operationId: "exportCsv",
    summary: "The spend report CSV, one row per user × product × model",
    description:
      "Columns: user_email,user_id,account_uuid,product,model,request_count,prompt_tokens,completion_tokens," +
      "net_spend_usd,gross_spend_usd. Either `range` or `from`/`to` (a custom range reaches at most 90 days back).",
    tag: "analytics",
    params: Org,
    query: s.ExportQuery,
    answers: { 200: csv("the CSV (RFC 4180)") },
    errors: { 400: ["export_range_conflict", "invalid_export_range", "invalid_range", "export_start_too_old"] },
  },
  {
    method: "GET",
    path: "/v1/orgs/:org/activity",
    operationId: "getActivity",
    summary: "Active users (dau, wau, mau) and seat utilization as of a day",
    tag: "analytics",
    params: Org,
    query: s.ActivityQuery,
    answers: { 200: json("the activity", s.Activity) },
    errors: { 400: ["invalid_at"] },
  },
  {
    method: "GET",
    path: "/v1/orgs/:org/forecast",
    operationId: "getForecast",
    summary: "Projected month-end net spend of the org and each user, and when each cap is reached",
    tag: "analytics",
    params: Org,
    answers: { 200: json("the forecast", s.OrgForecast) },
  },
  {
    method: "GET",
    path: "/v1/orgs/:org/usage_report/messages",
    operationId: "getUsageReport",
    summary: "Token usage in time buckets, in the shape of the Claude Admin API's usage report",
    tag: "analytics",
    params: Org,
    query: s.UsageReportQuery,
    answers: { 200: json("one page of buckets", s.UsageReport) },
    errors: {
      400: [
        "invalid_starting_at",
        "invalid_ending_at",
        "invalid_range",
        "invalid_bucket_width",
        "invalid_limit",
        "invalid_group_by",
        "invalid_page",
      ],
    },
  },
  {
    method: "GET",
    path: "/v1/orgs/:org/cost_report",
    operationId: "getCostReport",
    summary: "Net cost in daily buckets (amounts in US cents), in the shape of the Claude Admin API's cost report",
    tag: "analytics",
    params: Org,
    query: s.CostReportQuery,
    answers: { 200: json("one page of buckets", s.CostReport) },
    errors: {
      400: [
        "invalid_starting_at",
        "invalid_ending_at",
        "invalid_range",
        "invalid_bucket_width",
        "invalid_limit",
        "invalid_group_by",
        "invalid_page",
      ],
    },
  },

  // ------------------------------------------------------------------------------------------ alerts, audit
  {
    method: "PUT",
    path: "/v1/orgs/:org/webhook",
    operationId: "putWebhook",
    summary: "Set the org's webhook; the secret is stored encrypted, never returned or logged",
    description: "overlap_seconds > 0 rotates the secret: the old one keeps signing alongside the new one that long.",
    tag: "alerts",
    params: Org,
    body: s.WebhookBody,
    answers: { 200: json("the webhook (never its secret)", s.Webhook) },
    errors: { 400: ["bad_request", "invalid_webhook_url", "invalid_webhook_secret", "invalid_overlap"] },
  },
  {
    method: "GET",
    path: "/v1/orgs/:org/alerts",
    operationId: "getAlerts",
    summary: "The month's alerts with their delivery state",
    tag: "alerts",
    params: Org,
    query: s.QueryOfPeriod,
    answers: { 200: json("the alerts", s.Alerts) },
    errors: { 400: ["invalid_period"] },
  },
  {
    method: "GET",
    path: "/v1/orgs/:org/audit",
    operationId: "getAudit",
    summary: "Every change to the org: { at, actor, action, target, before, after }",
    tag: "alerts",
    params: Org,
    query: s.AuditQuery,
    answers: { 200: json("the entries, oldest first", s.Audit) },
    errors: { 400: ["invalid_from", "invalid_to", "invalid_range", "range_too_wide"] },
  },

  // ------------------------------------------------------------------------------------------ credits
  {
    method: "GET",
    path: "/v1/orgs/:org/credits",
    operationId: "getCredits",
    summary: "The prepaid balance, what made it, and auto-reload",
    tag: "credits",
    params: Org,
    answers: { 200: json("the account (prepaid: false without credits)", s.Credits) },
  },
  {
    method: "GET",
    path: "/v1/orgs/:org/credits/ledger",
    operationId: "getCreditLedger",
    summary: "Every purchase and reload, oldest first",
    tag: "credits",
    params: Org,
    answers: { 200: json("the ledger", s.Ledger) },
  },
  {
    method: "POST",
    path: "/v1/orgs/:org/credits/purchases",
    operationId: "purchaseCredits",
    summary: "Record a credit purchase (idempotent per reference)",
    tag: "credits",
    params: Org,
    body: s.PurchaseBody,
    answers: {
      201: json("recorded and applied", s.Purchase),
      200: json("the same reference and amount: the purchase already recorded", s.Purchase),
    },
    errors: { 400: ["invalid_purchase"], 409: ["plan_sales_assisted", "reference_conflict"] },
  },
  {
    method: "PUT",
    path: "/v1/orgs/:org/credits/auto-reload",
    operationId: "putAutoReload",
    summary: "Set auto-reload: when the balance falls below when_below, add amount (at most monthly_max a month)",
    tag: "credits",
    params: Org,
    body: s.AutoReloadBody,
    answers: { 200: json("the settings in force", s.AutoReload) },
    errors: { 400: ["invalid_auto_reload"] },
  },
  {
    method: "GET",
    path: "/v1/orgs/:org/credits/auto-reload",
    operationId: "getAutoReload",
    summary: "The auto-reload settings in force",
    tag: "credits",
    params: Org,
    answers: { 200: json("the settings", s.AutoReload) },
    errors: { 404: ["no_auto_reload"] },
  },

  // ------------------------------------------------------------------------------------------ contract, seats, invoices
  {
    method: "PUT",
    path: "/v1/orgs/:org/contract",
    operationId: "putContract",
    summary: "Set the org's commercial terms; validated with the schema shown",
    tag: "billing",
    params: Org,
    body: s.ContractBody,
    answers: { 200: json("the contract, normalised, and its version", s.ContractSet) },
    errors: { 400: ["invalid_contract"] },
  },
  {
    method: "GET",
    path: "/v1/orgs/:org/contract",
    operationId: "getContract",
    summary: "The contract in force",
    tag: "billing",
    params: Org,
    answers: { 200: json("the contract", s.ContractHeld) },
    errors: { 404: ["not_found"] },
  },
  {
    method: "PUT",
    path: "/v1/orgs/:org/seats/:user",
    operationId: "putSeat",
    summary: "Assign the user a seat of a tier from an instant on (now by default)",
    tag: "billing",
    params: OrgUser,
    body: s.SeatBody,
    answers: { 200: json("the assignment", s.SeatSet) },
    errors: { 400: ["invalid_user", "invalid_seat", "invalid_tier", "invalid_effective_at"] },
  },
  {
    method: "GET",
    path: "/v1/orgs/:org/seats",
    operationId: "getSeats",
    summary: "The current seat of each user, and every assignment",
    tag: "billing",
    params: Org,
    answers: { 200: json("the seats", s.Seats) },
  },
  {
    method: "GET",
    path: "/v1/orgs/:org/invoices",
    operationId: "getInvoice",
    summary: "The month's invoice: draft, or final (frozen)",
    tag: "billing",
    params: Org,
    query: s.QueryOfPeriod,
    answers: { 200: json("the invoice", s.Invoice) },
    errors: { 400: ["invalid_period"] },
  },
  {
    method: "GET",
    path: "/v1/orgs/:org/invoices/:period/lines.csv",
    operationId: "getInvoiceLinesCsv",
    summary: "The month's invoice lines as CSV",
    tag: "billing",
    params: OrgPeriod,
    answers: { 200: csv("the lines") },
    errors: { 400: ["invalid_period"] },
  },
  {
    method: "POST",
    path: "/v1/orgs/:org/invoices/:period/finalize",
    operationId: "finalizeInvoice",
    summary: "Freeze the month's invoice (a month that has ended)",
    tag: "billing",
    params: OrgPeriod,
    answers: { 201: json("finalized now", s.Invoice), 200: json("already final", s.Invoice) },
    errors: { 400: ["invalid_period"], 409: ["period_not_ended"] },
  },

  // ------------------------------------------------------------------------------------------ limit requests
  {
    method: "POST",
    path: "/v1/orgs/:org/users/:user/limit-requests",
    operationId: "fileLimitRequest",
    summary: "Ask for a higher limit for the user",
    tag: "limit requests",
    params: OrgUser,
    body: s.NoteBody,
    bodyOptional: true,
    answers: {
      201: json("filed (pending)", s.LimitRequest),
      200: json("the user's request already pending", s.LimitRequest),
    },
    errors: { 400: ["invalid_user", "invalid_body", "invalid_note"], 409: ["limit_requests_disabled"] },
  },
  {
    method: "GET",
    path: "/v1/orgs/:org/limit-requests",
    operationId: "listLimitRequests",
    summary: "The org's limit requests (a member or group owner key: its users' only)",
    tag: "limit requests",
    params: Org,
    query: s.QueryOfStatus,
    answers: { 200: json("the requests", s.LimitRequestList) },
    errors: { 400: ["invalid_status"] },
  },
  {
    method: "POST",
    path: "/v1/orgs/:org/limit-requests/:id/approve",
    operationId: "approveLimitRequest",
    summary: "Approve with a limit: the user's individual limit in a new policy version, in force at once",
    tag: "limit requests",
    params: OrgRequest,
    body: s.ApproveBody,
    answers: { 200: json("approved, with the policy version that carries the limit", s.Approved) },
    errors: { 400: ["invalid_body", "invalid_limit"], 404: ["not_found"], 409: ["request_decided"] },
  },
  {
    method: "POST",
    path: "/v1/orgs/:org/limit-requests/:id/deny",
    operationId: "denyLimitRequest",
    summary: "Deny a limit request",
    tag: "limit requests",
    params: OrgRequest,
    body: s.NoteBody,
    bodyOptional: true,
    answers: { 200: json("denied", s.LimitRequest) },
    errors: { 400: ["invalid_body", "invalid_note"], 404: ["not_found"], 409: ["request_decided"] },
  },

  // ------------------------------------------------------------------------------------------ reconciliation
  {
    method: "GET",
    path: "/v1/orgs/:org/reconciliation",
    operationId: "getReconciliation",
    summary: "Raw usage vs rollup vs invoice of a month, late events, differences",
    tag: "billing",
    params: Org,
    query: z.object({ period: s.Period }),
    answers: { 200: json("the reconciliation", s.Reconciliation) },
    errors: { 400: ["invalid_period"] },
  },
];

/** `/v1/orgs/:org/spend` → `/v1/orgs/{org}/spend`. */
export function openApiPath(path: string): string {
  return path.replace(/:([A-Za-z_]+)/g, "{$1}");
}

/** The operation of a route, by method and Fastify path. */
export function operationOf(method: string, path: string): Operation | undefined {
  return OPERATIONS.find((o) => o.method === method && o.path === path);
}
