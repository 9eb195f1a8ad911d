/**
 * API keys. The operator key (USAGE_API_KEY) reaches every org; an org key (`uk_<key id>_<secret>`, created with
 * `POST /v1/keys` or `usagectl keys create --org ORG`) reaches its own org only. Org keys are stored as a SHA-256 of
 * the secret part and cached after the first lookup, so the allowance check stays in memory.
 */
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { type ClickHouseClient, findApiKey, insertApiKey } from "@usage/clickhouse";

export type Principal = { kind: "operator" } | { kind: "org"; orgId: string; keyId: string };

const ORG_KEY = /^uk_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$/;

export function createAuthenticator(deps: { clickhouse: ClickHouseClient; operatorKey: string }) {
  const operator = Buffer.from(deps.operatorKey);
  const cache = new Map<string, { orgId: string; hash: Buffer; revoked: boolean }>();

  return {
    /** The principal a bearer key stands for, or undefined when the key is unknown. */
    async authenticate(key: string): Promise<Principal | undefined> {
      const given = Buffer.from(key);
      if (given.length === operator.length && timingSafeEqual(given, operator)) return { kind: "operator" };
      const m = ORG_KEY.exec(key);
      if (!m) return undefined;
      const keyId = m[1]!;
      let entry = cache.get(keyId);
      if (!entry) {
        const row = await findApiKey(deps.clickhouse, keyId);
        if (!row) return undefined;
        entry = { orgId: row.org_id, hash: Buffer.from(row.secret_hash, "hex"), revoked: row.revoked };
        cache.set(keyId, entry);
      }
      const hash = sha256(m[2]!);
      if (entry.revoked || hash.length !== entry.hash.length || !timingSafeEqual(hash, entry.hash)) return undefined;
      return { kind: "org", orgId: entry.orgId, keyId };
    },

    /** Creates a key for an org; the key is returned once and never stored in clear. */
    async createOrgKey(orgId: string): Promise<{ key: string; key_id: string; org_id: string }> {
      const keyId = randomBytes(8).toString("hex");
      const secret = randomBytes(32).toString("base64url");
      await insertApiKey(deps.clickhouse, {
        key_id: keyId,
        org_id: orgId,
        secret_hash: sha256(secret).toString("hex"),
        revoked: false,
      });
      return { key: `uk_${keyId}_${secret}`, key_id: keyId, org_id: orgId };
    },
  };
}

function sha256(text: string): Buffer {
  return createHash("sha256").update(text).digest();
}
