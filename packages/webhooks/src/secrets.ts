/**
 * Secrets at rest (SPEC §10 USAGE_SECRET_KEY, §11): webhook secrets are stored sealed with AES-256-GCM, an
 * authenticated encryption, under a 32-byte key that never leaves the process's configuration. A sealed value is
 * `v1.<iv>.<tag>.<ciphertext>` (base64url; a fresh 96-bit IV each time) and is bound to its org (the org id is
 * authenticated data), so a value copied to another org's row does not open.
 *
 * Where the key comes from: USAGE_SECRET_KEY (64 hex characters, or base64 of 32 bytes); without it, on the embedded
 * default, `<USAGE_DATA_DIR>/secret.key`, generated on first start (mode 0600); with CLICKHOUSE_URL it is required,
 * since every process that shares the server must share the key.
 */
import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ConfigError } from "@usage/runtime";

export interface SecretBox {
  seal(plain: string, orgId: string): string;
  /** The secret; a value that is not sealed (stored before encryption at rest) is returned as it is. */
  open(stored: string, orgId: string): string;
}

const PREFIX = "v1.";

export function createSecretBox(key: Buffer): SecretBox {
  if (key.length !== 32) throw new RangeError("a secret key is 32 bytes");
  return {
    seal(plain, orgId) {
      const iv = randomBytes(12);
      const cipher = createCipheriv("aes-256-gcm", key, iv);
      cipher.setAAD(Buffer.from(orgId, "utf8"));
      const body = Buffer.concat([cipher.update(plain, "utf8"), cipher.final()]);
      return `${PREFIX}${iv.toString("base64url")}.${cipher.getAuthTag().toString("base64url")}.${body.toString("base64url")}`;
    },
    open(stored, orgId) {
      if (!stored.startsWith(PREFIX)) return stored;
      const [iv, tag, body] = stored.slice(PREFIX.length).split(".");
      if (iv === undefined || tag === undefined || body === undefined) throw new Error("a sealed secret is malformed");
      const decipher = createDecipheriv("aes-256-gcm", key, Buffer.from(iv, "base64url"));
      decipher.setAAD(Buffer.from(orgId, "utf8"));
      decipher.setAuthTag(Buffer.from(tag, "base64url"));
      return Buffer.concat([decipher.update(Buffer.from(body, "base64url")), decipher.final()]).toString("utf8");
    },
  };
}

function parseKey(text: string, where: string): Buffer {
  const t = text.trim();
  const key = /^[0-9a-fA-F]{64}$/.test(t) ? Buffer.from(t, "hex") : Buffer.from(t, "base64");
  if (key.length !== 32 || (!/^[0-9a-fA-F]{64}$/.test(t) && !/^[A-Za-z0-9+/_-]{43}=?$/.test(t))) {
    throw new ConfigError(`${where}: expected 32 bytes as 64 hex characters or base64`);
  }
  return key;
}

/** The process's secret key, as the header says; a bad or missing one is a ConfigError naming the variable. */
export function loadSecretKey(env: {
  USAGE_SECRET_KEY?: string;
  CLICKHOUSE_URL?: string;
  USAGE_DATA_DIR: string;
}): Buffer {
  if (env.USAGE_SECRET_KEY !== undefined) return parseKey(env.USAGE_SECRET_KEY, "USAGE_SECRET_KEY");
  if (env.CLICKHOUSE_URL) {
    throw new ConfigError(
      "USAGE_SECRET_KEY: required with CLICKHOUSE_URL (32 bytes as 64 hex characters; every process sharing the server needs the same key)",
    );
  }
  const file = join(env.USAGE_DATA_DIR, "secret.key");
  try {
    return parseKey(readFileSync(file, "utf8"), file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
  mkdirSync(env.USAGE_DATA_DIR, { recursive: true });
  try {
    writeFileSync(file, `${randomBytes(32).toString("hex")}\n`, { mode: 0o600, flag: "wx" });
  } catch (err) {
    // Another process of the same data dir wrote it first: read theirs.
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
  }
  return parseKey(readFileSync(file, "utf8"), file);
}
