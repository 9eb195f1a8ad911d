/**
 * The admin and analytics HTTP API (SPEC §8). Every route but /healthz and /metrics needs
 * `Authorization: Bearer <key>`; errors are `{ "error": { "code", "message" } }`.
 *
 * The API holds no state of its own (SPEC §12): caps, allowance, policy and credits are answered from a read model
 * of Kafka topics every instance holds in full (read-model.ts: spend.totals.v1 and the control plane), fresh and
 * in memory (a surface asks before every request); spend and analytics are read from ClickHouse. Changes (policy,
 * auto-reload, purchases) are published on the control plane, which gives each its version, and answered once
 * this instance's follower has applied them.
 */
import { type ClickHouseClient, orgSpend, SPEND_GROUPS, type SpendGroup } from "@usage/clickhouse";
import { addMoney } from "@usage/money";
import { parseDay, WINDOWS, type Window, windowAsOf } from "@usage/periods";
import { type AutoReload, type Policy, parsePolicy } from "@usage/policy";
import type { Logger } from "@usage/runtime";
import Fastify, { type FastifyReply, type FastifyRequest } from "fastify";
import type { Registry } from "prom-client";
import { registerAlertRoutes } from "./alert-routes.js";
import { registerAnalyticsRoutes } from "./analytics-routes.js";
import { createAuthenticator, type Principal } from "./auth.js";
import { registerCreditRoutes } from "./credit-routes.js";
import { registerDashboard } from "./dashboard.js";
import { registerForecastRoutes } from "./forecast-routes.js";
import type { SpendReader } from "./read-model.js";

/** A change for the control plane (usage.control.v1): what the API publishes. */
export type ControlChangeInput =
  | { kind: "policy"; org_id: string; policy: Policy; actor: string; at: string }
  | { kind: "auto_reload"; org_id: string; settings: AutoReload; actor: string; at: string }
  | {
      kind: "credit_purchase";
      org_id: string;
      entry_id: string;
      reference: string;
      amount: string;
      actor: string;
      at: string;
    }
  | { kind: "webhook"; org_id: string; actor: string; at: string }
  | { kind: "api_key"; org_id: string; key_id: string; action: "created" | "revoked"; actor: string; at: string };

/** Publishes control changes and tells when this instance has applied one. */
export interface ControlWriter {
  /** Resolves with the change's version (its position in the control log). */
  publish(change: ControlChangeInput): Promise<number>;
  /** Resolves once this instance's control follower has applied `version`. */
  waitFor(version: number, timeoutMs: number): Promise<void>;
}

export interface ApiDeps {
  reader: SpendReader;
  control: ControlWriter;
  clickhouse: ClickHouseClient;
  registry: Registry;
  logger: Logger;
  /** The operator key: reaches every org. */
  operatorKey: string;
  now?: () => number;
  isHealthy?: () => boolean;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

const ORG_ID = /^[^\s/]{1,128}$/;
/** How long a change's answer waits for this instance to apply it (normally a few tens of milliseconds). */
export const CONTROL_WAIT_MS = 5000;
const routeLists = new WeakMap<object, { method: string; url: string }[]>();

/** Every route an API instance serves (tenant-isolation tests walk them all). */
export function routesOf(app: object): { method: string; url: string }[] {
  return [...(routeLists.get(app) ?? [])];
}

export function buildApi(deps: ApiDeps) {
  const now = deps.now ?? Date.now;
  // Per-request lines would be one log line per allowance check: requests log at warn and above only.
  const app = Fastify({ loggerInstance: deps.logger.child({ service: "api" }, { level: "warn" }), bodyLimit: 1 << 20 });

  app.setErrorHandler((err: Error & { statusCode?: number; code?: string; validation?: unknown }, request, reply) => {
    if (err instanceof ApiError) return sendError(reply, err.status, err.code, err.message);
    if (err.statusCode && err.statusCode < 500) {
      return sendError(
        reply,
        err.statusCode,
        err.statusCode === 400 ? "bad_request" : (err.code ?? "bad_request").toLowerCase(),
        err.message,
      );
    }
    request.log.error({ err, url: request.url }, "request failed");
    return sendError(reply, 500, "internal", "internal error");
  });
  app.setNotFoundHandler((request, reply) =>
    sendError(reply, 404, "not_found", `no route ${request.method} ${request.url.split("?")[0]}`),
  );

  app.get("/healthz", async (_request, reply) => {
    const healthy = deps.reader.isReady() && (deps.isHealthy?.() ?? true);
    return reply.code(healthy ? 200 : 503).send({ status: healthy ? "ok" : "starting" });
  });

  app.get("/metrics", async (_request, reply) => {
    return reply.header("content-type", deps.registry.contentType).send(await deps.registry.metrics());
  });

  const routes: { method: string; url: string }[] = [];
  routeLists.set(app, routes);
  app.addHook("onRoute", (route) => {
    for (const method of [route.method].flat()) if (method !== "HEAD") routes.push({ method, url: route.url });
  });

  const auth = createAuthenticator({ clickhouse: deps.clickhouse, operatorKey: deps.operatorKey });
  const principals = new WeakMap<FastifyRequest, Principal>();

  // Every /v1 route needs a key; the key is resolved once per request, before the route runs.
  app.addHook("onRequest", async (request) => {
    if (!request.url.startsWith("/v1/")) return;
    const m = /^Bearer (\S+)$/.exec(request.headers.authorization ?? "");
    if (!m) throw new ApiError(401, "unauthorized", "missing bearer key: send Authorization: Bearer <key>");
    const principal = await auth.authenticate(m[1]!);
    if (!principal) throw new ApiError(401, "unauthorized", "unknown API key");
    principals.set(request, principal);
  });

  /** The org of a /v1/orgs/{org} route, once the caller's key is allowed to reach it. */
  const authorize = (request: FastifyRequest): { orgId: string; principal: Principal } => {
    const principal = principals.get(request);
    if (!principal) throw new ApiError(401, "unauthorized", "missing bearer key: send Authorization: Bearer <key>");
    const orgId = (request.params as { org?: string }).org ?? "";
    if (!ORG_ID.test(orgId))
      throw new ApiError(400, "invalid_org", "org id must be 1 to 128 characters without spaces or '/'");
    if (principal.kind === "org" && principal.orgId !== orgId) {
      throw new ApiError(403, "forbidden", `this key belongs to org ${principal.orgId} and cannot reach org ${orgId}`);
    }
    return { orgId, principal };
  };

  app.post("/v1/keys", async (request, reply) => {
    const principal = principals.get(request);
    if (principal?.kind !== "operator")
      throw new ApiError(403, "forbidden", "only the operator key can create API keys");
    const orgId = (request.body as { org_id?: unknown } | undefined)?.org_id;
    if (typeof orgId !== "string" || !ORG_ID.test(orgId)) {
      throw new ApiError(
        400,
        "invalid_org",
        'body must be { "org_id": "…" } with 1 to 128 characters, no spaces or \'/\'',
      );
    }
    const created = await auth.createOrgKey(orgId);
    // Stored (hashed) first, then announced on the control plane: a versioned notice with the key id, never the key.
    const version = await deps.control.publish({
      kind: "api_key",
      org_id: orgId,
      key_id: created.key_id,
      action: "created",
      actor: "operator",
      at: new Date(now()).toISOString(),
    });
    return reply.code(201).send({ ...created, version });
  });

  app.put("/v1/orgs/:org/policy", async (request, reply) => {
    const { orgId, principal } = authorize(request);
    const parsed = parsePolicy(request.body, orgId);
    if (!parsed.ok) {
      const first = parsed.errors[0];
      return reply.code(400).send({
        error: {
          code: "invalid_policy",
          message: `${first?.path || "policy"}: ${first?.message}`,
          details: parsed.errors,
        },
      });
    }
    // The control log orders concurrent PUTs and versions each; the recorder keeps the history in policy_versions.
    const version = await deps.control.publish({
      kind: "policy",
      org_id: orgId,
      policy: parsed.policy,
      actor: principal.kind === "operator" ? "operator" : `key:${principal.keyId}`,
      at: new Date(now()).toISOString(),
    });
    await deps.control.waitFor(version, CONTROL_WAIT_MS);
    return reply.send({ ...parsed.policy, version });
  });

  app.get("/v1/orgs/:org/policy", async (request) => {
    const { orgId } = authorize(request);
    const { policy, version } = deps.reader.policy(orgId);
    return { ...policy, version };
  });

  app.get("/v1/orgs/:org/caps", async (request) => {
    const { orgId } = authorize(request);
    return deps.reader.caps(orgId);
  });

  app.get("/v1/orgs/:org/users/:user/allowance", async (request) => {
    const { orgId } = authorize(request);
    const userId = (request.params as { user: string }).user;
    if (!ORG_ID.test(userId))
      throw new ApiError(400, "invalid_user", "user id must be 1 to 128 characters without spaces or '/'");
    return deps.reader.allowance(orgId, userId);
  });

  app.get("/v1/orgs/:org/spend", async (request) => {
    const { orgId } = authorize(request);
    const q = request.query as Record<string, string | undefined>;
    const window = (q.window ?? "mtd") as Window;
    if (!WINDOWS.includes(window)) throw new ApiError(400, "invalid_window", "window must be one of mtd, qtd, ytd");
    const at = q.at === undefined ? now() : parseDay(q.at);
    if (at === undefined) throw new ApiError(400, "invalid_at", "at must be a date YYYY-MM-DD");
    const groupBy = q.group_by as SpendGroup | undefined;
    if (groupBy !== undefined && !(groupBy in SPEND_GROUPS)) {
      throw new ApiError(400, "invalid_group_by", `group_by must be one of ${Object.keys(SPEND_GROUPS).join(", ")}`);
    }
    const range = windowAsOf(window, at);
    const rows = await orgSpend(deps.clickhouse, { orgId, from: range.from, to: range.to, groupBy });
    const total = rows.reduce((sum, r) => addMoney(sum, r.spend), "0");
    return {
      org_id: orgId,
      window,
      from: range.from,
      to: range.to,
      total,
      rows: rows.map((r) => ({
        key: r.key,
        spend: r.spend,
        gross_spend: r.gross_spend,
        requests: Number(r.requests),
        input_tokens: Number(r.input_tokens),
        output_tokens: Number(r.output_tokens),
        cache_write_tokens: Number(r.cache_write_tokens),
        cache_read_tokens: Number(r.cache_read_tokens),
      })),
    };
  });

  registerAlertRoutes(app, { clickhouse: deps.clickhouse, authorize, control: deps.control, now });
  registerAnalyticsRoutes(app, { clickhouse: deps.clickhouse, authorize, now });
  registerCreditRoutes(app, {
    clickhouse: deps.clickhouse,
    reader: deps.reader,
    control: deps.control,
    authorize,
    now,
  });
  registerForecastRoutes(app, { clickhouse: deps.clickhouse, reader: deps.reader, authorize, now });
  registerDashboard(app);

  return app;
}

function sendError(reply: FastifyReply, status: number, code: string, message: string) {
  return reply.code(status).send({ error: { code, message } });
}
export type Api = ReturnType<typeof buildApi>;
