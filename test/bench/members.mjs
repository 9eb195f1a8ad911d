// The all-in-one `usagectl start` under load, for several USAGE_MEMBERS × partition counts: events/s from publishing
// until visible in the rollup (sustained, backlog capped), the start process's RSS (every service and the embedded
// ClickHouse engine in it) and the cores it and its broker kept busy. Each configuration runs on a fresh data dir with
// its own local broker (topics created with KAFKA_PARTITIONS).
//   node test/bench/members.mjs [--seconds 60] [--configs 1x4,2x8,4x16]
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createUsageProducer } from "@usage/producer";
import { createLogger } from "@usage/runtime";
import { generateEvents } from "@usage/workload";
import { cpuSecondsOf, writeResult } from "./lib.mjs";

const arg = (name, fallback) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : fallback;
};
const SECONDS = Number(arg("--seconds", 60));
const CONFIGS = arg("--configs", "1x4,2x8,4x16")
  .split(",")
  .map((c) => c.split("x").map(Number));
const MAX_BACKLOG = 100_000;
const KEY = "bench-members-operator-key-0123456789";
const BIN = fileURLToPath(new URL("../../packages/cli/bin/usagectl.js", import.meta.url));
const logger = createLogger({ level: "warn", name: "bench" });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const rssOf = (pid) => {
  try {
    return Math.round(Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1]) / 1024);
  } catch {
    return null;
  }
};

const runs = [];
let port = 19500;
for (const [members, partitions] of CONFIGS) {
  port += 20;
  const apiPort = port + 5;
  const dataDir = mkdtempSync(join(tmpdir(), "usage-bench-members-"));
  const child = spawn(process.execPath, [BIN, "start"], {
    env: {
      ...Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== "KAFKA_BROKERS")),
      NODE_OPTIONS: "",
      USAGE_DATA_DIR: dataDir,
      USAGE_MEMBERS: String(members),
      KAFKA_PARTITIONS: String(partitions),
      USAGE_LOCAL_KAFKA_PORT: String(port),
      USAGE_API_PORT: String(apiPort),
      USAGE_API_KEY: KEY,
      LOG_LEVEL: "warn",
    },
    stdio: ["ignore", "ignore", "inherit"],
  });
  const exited = new Promise((r) => child.on("exit", r));
  const api = async (path) =>
    (await fetch(`http://127.0.0.1:${apiPort}${path}`, { headers: { authorization: `Bearer ${KEY}` } })).json();
  try {
    for (let i = 0; ; i++) {
      try {
        if ((await fetch(`http://127.0.0.1:${apiPort}/healthz`)).ok) break;
      } catch {}
      if (i > 1200) throw new Error("usagectl start did not become healthy");
      await sleep(100);
    }
    const brokerPid = Number(readFileSync(join(dataDir, "kafka", "broker.pid"), "utf8").trim());
    const recorded = async () => {
      let n = 0;
      for (const org of ["org_1", "org_2", "org_3"]) {
        const body = await api(`/v1/orgs/${org}/spend?window=ytd`);
        n += (body.rows ?? []).reduce((t, r) => t + r.requests, 0);
      }
      return n;
    };
    const producer = createUsageProducer({
      brokers: [`127.0.0.1:${port}`],
      logger,
      batchSize: 2000,
      maxBuffered: 50_000,
    });
    await producer.connect();
    const events = generateEvents({
      seed: members * 100 + partitions,
      count: Number.MAX_SAFE_INTEGER,
      now: Date.now(),
    });
    const rss = [];
    const sampler = setInterval(() => {
      const v = rssOf(child.pid);
      if (v) rss.push(v);
    }, 1000);
    const cpu0 = { start: cpuSecondsOf(child.pid), broker: cpuSecondsOf(brokerPid) };
    const t0 = performance.now();
    const end = t0 + SECONDS * 1000;
    let sent = 0;
    while (performance.now() < end) {
      await producer.publish(events.next().value);
      sent++;
      if (sent % 5000 === 0) {
        let seen = await recorded();
        while (sent - seen > MAX_BACKLOG && performance.now() < end) {
          await sleep(200);
          seen = await recorded();
        }
      }
    }
    await producer.close();
    while ((await recorded()) < sent) await sleep(200);
    const seconds = (performance.now() - t0) / 1000;
    clearInterval(sampler);
    const run = {
      members,
      partitions,
      events: sent,
      visible_per_s: Math.round(sent / seconds),
      seconds: Number(seconds.toFixed(1)),
      rss_mb: { first: rss[0], max: Math.max(...rss), last: rss.at(-1) },
      cores_busy: {
        start_process: Number(((cpuSecondsOf(child.pid) - cpu0.start) / seconds).toFixed(2)),
        broker: Number(((cpuSecondsOf(brokerPid) - cpu0.broker) / seconds).toFixed(2)),
      },
    };
    console.log(run);
    runs.push(run);
  } finally {
    child.kill("SIGTERM");
    await exited;
  }
}
writeResult("members", {
  seconds: SECONDS,
  note: "usagectl start (every service and the embedded engine in one process, its own local broker); the publisher runs in the benchmark process",
  runs,
});
