/**
 * Alert routes (SPEC §7, §8): an org's webhook, and its alerts with their delivery state.
 *
 *   PUT /v1/orgs/:org/webhook  { url, secret } → { url, updated_at, version }   (the secret is stored, never returned
 *                              or logged; the change is announced on the control plane, without the secret, and its
 *                              version is the announcement's)
 *   GET /v1/orgs/:org/alerts?period=YYYY-MM  → { alerts: [ { ...payload, delivery: { state, attempts, … } } ] }
 *
 * Errors are `{ error: { code, message } }`; authorization is the caller's `authorize` (it throws for a bad key).
 */
import {
  alertsOfPeriod,
  type ClickHouseClient,
  chDateTime,
  parseChDateTime,
  upsertWebhook,
  webhooksOf,
} from "@usage/clickhouse";
import { periodOf, periodRange } from "@usage/periods";
import { checkHost, type Lookup, type SecretBox, webhookUrlProblem } from "@usage/webhooks";
import type {
  FastifyBaseLogger,
  FastifyInstance,
  FastifyReply,
  FastifyRequest,
  RawReplyDefaultExpression,
  RawRequestDefaultExpression,
  RawServerDefault,
} from "fastify";
import { actorOf, type Principal } from "./auth.js";
import type { ControlWriter } from "./server.js";

export interface AlertRouteDeps {
  clickhouse: ClickHouseClient;
  /** Checks the bearer key against the `:org` route parameter; throws (as an API error) when it may not. */
  authorize: (request: FastifyRequest) => { orgId: string; principal: Principal };
  /** Seals webhook secrets before they are stored (USAGE_SECRET_KEY). */
  secrets: SecretBox;
  /** USAGE_WEBHOOK_ALLOW_PRIVATE: accept plain http and local hosts (development and tests only). */
  allowPrivateWebhooks: boolean;
  /** How host names resolve (tests); dns.lookup by default. */
  lookup?: Lookup;
  /** Announces a webhook change on the control plane (a versioned notice; never the secret). */
  control?: Pick<ControlWriter, "publish">;
  now?: () => number;
}

/** Secrets shorter than this are refused: the HMAC is only as strong as the secret. */
export const MIN_SECRET_LENGTH = 16;
const MAX_SECRET_LENGTH = 1024;
/** The longest overlap of a rotated secret: a week. */
const MAX_OVERLAP_SECONDS = 7 * 86_400;

/** Registers the routes on any fastify instance, whatever its logger type (buildApi's uses pino's). */
export function registerAlertRoutes<L extends FastifyBaseLogger>(
  app: FastifyInstance<RawServerDefault, RawRequestDefaultExpression, RawReplyDefaultExpression, L>,
  deps: AlertRouteDeps,
): void {
  const now = deps.now ?? Date.now;

  app.put("/v1/orgs/:org/webhook", async (request, reply) => {
    const { orgId, principal } = deps.authorize(request);
    const body = request.body as { url?: unknown; secret?: unknown } | null | undefined;
    if (typeof body !== "object" || body === null || Array.isArray(body)) {
      return sendError(reply, 400, "bad_request", "body must be a JSON object { url, secret }");
    }
    const checked = webhookUrlProblem(body.url, deps.allowPrivateWebhooks);
    if (!checked.ok) return sendError(reply, 400, "invalid_webhook_url", checked.message);
    if (!deps.allowPrivateWebhooks) {
      // Resolved now and again at every delivery (the notifier's connections check what they connect to).
      const host = await checkHost(checked.url.hostname, deps.lookup);
      if (!host.ok) return sendError(reply, 400, "invalid_webhook_url", host.message);
    }
    const secret = body.secret;
    if (typeof secret !== "string" || secret.length < MIN_SECRET_LENGTH || secret.length > MAX_SECRET_LENGTH) {
      return sendError(
        reply,
        400,
        "invalid_webhook_secret",
        `secret must be a string of ${MIN_SECRET_LENGTH} to ${MAX_SECRET_LENGTH} characters`,
      );
    }
    const overlap = (body as { overlap_seconds?: unknown }).overlap_seconds ?? 0;
    if (typeof overlap !== "number" || !Number.isInteger(overlap) || overlap < 0 || overlap > MAX_OVERLAP_SECONDS) {
      return sendError(
        reply,
        400,
        "invalid_overlap",
        `overlap_seconds must be a whole number of seconds from 0 to ${MAX_OVERLAP_SECONDS}`,
      );
    }
    const url = body.url as string;
    const updatedAt = chDateTime(now());
    try {
      // Rotation with an overlap: the secret in force keeps signing (alongside the new one) until the overlap ends.
      let previous = { previous_secret: "", previous_until: null as string | null };
      if (overlap > 0) {
        const current = (await webhooksOf(deps.clickhouse, [orgId])).get(orgId);
        const old = current?.secret ? deps.secrets.open(current.secret, orgId) : undefined;
        if (old !== undefined && old !== secret) {
          previous = {
            previous_secret: deps.secrets.seal(old, orgId),
            previous_until: chDateTime(now() + overlap * 1000),
          };
        }
      }
      await upsertWebhook(deps.clickhouse, {
        org_id: orgId,
        url,
        secret: deps.secrets.seal(secret, orgId),
        updated_at: updatedAt,
        ...previous,
      });
    } catch (err) {
      // A storage error may quote the row it failed on; only its code reaches the logs.
      throw new Error(`storing the webhook failed (ClickHouse ${(err as { code?: string }).code ?? "error"})`);
    }
    // Stored first, then announced: a follower that reads the notice finds the new webhook in the table.
    const version = await deps.control?.publish({
      kind: "webhook",
      org_id: orgId,
      url,
      ...(overlap > 0 ? { overlap_seconds: overlap } : {}),
      actor: actorOf(principal),
      at: new Date(now()).toISOString(),
    });
    return reply.send({ url, updated_at: isoOf(updatedAt), ...(version === undefined ? {} : { version }) });
  });

  app.get("/v1/orgs/:org/alerts", async (request, reply) => {
    const { orgId } = deps.authorize(request);
    const q = request.query as Record<string, string | undefined>;
    const period = q.period ?? periodOf(now());
    if (periodRange(period) === undefined) {
      return sendError(reply, 400, "invalid_period", "period must be a month YYYY-MM");
    }
    const rows = await alertsOfPeriod(deps.clickhouse, orgId, period);
    return reply.send({
      alerts: rows.map((r) => ({
        ...(JSON.parse(r.payload) as Record<string, unknown>),
        delivery: {
          state: r.state,
          attempts: r.attempts,
          last_error: r.last_error === "" ? null : r.last_error,
          delivered_at: r.delivered_at === null ? null : isoOf(r.delivered_at),
          next_attempt_at: r.state === "pending" || r.state === "retrying" ? isoOf(r.next_attempt_at) : null,
        },
      })),
    });
  });
}

function isoOf(chTime: string): string {
  return new Date(parseChDateTime(chTime)).toISOString();
}

function sendError(reply: FastifyReply, status: number, code: string, message: string) {
  return reply.code(status).send({ error: { code, message } });
}
