/**
 * Control changes on Kafka (SPEC §12): 50 concurrent policy PUTs for one org, spread over two API instances (each
 * with its own follower of usage.control.v1), get 50 distinct versions; the history in ClickHouse holds all 50; and
 * every instance — both APIs and the aggregator member owning the org — is in force on the last one. How long the
 * last instance took is printed (the 1 s target is a figure, not an assertion).
 */
import { type AggregatorService, startAggregatorService } from "@usage/aggregator";
import { type ApiService, startApiService } from "@usage/api";
import { type ClickHouse, migrate } from "@usage/clickhouse";
import { Registry } from "prom-client";
import { afterAll, describe, expect, it } from "vitest";
import {
  freePort,
  quietLogger,
  resetTopics,
  testClickHouse,
  testKafka,
  testSecrets,
  waitFor,
} from "./harness/index.js";

const KEY = "control-plane-operator-key-0123456789";

describe("control plane", () => {
  const kafka = testKafka("control-plane-test");
  const stops: (() => Promise<void>)[] = [];
  afterAll(async () => {
    for (const stop of stops.reverse()) await stop().catch(() => undefined);
  });

  it("versions 50 concurrent policy PUTs distinctly and puts the last in force everywhere", async () => {
    await resetTopics(kafka);
    const ch: ClickHouse = await testClickHouse("control-plane");
    stops.push(() => ch.close());
    await migrate(ch.client);
    const aggregator: AggregatorService = await startAggregatorService({
      env: {
        USAGE_AGGREGATOR_GROUP: `cp-aggregator-${Date.now()}`,
        USAGE_BACKFILL_DAYS: 35,
        USAGE_FORECAST_INTERVAL_MS: 0,
        USAGE_MEMBERS: 1,
      },
      kafka,
      clickhouse: ch.client,
      logger: quietLogger,
      registry: new Registry(),
    });
    stops.push(() => aggregator.stop());
    const apis: ApiService[] = [];
    for (let i = 0; i < 2; i++) {
      const api = await startApiService({
        secrets: testSecrets,
        kafka,
        clickhouse: ch.client,
        logger: quietLogger,
        registry: new Registry(),
        operatorKey: KEY,
        host: "127.0.0.1",
        port: await freePort(),
        name: `cp-api-${i}`,
      });
      apis.push(api);
      stops.push(() => api.stop());
    }
    const headers = { authorization: `Bearer ${KEY}`, "content-type": "application/json" };

    const puts = await Promise.all(
      Array.from({ length: 50 }, async (_, i) => {
        const res = await fetch(`${apis[i % 2]!.url}/v1/orgs/org_cp/policy`, {
          method: "PUT",
          headers,
          body: JSON.stringify({ org_limit: String(1000 + i), users: { u1: { limit: String(i + 1) } } }),
        });
        expect(res.status).toBe(200);
        const body = (await res.json()) as { version: number; org_limit: string };
        return { version: body.version, limit: body.org_limit };
      }),
    );
    const versions = puts.map((p) => p.version).sort((a, b) => a - b);
    expect(new Set(versions).size, "distinct versions").toBe(50);
    const last = puts.find((p) => p.version === versions[49])!;
    const settledAt = Date.now();

    // Every API instance answers the last version's policy; the aggregator member owning the org holds it too.
    for (const api of apis) {
      await waitFor(
        `${api.url} in force on version ${last.version}`,
        async () => {
          const got = (await (await fetch(`${api.url}/v1/orgs/org_cp/policy`, { headers })).json()) as {
            version: number;
            org_limit: string;
          };
          return got.version === last.version && got.org_limit === last.limit;
        },
        10_000,
      );
    }
    await waitFor(
      "the aggregator's follower on the last version",
      () => aggregator.follower.position() >= last.version,
      10_000,
    );
    const lagMs = Date.now() - settledAt;
    process.stderr.write(
      `control plane: 50 concurrent PUTs, every instance on version ${last.version} ${lagMs} ms after the last answer\n`,
    );

    // The history: all 50 versions in policy_versions (written by the recorder), each with what its PUT sent.
    await waitFor(
      "50 policy versions in ClickHouse",
      async () => {
        const rs = await ch.client.query({
          query: "SELECT count() AS n FROM policy_versions FINAL WHERE org_id = {org:String}",
          query_params: { org: "org_cp" },
          format: "JSONEachRow",
        });
        return Number((await rs.json<{ n: string }>())[0]?.n) === 50;
      },
      20_000,
    );
    const rs = await ch.client.query({
      query: "SELECT version, policy FROM policy_versions FINAL WHERE org_id = {org:String} ORDER BY version",
      query_params: { org: "org_cp" },
      format: "JSONEachRow",
    });
    const history = (await rs.json<{ version: string; policy: string }>()).map((r) => ({
      version: Number(r.version),
      limit: (JSON.parse(r.policy) as { org_limit: string }).org_limit,
    }));
    expect(history.map((h) => h.version)).toEqual(versions);
    const byVersion = new Map(puts.map((p) => [p.version, p.limit]));
    for (const h of history) expect(h.limit, `version ${h.version}`).toBe(byVersion.get(h.version));
  });
});
