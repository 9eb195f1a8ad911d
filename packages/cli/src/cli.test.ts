import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

// Runs the built CLI (`npm test` builds first): exit codes and one-line errors are what operators script against.
const BIN = fileURLToPath(new URL("../dist/bin.js", import.meta.url));

function usagectl(args: string[], env: Record<string, string> = {}, input = "") {
  const r = spawnSync(process.execPath, [BIN, ...args], { env: { ...process.env, ...env }, input, encoding: "utf8" });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr.trim() };
}

describe("usagectl argument and configuration errors", () => {
  it("refuses a min ISR above the replication factor in one line, exit 2", () => {
    const r = usagectl(["produce"], {
      KAFKA_REPLICATION_FACTOR: "1",
      KAFKA_MIN_INSYNC_REPLICAS: "2",
      KAFKA_BROKERS: "127.0.0.1:1",
    });
    expect(r.code).toBe(2);
    expect(r.stderr.split("\n")).toHaveLength(1);
    expect(r.stderr).toContain("KAFKA_MIN_INSYNC_REPLICAS");
  });

  it.each([
    [["bogus"], "unknown command 'bogus'"],
    [["generate", "--seed", "x", "--count", "1"], "--seed"],
    [["generate", "--seed", "1"], "--count"],
    [["generate", "--seed", "1", "--count", "1", "--late-rate", "2"], "--late-rate"],
    [["run", "billing"], "expected one of"],
    [["price", "--rate-card", "/nonexistent/card.json"], "--rate-card"],
    [["keys", "create", "--org", "o", "--role", "admin"], "--role"],
    [["keys", "create", "--org", "o", "--expires", "tomorrow"], "--expires"],
    [["keys", "revoke", "--org", "o"], "--key"],
  ])("usagectl %j exits 2 with one line naming the problem", (args, needle) => {
    const r = usagectl(args);
    expect(r.code).toBe(2);
    expect(r.stderr.split("\n")).toHaveLength(1);
    expect(r.stderr).toContain(needle);
  });

  it.each([
    ["USAGE_BACKFILL_DAYS", "0", ["price"]],
    ["KAFKA_BROKERS", "not a broker", ["produce"]],
    ["USAGE_API_PORT", "99999", ["start"]],
    ["LOG_LEVEL", "loud", ["start"]],
    ["USAGE_MEMBERS", "0", ["start"]],
    ["KAFKA_REPLICATION_FACTOR", "three", ["produce"]],
    ["KAFKA_MIN_INSYNC_REPLICAS", "-1", ["run", "pricing"]],
  ])("a bad %s exits 2 with one line naming it", (name, value, args) => {
    const r = usagectl(args, { [name]: value });
    expect(r.code).toBe(2);
    expect(r.stderr.split("\n")).toHaveLength(1);
    expect(r.stderr).toContain(name);
  });

  it("prints help for every command and exits 0", () => {
    for (const command of ["start", "run", "produce", "price", "generate"]) {
      const r = usagectl([command, "--help"]);
      expect(r.code).toBe(0);
      expect(r.stdout).toContain(`Usage: usagectl ${command}`);
    }
  });
});

describe("usagectl generate", () => {
  it("is deterministic for a seed and instant", () => {
    const args = [
      "generate",
      "--seed",
      "42",
      "--count",
      "200",
      "--now",
      "2026-11-20T12:00:00Z",
      "--duplicate-rate",
      "0.1",
    ];
    const a = usagectl(args);
    const b = usagectl(args);
    expect(a.code).toBe(0);
    expect(a.stdout).toBe(b.stdout);
    expect(a.stdout.trim().split("\n")).toHaveLength(200);
    expect(usagectl(["generate", "--seed", "43", "--count", "200", "--now", "2026-11-20T12:00:00Z"]).stdout).not.toBe(
      a.stdout,
    );
  });
});

describe("usagectl policy evaluate", () => {
  it("shows every user blocked by the org once the org ceiling is reached", () => {
    const dir = mkdtempSync(join(tmpdir(), "usagectl-policy-"));
    const policyFile = join(dir, "policy.json");
    const spendFile = join(dir, "spend.json");
    writeFileSync(policyFile, JSON.stringify({ org_id: "org_1", org_limit: "100", users: { u1: { limit: "80" } } }));
    // 30 + 70 = 100, the org limit; u1 is at 30 of its own 80 (below 0.5 × 80 = 40), u2 has no own limit.
    writeFileSync(spendFile, JSON.stringify({ org_total: "100", users: { u1: "30", u2: "70" } }));
    const r = usagectl(["policy", "evaluate", "--policy", policyFile, "--spend", spendFile]);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({
      org: { limit: "100", spend: "100", status: "blocked" },
      users: {
        u1: { limit: "80", source: "individual", spend: "30", remaining: "0", status: "blocked", blocked_by: "org" },
        u2: { limit: null, source: "none", spend: "70", remaining: "0", status: "blocked", blocked_by: "org" },
      },
    });
  });
});
