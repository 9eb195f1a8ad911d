/**
 * Who may use which route (SPEC §11), in one table checked before every /v1 route runs (server.ts preHandler): a
 * route missing from the table is refused to everyone, and a test walks every registered route against it.
 *
 *   operator     commercial terms: credit purchases, the contract, invoice finalization; creating keys for any org
 *                through POST /v1/keys
 *   manage       the owner's changes to its org: policy, webhook, keys, auto-reload, seats
 *   read         every read of an org: owner and analyst (and the operator)
 *   user         one user's figures: as `read`, plus a member for its own user and a group owner for its group's
 *                members; `surface` too for the allowance (what a product surface asks before each request)
 *   scoped       org reports a member or group owner may read for their users only (caps, spend by user, limit
 *                requests): the route answers with those users' rows (AccessContext.users)
 *   file         filing a limit request for a user: an owner, or a member for its own user
 *   decide       approving or denying a limit request: an owner, or a group owner for its group's members (the
 *                route checks the request's user against AccessContext.users, and the limit against the group's)
 */
import type { KeyRole } from "@usage/control";
import type { Policy } from "@usage/policy";
import type { Principal } from "./auth.js";

export type Need = "operator" | "manage" | "read" | "user" | "allowance" | "scoped" | "file" | "decide";

export const ROUTE_ACCESS: Record<string, Need> = {
  "POST /v1/keys": "operator",
  "POST /v1/orgs/:org/keys": "manage",
  "GET /v1/orgs/:org/keys": "manage",
  "DELETE /v1/orgs/:org/keys/:key_id": "manage",
  "POST /v1/orgs/:org/keys/:key_id/rotate": "manage",
  "PUT /v1/orgs/:org/policy": "manage",
  "GET /v1/orgs/:org/policy": "read",
  "GET /v1/orgs/:org/caps": "scoped",
  "GET /v1/orgs/:org/users/:user/allowance": "allowance",
  "GET /v1/orgs/:org/spend": "scoped",
  "PUT /v1/orgs/:org/webhook": "manage",
  "GET /v1/orgs/:org/alerts": "read",
  "GET /v1/orgs/:org/top-users": "read",
  "GET /v1/orgs/:org/trends": "read",
  "GET /v1/orgs/:org/export.csv": "read",
  "GET /v1/orgs/:org/reconciliation": "read",
  "GET /v1/orgs/:org/credits": "read",
  "GET /v1/orgs/:org/credits/ledger": "read",
  "POST /v1/orgs/:org/credits/purchases": "operator",
  "PUT /v1/orgs/:org/credits/auto-reload": "manage",
  "GET /v1/orgs/:org/credits/auto-reload": "read",
  "GET /v1/orgs/:org/forecast": "read",
  "GET /v1/orgs/:org/audit": "read",
  "PUT /v1/orgs/:org/contract": "operator",
  "GET /v1/orgs/:org/contract": "read",
  "PUT /v1/orgs/:org/seats/:user": "manage",
  "GET /v1/orgs/:org/seats": "read",
  "GET /v1/orgs/:org/invoices": "read",
  "GET /v1/orgs/:org/invoices/:period/lines.csv": "read",
  "POST /v1/orgs/:org/invoices/:period/finalize": "operator",
  "POST /v1/orgs/:org/users/:user/limit-requests": "file",
  "GET /v1/orgs/:org/limit-requests": "scoped",
  "POST /v1/orgs/:org/limit-requests/:id/approve": "decide",
  "POST /v1/orgs/:org/limit-requests/:id/deny": "decide",
  "GET /v1/orgs/:org/usage_report/messages": "read",
  "GET /v1/orgs/:org/cost_report": "read",
  "GET /v1/orgs/:org/activity": "read",
};

/** What the route may show the caller: `users` set means only those users' rows (a member, a group owner). */
export interface AccessContext {
  orgId: string;
  principal: Principal;
  users?: ReadonlySet<string>;
}

export type AccessDecision = { ok: true; users?: ReadonlySet<string> } | { ok: false; message: string };

const FULL_READERS: readonly KeyRole[] = ["owner", "analyst"];

/**
 * Whether `principal` may use a route that needs `need` on its org (the org itself is checked before), and which
 * users it may see there. `user` is the route's user, when it has one; `policy` the org's policy (group members).
 */
export function decide(need: Need, principal: Principal, user: string | undefined, policy: Policy): AccessDecision {
  if (principal.kind === "operator") return { ok: true };
  const role = principal.role;
  switch (need) {
    case "operator":
      return { ok: false, message: `${role} keys cannot do this: commercial terms are the operator's alone` };
    case "manage":
      return role === "owner" ? { ok: true } : { ok: false, message: `${role} keys cannot change the org` };
    case "read":
      return FULL_READERS.includes(role)
        ? { ok: true }
        : { ok: false, message: `${role} keys cannot read the whole org` };
    case "file":
      if (role === "owner") return { ok: true };
      if (role === "member" && user !== undefined && principal.user === user) return { ok: true };
      return {
        ok: false,
        message:
          role === "member"
            ? `this key belongs to user ${principal.user} and cannot ask for user ${user}`
            : `${role} keys cannot file limit requests`,
      };
    case "decide":
      if (role === "owner") return { ok: true };
      if (role === "group_owner") return { ok: true, users: usersOf(principal, policy) };
      return { ok: false, message: `${role} keys cannot decide limit requests` };
    case "scoped":
    case "user":
    case "allowance": {
      if (FULL_READERS.includes(role)) return { ok: true };
      if (role === "surface") {
        return need === "allowance" ? { ok: true } : { ok: false, message: "surface keys may only ask for allowance" };
      }
      const users = usersOf(principal, policy);
      if (need === "scoped") return { ok: true, users };
      if (user !== undefined && users.has(user)) return { ok: true, users };
      return {
        ok: false,
        message:
          role === "member"
            ? `this key belongs to user ${principal.user} and cannot read user ${user}`
            : `user ${user} is not a member of group ${principal.group}`,
      };
    }
  }
}

/** The users a member or group owner key may see. */
function usersOf(principal: Extract<Principal, { kind: "key" }>, policy: Policy): ReadonlySet<string> {
  if (principal.role === "member") return new Set(principal.user ? [principal.user] : []);
  if (principal.role === "group_owner") return new Set(policy.groups[principal.group ?? ""]?.members ?? []);
  return new Set();
}
