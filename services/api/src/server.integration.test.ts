import { type ClickHouse, migrate } from "@usage/clickhouse";
import { ControlLagging } from "@usage/control";
import { createProducer, partitionOf, TOPICS } from "@usage/kafka";
import { createLogger } from "@usage/runtime";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestApi } from "../../../test/harness/api.js";
import { readTopic, resetTopics, testClickHouse, testKafka, waitFor } from "../../../test/harness/index.js";
import { ROUTE_ACCESS } from "./access.js";
import { type Api, routesOf } from "./server.js";

const KEY = "operator-key-for-tests-0123";
const NOW = Date.parse("2026-11-15T12:00:00Z");
const logger = createLogger({ level: "silent" });
const kafka = testKafka("api-test");
let ch: ClickHouse;
let app: Api;
let stop: () => Promise<void>;

beforeAll(async () => {
  ch = await testClickHouse("api");
  await migrate(ch.client);
  await resetTopics(kafka);
  // The real read side of an API instance: the control plane's follower and the totals topic, over the test broker.
  ({ app, stop } = await startTestApi({ kafka, clickhouse: ch.client, logger, operatorKey: KEY, now: () => NOW }));
});
afterAll(async () => {
  await stop();
  await ch.close();
});

/** Publishes running totals as an aggregator member does after a batch (spend.totals.v1). */
async function publishTotals(orgId: string, users: Record<string, string>, orgTotal: string) {
  const producer = createProducer(kafka);
  await producer.connect();
  const partition = partitionOf(orgId, 4);
  const common = { period: "2026-11", source: { partition, offset: "1" }, at: new Date(NOW).toISOString() };
  await producer.send({
    topic: TOPICS.totals,
    messages: [
      {
        key: orgId,
        partition,
        value: JSON.stringify({ type: "org", org_id: orgId, spend: orgTotal, credits: null, ...common }),
      },
      ...Object.entries(users).map(([userId, spend]) => ({
        key: `${orgId}\u0000${userId}`,
        partition,
        value: JSON.stringify({ type: "user", org_id: orgId, user_id: userId, spend, seat_tier: null, ...common }),
      })),
    ],
  });
  await producer.disconnect();
}

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

    await publishTotals("org_1", { u1: "7.5" }, "7.5");
    await waitFor(
      "the totals in the read model",
      async () =>
        (await app.inject({ url: "/v1/orgs/org_1/users/u1/allowance", headers: auth })).json().spend === "7.5",
      30_000,
    );
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
      const url = (org: string) => route.url.replace(":org", org).replace(":user", "u1").replace(":key_id", "0");
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
      // An owner key reaches everything of its org but the operator's commercial terms (SPEC §11).
      if (ROUTE_ACCESS[`${route.method} ${route.url}`] === "operator") {
        expect(own.statusCode, `${route.method} ${route.url} is the operator's`).toBe(403);
        expect(own.json().error.code).toBe("forbidden_role");
      } else {
        expect([401, 403], `${route.method} ${route.url} on its own org`).not.toContain(own.statusCode);
      }
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

  it("announces webhook and key changes on the control plane with a version, never their secrets", async () => {
    const secret = "a-webhook-secret-that-must-stay-put";
    const hook = await app.inject({
      method: "PUT",
      url: "/v1/orgs/org_3/webhook",
      headers: auth,
      payload: { url: "https://hooks.example/usage", secret },
    });
    expect(hook.statusCode).toBe(200);
    const key = await app.inject({ method: "POST", url: "/v1/keys", headers: auth, payload: { org_id: "org_3" } });
    expect(key.statusCode).toBe(201);
    const versions = [hook.json().version, key.json().version] as number[];
    expect(versions[1]! > versions[0]!).toBe(true);
    const records = await readTopic(kafka, TOPICS.control, {
      until: (m) => m.some((r) => r.key?.toString() === `org_3/api_key/${key.json().key_id}`),
      timeoutMs: 20_000,
    });
    const mine = records.filter((r) => r.key?.toString().startsWith("org_3/"));
    expect(mine.map((r) => [r.key?.toString(), Number(r.offset) + 1])).toEqual([
      ["org_3/webhook", versions[0]],
      [`org_3/api_key/${key.json().key_id}`, versions[1]],
    ]);
    const text = mine.map((r) => r.value?.toString() ?? "").join("\n");
    expect(text).not.toContain(secret);
    expect(text).not.toContain(key.json().key as string);
  });

  it("answers a change this instance has not applied within the wait with 503 control_lagging, not a 500", async () => {
    // An instance whose follower lags: the change is published, and never applied within the wait.
    const lagging = await startTestApi({
      kafka,
      clickhouse: ch.client,
      logger,
      operatorKey: KEY,
      now: () => NOW,
      name: "lagging",
      extra: {
        control: {
          publish: async () => 7,
          waitFor: (version, ms) => Promise.reject(new ControlLagging(version, version - 1, ms)),
        },
      },
    });
    try {
      const res = await lagging.app.inject({
        method: "PUT",
        url: "/v1/orgs/org_4/policy",
        headers: auth,
        payload: { org_limit: "10" },
      });
      expect(res.statusCode).toBe(503);
      expect(res.headers["retry-after"]).toBe("1");
      expect(res.json().error.code).toBe("control_lagging");
      expect(res.json().error.message).toMatch(/recorded \(control version 7\).*within 5000 ms/);
    } finally {
      await lagging.stop();
    }
  });

  it("answers unknown routes with a JSON 404", async () => {
    const res = await app.inject({ url: "/v1/nothing", headers: auth });
    expect(res.statusCode).toBe(404);
    expect(res.json().error.code).toBe("not_found");
  });
});
