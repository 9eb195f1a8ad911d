import type { SpendControl } from "@usage/aggregator";
import { SpendState } from "@usage/aggregator";
import { type ClickHouse, migrate } from "@usage/clickhouse";
import type { Policy } from "@usage/policy";
import { createLogger } from "@usage/runtime";
import { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { testClickHouse } from "../../../test/harness/index.js";
import { type Api, buildApi, routesOf } from "./server.js";

const KEY = "operator-key-for-tests-0123";
let ch: ClickHouse;
let app: Api;
const state = new SpendState(() => Date.parse("2026-11-15T12:00:00Z"));

beforeAll(async () => {
  ch = await testClickHouse("api");
  await migrate(ch.client);
  // The aggregator's real in-memory state behind the SpendControl interface, without Kafka.
  const control: SpendControl = {
    caps: (org) => state.caps(org),
    allowance: (org, user) => state.allowance(org, user),
    policy: (org) => ({ policy: state.org(org).policy, version: state.org(org).policyVersion }),
    applyPolicy: async (org: string, policy: Policy, version: number) => {
      state.setPolicy(org, policy, version);
      state.evaluate(org);
      return [];
    },
    credits: () => undefined,
    applyCredits: async () => [],
    applyAutoReload: async () => [],
    isReady: () => true,
  };
  app = buildApi({
    control,
    clickhouse: ch.client,
    registry: new Registry(),
    logger: createLogger({ level: "silent" }),
    operatorKey: KEY,
    now: () => Date.parse("2026-11-15T12:00:00Z"),
  });
});
afterAll(async () => {
  await app.close();
  await ch.close();
});

const auth = { authorization: `Bearer ${KEY}` };

describe("HTTP API", () => {
  it("serves /healthz and /metrics without a key", async () => {
    expect((await app.inject({ url: "/healthz" })).statusCode).toBe(200);
    const metrics = await app.inject({ url: "/metrics" });
    expect(metrics.statusCode).toBe(200);
    expect(metrics.headers["content-type"]).toContain("text/plain");
  });

  it("refuses a missing or wrong key with a JSON error", async () => {
    for (const headers of [{}, { authorization: "Bearer nope" }, { authorization: "Basic x" }]) {
      const res = await app.inject({ url: "/v1/orgs/org_1/caps", headers });
      expect(res.statusCode).toBe(401);
      expect(res.json()).toMatchObject({ error: { code: "unauthorized", message: expect.any(String) } });
    }
  });

  it("validates and versions policies, and applies them at once", async () => {
    const bad = await app.inject({
      method: "PUT",
      url: "/v1/orgs/org_1/policy",
      headers: auth,
      payload: { org_limit: "-1" },
    });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error.code).toBe("invalid_policy");
    expect(bad.json().error.message).toContain("org_limit");
    const mismatch = await app.inject({
      method: "PUT",
      url: "/v1/orgs/org_1/policy",
      headers: auth,
      payload: { org_id: "org_2" },
    });
    expect(mismatch.statusCode).toBe(400);

    const put = await app.inject({
      method: "PUT",
      url: "/v1/orgs/org_1/policy",
      headers: auth,
      payload: { users: { u1: { limit: "5" } } },
    });
    expect(put.statusCode).toBe(200);
    expect(put.json()).toMatchObject({ org_id: "org_1", version: 1, users: { u1: { limit: "5" } } });
    const again = await app.inject({
      method: "PUT",
      url: "/v1/orgs/org_1/policy",
      headers: auth,
      payload: { users: { u1: { limit: "7.50" } } },
    });
    expect(again.json()).toMatchObject({ version: 2, users: { u1: { limit: "7.5" } } });
    expect((await app.inject({ url: "/v1/orgs/org_1/policy", headers: auth })).json()).toMatchObject({ version: 2 });

    state.addSpend("org_1", "u1", "2026-11", "7.5");
    const allowance = await app.inject({ url: "/v1/orgs/org_1/users/u1/allowance", headers: auth });
    expect(allowance.json()).toEqual({
      allowed: false,
      limit: "7.5",
      spend: "7.5",
      remaining: "0",
      blocked_by: "user",
    });
    const caps = await app.inject({ url: "/v1/orgs/org_1/caps", headers: auth });
    expect(caps.json().users.u1).toMatchObject({ status: "blocked", source: "individual" });
  });

  it("rejects bad spend parameters naming them", async () => {
    const cases: [string, string][] = [
      ["window=weekly", "invalid_window"],
      ["at=2026-02-30", "invalid_at"],
      ["group_by=region", "invalid_group_by"],
    ];
    for (const [query, code] of cases) {
      const res = await app.inject({ url: `/v1/orgs/org_1/spend?${query}`, headers: auth });
      expect(res.statusCode).toBe(400);
      expect(res.json().error.code).toBe(code);
    }
    const empty = await app.inject({ url: "/v1/orgs/org_1/spend?window=qtd&at=2026-11-15", headers: auth });
    expect(empty.json()).toEqual({
      org_id: "org_1",
      window: "qtd",
      from: "2026-10-01",
      to: "2026-11-15",
      total: "0",
      rows: [],
    });
  });

  it("isolates tenants: an org key reaches its own org on every /v1/orgs route and gets 403 on any other", async () => {
    const created = await app.inject({ method: "POST", url: "/v1/keys", headers: auth, payload: { org_id: "org_1" } });
    expect(created.statusCode).toBe(201);
    const { key } = created.json() as { key: string };
    expect(key).toMatch(/^uk_[0-9a-f]{16}_/);
    const orgKey = { authorization: `Bearer ${key}` };
    const orgRoutes = routesOf(app).filter((r) => r.url.startsWith("/v1/orgs/:org"));
    expect(orgRoutes.length).toBeGreaterThanOrEqual(5);
    for (const route of orgRoutes) {
      const url = (org: string) => route.url.replace(":org", org).replace(":user", "u1");
      const other = await app.inject({
        method: route.method as "GET",
        url: url("org_2"),
        headers: orgKey,
        payload: route.method === "PUT" ? {} : undefined,
      });
      expect(other.statusCode, `${route.method} ${route.url} on another org`).toBe(403);
      expect(other.json().error.code).toBe("forbidden");
      const own = await app.inject({
        method: route.method as "GET",
        url: url("org_1"),
        headers: orgKey,
        payload: route.method === "PUT" ? {} : undefined,
      });
      expect([401, 403], `${route.method} ${route.url} on its own org`).not.toContain(own.statusCode);
    }
    // Only the operator creates keys; a forged or revoked-looking key is unknown.
    expect(
      (await app.inject({ method: "POST", url: "/v1/keys", headers: orgKey, payload: { org_id: "org_2" } })).statusCode,
    ).toBe(403);
    const forged = `${key.slice(0, -4)}AAAA`;
    expect(
      (await app.inject({ url: "/v1/orgs/org_1/caps", headers: { authorization: `Bearer ${forged}` } })).statusCode,
    ).toBe(401);
  });

  it("answers unknown routes with a JSON 404", async () => {
    const res = await app.inject({ url: "/v1/nothing", headers: auth });
    expect(res.statusCode).toBe(404);
    expect(res.json().error.code).toBe("not_found");
  });
});
