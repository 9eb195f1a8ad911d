import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigError } from "@usage/runtime";
import { describe, expect, it } from "vitest";
import { createSecretBox, loadSecretKey } from "./secrets.js";

describe("secret box", () => {
  const box = createSecretBox(randomBytes(32));

  it("seals so that the stored value holds nothing of the secret, and opens it for its org only", () => {
    const secret = "whsec_the-secret-of-org-a-0123456789";
    const sealed = box.seal(secret, "org_a");
    expect(sealed.startsWith("v1.")).toBe(true);
    expect(sealed).not.toContain(secret);
    expect(sealed).not.toContain(Buffer.from(secret).toString("base64url").slice(0, 12));
    expect(box.seal(secret, "org_a")).not.toBe(sealed); // a fresh IV each time
    expect(box.open(sealed, "org_a")).toBe(secret);
    expect(() => box.open(sealed, "org_b")).toThrow();
    expect(() => createSecretBox(randomBytes(32)).open(sealed, "org_a")).toThrow();
    const [iv, tag, body] = sealed.slice(3).split(".");
    const flipped = `${body![0] === "A" ? "B" : "A"}${body!.slice(1)}`;
    expect(() => box.open(`v1.${iv}.${tag}.${flipped}`, "org_a")).toThrow();
  });

  it("passes through a value stored before secrets were sealed", () => {
    expect(box.open("plain-old-secret-0123456789", "org_a")).toBe("plain-old-secret-0123456789");
  });
});

describe("loadSecretKey", () => {
  it("generates the embedded default's key into the data dir once, readable by its owner only", () => {
    const dir = mkdtempSync(join(tmpdir(), "usage-secret-"));
    const key = loadSecretKey({ USAGE_DATA_DIR: dir });
    expect(key).toHaveLength(32);
    expect(statSync(join(dir, "secret.key")).mode & 0o777).toBe(0o600);
    expect(loadSecretKey({ USAGE_DATA_DIR: dir }).equals(key)).toBe(true);
    expect(readFileSync(join(dir, "secret.key"), "utf8").trim()).toBe(key.toString("hex"));
  });

  it("takes USAGE_SECRET_KEY as hex or base64, and names it when it is bad or missing with a server", () => {
    const hex = randomBytes(32).toString("hex");
    expect(loadSecretKey({ USAGE_SECRET_KEY: hex, USAGE_DATA_DIR: "/nonexistent" }).toString("hex")).toBe(hex);
    const b64 = Buffer.from(hex, "hex").toString("base64");
    expect(loadSecretKey({ USAGE_SECRET_KEY: b64, USAGE_DATA_DIR: "/nonexistent" }).toString("hex")).toBe(hex);
    for (const bad of ["short", "zz".repeat(32), randomBytes(16).toString("hex")]) {
      expect(() => loadSecretKey({ USAGE_SECRET_KEY: bad, USAGE_DATA_DIR: "/x" })).toThrow(ConfigError);
      expect(() => loadSecretKey({ USAGE_SECRET_KEY: bad, USAGE_DATA_DIR: "/x" })).toThrow(/USAGE_SECRET_KEY/);
    }
    expect(() => loadSecretKey({ CLICKHOUSE_URL: "http://ch:8123", USAGE_DATA_DIR: "/x" })).toThrow(/USAGE_SECRET_KEY/);
    const dir = mkdtempSync(join(tmpdir(), "usage-secret-"));
    writeFileSync(join(dir, "secret.key"), "not a key\n");
    expect(() => loadSecretKey({ USAGE_DATA_DIR: dir })).toThrow(ConfigError);
  });
});
