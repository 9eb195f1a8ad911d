/**
 * Limit-increase requests (SPEC §8): a member who hits a limit asks for more; an owner (or the group's owner, up to
 * the group's own limit) approves with a limit or denies.
 *
 *   POST /v1/orgs/:org/users/:user/limit-requests        { note? } → 201 the request (pending); 200 the pending one
 *                                                         when the user already has one; 409 when the org's policy
 *                                                         says `limit_requests: "disabled"`
 *   GET  /v1/orgs/:org/limit-requests?status=pending|approved|denied
 *   POST /v1/orgs/:org/limit-requests/:id/approve         { limit } → the policy with users[u].limit = limit, then the
 *                                                         request approved (in this order: when the request reads
 *                                                         approved, the limit is in force)
 *   POST /v1/orgs/:org/limit-requests/:id/deny            { note? }
 *
 * Every step is a control change (a request's record is replaced by its decision); the answer waits until this
 * instance has applied it, so the user's allowance on this instance already reflects an approval. An approval reads
 * the policy in force and publishes it with the user's limit set: a policy PUT that lands between the read and the
 * publish is replaced (the control log orders the two; the audit log shows both). While any request is pending, the
 * aggregator member owning the org sends one `limit_requests_digest` alert per UTC day.
 */
import { randomUUID } from "node:crypto";
import type { LimitRequestState } from "@usage/control";
import { canonicalLimit, limitToMoney } from "@usage/money";
import { type Policy, parsePolicy } from "@usage/policy";
import type {
  FastifyBaseLogger,
  FastifyInstance,
  FastifyRequest,
  RawReplyDefaultExpression,
  RawRequestDefaultExpression,
  RawServerDefault,
} from "fastify";
import { actorOf, type Principal } from "./auth.js";
import { ApproveBody, NoteBody } from "./openapi/schemas.js";
import { ApiError, CONTROL_WAIT_MS, type ControlWriter } from "./server.js";
import { parseBody } from "./validate.js";

const ID = /^[^\s/]{1,128}$/;
const STATUSES = ["pending", "approved", "denied"] as const;

export interface RequestRouteDeps {
  control: {
    limitRequests(orgId: string): LimitRequestState[];
    limitRequest(orgId: string, requestId: string): LimitRequestState | undefined;
  };
  policy(orgId: string): { policy: Policy; version: number };
  writer: ControlWriter;
  authorize: (request: FastifyRequest) => { orgId: string; principal: Principal; users?: ReadonlySet<string> };
  now: () => number;
}

function requestOut(r: LimitRequestState) {
  return {
    request_id: r.request_id,
    org_id: r.org_id,
    user_id: r.user_id,
    status: r.status,
    note: r.note,
    requested_by: r.requested_by,
    requested_at: r.requested_at,
    limit: r.limit,
    decided_by: r.decided_by,
    decided_at: r.decided_at,
    version: r.version,
  };
}

export function registerRequestRoutes<L extends FastifyBaseLogger>(
  app: FastifyInstance<RawServerDefault, RawRequestDefaultExpression, RawReplyDefaultExpression, L>,
  deps: RequestRouteDeps,
): void {
  const publish = async (change: Parameters<ControlWriter["publish"]>[0]) => {
    const version = await deps.writer.publish(change);
    await deps.writer.waitFor(version, CONTROL_WAIT_MS);
    return version;
  };

  app.post("/v1/orgs/:org/users/:user/limit-requests", async (request, reply) => {
    const { orgId, principal } = deps.authorize(request);
    const userId = (request.params as { user: string }).user;
    if (!ID.test(userId)) {
      throw new ApiError(400, "invalid_user", "user id must be 1 to 128 characters without spaces or '/'");
    }
    const note = parseBody(NoteBody, request.body, { note: "invalid_note", "*": "invalid_body" }).note ?? null;
    if (deps.policy(orgId).policy.limit_requests === "disabled") {
      throw new ApiError(409, "limit_requests_disabled", `org ${orgId} does not take limit requests`);
    }
    const pending = deps.control.limitRequests(orgId).find((r) => r.user_id === userId && r.status === "pending");
    if (pending) return reply.code(200).send(requestOut(pending));
    const at = new Date(deps.now()).toISOString();
    const requestId = `lr_${randomUUID().replaceAll("-", "")}`;
    await publish({
      kind: "limit_request",
      org_id: orgId,
      request_id: requestId,
      user_id: userId,
      status: "pending",
      note,
      requested_by: actorOf(principal),
      requested_at: at,
      limit: null,
      decided_by: null,
      decided_at: null,
      actor: actorOf(principal),
      at,
    });
    return reply.code(201).send(requestOut(deps.control.limitRequest(orgId, requestId)!));
  });

  app.get("/v1/orgs/:org/limit-requests", async (request) => {
    const { orgId, users } = deps.authorize(request);
    const status = (request.query as { status?: unknown }).status;
    if (status !== undefined && !(STATUSES as readonly unknown[]).includes(status)) {
      throw new ApiError(400, "invalid_status", `status must be one of ${STATUSES.join(", ")}`);
    }
    const all = deps.control
      .limitRequests(orgId)
      .filter((r) => (status === undefined || r.status === status) && (!users || users.has(r.user_id)));
    return { org_id: orgId, requests: all.map(requestOut) };
  });

  /** The request, when the caller may decide it (a group owner: its group's members only). */
  const decidable = (request: FastifyRequest) => {
    const { orgId, principal, users } = deps.authorize(request);
    const id = (request.params as { id: string }).id;
    const held = ID.test(id) ? deps.control.limitRequest(orgId, id) : undefined;
    if (!held || (users && !users.has(held.user_id))) {
      throw new ApiError(404, "not_found", `org ${orgId} has no limit request ${id} you may decide`);
    }
    if (held.status !== "pending") {
      throw new ApiError(409, "request_decided", `limit request ${id} was already ${held.status}`);
    }
    return { orgId, principal, held };
  };

  app.post("/v1/orgs/:org/limit-requests/:id/approve", async (request) => {
    const { orgId, principal, held } = decidable(request);
    const body = parseBody(ApproveBody, request.body, {
      limit: "invalid_limit",
      note: "invalid_note",
      "*": "invalid_body",
    });
    const limit = canonicalLimit(body.limit);
    const { policy } = deps.policy(orgId);
    // A group owner approves up to its group's own limit.
    if (principal.kind === "key" && principal.role === "group_owner") {
      const groupLimit = policy.groups[principal.group ?? ""]?.limit;
      const within =
        groupLimit === undefined ||
        groupLimit === "unlimited" ||
        (limit !== "unlimited" && limitToMoney(limit).lte(limitToMoney(groupLimit)));
      if (!within) {
        throw new ApiError(
          403,
          "forbidden_role",
          `a group owner approves up to the group's limit (${groupLimit}); ${limit} is more`,
        );
      }
    }
    const users = { ...policy.users, [held.user_id]: { ...policy.users[held.user_id], limit } };
    const parsed = parsePolicy({ ...policy, users }, orgId);
    if (!parsed.ok) throw new ApiError(400, "invalid_limit", parsed.errors[0]?.message ?? "invalid limit");
    const at = new Date(deps.now()).toISOString();
    const policyVersion = await publish({
      kind: "policy",
      org_id: orgId,
      policy: parsed.policy,
      actor: actorOf(principal),
      at,
    });
    await publish({
      ...held,
      status: "approved",
      limit,
      decided_by: actorOf(principal),
      decided_at: at,
      actor: actorOf(principal),
      at,
    });
    return { ...requestOut(deps.control.limitRequest(orgId, held.request_id)!), policy_version: policyVersion };
  });

  app.post("/v1/orgs/:org/limit-requests/:id/deny", async (request) => {
    const { orgId, principal, held } = decidable(request);
    const note = parseBody(NoteBody, request.body, { note: "invalid_note", "*": "invalid_body" }).note ?? null;
    const at = new Date(deps.now()).toISOString();
    await publish({
      ...held,
      status: "denied",
      note: note ?? held.note,
      decided_by: actorOf(principal),
      decided_at: at,
      actor: actorOf(principal),
      at,
    });
    return requestOut(deps.control.limitRequest(orgId, held.request_id)!);
  });
}
