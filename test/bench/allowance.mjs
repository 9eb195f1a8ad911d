// Allowance benchmark: the whole pipeline (`usagectl start`) in a child process on a real broker and embedded
// ClickHouse; this process is the product surface.
//  1. freshness: publish one event at a time and poll the allowance until its spend moves; time from publish to
//     visible (an upper bound on "after it is priced", since it includes the pricing hop). p50/p99 over --samples.
//  2. lookup latency: open-loop GET …/allowance at --rps requests/s for --seconds over keep-alive connections.
//   node test/bench/allowance.mjs [--samples 200] [--rps 1000] [--seconds 20]
import { spawn } from "node:child_process";
import { mkdtempSync } from "node:fs";
import http from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createUsageProducer } from "@usage/producer";
import { createLogger } from "@usage/runtime";
import { generateEventArray } from "@usage/workload";
import { benchBroker, percentile, writeResult } from "./lib.mjs";

const arg = (name, fallback) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
};
const SAMPLES = arg("--samples", 200);
const RPS = arg("--rps", 1000);
const SECONDS = arg("--seconds", 20);
const PORT = arg("--port", 18181);
const KEY = "bench-operator-key-0123456789";
const BIN = fileURLToPath(new URL("../../packages/cli/bin/usagectl.js", import.meta.url));

const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
function get(path) {
  return new Promise((resolve, reject) => {
    const req = http.get(
      { host: "127.0.0.1", port: PORT, path, agent, headers: { authorization: `Bearer ${KEY}` } },
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (d) => {
          body += d;
        });
        res.on("end", () => resolve({ status: res.statusCode, body }));
      },
    );
    req.on("error", reject);
  });
}

const broker = await benchBroker();
const dataDir = mkdtempSync(join(tmpdir(), "usage-bench-allowance-"));
const child = spawn(process.execPath, [BIN, "start"], {
  env: {
    ...process.env,
    KAFKA_BROKERS: broker.brokers.join(","),
    USAGE_DATA_DIR: dataDir,
    USAGE_API_PORT: String(PORT),
    USAGE_API_KEY: KEY,
    LOG_LEVEL: "warn",
    USAGE_PRICING_GROUP: `bench-pricing-${Date.now()}`,
    USAGE_AGGREGATOR_GROUP: `bench-agg-${Date.now()}`,
  },
  stdio: ["ignore", "inherit", "inherit"],
});
try {
  for (let i = 0; ; i++) {
    try {
      if ((await get("/healthz")).status === 200) break;
    } catch {}
    if (i > 600) throw new Error("pipeline did not become healthy");
    await new Promise((r) => setTimeout(r, 100));
  }
  const logger = createLogger({ level: "warn", name: "bench" });
  const producer = createUsageProducer({ brokers: broker.brokers, logger, lingerMs: 0 });
  await producer.connect();

  // 1. Freshness.
  const now = Date.now();
  const events = generateEventArray({ seed: 9, count: SAMPLES * 2, now, orgs: 1, usersPerOrg: 1 }).filter(
    (e) => e.input_tokens + e.output_tokens > 0,
  );
  const path = `/v1/orgs/${events[0].org_id}/users/${events[0].user_id}/allowance`;
  const fresh = [];
  let spend = JSON.parse((await get(path)).body).spend;
  for (const event of events.slice(0, SAMPLES)) {
    const t0 = performance.now();
    await producer.publish({ ...event, occurred_at: new Date().toISOString() });
    await producer.flush();
    for (;;) {
      const s = JSON.parse((await get(path)).body).spend;
      if (s !== spend) {
        spend = s;
        break;
      }
      if (performance.now() - t0 > 10_000) throw new Error("allowance did not move within 10 s");
      await new Promise((r) => setTimeout(r, 2));
    }
    fresh.push(performance.now() - t0);
  }
  await producer.close();
  fresh.sort((a, b) => a - b);

  // 2. Lookup latency, open loop: requests are sent on schedule whether or not earlier ones have answered.
  const latencies = [];
  let errors = 0;
  const total = RPS * SECONDS;
  const started = performance.now();
  const pending = [];
  for (let i = 0; i < total; i++) {
    const due = started + (i * 1000) / RPS;
    const wait = due - performance.now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    const t = performance.now();
    pending.push(
      get(path).then(
        (r) => {
          if (r.status === 200) latencies.push(performance.now() - t);
          else errors++;
        },
        () => errors++,
      ),
    );
  }
  await Promise.all(pending);
  const achieved = total / ((performance.now() - started) / 1000);
  latencies.sort((a, b) => a - b);
  const ms = (v) => (v === null ? null : Number(v.toFixed(2)));
  writeResult("allowance", {
    freshness_publish_to_allowance_ms: {
      samples: fresh.length,
      p50: ms(percentile(fresh, 50)),
      p99: ms(percentile(fresh, 99)),
      max: ms(fresh.at(-1)),
    },
    lookup_latency_ms: {
      target_rps: RPS,
      achieved_rps: Math.round(achieved),
      requests: latencies.length,
      errors,
      p50: ms(percentile(latencies, 50)),
      p99: ms(percentile(latencies, 99)),
      max: ms(latencies.at(-1)),
    },
    goals: { freshness_p99_ms: 1000, lookup_p99_ms: 5 },
  });
} finally {
  child.kill("SIGTERM");
  await new Promise((r) => child.on("exit", r));
  agent.destroy();
  await broker.stop();
}
