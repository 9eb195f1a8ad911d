/**
 * The contract test of GET /openapi.json: every documented operation is called on a real API (startTestApi: the
 * control plane on the test broker, embedded ClickHouse with usage rows inserted directly) with valid and invalid
 * inputs, and every answer is checked against the operation's documented schema for its status and content type
 * (Ajv 2020 over the document, test/harness/openapi.ts). A 2xx answer also means the documented query and body
 * schemas accept what was sent. Fails listing every answer that did not conform, and every operation never answered
 * with a 2xx.
 */
import { type ClickHouse, insertSpendDaily, insertUsageEvents, migrate } from "@usage/clickhouse";
import { createControlRecorder } from "@usage/control";
import { createLogger } from "@usage/runtime";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestApi } from "../../../test/harness/api.js";
import { resetTopics, testClickHouse, testKafka } from "../../../test/harness/index.js";
import { conformance } from "../../../test/harness/openapi.js";
import { openApiDocument } from "./openapi/document.js";
import { OPERATIONS, operationOf } from "./openapi/routes.js";
import type { Api } from "./server.js";

const KEY = "openapi-operator-key-0123456789";
const NOW = Date.parse("2026-11-20T12:00:00Z");
const logger = createLogger({ level: "warn", name: "test" });
const kafka = testKafka("api-openapi");
let ch: ClickHouse;
let api: Api;
const stops: (() => Promise<void>)[] = [];

/** One priced event, as a usage_events row and its spend_daily row. */
function usage(n: number, org: string, user: string, product: string, model: string, at: string, cost: string) {
  const ch = at.replace("T", " ").replace("Z", "");
  return {
    event: {
      event_id: `00000000-0000-4000-8000-${String(n).padStart(12, "0")}`,
      org_id: org,
      user_id: user,
      user_email: `${user}@example.com`,
      account_uuid: `acct-${user}`,
      request_id: "",
      region: "us",
      seat_tier: "chat",
      product,
      model,
      model_base: model,
      occurred_at: ch,
      input_tokens: 1000,
      output_tokens: 200,
      cache_write_tokens: 10,
      cache_read_tokens: 5,
      prompt_tokens: 1015,
      long_context: false,
      rate_card_version: "test",
      input_cost: cost,
      output_cost: "0",
      cache_write_cost: "0",
      cache_read_cost: "0",
      gross_cost: cost,
      discount_pct: "0",
      net_cost: cost,
      priced_at: ch,
      batch_id: `b-${n}`,
      is_late: false,
    },
    rollup: {
      org_id: org,
      day: at.slice(0, 10),
      user_id: user,
      seat_tier: "chat",
      product,
      model,
      region: "us",
      long_context: false,
      batch_id: `b-${n}`,
      requests: 1,
      input_tokens: 1000,
      output_tokens: 200,
      cache_write_tokens: 10,
      cache_read_tokens: 5,
      gross_cost: cost,
      net_cost: cost,
    },
  };
}

beforeAll(async () => {
  ch = await testClickHouse("api-openapi");
  await migrate(ch.client);
  await resetTopics(kafka);
  const rows = [
    usage(1, "oa", "alice", "chat", "claude-sonnet-4-5", "2026-11-18T09:00:00Z", "1.25"),
    usage(2, "oa", "bob", "claude_code", "claude-opus-4-1", "2026-11-19T10:30:00Z", "3.5"),
    usage(3, "oa", "alice", "cowork", "claude-sonnet-4-5", "2026-11-20T08:00:00Z", "0.75"),
    usage(4, "oa", "carol", "chat", "claude-sonnet-4-5", "2026-10-12T08:00:00Z", "2"),
  ];
  await insertUsageEvents(
    ch.client,
    rows.map((r) => r.event),
  );
  await insertSpendDaily(
    ch.client,
    rows.map((r) => r.rollup),
  );
  const started = await startTestApi({
    kafka,
    clickhouse: ch.client,
    logger,
    operatorKey: KEY,
    now: () => NOW,
    name: "openapi",
  });
  api = started.app;
  stops.push(started.stop);
  // The control recorder writes the history the audit log reads.
  const recorder = createControlRecorder({
    kafka,
    clickhouse: ch.client,
    logger,
    groupId: `openapi-rec-${Date.now()}`,
  });
  await recorder.start();
  stops.push(() => recorder.stop());
});
afterAll(async () => {
  for (const stop of stops) await stop();
  await ch?.close();
});

type Query = Record<string, string | string[]>;
interface Call {
  key?: string;
  params?: Record<string, string>;
  query?: Query;
  body?: unknown;
  /** The body's content type, when not what inject picks (application/json for an object, text/plain for a string). */
  contentType?: string;
  /** The status this call is meant to get (a different one is a failure too). */
  expect: number;
}

const failures: string[] = [];
const succeeded = new Set<string>();
const statusesSeen = new Map<string, Set<number>>();

/** Calls `route` ("GET /v1/orgs/:org/spend"), checks the answer against the document, and returns its body. */
async function call(route: string, c: Call): Promise<{ status: number; body: Record<string, unknown> }> {
  const [method, path] = route.split(" ") as [string, string];
  const op = operationOf(method, path);
  let url = path.replace(/:(\w+)/g, (_m, p: string) => encodeURIComponent(c.params?.[p] ?? `missing-${p}`));
  if (c.query) {
    const qs = new URLSearchParams();
    for (const [k, v] of Object.entries(c.query)) for (const one of [v].flat()) qs.append(k, one);
    url += `?${qs}`;
  }
  const res = await api.inject({
    method: method as "GET",
    url,
    headers: {
      ...(c.key === "" ? {} : { authorization: `Bearer ${c.key ?? KEY}` }),
      ...(c.contentType ? { "content-type": c.contentType } : {}),
    },
    ...(c.body === undefined ? {} : { payload: c.body as object }),
  });
  const type = String(res.headers["content-type"] ?? "");
  const body = type.includes("json") ? res.json() : res.body;
  const name = `${route} → ${res.statusCode}`;
  if (!op) failures.push(`${route}: not in the registry`);
  if (res.statusCode !== c.expect)
    failures.push(`${name}: expected ${c.expect} (${JSON.stringify(body).slice(0, 300)})`);
  const problems = conformance(openApiDocument()).check(method, path, res.statusCode, type, body);
  if (problems.length > 0) failures.push(`${name} (${url}): ${problems.join("; ")}`);
  // A success: 2xx, or the documented redirect of GET /.
  if (res.statusCode >= 200 && res.statusCode < 400) {
    succeeded.add(route);
    if (op?.query && !op.query.safeParse(c.query ?? {}).success) {
      failures.push(`${name}: answered 2xx, but the documented query schema refuses ${JSON.stringify(c.query)}`);
    }
    if (op?.body && c.body !== undefined && !op.body.safeParse(c.body).success) {
      failures.push(`${name}: answered 2xx, but the documented body schema refuses ${JSON.stringify(c.body)}`);
    }
  }
  const seen = statusesSeen.get(route) ?? new Set();
  seen.add(res.statusCode);
  statusesSeen.set(route, seen);
  return { status: res.statusCode, body: body as Record<string, unknown> };
}

const oa = { org: "oa" };

describe("GET /openapi.json against the real API", () => {
  it("answers every documented operation as documented", async () => {
    // Service routes.
    await call("GET /healthz", { expect: 200, key: "" });
    await call("GET /metrics", { expect: 200, key: "" });
    await call("GET /dashboard", { expect: 200, key: "" });
    await call("GET /", { expect: 302, key: "" });
    await call("GET /openapi.json", { expect: 200, key: "" });

    // Keys.
    await call("POST /v1/keys", { body: { org_id: "ob" }, expect: 201 });
    await call("POST /v1/keys", { body: { org_id: "a b" }, expect: 400 });
    await call("GET /v1/orgs/:org/policy", { key: "", params: oa, expect: 401 });
    await call("GET /v1/orgs/:org/policy", { key: "nope", params: oa, expect: 401 });

    // Policy.
    const policy = { groups: { eng: { members: ["alice"], limit: "500" } }, users: { alice: { limit: "100" } } };
    await call("PUT /v1/orgs/:org/policy", { params: oa, body: policy, expect: 200 });
    await call("PUT /v1/orgs/:org/policy", { params: oa, body: { mode: "loose", extra: 1 }, expect: 400 });
    await call("PUT /v1/orgs/:org/policy", { params: { org: "a b" }, body: {}, expect: 400 });
    await call("GET /v1/orgs/:org/policy", { params: oa, expect: 200 });

    const owner = (await call("POST /v1/orgs/:org/keys", { params: oa, body: { role: "owner" }, expect: 201 })).body
      .key as string;
    const analyst = await call("POST /v1/orgs/:org/keys", { params: oa, body: { role: "analyst" }, expect: 201 });
    const member = (
      await call("POST /v1/orgs/:org/keys", { params: oa, body: { role: "member", user: "alice" }, expect: 201 })
    ).body.key as string;
    const groupOwner = (
      await call("POST /v1/orgs/:org/keys", { params: oa, body: { role: "group_owner", group: "eng" }, expect: 201 })
    ).body.key as string;
    await call("POST /v1/orgs/:org/keys", { params: oa, body: { role: "king" }, expect: 400 });
    await call("POST /v1/orgs/:org/keys", {
      params: oa,
      body: "{not json",
      contentType: "application/json",
      expect: 400,
    });
    await call("POST /v1/orgs/:org/keys", { params: oa, body: "role=owner", expect: 415 });
    await call("GET /v1/orgs/:org/keys", { params: oa, expect: 200 });
    await call("GET /v1/orgs/:org/keys", { key: owner, params: { org: "ob" }, expect: 403 });
    await call("GET /v1/orgs/:org/keys", { key: member, params: oa, expect: 403 });
    const analystId = (analyst.body as { key_id: string }).key_id;
    await call("POST /v1/orgs/:org/keys/:key_id/rotate", {
      params: { ...oa, key_id: analystId },
      body: { overlap_seconds: 60 },
      expect: 201,
    });
    await call("POST /v1/orgs/:org/keys/:key_id/rotate", {
      params: { ...oa, key_id: analystId },
      body: { overlap_seconds: -1 },
      expect: 400,
    });
    await call("POST /v1/orgs/:org/keys/:key_id/rotate", { params: { ...oa, key_id: "nope" }, expect: 404 });
    await call("DELETE /v1/orgs/:org/keys/:key_id", { params: { ...oa, key_id: analystId }, expect: 200 });
    await call("DELETE /v1/orgs/:org/keys/:key_id", { params: { ...oa, key_id: "nope" }, expect: 404 });
    await call("PUT /v1/orgs/:org/policy", { key: owner, params: oa, body: { discount_pct: "5" }, expect: 403 });

    // Caps and allowance.
    await call("GET /v1/orgs/:org/caps", { params: oa, expect: 200 });
    await call("GET /v1/orgs/:org/caps", { key: member, params: oa, expect: 200 });
    await call("GET /v1/orgs/:org/users/:user/allowance", {
      params: { ...oa, user: "alice" },
      query: { product: "chat" },
      expect: 200,
    });
    await call("GET /v1/orgs/:org/users/:user/allowance", {
      params: { ...oa, user: "alice" },
      query: { product: "fax" },
      expect: 400,
    });
    await call("GET /v1/orgs/:org/users/:user/allowance", { key: member, params: { ...oa, user: "bob" }, expect: 403 });

    // Analytics.
    await call("GET /v1/orgs/:org/spend", { params: oa, expect: 200 });
    await call("GET /v1/orgs/:org/spend", { params: oa, query: { group_by: "group", at: "2026-11-20" }, expect: 200 });
    await call("GET /v1/orgs/:org/spend", {
      params: oa,
      query: { group_by: "user", product: "chat", window: "ytd" },
      expect: 200,
    });
    await call("GET /v1/orgs/:org/spend", { key: groupOwner, params: oa, query: { group_by: "user" }, expect: 200 });
    await call("GET /v1/orgs/:org/spend", { key: member, params: oa, expect: 403 });
    await call("GET /v1/orgs/:org/spend", { params: oa, query: { window: "week" }, expect: 400 });
    await call("GET /v1/orgs/:org/spend", { params: oa, query: { product: "fax" }, expect: 400 });
    await call("GET /v1/orgs/:org/top-users", { params: oa, query: { by: "tokens", limit: "5" }, expect: 200 });
    await call("GET /v1/orgs/:org/top-users", { params: oa, query: { limit: "0" }, expect: 400 });
    await call("GET /v1/orgs/:org/trends", {
      params: oa,
      query: { from: "2026-11-01", to: "2026-11-20" },
      expect: 200,
    });
    await call("GET /v1/orgs/:org/trends", {
      params: oa,
      query: { group_by: "group", product: "chat", from: "2026-11-15" },
      expect: 200,
    });
    await call("GET /v1/orgs/:org/trends", { params: oa, query: { from: "2026-09-01" }, expect: 400 });
    await call("GET /v1/orgs/:org/trends", { params: oa, query: { group_by: "colour" }, expect: 400 });
    await call("GET /v1/orgs/:org/export.csv", { params: oa, expect: 200 });
    await call("GET /v1/orgs/:org/export.csv", { params: oa, query: { range: "last_year" }, expect: 400 });
    await call("GET /v1/orgs/:org/activity", { params: oa, query: { at: "2026-11-20" }, expect: 200 });
    await call("GET /v1/orgs/:org/activity", { params: oa, query: { at: "2026-02-30" }, expect: 400 });
    await call("GET /v1/orgs/:org/forecast", { params: oa, expect: 200 });
    const usageQuery = {
      starting_at: "2026-11-15T00:00:00Z",
      ending_at: "2026-11-21T00:00:00Z",
      "group_by[]": ["model", "product"],
      limit: "3",
    };
    const first = await call("GET /v1/orgs/:org/usage_report/messages", { params: oa, query: usageQuery, expect: 200 });
    await call("GET /v1/orgs/:org/usage_report/messages", {
      params: oa,
      query: { ...usageQuery, page: String(first.body.next_page) },
      expect: 200,
    });
    await call("GET /v1/orgs/:org/usage_report/messages", {
      params: oa,
      query: { starting_at: "2026-11-20T00:00:00Z", bucket_width: "1h" },
      expect: 200,
    });
    await call("GET /v1/orgs/:org/usage_report/messages", {
      params: oa,
      query: { starting_at: "yesterday" },
      expect: 400,
    });
    await call("GET /v1/orgs/:org/cost_report", {
      params: oa,
      query: { starting_at: "2026-11-15T00:00:00Z", "group_by[]": ["description", "user_id"] },
      expect: 200,
    });
    await call("GET /v1/orgs/:org/cost_report", {
      params: oa,
      query: { starting_at: "2026-11-15T00:00:00Z", bucket_width: "1h" },
      expect: 400,
    });

    // Webhook, alerts, audit.
    await call("PUT /v1/orgs/:org/webhook", {
      params: oa,
      body: { url: "https://hooks.example.com/usage", secret: "0123456789abcdef-secret" },
      expect: 200,
    });
    await call("PUT /v1/orgs/:org/webhook", {
      params: oa,
      body: { url: "https://hooks.example.com/usage", secret: "short" },
      expect: 400,
    });
    await call("GET /v1/orgs/:org/alerts", { params: oa, query: { period: "2026-11" }, expect: 200 });
    await call("GET /v1/orgs/:org/alerts", { params: oa, query: { period: "2026-13" }, expect: 400 });

    // Credits (org oc: no contract, so prepaid credits are open to it).
    const oc = { org: "oc" };
    await call("GET /v1/orgs/:org/credits", { params: oc, expect: 200 });
    await call("GET /v1/orgs/:org/credits/auto-reload", { params: oc, expect: 404 });
    await call("PUT /v1/orgs/:org/credits/auto-reload", {
      params: oc,
      body: { when_below: "10", amount: "50", monthly_max: "200" },
      expect: 200,
    });
    await call("PUT /v1/orgs/:org/credits/auto-reload", {
      params: oc,
      body: { when_below: "10", amount: "50", monthly_max: "20" },
      expect: 400,
    });
    await call("GET /v1/orgs/:org/credits/auto-reload", { params: oc, expect: 200 });
    await call("POST /v1/orgs/:org/credits/purchases", {
      params: oc,
      body: { amount: "100.00", reference: "PO-1" },
      expect: 201,
    });
    await call("POST /v1/orgs/:org/credits/purchases", {
      params: oc,
      body: { amount: "100", reference: "PO-1" },
      expect: 200,
    });
    await call("POST /v1/orgs/:org/credits/purchases", {
      params: oc,
      body: { amount: "90", reference: "PO-1" },
      expect: 409,
    });
    await call("POST /v1/orgs/:org/credits/purchases", { params: oc, body: { amount: "-1" }, expect: 400 });
    await call("POST /v1/orgs/:org/credits/purchases", { key: owner, params: oa, body: { amount: "1" }, expect: 403 });
    await call("GET /v1/orgs/:org/credits/ledger", { params: oc, expect: 200 });

    // Contract, seats, invoices.
    await call("GET /v1/orgs/:org/contract", { params: oa, expect: 404 });
    const contract = {
      plan: "sales_assisted",
      term_start: "2026-01-01",
      seat_prices: { chat: "20", premium: "60.5" },
      discount_pct: "10",
    };
    await call("PUT /v1/orgs/:org/contract", { params: oa, body: contract, expect: 200 });
    await call("PUT /v1/orgs/:org/contract", { params: oa, body: { ...contract, plan: "free" }, expect: 400 });
    await call("PUT /v1/orgs/:org/contract", { key: owner, params: oa, body: contract, expect: 403 });
    await call("GET /v1/orgs/:org/contract", { params: oa, expect: 200 });
    await call("GET /v1/orgs/:org/policy", { params: oa, expect: 200 });
    await call("POST /v1/orgs/:org/credits/purchases", { params: oa, body: { amount: "5" }, expect: 409 });
    await call("PUT /v1/orgs/:org/seats/:user", {
      params: { ...oa, user: "alice" },
      body: { tier: "chat", effective_at: "2026-01-01T00:00:00Z" },
      expect: 200,
    });
    await call("PUT /v1/orgs/:org/seats/:user", {
      key: owner,
      params: { ...oa, user: "bob" },
      body: { tier: "premium" },
      expect: 200,
    });
    await call("PUT /v1/orgs/:org/seats/:user", {
      params: { ...oa, user: "bob" },
      body: { tier: "gold" },
      expect: 400,
    });
    await call("GET /v1/orgs/:org/seats", { params: oa, expect: 200 });
    await call("GET /v1/orgs/:org/activity", { params: oa, expect: 200 });
    await call("GET /v1/orgs/:org/invoices", { params: oa, query: { period: "2026-10" }, expect: 200 });
    await call("GET /v1/orgs/:org/invoices", { params: oa, query: { period: "Oct" }, expect: 400 });
    await call("GET /v1/orgs/:org/invoices/:period/lines.csv", { params: { ...oa, period: "2026-10" }, expect: 200 });
    await call("POST /v1/orgs/:org/invoices/:period/finalize", { params: { ...oa, period: "2026-10" }, expect: 201 });
    await call("POST /v1/orgs/:org/invoices/:period/finalize", { params: { ...oa, period: "2026-10" }, expect: 200 });
    await call("POST /v1/orgs/:org/invoices/:period/finalize", { params: { ...oa, period: "2026-11" }, expect: 409 });
    await call("POST /v1/orgs/:org/invoices/:period/finalize", { params: { ...oa, period: "2026-1" }, expect: 400 });
    await call("GET /v1/orgs/:org/invoices", { params: oa, query: { period: "2026-10" }, expect: 200 });
    await call("GET /v1/orgs/:org/reconciliation", { params: oa, query: { period: "2026-10" }, expect: 200 });
    await call("GET /v1/orgs/:org/reconciliation", { params: oa, expect: 400 });

    // Limit requests.
    const filed = await call("POST /v1/orgs/:org/users/:user/limit-requests", {
      key: member,
      params: { ...oa, user: "alice" },
      body: { note: "a big refactor this week" },
      expect: 201,
    });
    await call("POST /v1/orgs/:org/users/:user/limit-requests", {
      key: member,
      params: { ...oa, user: "alice" },
      expect: 200,
    });
    await call("POST /v1/orgs/:org/users/:user/limit-requests", {
      params: { ...oa, user: "bob" },
      body: { note: 42 },
      expect: 400,
    });
    await call("GET /v1/orgs/:org/limit-requests", { params: oa, query: { status: "pending" }, expect: 200 });
    await call("GET /v1/orgs/:org/limit-requests", { params: oa, query: { status: "maybe" }, expect: 400 });
    const id = String(filed.body.request_id);
    await call("POST /v1/orgs/:org/limit-requests/:id/approve", {
      key: groupOwner,
      params: { ...oa, id },
      body: { limit: "900" },
      expect: 403,
    });
    await call("POST /v1/orgs/:org/limit-requests/:id/approve", {
      params: { ...oa, id },
      body: { limit: "lots" },
      expect: 400,
    });
    await call("POST /v1/orgs/:org/limit-requests/:id/approve", {
      params: { ...oa, id },
      body: { limit: "250" },
      expect: 200,
    });
    await call("POST /v1/orgs/:org/limit-requests/:id/approve", {
      params: { ...oa, id },
      body: { limit: "250" },
      expect: 409,
    });
    const bob = await call("POST /v1/orgs/:org/users/:user/limit-requests", {
      params: { ...oa, user: "bob" },
      expect: 201,
    });
    await call("POST /v1/orgs/:org/limit-requests/:id/deny", {
      params: { ...oa, id: String(bob.body.request_id) },
      body: { note: "not this month" },
      expect: 200,
    });
    await call("POST /v1/orgs/:org/limit-requests/:id/deny", { params: { ...oa, id: "lr_nope" }, expect: 404 });
    await call("PUT /v1/orgs/:org/policy", {
      params: { org: "od" },
      body: { limit_requests: "disabled" },
      expect: 200,
    });
    await call("POST /v1/orgs/:org/users/:user/limit-requests", { params: { org: "od", user: "dan" }, expect: 409 });

    // The audit log, last: every change above is in it (once the recorder has written it).
    await call("GET /v1/orgs/:org/audit", { params: oa, query: { from: "2026-11-01" }, expect: 200 });
    await call("GET /v1/orgs/:org/audit", { params: oa, query: { from: "last week" }, expect: 400 });

    const never = OPERATIONS.map((o) => `${o.method} ${o.path}`).filter((r) => !succeeded.has(r));
    if (process.env.OPENAPI_STATUSES) {
      for (const [route, seen] of statusesSeen) console.log(route, [...seen].sort().join(" "));
    }
    expect({ failures, neverAnswered2xx: never }).toEqual({ failures: [], neverAnswered2xx: [] });
  });
});
