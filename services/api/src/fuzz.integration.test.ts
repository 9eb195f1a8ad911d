/**
 * Bad input everywhere (issue "roles and trust boundaries" 7): a seeded, bounded property-based fuzz of every route the
 * API registers — paths with odd segments, query strings, bodies of any JSON (and some that are not JSON), headers,
 * methods, sizes — against a real control plane and ClickHouse. Never a 500, never a crash, and every error is the
 * API's JSON error with a specific code. USAGE_FUZZ_RUNS sets the number of requests (CI runs more).
 */
import { type ClickHouse, migrate } from "@usage/clickhouse";
import { createLogger } from "@usage/runtime";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestApi } from "../../../test/harness/api.js";
import { resetTopics, testClickHouse, testKafka } from "../../../test/harness/index.js";
import { type Api, routesOf } from "./server.js";

const KEY = "fuzz-operator-key-0123456789";
const RUNS = Number(process.env.USAGE_FUZZ_RUNS ?? 400);
const logger = createLogger({ level: "silent", name: "test" });
const kafka = testKafka("api-fuzz");
let ch: ClickHouse;
let app: Api;
let stop: () => Promise<void>;

beforeAll(async () => {
  ch = await testClickHouse("api-fuzz");
  await migrate(ch.client);
  await resetTopics(kafka);
  ({ app, stop } = await startTestApi({
    kafka,
    clickhouse: ch.client,
    logger,
    operatorKey: KEY,
    extra: { rateLimits: { perMinute: 1_000_000, allowancePerMinute: 1_000_000 } },
  }));
});
afterAll(async () => {
  await stop?.();
  await ch?.close();
});

const segment = fc.oneof(
  fc.constantFrom("org_1", "u1", "k1", "2026-11", "..", "%2F", "%00", "a b", "ø", "' OR 1=1 --", "{x}", "🙂"),
  fc.string({ maxLength: 20 }).map((s) => encodeURIComponent(s)),
  fc.string({ minLength: 120, maxLength: 300 }).map((s) => encodeURIComponent(s)),
);
const queryValue = fc.oneof(
  fc.constantFrom("mtd", "qtd", "ytd", "user", "model", "2026-02-30", "-1", "1e309", "NaN", "", "[]", "null"),
  fc.string({ maxLength: 40 }),
);
const queryString = fc
  .array(
    fc.tuple(
      fc.constantFrom("window", "at", "group_by", "by", "limit", "from", "to", "range", "period", "product", "x"),
      queryValue,
    ),
    { maxLength: 5 },
  )
  .map((pairs) => (pairs.length ? `?${new URLSearchParams(pairs).toString()}` : ""));
const body = fc.oneof(
  fc.jsonValue({ maxDepth: 3 }),
  fc.record(
    {
      org_limit: queryValue,
      users: fc.dictionary(fc.string({ maxLength: 8 }), fc.record({ limit: queryValue })),
      groups: fc.jsonValue({ maxDepth: 2 }),
      url: fc.constantFrom("https://hooks.example.com/x", "http://127.0.0.1/x", "ftp://x", "", "https://[::1]/"),
      secret: fc.string({ maxLength: 40 }),
      role: fc.constantFrom("owner", "analyst", "member", "group_owner", "surface", "root"),
      amount: queryValue,
      reference: fc.string({ maxLength: 10 }),
      expires_at: fc.constantFrom("2030-01-01T00:00:00Z", "yesterday", 5),
      discount_pct: queryValue,
    },
    { requiredKeys: [] },
  ),
);

describe("fuzzing every route", () => {
  it(`answers ${RUNS} random requests without a 500, each error the API's JSON error with a specific code`, async () => {
    const routes = routesOf(app);
    expect(routes.length).toBeGreaterThan(20);
    let requests = 0;
    const statuses = new Map<number, number>();
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...routes),
        fc.array(segment, { minLength: 3, maxLength: 3 }),
        queryString,
        fc.option(body, { nil: undefined }),
        fc.constantFrom("operator", "operator", "operator", "none", "garbage", "forged"),
        fc.constantFrom("GET", "PUT", "POST", "DELETE", "route"),
        fc.boolean(),
        async (route, segs, query, payload, auth, methodChoice, rawText) => {
          let i = 0;
          const url = route.url.replace(/:[a-z_]+/g, () => segs[i++] ?? "x") + query;
          const method = (methodChoice === "route" ? route.method : methodChoice) as "GET";
          const headers: Record<string, string> = {
            operator: { authorization: `Bearer ${KEY}` },
            none: {},
            garbage: { authorization: "Bearer \u0000\u0001" },
            forged: { authorization: `Bearer uk_0123456789abcdef_${"A".repeat(43)}` },
          }[auth] as Record<string, string>;
          const send =
            method === "GET" || payload === undefined
              ? {}
              : rawText
                ? {
                    payload: `${JSON.stringify(payload)}}{`,
                    headers: { ...headers, "content-type": "application/json" },
                  }
                : { payload: payload as object };
          const res = await app.inject({ method, url, headers, ...send });
          requests++;
          statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1);
          expect(res.statusCode, `${method} ${url} → ${res.body.slice(0, 300)}`).toBeLessThan(500);
          if (res.statusCode >= 400) {
            const err = res.json() as { error?: { code?: unknown; message?: unknown } };
            expect(typeof err.error?.code, `${method} ${url}`).toBe("string");
            expect(err.error?.code, `${method} ${url}`).not.toBe("internal");
            expect(typeof err.error?.message).toBe("string");
          }
        },
      ),
      { numRuns: RUNS, seed: 20261130, endOnFailure: true },
    );
    console.log(`[fuzz] ${requests} requests, statuses ${JSON.stringify(Object.fromEntries(statuses))}`);
    expect(requests).toBe(RUNS);
  });
});
