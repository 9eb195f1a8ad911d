/**
 * `GET /openapi.json` (SPEC §8): the OpenAPI 3.1 document of every route, request and answer, generated from the zod
 * schemas of the registry (routes.ts, schemas.ts) with @asteasolutions/zod-to-openapi's 3.1 generator.
 *
 * Design:
 *   - One source of truth: the bodies the routes validate with zod (the policy, the contract) are those very schemas;
 *     the rest mirror the routes' hand-written checks, built from the same constants (schemas.ts says which).
 *   - Roles: each /v1 operation's description names who may call it (ROUTE_ACCESS in access.ts, the table the
 *     server checks before each route), also as `x-roles` and `x-access` (the access class).
 *   - Errors: every answer is documented, errors included: `{ error: { code, message } }` with `code` an enum of the
 *     codes the operation answers with at that status (the shared ones are added here; routes.ts lists them).
 *   - `security`: bearer on every /v1 operation; none elsewhere (/healthz, /metrics, /dashboard, /, this document).
 *   - `servers: [{ url: "/" }]`: relative, so the document is right whatever host and port serve it.
 *   - `info.version` is services/api/package.json's version; the document is built once per process, on first use.
 * Checked by openapi/document.test.ts (valid OpenAPI 3.1 with @seriousme/openapi-schema-validator; the document's
 * operations = the routes buildApi registers) and openapi.integration.test.ts (real answers match their schemas).
 */
import { readFileSync } from "node:fs";
import {
  OpenAPIRegistry,
  OpenApiGeneratorV31,
  type ResponseConfig,
  type RouteConfig,
} from "@asteasolutions/zod-to-openapi";
import type {
  FastifyBaseLogger,
  FastifyInstance,
  RawReplyDefaultExpression,
  RawRequestDefaultExpression,
  RawServerDefault,
} from "fastify";
import { type Need, ROUTE_ACCESS } from "../access.js";
import { OPERATIONS, type Operation, openApiPath } from "./routes.js";
import { errorBody } from "./schemas.js";

/** Who may call a route of each access class (SPEC §11; access.ts `decide`). */
export const ROLES_OF: Record<Need, { roles: string[]; text: string }> = {
  operator: { roles: ["operator"], text: "the operator only (a commercial term)" },
  manage: { roles: ["operator", "owner"], text: "an owner of the org, or the operator" },
  read: { roles: ["operator", "owner", "analyst"], text: "an owner or analyst of the org, or the operator" },
  user: {
    roles: ["operator", "owner", "analyst", "group_owner", "member"],
    text: "an owner or analyst (any user), a group owner (its group's members), a member (its own user), the operator",
  },
  allowance: {
    roles: ["operator", "owner", "analyst", "surface", "group_owner", "member"],
    text:
      "an owner, analyst or surface key (any user of the org), a group owner (its group's members), a member (its " +
      "own user), the operator",
  },
  scoped: {
    roles: ["operator", "owner", "analyst", "group_owner", "member"],
    text:
      "an owner or analyst (every user), a group owner (its group's members' rows only), a member (its own rows " +
      "only), the operator",
  },
  file: {
    roles: ["operator", "owner", "member"],
    text: "an owner (for any user), a member (for its own user), the operator",
  },
  decide: {
    roles: ["operator", "owner", "group_owner"],
    text: "an owner, a group owner (its group's members' requests, up to the group's own limit), the operator",
  },
};

const API_VERSION = (
  JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string }
).version;

const REASONS: Record<number, string> = {
  400: "the request is invalid",
  401: "no key, or an unknown, revoked or expired key",
  403: "the key may not do this",
  404: "not found",
  409: "conflicts with the current state",
  413: "the body is larger than 1 MiB",
  415: "the body is not JSON",
  429: "too many requests for this key: retry after the Retry-After seconds",
  500: "an internal error",
  503: "the change is recorded and this instance has not applied it yet: read again after the Retry-After seconds",
};

/** The error codes of an operation by status: its own and the shared ones (routes.ts header). */
export function errorCodesOf(op: Operation): Record<number, string[]> {
  const codes: Record<number, Set<string>> = {};
  const add = (status: number, ...more: string[]) => {
    codes[status] ??= new Set();
    for (const c of more) codes[status].add(c);
  };
  for (const [status, list] of Object.entries(op.errors ?? {})) add(Number(status), ...list);
  if (op.path.startsWith("/v1/")) {
    add(401, "unauthorized");
    add(403, "forbidden_role");
    add(429, "rate_limited");
    if (op.path.includes(":org")) {
      add(400, "invalid_org");
      add(403, "forbidden");
    }
  }
  if (op.body) {
    add(400, "bad_request");
    add(413, "fst_err_ctp_body_too_large");
    add(415, "fst_err_ctp_invalid_media_type");
  }
  // A change answers once this instance has applied it (at most 5 s): past that, 503 `control_lagging`.
  if (op.method !== "GET" && op.path.startsWith("/v1/")) add(503, "control_lagging");
  add(500, "internal");
  return Object.fromEntries(Object.entries(codes).map(([status, set]) => [status, [...set].sort()]));
}

function routeConfig(op: Operation): RouteConfig {
  const v1 = op.path.startsWith("/v1/");
  const access = v1 ? ROUTE_ACCESS[`${op.method} ${op.path}`] : undefined;
  if (v1 && !access) throw new Error(`${op.method} ${op.path} is not in ROUTE_ACCESS (access.ts)`);
  const who = access ? ROLES_OF[access] : undefined;
  const responses: Record<number, ResponseConfig> = {};
  for (const [status, answer] of Object.entries(op.answers)) {
    responses[Number(status)] = {
      description: answer.description,
      ...(answer.schema ? { content: { [answer.contentType ?? "application/json"]: { schema: answer.schema } } } : {}),
      ...(Number(status) === 302 ? { headers: { Location: { schema: { type: "string" } } } } : {}),
    };
  }
  for (const [status, codes] of Object.entries(errorCodesOf(op))) {
    responses[Number(status)] = {
      description: `${REASONS[Number(status)] ?? "error"}: ${codes.join(", ")}`,
      content: {
        "application/json": { schema: errorBody(codes, op.errorDetails === true && status === "400") },
      },
      ...(status === "429" ? { headers: { "Retry-After": { schema: { type: "integer" } } } } : {}),
    };
  }
  const description = [op.description, who ? `Who may call it: ${who.text}.` : "No key needed."]
    .filter(Boolean)
    .join("\n\n");
  return {
    method: op.method.toLowerCase() as RouteConfig["method"],
    path: openApiPath(op.path),
    operationId: op.operationId,
    summary: op.summary,
    description,
    tags: [op.tag],
    ...(v1 ? { security: [{ bearer: [] }] } : { security: [] }),
    ...(who ? { "x-access": access, "x-roles": who.roles } : {}),
    request: {
      ...(op.params ? { params: op.params } : {}),
      ...(op.query ? { query: op.query } : {}),
      ...(op.body
        ? {
            body: {
              required: op.bodyOptional !== true,
              content: { "application/json": { schema: op.body } },
            },
          }
        : {}),
    },
    responses,
  };
}

/** The OpenAPI 3.1 document of the registry (built anew; see openApiDocument for the cached one). */
export function buildOpenApiDocument(operations: readonly Operation[] = OPERATIONS) {
  const registry = new OpenAPIRegistry();
  registry.registerComponent("securitySchemes", "bearer", {
    type: "http",
    scheme: "bearer",
    description: "an API key: the operator's, or an org key (POST /v1/orgs/{org}/keys)",
  });
  for (const op of operations) registry.registerPath(routeConfig(op));
  return new OpenApiGeneratorV31(registry.definitions).generateDocument({
    openapi: "3.1.0",
    info: {
      title: "Usage metering API",
      version: API_VERSION,
      description:
        "The admin and analytics API of the usage-metering service (SPEC §8). Every /v1 route needs " +
        "`Authorization: Bearer <key>`; errors are `{ error: { code, message } }`. Money is an exact decimal string.",
    },
    servers: [{ url: "/" }],
  });
}

export type OpenApiDocument = ReturnType<typeof buildOpenApiDocument>;

let cached: { doc: OpenApiDocument; text: string } | undefined;

/** The document, built once per process. */
export function openApiDocument(): OpenApiDocument {
  cached ??= (() => {
    const doc = buildOpenApiDocument();
    return { doc, text: JSON.stringify(doc) };
  })();
  return cached.doc;
}

/** Registers `GET /openapi.json` (no key needed) on any fastify instance. */
export function registerOpenApi<L extends FastifyBaseLogger>(
  app: FastifyInstance<RawServerDefault, RawRequestDefaultExpression, RawReplyDefaultExpression, L>,
): void {
  app.get("/openapi.json", async (_request, reply) => {
    openApiDocument();
    return reply
      .header("content-type", "application/json; charset=utf-8")
      .header("cache-control", "public, max-age=300")
      .send(cached!.text);
  });
}
