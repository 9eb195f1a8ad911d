import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, openSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
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

/** Runs the built CLI without blocking this process (a server in the test answers it); kills it after `killAfterMs`. */
function usagectlAsync(
  args: string[],
  env: Record<string, string>,
  stdin: "ignore" | number = "ignore",
  killAfterMs = 20_000,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      env: { ...process.env, ...env },
      stdio: [stdin, "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout!.setEncoding("utf8").on("data", (c: string) => {
      stdout += c;
    });
    child.stderr!.setEncoding("utf8").on("data", (c: string) => {
      stderr += c;
    });
    const timer = setTimeout(() => child.kill("SIGKILL"), killAfterMs);
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

describe("usagectl progress, piped", () => {
  // Progress lines go to stderr only when it is a terminal: piped (as here), the output is what it always was.
  const progressMarks = [
    "\r",
    "\x1b[",
    "waiting for the API",
    "connecting to Kafka",
    " lines · published",
    "received ",
  ];
  const expectQuiet = (stderr: string) => {
    for (const mark of progressMarks) expect(stderr).not.toContain(mark);
  };

  it("produce: no progress on stderr while it connects and reads a file of rejects", async () => {
    const dir = mkdtempSync(join(tmpdir(), "usagectl-produce-"));
    const file = join(dir, "rejects.jsonl");
    writeFileSync(file, "not json\n{}\n".repeat(1000));
    // A broker that refuses: produce keeps retrying it; on a terminal it would show "connecting to Kafka at …" at once.
    const r = await usagectlAsync(["produce"], { KAFKA_BROKERS: "127.0.0.1:1" }, openSync(file, "r"), 2000);
    expectQuiet(r.stderr);
  });

  it("export, reconcile and invoice: byte-identical stdout and no progress on stderr for a slow API", async () => {
    // Answers after 1.2 s (a terminal would show "waiting for the API… 1 s"), the CSV in pieces, one
    // multi-byte character split across two of them.
    const csv = "user_id,product,model,requests,spend\r\nu_é1,chat,m,3,0.5\r\nu2,chat,m,1,0.25\r\n";
    const bytes = Buffer.from(csv);
    const split = bytes.indexOf(Buffer.from("é")) + 1;
    const reconciliation = {
      org_id: "org_1",
      period: "2026-10",
      raw: { requests: 1, gross: "1", net: "1" },
      rollup: { requests: 1, gross: "1", net: "1" },
      invoice: {
        status: "draft",
        number: null,
        total: "1",
        total_matches_lines: true,
        requests: 1,
        net: "1",
        usage_lines: { requests: 1, net: "1" },
        adjustments: [],
      },
      differences: [],
      balanced: true,
      late_events: [],
    };
    const invoice = { org_id: "org_1", period: "2026-10", status: "draft", number: null, total: "1", lines: [] };
    const server = createServer((req, res) => {
      setTimeout(() => {
        const path = req.url ?? "";
        if (path.startsWith("/v1/orgs/org_1/export.csv")) {
          res.writeHead(200, { "content-type": "text/csv; charset=utf-8" });
          res.write(bytes.subarray(0, split));
          setTimeout(() => res.end(bytes.subarray(split)), 100);
          return;
        }
        const body = path.startsWith("/v1/orgs/org_1/reconciliation")
          ? reconciliation
          : path.startsWith("/v1/orgs/org_1/invoices")
            ? invoice
            : { error: { code: "not_found", message: "no such route" } };
        res.writeHead(body === reconciliation || body === invoice ? 200 : 404, { "content-type": "application/json" });
        res.end(JSON.stringify(body));
      }, 1200);
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const env = {
      USAGE_API_URL: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
      USAGE_API_KEY: "k".repeat(32),
    };
    try {
      const [exported, reconciled, invoiced] = await Promise.all([
        usagectlAsync(["export", "--org", "org_1", "--range", "mtd"], env),
        usagectlAsync(["reconcile", "--org", "org_1", "--period", "2026-10", "--json"], env),
        usagectlAsync(["invoice", "--org", "org_1", "--period", "2026-10", "--json"], env),
      ]);
      expect(exported.code, exported.stderr).toBe(0);
      expect(exported.stdout).toBe(csv);
      expect(exported.stderr).toBe("");
      expect(reconciled.code, reconciled.stderr).toBe(0);
      expect(JSON.parse(reconciled.stdout)).toEqual(reconciliation);
      expect(reconciled.stderr).toBe("");
      expect(invoiced.code, invoiced.stderr).toBe(0);
      expect(JSON.parse(invoiced.stdout)).toEqual(invoice);
      expect(invoiced.stderr).toBe("");
    } finally {
      server.close();
    }
  });
});
