// Shared helpers for benchmark programs: a broker to run against, results files, percentiles.
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
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
  return broker;
}

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
