/** Helpers for integration tests: the real broker from global setup, topic resets, reading topics, the CLI. */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { createServer as createNetServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { type ClickHouse, createClickHouse } from "@usage/clickhouse";
import { type UsageEvent, validateUsageEvent } from "@usage/events";
import { createKafka, ensureTopics, type Kafka, type KafkaMessage, TOPICS } from "@usage/kafka";
import { createPricer, loadRateCard } from "@usage/pricing";
import { createLogger } from "@usage/runtime";
import { createSecretBox } from "@usage/webhooks";
import { inject } from "vitest";

export const REPO_ROOT = fileURLToPath(new URL("../../", import.meta.url));
export const USAGECTL = join(REPO_ROOT, "packages/cli/dist/bin.js");

export function testBrokers(): string[] {
  return inject("kafkaBrokers");
}

export const quietLogger = createLogger({ level: process.env.TEST_LOG_LEVEL ?? "warn", name: "test" });

export function testKafka(clientId = "test"): Kafka {
  return createKafka({ brokers: testBrokers(), clientId, logger: quietLogger });
}

/** A ClickHouse of this test file's own: a fresh database on the server, or a fresh embedded data dir. */
export async function testClickHouse(name: string): Promise<ClickHouse> {
  const url = inject("clickhouseUrl");
  const database = `test_${name.replace(/\W/g, "_")}_${process.pid}`;
  return createClickHouse({ url, database, dataDir: tempDir(`usage-test-${name}-`) });
}

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** Deletes and recreates every pipeline topic, so a test starts from empty topics. */
export async function resetTopics(kafka: Kafka, partitions = 4): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const existing = new Set(await admin.listTopics());
    const ours = Object.values(TOPICS).filter((t) => existing.has(t));
    if (ours.length > 0) await admin.deleteTopics({ topics: ours, timeout: 30000 });
    const deadline = Date.now() + 30000;
    while (Date.now() < deadline) {
      const left = (await admin.listTopics()).filter((t) => ours.includes(t as never));
      if (left.length === 0) break;
      await new Promise((r) => setTimeout(r, 200));
    }
  } finally {
    await admin.disconnect();
  }
  // A just-deleted topic can take a moment to be creatable again.
  for (let attempt = 0; ; attempt++) {
    try {
      await ensureTopics(kafka, { partitions });
      return;
    } catch (err) {
      if (attempt >= 20) throw err;
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}

/**
 * Reads a topic from the beginning (read_committed) with a plain kafkajs consumer in a throwaway group, until
 * `until(messages)` holds or, without `until`, until nothing new has arrived for `idleMs` (a transactional topic's
 * high watermark counts commit markers and aborted records, so it cannot tell when everything was read).
 */
export async function readTopic(
  kafka: Kafka,
  topic: string,
  options: { until?: (messages: KafkaMessage[]) => boolean; timeoutMs?: number; idleMs?: number } = {},
): Promise<KafkaMessage[]> {
  const consumer = kafka.consumer({
    groupId: `test-read-${topic}-${Date.now()}-${Math.random()}`,
    readUncommitted: false,
    maxWaitTimeInMs: 200,
  });
  const messages: KafkaMessage[] = [];
  let lastArrival = Date.now();
  try {
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    const started = Date.now();
    const deadline = started + (options.timeoutMs ?? 60000);
    await consumer.run({
      eachBatchAutoResolve: true,
      eachBatch: async ({ batch }) => {
        if (batch.messages.length > 0) lastArrival = Date.now();
        messages.push(...batch.messages);
      },
    });
    const idleMs = options.idleMs ?? 2000;
    for (;;) {
      const done = options.until
        ? options.until(messages)
        : Date.now() - Math.max(lastArrival, started + 3000) > idleMs;
      if (done || Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    return messages.slice();
  } finally {
    await consumer.disconnect();
  }
}

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs `usagectl` with arguments, an environment and optional stdin; resolves when it exits. */
export function runCli(args: string[], options: { env?: NodeJS.ProcessEnv; input?: string } = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [USAGECTL, ...args], {
      env: { ...process.env, ...options.env },
      stdio: ["pipe", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => {
      stdout += d;
    });
    child.stderr.setEncoding("utf8").on("data", (d: string) => {
      stderr += d;
    });
    child.on("error", reject);
    child.on("exit", (code, signal) => resolve({ code, signal, stdout, stderr }));
    child.stdin.on("error", () => undefined);
    child.stdin.end(options.input ?? "");
  });
}

/** The `usagectl` processes spawnCli started that have not exited yet (stopSpawned stops them after each file). */
const spawned = new Set<ChildProcess>();

/**
 * Stops every process spawnCli started that is still running: SIGTERM, then SIGKILL after 15 s. Run after every
 * test file (setup.ts), so that a test that failed before stopping its pipeline does not leave it consuming the next
 * file's topics on the shared broker.
 */
export async function stopSpawned(): Promise<void> {
  await Promise.all(
    [...spawned].map(async (child) => {
      const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill("SIGTERM");
      const killer = setTimeout(() => child.kill("SIGKILL"), 15_000);
      await exited;
      clearTimeout(killer);
    }),
  );
}

/** Starts `usagectl` as a long-running child (a service); returns it for signals. */
export function spawnCli(args: string[], env: NodeJS.ProcessEnv) {
  const child = spawn(process.execPath, [USAGECTL, ...args], {
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  spawned.add(child);
  child.once("exit", () => spawned.delete(child));
  let output = "";
  child.stdout.setEncoding("utf8").on("data", (d: string) => {
    output += d;
  });
  child.stderr.setEncoding("utf8").on("data", (d: string) => {
    output += d;
  });
  return {
    child,
    output: () => output,
    exited: new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code))),
  };
}

export { TOPICS };

/** A TCP port free on 127.0.0.1 right now (for a child's API or a webhook receiver). */
export function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = createNetServer().listen(0, "127.0.0.1", () => {
      const port = (server.address() as { port: number }).port;
      server.close(() => resolve(port));
    });
  });
}

/** `count` consecutive TCP ports free on 127.0.0.1 right now (API instances of one `start` take consecutive ports). */
export async function freePorts(count: number): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const first = await freePort();
    const free = await Promise.all(Array.from({ length: count - 1 }, (_, i) => portIsFree(first + 1 + i)));
    if (free.every(Boolean)) return first;
  }
  throw new Error(`no ${count} consecutive free ports`);
}

function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createNetServer();
    server.once("error", () => resolve(false));
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)));
  });
}

/** Polls `check` every 250 ms until it holds; a throwing check counts as "not yet". */
export async function waitFor(
  what: string,
  check: () => Promise<boolean> | boolean,
  timeoutMs = 120_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      if (await check()) return;
    } catch {
      // not up yet
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/**
 * The environment of one test's `usagectl run pricing` and `usagectl run aggregator` children: the test broker, a
 * fresh data dir, consumer groups of their own and the API on `port` with `key` as the operator key.
 */
export function pipelineEnv(name: string, options: { port: number; key: string; now: number }): Record<string, string> {
  return {
    KAFKA_BROKERS: testBrokers().join(","),
    LOG_LEVEL: "warn",
    USAGE_DATA_DIR: tempDir(`usage-${name}-test-`),
    USAGE_API_PORT: String(options.port),
    USAGE_API_KEY: options.key,
    USAGE_PRICING_GROUP: `test-${name}-pricing-${options.now}`,
    USAGE_AGGREGATOR_GROUP: `test-${name}-${options.now}`,
    USAGE_INSTANCE_ID: `${name}-test`,
  };
}

/**
 * The independent side of a recomputation: each distinct event of a generated workload (by event id) priced offline
 * at the packaged rate card, validated as of `now`. `gross` is the list price; a test applies any discount itself.
 */
export function priceDistinct(events: UsageEvent[], now: number): { event: UsageEvent; gross: string }[] {
  const price = createPricer(loadRateCard());
  const distinct = new Map<string, UsageEvent>();
  for (const e of events) distinct.set(e.event_id, e);
  return [...distinct.values()].map((e) => {
    const v = validateUsageEvent(e, { now });
    if (!v.ok) throw new Error(v.rejection.message);
    const p = price(v.value);
    if (!p.ok) throw new Error(p.rejection.message);
    return { event: e, gross: p.value.total_cost };
  });
}

/** Sum of a Prometheus metric's samples at `base`/metrics whose labels contain `labels` (e.g. `outcome="delivered"`). */
export async function metricSum(base: string, name: string, labels = ""): Promise<number> {
  const text = await (await fetch(`${base}/metrics`)).text();
  let total = 0;
  for (const line of text.split("\n")) {
    const m = new RegExp(`^${name}(\\{[^}]*\\})? (\\S+)$`).exec(line);
    if (m && (labels === "" || (m[1] ?? "").includes(labels))) total += Number(m[2]);
  }
  return total;
}

/** The tests' secret key (USAGE_SECRET_KEY for a child process that must open what `testSecrets` sealed). */
export const TEST_SECRET_KEY = Buffer.alloc(32, 7).toString("hex");

/** A secret box for tests (a fixed key): what the API seals, the notifier opens. */
export const testSecrets = createSecretBox(Buffer.from(TEST_SECRET_KEY, "hex"));
