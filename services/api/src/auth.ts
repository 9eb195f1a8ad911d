/**
 * API keys (SPEC §11). The operator key (USAGE_API_KEY) reaches every org and is the only one that sets commercial
 * terms. An org key (`uk_<key id>_<secret>`) belongs to one org with one role (owner, analyst, group_owner with a
 * group, member with a user, surface); it is created with `POST /v1/orgs/{org}/keys` or `usagectl keys create`.
 *
 * Where keys live: on the control plane (usage.control.v1, an `api_key` record per key holding its role, scope,
 * expiry and the SHA-256 of its secret; never the secret), which every API instance reads in full. So a request is
 * authenticated from memory — no storage query for any key, known, unknown or malformed — and a revocation is
 * refused by an instance as soon as its follower has read it (well under a second). Keys created before keys
 * carried a role are in the api_keys table: read once, on the first request that needs one, and they act as
 * `owner` until revoked.
 *
 * Last use: each instance notes when a key was used and writes it to api_key_usage every few seconds (the newest
 * per key wins); listing reads the newest of what is stored and what this instance has not written yet.
 */
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { type ClickHouseClient, findApiKeys, insertApiKeyUsage, keysLastUsed } from "@usage/clickhouse";
import type { ApiKeyState, KeyRole } from "@usage/control";

export type Principal =
  | { kind: "operator" }
  | { kind: "key"; orgId: string; keyId: string; role: KeyRole; group?: string; user?: string };

/** What the API reads of the control plane's keys. */
export interface KeyDirectory {
  apiKey(keyId: string): ApiKeyState | undefined;
  apiKeys(orgId: string): ApiKeyState[];
}

const ORG_KEY = /^uk_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$/;
const USAGE_FLUSH_MS = 5000;

export interface NewKey {
  /** The whole key, shown once. */
  key: string;
  key_id: string;
  secret_hash: string;
}

/** Who made a change, as recorded with it: `operator` or `key:<key id>`. */
export function actorOf(principal: Principal): string {
  return principal.kind === "operator" ? "operator" : `key:${principal.keyId}`;
}

export function newKey(): NewKey {
  const keyId = randomBytes(8).toString("hex");
  const secret = randomBytes(32).toString("base64url");
  return { key: `uk_${keyId}_${secret}`, key_id: keyId, secret_hash: sha256(secret).toString("hex") };
}

export function createAuthenticator(deps: {
  clickhouse: ClickHouseClient;
  operatorKey: string;
  keys: KeyDirectory;
  now: () => number;
}) {
  const operator = Buffer.from(deps.operatorKey);
  let legacy: Promise<Map<string, { org_id: string; secret_hash: string; revoked: boolean }>> | undefined;
  const used = new Map<string, { orgId: string; at: number }>();
  let flushing: Promise<void> = Promise.resolve();

  const flush = () => {
    if (used.size === 0) return flushing;
    const rows = [...used].map(([key_id, u]) => ({ key_id, org_id: u.orgId, last_used_at: u.at }));
    used.clear();
    flushing = flushing
      .then(() => insertApiKeyUsage(deps.clickhouse, rows))
      .catch(() => {
        // Last use is informational: a failed write is retried with the next use of the key.
        for (const r of rows) if (!used.has(r.key_id)) used.set(r.key_id, { orgId: r.org_id, at: r.last_used_at });
      });
    return flushing;
  };
  const timer = setInterval(() => void flush(), USAGE_FLUSH_MS);
  timer.unref();

  return {
    /** The principal a bearer key stands for, or undefined when the key is unknown, revoked or expired. */
    async authenticate(key: string): Promise<Principal | undefined> {
      const given = Buffer.from(key);
      if (given.length === operator.length && timingSafeEqual(given, operator)) return { kind: "operator" };
      const m = ORG_KEY.exec(key);
      if (!m) return undefined;
      const keyId = m[1]!;
      const hash = sha256(m[2]!);
      const record = deps.keys.apiKey(keyId);
      let principal: Principal | undefined;
      if (record?.secret_hash) {
        if (record.action !== "created") return undefined;
        if (record.expires_at && Date.parse(record.expires_at) <= deps.now()) return undefined;
        if (!sameHash(hash, record.secret_hash)) return undefined;
        principal = {
          kind: "key",
          orgId: record.org_id,
          keyId,
          role: record.role ?? "owner",
          ...(record.group ? { group: record.group } : {}),
          ...(record.user ? { user: record.user } : {}),
        };
      } else {
        // A key from before roles: in api_keys (read once), an owner unless the control plane says revoked.
        if (record?.action === "revoked") return undefined;
        legacy ??= findApiKeys(deps.clickhouse).then((rows) => new Map(rows.map((r) => [r.key_id, r])));
        const row = (await legacy).get(keyId);
        if (!row || row.revoked || !sameHash(hash, row.secret_hash)) return undefined;
        principal = { kind: "key", orgId: row.org_id, keyId, role: "owner" };
      }
      used.set(keyId, { orgId: principal.orgId, at: deps.now() });
      return principal;
    },

    /** Last use per key of the org (ms), as stored and as noted here since the last write. */
    async lastUsed(orgId: string): Promise<Map<string, number>> {
      const stored = await keysLastUsed(deps.clickhouse, orgId);
      for (const [keyId, u] of used) {
        if (u.orgId === orgId && u.at > (stored.get(keyId) ?? 0)) stored.set(keyId, u.at);
      }
      return stored;
    },

    async close(): Promise<void> {
      clearInterval(timer);
      await flush();
    },
  };
}

function sameHash(hash: Buffer, hex: string): boolean {
  const want = Buffer.from(hex, "hex");
  return want.length === hash.length && timingSafeEqual(hash, want);
}

function sha256(text: string): Buffer {
  return createHash("sha256").update(text).digest();
}
