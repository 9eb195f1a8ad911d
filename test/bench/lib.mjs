// Shared helpers for benchmark programs: a broker to run against, results files, percentiles.
import { randomUUID } from "node:crypto";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { cpus, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { startLocalBroker } from "@usage/kafka";

export const RESULTS_DIR = fileURLToPath(new URL("../../bench-results/", import.meta.url));

/** KAFKA_BROKERS when set, else a local broker on port 19192 started (and stopped) by the benchmark. */
export async function benchBroker() {
  if (process.env.KAFKA_BROKERS) return { brokers: process.env.KAFKA_BROKERS.split(","), stop: async () => {} };
  const dataDir = mkdtempSync(join(tmpdir(), "usage-bench-kafka-"));
  const broker = await startLocalBroker({ dataDir, port: Number(process.env.USAGE_BENCH_KAFKA_PORT ?? 19192) });
  // kafka.sh writes the broker's pid beside its log; a benchmark reads the broker's CPU time from it.
  const pid = Number(readFileSync(join(dataDir, "broker.pid"), "utf8").trim());
  return { ...broker, pid };
}

/** CPU seconds (user + system, all threads) a process has used so far, from /proc; null when it cannot be read. */
export function cpuSecondsOf(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Fields after the command name (which may hold spaces): utime and stime are the 12th and 13th, in clock ticks.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
  } catch {
    return null;
  }
}

/**
 * CPU seconds of a process's threads, summed by thread name: `node` is the JavaScript thread, `MergeMutate` the
 * embedded engine's background merges, `ThreadPool` its query threads (and libuv's). Threads that ended are not in
 * it, so the parts may add up to less than cpuSecondsOf.
 */
export function threadCpuSecondsOf(pid) {
  const out = {};
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      try {
        const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, "utf8");
        const name = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
        const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
        out[name] = (out[name] ?? 0) + (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
      } catch {}
    }
  } catch {}
  return out;
}

// USER_HZ: 100 on every Linux this runs on (sysconf(_SC_CLK_TCK); not exposed to Node).
const CLOCK_TICKS = 100;

export function machine() {
  return {
    cpus: cpus().length,
    cpu: cpus()[0]?.model,
    memory_gib: Math.round(totalmem() / 2 ** 30),
    node: process.version,
  };
}

export function writeResult(name, result) {
  mkdirSync(RESULTS_DIR, { recursive: true });
  const record = { benchmark: name, at: new Date().toISOString(), machine: machine(), ...result };
  writeFileSync(join(RESULTS_DIR, `${name}.json`), `${JSON.stringify(record, null, 2)}\n`);
  console.log(JSON.stringify(record, null, 2));
  return record;
}

export function percentile(sorted, p) {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

/**
 * A usage_events row for the engine-level benchmarks: the n-th of a run. `random`: ids, token counts and costs vary as
 * real ones do (they compress, sort and merge like real rows); else every figure is the same.
 */
export function syntheticUsageEventRow(n, { random = false } = {}) {
  const digits = (d) => String(Math.floor(Math.random() * 10 ** d)).padStart(d, "0");
  return {
    event_id: random ? randomUUID() : `00000000-0000-4000-8000-${String(n).padStart(12, "0")}`,
    org_id: `org_${n % 7}`,
    user_id: `user_${n % 500}`,
    user_email: `user_${n % 500}@example.com`,
    account_uuid: "",
    request_id: random ? `req_${randomUUID()}` : `req_${n}`,
    region: "us",
    seat_tier: "premium",
    product: "claude_code",
    model: "claude-sonnet-4-5",
    model_base: "claude-sonnet-4-5",
    occurred_at: "2026-11-30 05:00:00.123",
    input_tokens: random ? Math.floor(Math.random() * 1e5) : 1234,
    output_tokens: random ? Math.floor(Math.random() * 1e4) : 567,
    cache_write_tokens: 0,
    cache_read_tokens: 89,
    prompt_tokens: 1323,
    long_context: false,
    rate_card_version: "2026-11-01",
    input_cost: "0.003702",
    output_cost: "0.008505",
    cache_write_cost: "0",
    cache_read_cost: "0.0000267",
    gross_cost: random ? `0.${digits(15)}` : "0.0122337",
    discount_pct: "7.5",
    net_cost: random ? `0.${digits(15)}` : "0.011316172500",
    priced_at: "2026-11-30 05:00:00.200",
    batch_id: `b_${n}`,
    is_late: false,
  };
}
