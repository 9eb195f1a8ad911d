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
import { type ChangeInput, KEY_ROLES, type KeyRole } from "@usage/control";
import { PRODUCTS } from "@usage/events";
import { addMoney } from "@usage/money";
import { parseDay, WINDOWS, type Window, windowAsOf } from "@usage/periods";
import { parsePolicy } from "@usage/policy";
import type { Logger } from "@usage/runtime";
import type { Lookup, SecretBox } from "@usage/webhooks";
import Fastify, { type FastifyReply, type FastifyRequest } from "fastify";
import type { Registry } from "prom-client";
import { RateLimiterMemory, RateLimiterRes } from "rate-limiter-flexible";
import { type AccessContext, decide, ROUTE_ACCESS } from "./access.js";
import { registerActivityRoutes } from "./activity-routes.js";
import { registerAlertRoutes } from "./alert-routes.js";
import { foldByGroup, GROUP_NOTE, productFilter, registerAnalyticsRoutes } from "./analytics-routes.js";
import { registerAuditRoutes } from "./audit-routes.js";
import { actorOf, createAuthenticator, type KeyDirectory, newKey, type Principal } from "./auth.js";
import { registerBillingRoutes } from "./billing-routes.js";
import { registerCreditRoutes } from "./credit-routes.js";
import { registerDashboard } from "./dashboard.js";
import { registerForecastRoutes } from "./forecast-routes.js";
import type { BillingControl } from "./invoices.js";
import { registerOpenApi } from "./openapi/document.js";
import type { SpendReader } from "./read-model.js";
import { registerReconciliationRoutes } from "./reconciliation-routes.js";
import { registerReportRoutes } from "./report-routes.js";
import { type RequestRouteDeps, registerRequestRoutes } from "./request-routes.js";

/** A change for the control plane (usage.control.v1): what the API publishes, stamped with when it was made. */
export type ControlChangeInput = ChangeInput & { at: string };

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
  /** The API keys on the control plane (the follower's). */
  keys: KeyDirectory;
  /** Contracts, seats, limit requests and final invoices on the control plane (the follower's). */
  billing: BillingControl & RequestRouteDeps["control"];
  clickhouse: ClickHouseClient;
  registry: Registry;
  logger: Logger;
  /** The operator key: reaches every org. */
  operatorKey: string;
  /** Seals stored secrets (webhook secrets) with USAGE_SECRET_KEY. */
  secrets: SecretBox;
  /** USAGE_WEBHOOK_ALLOW_PRIVATE (default false): webhooks to plain http and local addresses, for development. */
  allowPrivateWebhooks?: boolean;
  /** How webhook host names resolve (tests); dns.lookup by default. */
  lookup?: Lookup;
  /** Requests a key may make per minute: admin and analytics routes, and the allowance route on its own budget. */
  rateLimits?: { perMinute: number; allowancePerMinute: number };
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
  const app = Fastify({
    loggerInstance: deps.logger.child({ service: "api" }, { level: "warn" }),
    bodyLimit: 1 << 20,
    // Ids are at most 128 characters (validated per route); a longer path segment is a 414 in the API's error shape.
    routerOptions: { maxParamLength: 512 },
    // Errors the router raises before any route (a malformed URL, an overlong segment), in the API's error shape.
    frameworkErrors: (err, _request, reply) => {
      const status = (err as { statusCode?: number }).statusCode ?? 400;
      return sendError(
        reply,
        status < 500 ? status : 400,
        status === 414 ? "uri_too_long" : "bad_request",
        err.message,
      );
    },
  });

  app.setErrorHandler((err: Error & { statusCode?: number; code?: string; validation?: unknown }, request, reply) => {
    if (err instanceof ApiError) return sendError(reply, err.status, err.code, err.message);
    // A change written and not yet applied here: not an internal error, and the answer says so.
    if (err.name === "ControlLagging") {
      reply.header("retry-after", "1");
      return sendError(reply, 503, "control_lagging", err.message);
    }
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

  const auth = createAuthenticator({
    clickhouse: deps.clickhouse,
    operatorKey: deps.operatorKey,
    keys: deps.keys,
    now,
  });
  app.addHook("onClose", () => auth.close());
  const principals = new WeakMap<FastifyRequest, Principal>();
  const contexts = new WeakMap<FastifyRequest, AccessContext>();

  // Every /v1 route needs a key; the key is resolved once per request, before the route runs.
  app.addHook("onRequest", async (request) => {
    if (!request.url.startsWith("/v1/")) return;
    const m = /^Bearer (\S+)$/.exec(request.headers.authorization ?? "");
    if (!m) throw new ApiError(401, "unauthorized", "missing bearer key: send Authorization: Bearer <key>");
    const principal = await auth.authenticate(m[1]!);
    if (!principal) throw new ApiError(401, "unauthorized", "unknown, revoked or expired API key");
    principals.set(request, principal);
  });

  // SPEC §11, in one place: what the route needs (access.ts) against the key's org and role, before the route runs.
  app.addHook("preHandler", async (request) => {
    // No route matched: the not-found handler answers 404.
    if (!request.url.startsWith("/v1/") || request.routeOptions.url === undefined) return;
    const principal = principals.get(request);
    if (!principal) throw new ApiError(401, "unauthorized", "missing bearer key: send Authorization: Bearer <key>");
    const route = `${request.method} ${request.routeOptions.url}`;
    const need = ROUTE_ACCESS[route];
    if (!need) throw new ApiError(403, "forbidden_role", `no role may use ${route}`);
    const params = request.params as { org?: string; user?: string };
    const orgId = params.org ?? "";
    if (params.org !== undefined) {
      if (!ORG_ID.test(orgId))
        throw new ApiError(400, "invalid_org", "org id must be 1 to 128 characters without spaces or '/'");
      if (principal.kind === "key" && principal.orgId !== orgId) {
        throw new ApiError(
          403,
          "forbidden",
          `this key belongs to org ${principal.orgId} and cannot reach org ${orgId}`,
        );
      }
    }
    const decision = decide(need, principal, params.user, deps.reader.policy(orgId).policy);
    if (!decision.ok) throw new ApiError(403, "forbidden_role", decision.message);
    contexts.set(request, { orgId, principal, ...(decision.users ? { users: decision.users } : {}) });
  });

  // Rate limits per key (per instance), after access: the allowance route has its own, much larger budget, so a
  // product surface asking before each request is never throttled by a dashboard or a script on the same key.
  const limits = deps.rateLimits ?? { perMinute: 6000, allowancePerMinute: 120_000 };
  const admin = new RateLimiterMemory({ points: limits.perMinute, duration: 60 });
  const allowance = new RateLimiterMemory({ points: limits.allowancePerMinute, duration: 60 });
  app.addHook("preHandler", async (request, reply) => {
    const context = contexts.get(request);
    if (!context) return;
    const who = context.principal.kind === "operator" ? "operator" : context.principal.keyId;
    const limiter = request.routeOptions.url === "/v1/orgs/:org/users/:user/allowance" ? allowance : admin;
    try {
      await limiter.consume(who);
    } catch (err) {
      if (!(err instanceof RateLimiterRes)) throw err;
      reply.header("retry-after", String(Math.max(1, Math.ceil(err.msBeforeNext / 1000))));
      throw new ApiError(429, "rate_limited", "too many requests for this key; retry after the Retry-After seconds");
    }
  });

  /** The org of a /v1/orgs/{org} route, the caller, and which users it may see (checked before the route ran). */
  const authorize = (request: FastifyRequest): AccessContext => {
    const context = contexts.get(request);
    if (!context) throw new ApiError(403, "forbidden_role", "the route's access was not checked");
    return context;
  };

  /** Creates an org key on the control plane and answers once this instance can authenticate it. */
  const createKey = async (
    orgId: string,
    principal: Principal,
    spec: { role: KeyRole; group?: string; user?: string; expires_at?: string | null },
  ) => {
    const made = newKey();
    const at = new Date(now()).toISOString();
    const version = await deps.control.publish({
      kind: "api_key",
      org_id: orgId,
      key_id: made.key_id,
      action: "created",
      role: spec.role,
      ...(spec.group ? { group: spec.group } : {}),
      ...(spec.user ? { user: spec.user } : {}),
      expires_at: spec.expires_at ?? null,
      created_at: at,
      secret_hash: made.secret_hash,
      actor: actorOf(principal),
      at,
    });
    await deps.control.waitFor(version, CONTROL_WAIT_MS);
    return {
      key: made.key,
      key_id: made.key_id,
      org_id: orgId,
      role: spec.role,
      group: spec.group ?? null,
      user: spec.user ?? null,
      expires_at: spec.expires_at ?? null,
      created_at: at,
      version,
    };
  };

  app.post("/v1/keys", async (request, reply) => {
    const { principal } = authorize(request);
    const orgId = (request.body as { org_id?: unknown } | undefined)?.org_id;
    if (typeof orgId !== "string" || !ORG_ID.test(orgId)) {
      throw new ApiError(
        400,
        "invalid_org",
        'body must be { "org_id": "…" } with 1 to 128 characters, no spaces or \'/\'',
      );
    }
    return reply.code(201).send(await createKey(orgId, principal, parseKeySpec(request.body, now())));
  });

  app.post("/v1/orgs/:org/keys", async (request, reply) => {
    const { orgId, principal } = authorize(request);
    return reply.code(201).send(await createKey(orgId, principal, parseKeySpec(request.body, now())));
  });

  app.get("/v1/orgs/:org/keys", async (request) => {
    const { orgId } = authorize(request);
    const lastUsed = await auth.lastUsed(orgId);
    const t = now();
    return {
      keys: deps.keys.apiKeys(orgId).map((k) => ({
        key_id: k.key_id,
        role: k.role ?? "owner",
        group: k.group ?? null,
        user: k.user ?? null,
        created_at: k.created_at ?? null,
        expires_at: k.expires_at ?? null,
        last_used_at: lastUsed.has(k.key_id) ? new Date(lastUsed.get(k.key_id)!).toISOString() : null,
        status:
          k.action === "revoked" ? "revoked" : k.expires_at && Date.parse(k.expires_at) <= t ? "expired" : "active",
      })),
    };
  });

  app.delete("/v1/orgs/:org/keys/:key_id", async (request) => {
    const { orgId, principal } = authorize(request);
    const keyId = (request.params as { key_id: string }).key_id;
    const held = deps.keys.apiKey(keyId);
    if (!held || held.org_id !== orgId) throw new ApiError(404, "not_found", `org ${orgId} has no key ${keyId}`);
    const at = new Date(now()).toISOString();
    const version = await deps.control.publish({
      kind: "api_key",
      org_id: orgId,
      key_id: keyId,
      action: "revoked",
      actor: actorOf(principal),
      at,
    });
    await deps.control.waitFor(version, CONTROL_WAIT_MS);
    return { key_id: keyId, status: "revoked", revoked_at: at, version };
  });

  // Rotation: a new key with the same role and scope; the old one expires after the overlap (default 24 h, at most
  // 30 days), so a deployment can switch over without a failed request.
  app.post("/v1/orgs/:org/keys/:key_id/rotate", async (request, reply) => {
    const { orgId, principal } = authorize(request);
    const keyId = (request.params as { key_id: string }).key_id;
    const held = deps.keys.apiKey(keyId);
    if (!held || held.org_id !== orgId || held.action !== "created" || !held.secret_hash) {
      throw new ApiError(404, "not_found", `org ${orgId} has no active key ${keyId} to rotate`);
    }
    const overlap = (request.body as { overlap_seconds?: unknown } | undefined)?.overlap_seconds ?? 86_400;
    if (typeof overlap !== "number" || !Number.isInteger(overlap) || overlap < 0 || overlap > 30 * 86_400) {
      throw new ApiError(400, "invalid_overlap", "overlap_seconds must be an integer from 0 to 2592000 (30 days)");
    }
    const created = await createKey(orgId, principal, {
      role: held.role ?? "owner",
      ...(held.group ? { group: held.group } : {}),
      ...(held.user ? { user: held.user } : {}),
      expires_at: held.expires_at ?? null,
    });
    const oldExpiry = new Date(now() + overlap * 1000).toISOString();
    const keepEarlier = held.expires_at && Date.parse(held.expires_at) < Date.parse(oldExpiry);
    const version = await deps.control.publish({
      ...held,
      expires_at: keepEarlier ? held.expires_at : oldExpiry,
      actor: actorOf(principal),
      at: new Date(now()).toISOString(),
    });
    await deps.control.waitFor(version, CONTROL_WAIT_MS);
    return reply
      .code(201)
      .send({ ...created, replaces: { key_id: keyId, expires_at: keepEarlier ? held.expires_at : oldExpiry } });
  });

  app.put("/v1/orgs/:org/policy", async (request, reply) => {
    const { orgId, principal } = authorize(request);
    // The discount is a commercial term (SPEC §11): only the operator's PUT may carry it; anyone else's keeps the
    // discount in force.
    const carriesDiscount = typeof request.body === "object" && request.body !== null && "discount_pct" in request.body;
    if (carriesDiscount && principal.kind !== "operator") {
      throw new ApiError(403, "forbidden_role", "discount_pct is a commercial term the operator sets; leave it out");
    }
    const parsed = parsePolicy(
      carriesDiscount || principal.kind === "operator"
        ? request.body
        : { ...(request.body as object), discount_pct: deps.reader.policy(orgId).policy.discount_pct },
      orgId,
    );
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
      actor: actorOf(principal),
      at: new Date(now()).toISOString(),
    });
    await deps.control.waitFor(version, CONTROL_WAIT_MS);
    // The discount is the contract's once there is one (SPEC §11): the operator's PUT with discount_pct sets it there.
    const contract = deps.billing.contract(orgId);
    if (carriesDiscount && contract && contract.contract.discount_pct !== parsed.policy.discount_pct) {
      const v = await deps.control.publish({
        kind: "contract",
        org_id: orgId,
        contract: { ...contract.contract, discount_pct: parsed.policy.discount_pct },
        actor: actorOf(principal),
        at: new Date(now()).toISOString(),
      });
      await deps.control.waitFor(v, CONTROL_WAIT_MS);
    }
    return reply.send({ ...parsed.policy, version });
  });

  app.get("/v1/orgs/:org/policy", async (request) => {
    const { orgId } = authorize(request);
    const { policy, version } = deps.reader.policy(orgId);
    const contract = deps.billing.contract(orgId);
    return { ...policy, ...(contract ? { discount_pct: contract.contract.discount_pct } : {}), version };
  });

  app.get("/v1/orgs/:org/caps", async (request) => {
    const { orgId, users } = authorize(request);
    const caps = deps.reader.caps(orgId);
    if (!users) return caps;
    // A member or group owner: its users' entries only, no org figures.
    return { users: Object.fromEntries(Object.entries(caps.users).filter(([u]) => users.has(u))) };
  });

  app.get("/v1/orgs/:org/users/:user/allowance", async (request) => {
    const { orgId } = authorize(request);
    const userId = (request.params as { user: string }).user;
    if (!ORG_ID.test(userId))
      throw new ApiError(400, "invalid_user", "user id must be 1 to 128 characters without spaces or '/'");
    const product = (request.query as { product?: unknown }).product;
    if (product !== undefined && (typeof product !== "string" || !(PRODUCTS as readonly string[]).includes(product))) {
      throw new ApiError(400, "invalid_product", `product must be one of ${PRODUCTS.join(", ")}`);
    }
    return deps.reader.allowance(orgId, userId, product);
  });

  app.get("/v1/orgs/:org/spend", async (request) => {
    const { orgId, users } = authorize(request);
    const q = request.query as Record<string, string | undefined>;
    const window = (q.window ?? "mtd") as Window;
    if (!WINDOWS.includes(window)) throw new ApiError(400, "invalid_window", "window must be one of mtd, qtd, ytd");
    const at = q.at === undefined ? now() : parseDay(q.at);
    if (at === undefined) throw new ApiError(400, "invalid_at", "at must be a date YYYY-MM-DD");
    // group_by=group: per-user rows folded into policy groups (analytics-routes.ts foldByGroup), a user in several
    // groups counting in each, users in none under "(none)"; every policy group has a row. `total` stays the org's
    // total (each user once), not the sum of the group rows.
    const groupBy = q.group_by as SpendGroup | "group" | undefined;
    if (groupBy !== undefined && groupBy !== "group" && !(groupBy in SPEND_GROUPS)) {
      throw new ApiError(
        400,
        "invalid_group_by",
        `group_by must be one of ${[...Object.keys(SPEND_GROUPS), "group"].join(", ")}`,
      );
    }
    if (users && groupBy !== "user") {
      throw new ApiError(403, "forbidden_role", "this key reads spend per user only: add group_by=user");
    }
    const product = productFilter(q.product);
    if (!product.ok) throw new ApiError(product.status, product.code, product.message);
    const range = windowAsOf(window, at);
    const byGroup = groupBy === "group";
    const all = await orgSpend(deps.clickhouse, {
      orgId,
      from: range.from,
      to: range.to,
      groupBy: byGroup ? "user" : groupBy,
      product: product.value,
    });
    const scoped = users ? all.filter((r) => users.has(r.key)) : all;
    const total = scoped.reduce((sum, r) => addMoney(sum, r.spend), "0");
    const rows = byGroup
      ? foldByGroup(
          scoped,
          deps.reader.policy(orgId).policy.groups,
          ["spend", "gross_spend"],
          ["requests", "input_tokens", "output_tokens", "cache_write_tokens", "cache_read_tokens"],
          true,
        )
      : scoped;
    return {
      org_id: orgId,
      window,
      from: range.from,
      to: range.to,
      ...(product.value === undefined ? {} : { product: product.value }),
      ...(byGroup ? { group_by: "group", overlapping: true, note: GROUP_NOTE } : {}),
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

  registerAlertRoutes(app, {
    clickhouse: deps.clickhouse,
    authorize,
    control: deps.control,
    allowPrivateWebhooks: deps.allowPrivateWebhooks ?? false,
    lookup: deps.lookup,
    secrets: deps.secrets,
    now,
  });
  registerAnalyticsRoutes(app, {
    clickhouse: deps.clickhouse,
    groups: (orgId) => deps.reader.policy(orgId).policy.groups,
    authorize,
    now,
  });
  registerActivityRoutes(app, {
    clickhouse: deps.clickhouse,
    seats: (orgId) => deps.billing.seats(orgId),
    authorize,
    now,
  });
  registerAuditRoutes(app, { clickhouse: deps.clickhouse, authorize, now });
  registerCreditRoutes(app, {
    plan: (orgId) => deps.billing.contract(orgId)?.contract.plan,
    clickhouse: deps.clickhouse,
    reader: deps.reader,
    control: deps.control,
    authorize,
    now,
  });
  registerForecastRoutes(app, { clickhouse: deps.clickhouse, reader: deps.reader, authorize, now });
  registerReportRoutes(app, { clickhouse: deps.clickhouse, authorize, now });
  registerBillingRoutes(app, {
    clickhouse: deps.clickhouse,
    control: deps.billing,
    writer: deps.control,
    authorize,
    now,
  });
  registerReconciliationRoutes(app, {
    clickhouse: deps.clickhouse,
    control: deps.billing,
    writer: deps.control,
    authorize,
    now,
  });
  registerRequestRoutes(app, {
    control: deps.billing,
    policy: (orgId) => deps.reader.policy(orgId),
    writer: deps.control,
    authorize,
    now,
  });
  registerDashboard(app);
  registerOpenApi(app);

  return app;
}

/** The body of a key creation: `{ role, group?, user?, expires_at? }` (role defaults to owner). */
function parseKeySpec(
  body: unknown,
  now: number,
): { role: KeyRole; group?: string; user?: string; expires_at?: string | null } {
  const b = (typeof body === "object" && body !== null ? body : {}) as Record<string, unknown>;
  const role = b.role ?? "owner";
  if (typeof role !== "string" || !(KEY_ROLES as readonly string[]).includes(role)) {
    throw new ApiError(400, "invalid_role", `role must be one of ${KEY_ROLES.join(", ")}`);
  }
  const id = (field: "group" | "user") => {
    const v = b[field];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== "string" || !ORG_ID.test(v))
      throw new ApiError(400, `invalid_${field}`, `${field} must be 1 to 128 characters without spaces or '/'`);
    return v;
  };
  const group = id("group");
  const user = id("user");
  if (role === "group_owner" && !group) throw new ApiError(400, "invalid_group", "a group_owner key needs group");
  if (role === "member" && !user) throw new ApiError(400, "invalid_user", "a member key needs user");
  if (group && role !== "group_owner") throw new ApiError(400, "invalid_group", "only a group_owner key has a group");
  if (user && role !== "member") throw new ApiError(400, "invalid_user", "only a member key has a user");
  let expires: string | null = null;
  if (b.expires_at !== undefined && b.expires_at !== null) {
    const t = typeof b.expires_at === "string" ? Date.parse(b.expires_at) : Number.NaN;
    if (!/^\d{4}-\d{2}-\d{2}T/.test(String(b.expires_at)) || Number.isNaN(t) || t <= now) {
      throw new ApiError(400, "invalid_expires_at", "expires_at must be an RFC 3339 time in the future");
    }
    expires = new Date(t).toISOString();
  }
  return {
    role: role as KeyRole,
    ...(group ? { group } : {}),
    ...(user ? { user } : {}),
    expires_at: expires,
  };
}

function sendError(reply: FastifyReply, status: number, code: string, message: string) {
  return reply.code(status).send({ error: { code, message } });
}
export type Api = ReturnType<typeof buildApi>;
