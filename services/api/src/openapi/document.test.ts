/**
 * GET /openapi.json without Kafka or ClickHouse: buildApi over stub dependencies (nothing is read until a route that
 * needs storage runs). The document is valid OpenAPI 3.1 (@seriousme/openapi-schema-validator), documents exactly
 * the routes buildApi registers, puts bearer security and the roles of access.ts on every /v1 operation, and every
 * schema in it compiles as JSON Schema 2020-12 (what the contract test checks answers with).
 */
import { readFileSync } from "node:fs";
import { Validator } from "@seriousme/openapi-schema-validator";
import { createLogger } from "@usage/runtime";
import { createSecretBox } from "@usage/webhooks";
import { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { conformance } from "../../../../test/harness/openapi.js";
import { ROUTE_ACCESS } from "../access.js";
import type { SpendReader } from "../read-model.js";
import { type Api, type ApiDeps, buildApi, routesOf } from "../server.js";
import { buildOpenApiDocument, errorCodesOf, openApiDocument, ROLES_OF } from "./document.js";
import { OPERATIONS, openApiPath } from "./routes.js";
import { PolicyBody } from "./schemas.js";

const KEY = "openapi-unit-operator-key-0123";
const VERSION = (
  JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string }
).version;
const METHODS = ["get", "post", "put", "delete", "patch"] as const;

/** An API whose dependencies answer nothing: enough to build it, list its routes and serve /openapi.json. */
export function stubApi(): Api {
  const none = () => undefined;
  const reader = {
    isReady: () => true,
    policy: (orgId: string) => ({ policy: { org_id: orgId, groups: {}, users: {} }, version: 0 }),
    caps: () => ({ org: { limit: null, spend: "0", status: "ok" }, users: {} }),
    allowance: none,
    credits: none,
    autoReload: none,
    waitUntil: async () => true,
  } as unknown as SpendReader;
  const deps: ApiDeps = {
    reader,
    control: { publish: async () => 1, waitFor: async () => {} },
    keys: { apiKey: none, apiKeys: () => [] } as unknown as ApiDeps["keys"],
    billing: {
      contract: none,
      seats: () => [],
      invoiceFinal: none,
      invoiceFinals: () => [],
      orgIds: () => [],
      limitRequests: () => [],
      limitRequest: none,
    },
    clickhouse: {} as ApiDeps["clickhouse"],
    registry: new Registry(),
    logger: createLogger({ level: "error", name: "test" }),
    operatorKey: KEY,
    secrets: createSecretBox(Buffer.alloc(32, 7)),
  };
  return buildApi(deps);
}

let app: Api;
beforeAll(async () => {
  app = stubApi();
  await app.ready();
});
afterAll(async () => {
  await app.close();
});

/** Every operation of the document as "METHOD /fastify/:path". */
function documented(doc: ReturnType<typeof openApiDocument>): string[] {
  const out: string[] = [];
  for (const [path, item] of Object.entries(doc.paths ?? {})) {
    for (const m of METHODS) {
      if ((item as Record<string, unknown>)[m]) out.push(`${m.toUpperCase()} ${path.replace(/\{(\w+)\}/g, ":$1")}`);
    }
  }
  return out.sort();
}

describe("GET /openapi.json", () => {
  it("serves the document without a key, built once per process", async () => {
    const res = await app.inject({ method: "GET", url: "/openapi.json" });
    expect(res.statusCode).toBe(200);
    expect(res.headers["content-type"]).toMatch(/^application\/json/);
    const doc = res.json();
    expect(doc.openapi).toBe("3.1.0");
    expect(doc.info.version).toBe(VERSION);
    expect(doc.servers).toEqual([{ url: "/" }]);
    expect(doc).toEqual(JSON.parse(JSON.stringify(openApiDocument())));
    expect(openApiDocument()).toBe(openApiDocument());
  });

  it("is a valid OpenAPI 3.1 document (@seriousme/openapi-schema-validator)", async () => {
    const validator = new Validator();
    const result = await validator.validate(buildOpenApiDocument() as unknown as Record<string, unknown>);
    expect(result.errors ?? [], JSON.stringify(result.errors, null, 2)).toEqual([]);
    expect(result.valid).toBe(true);
    expect(validator.version).toBe("3.1");
  });

  it("documents every route buildApi registers, and only those", () => {
    const registered = routesOf(app).map((r) => `${r.method} ${r.url}`);
    // /healthz and /metrics are registered before buildApi starts listing routes: asked for by name.
    for (const url of ["/healthz", "/metrics"]) {
      expect(app.hasRoute({ method: "GET", url }), url).toBe(true);
      registered.push(`GET ${url}`);
    }
    const inDoc = documented(openApiDocument());
    expect([...new Set(registered)].sort()).toEqual(inDoc);
    // Each registry entry is one route, once.
    expect(new Set(OPERATIONS.map((o) => `${o.method} ${o.path}`)).size).toBe(OPERATIONS.length);
    for (const o of OPERATIONS) expect(app.hasRoute({ method: o.method, url: o.path }), o.path).toBe(true);
  });

  it("puts bearer security and the roles of access.ts on every /v1 operation, none elsewhere", () => {
    const doc = openApiDocument();
    expect(doc.components?.securitySchemes?.bearer).toMatchObject({ type: "http", scheme: "bearer" });
    for (const o of OPERATIONS) {
      const item = doc.paths?.[openApiPath(o.path)] as Record<string, Record<string, unknown>> | undefined;
      const op = item?.[o.method.toLowerCase()] ?? {};
      const need = ROUTE_ACCESS[`${o.method} ${o.path}`];
      if (o.path.startsWith("/v1/")) {
        expect(need, o.path).toBeDefined();
        expect(op.security).toEqual([{ bearer: [] }]);
        expect(op["x-roles"]).toEqual(ROLES_OF[need!].roles);
        expect(op.description).toContain(ROLES_OF[need!].text);
        const responses = op.responses as Record<string, unknown>;
        for (const status of ["401", "403", "429", "500"])
          expect(responses[status], `${o.path} ${status}`).toBeDefined();
      } else {
        expect(op.security).toEqual([]);
      }
    }
  });

  it("documents each error status with its codes in the API's error shape", () => {
    const check = conformance(openApiDocument());
    for (const o of OPERATIONS) {
      for (const [status, codes] of Object.entries(errorCodesOf(o))) {
        for (const code of codes) {
          const body = { error: { code, message: "m" } };
          expect(check.check(o.method, o.path, Number(status), "application/json", body), `${o.path} ${code}`).toEqual(
            [],
          );
        }
        const wrong = { error: { code: "no_such_code", message: "m" } };
        expect(check.check(o.method, o.path, Number(status), "application/json", wrong).length).toBeGreaterThan(0);
      }
    }
  });

  it("compiles every schema of the document as JSON Schema 2020-12", () => {
    const check = conformance(openApiDocument());
    for (const o of OPERATIONS) {
      for (const status of Object.keys(o.answers)) {
        // Compiling is the point; a null body conforms to no documented answer.
        expect(() =>
          check.check(
            o.method,
            o.path,
            Number(status),
            o.answers[Number(status)]!.contentType ?? "application/json",
            null,
          ),
        ).not.toThrow();
      }
    }
  });

  it("answers 401 for a /v1 route without a key, in a documented shape", async () => {
    const res = await app.inject({ method: "GET", url: "/v1/orgs/o1/policy" });
    expect(res.statusCode).toBe(401);
    const problems = conformance(openApiDocument()).check(
      "GET",
      "/v1/orgs/:org/policy",
      401,
      res.headers["content-type"] as string,
      res.json(),
    );
    expect(problems).toEqual([]);
  });

  it("shows the policy body the route validates with (policySchema), defaults and all", () => {
    const doc = openApiDocument();
    const input = doc.components?.schemas?.PolicyInput as Record<string, unknown>;
    expect(input).toMatchObject({ type: "object", additionalProperties: false });
    expect(Object.keys(input.properties as object).sort()).toEqual(Object.keys(PolicyBody.shape).sort());
  });
});
