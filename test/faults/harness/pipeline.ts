/**
 * The pipeline under fault: `usagectl run pricing`, `run aggregator` (with the HTTP API) and `run notifier` as
 * child processes on one scenario's own data dirs and consumer groups, a signed-webhook receiver, and a supervisor
 * that notices every exit the test did not cause (a finding), and — like a process supervisor would — restarts
 * the service.
 *
 * The embedded ClickHouse engine belongs to one process per data dir, so the aggregator (and its API) and the
 * notifier each have their own; the notifier's webhooks and alerts live in its dir and are read, once it has
 * stopped, through `usagectl run api` on that dir.
 */
import type { ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer as createNetServer } from "node:net";
import { join } from "node:path";
import { createKafka, groupLag, type Kafka } from "@usage/kafka";
import { metricSum, quietLogger, spawnCli, TOPICS, tempDir } from "../../harness/index.js";
import { type Receiver, startReceiver } from "../../harness/receiver.js";

/** The org admins' webhook receiver (signatures verified, alert ids counted on arrival): test/harness/receiver.ts. */
export type { AlertPayload, Receiver } from "../../harness/receiver.js";

export const API_KEY = "faults-operator-key-0123456789";
export const WEBHOOK_SECRET = "faults-webhook-secret-0123456789";

export type ServiceName = "pricing" | "aggregator" | "notifier";

/** The topic each service consumes (its consumer group's only topic). */
export const INPUT_TOPIC: Record<ServiceName, string> = {
  pricing: TOPICS.events,
  aggregator: TOPICS.priced,
  notifier: TOPICS.signals,
};

export function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createNetServer().listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function waitFor(
  what: string,
  check: () => Promise<boolean> | boolean,
  timeoutMs: number,
  pollMs = 250,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      if (await check()) return;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}${lastError ? ` (last error: ${String(lastError)})` : ""}`,
      );
    }
    await sleep(pollMs);
  }
}

/** An exit the test did not ask for. */
export interface Finding {
  service: string;
  code: number | null;
  signal: NodeJS.Signals | null;
  atMs: number;
  tail: string;
}

/** One service as a supervised child process. */
export class Service {
  private proc: ReturnType<typeof spawnCli> | undefined;
  private expectExit = false;
  private stopped = true;
  private incarnation = 0;
  private exitWaiters: (() => void)[] = [];
  starts = 0;
  kills = 0;

  constructor(
    readonly name: string,
    private readonly args: string[],
    private readonly env: () => NodeJS.ProcessEnv,
    private readonly scenario: Pipeline,
  ) {}

  get running(): boolean {
    return this.proc !== undefined;
  }

  get child(): ChildProcess | undefined {
    return this.proc?.child;
  }

  output(): string {
    return this.proc?.output() ?? "";
  }

  /** How many times `text` occurs in what every incarnation has printed (a log message, an error). */
  logCount(text: string): number {
    return this.allOutput().split(text).length - 1;
  }

  /** Everything every incarnation has printed. */
  allOutput(): string {
    const parts: string[] = [];
    for (let n = 1; n <= this.incarnation; n++) {
      const file = join(this.scenario.logDir, `${this.name}-${n}.log`);
      if (existsSync(file)) parts.push(readFileSync(file, "utf8"));
    }
    return parts.join("\n") + this.output();
  }

  start(): void {
    if (this.proc) return;
    this.stopped = false;
    this.expectExit = false;
    this.starts++;
    const n = ++this.incarnation;
    const proc = spawnCli(this.args, this.env());
    this.proc = proc;
    proc.child.on("exit", (code, signal) => {
      const text = proc.output();
      writeFileSync(join(this.scenario.logDir, `${this.name}-${n}.log`), text);
      if (this.proc === proc) this.proc = undefined;
      const expected = this.expectExit;
      this.expectExit = false;
      for (const w of this.exitWaiters.splice(0)) w();
      if (expected) return;
      this.scenario.findings.push({
        service: this.name,
        code,
        signal,
        atMs: Date.now() - this.scenario.startedAt,
        tail: text.split("\n").slice(-15).join("\n"),
      });
      process.stderr.write(
        `[faults ${this.scenario.name}] FINDING: ${this.name} exited by itself (code ${code}, signal ${signal}); ` +
          `${this.stopped ? "not restarted (stopping)" : "restarting it as a supervisor would"}\n`,
      );
      if (!this.stopped) setTimeout(() => this.start(), 1000);
    });
  }

  /** Sends `signal` and waits for the exit; a SIGKILL leaves no time for any cleanup. */
  async kill(signal: NodeJS.Signals = "SIGKILL"): Promise<number | null> {
    const proc = this.proc;
    if (!proc) return null;
    if (signal === "SIGKILL") this.kills++;
    this.expectExit = true;
    const exited = new Promise<void>((r) => this.exitWaiters.push(r));
    proc.child.kill(signal);
    const timer = setTimeout(() => proc.child.kill("SIGKILL"), 15_000);
    await exited;
    clearTimeout(timer);
    return proc.child.exitCode;
  }

  /** SIGTERM (graceful) and no restart. */
  async stop(): Promise<number | null> {
    this.stopped = true;
    return this.kill("SIGTERM");
  }
}

export interface PipelineOptions {
  name: string;
  brokers: string[];
  clickhouseUrl?: string;
  /** Environment for every service (e.g. the ClickHouse fault file). */
  extraEnv?: NodeJS.ProcessEnv;
  /** Milliseconds the webhook receiver waits before answering (keeps POSTs in flight). */
  receiverDelayMs?: number;
}

export class Pipeline {
  readonly name: string;
  readonly brokers: string[];
  readonly kafka: Kafka;
  readonly dir: string;
  readonly logDir: string;
  readonly findings: Finding[] = [];
  readonly startedAt = Date.now();
  /** Bumped by `newGroups()`: a replay under consumer groups that have never committed anything. */
  run = 1;
  apiPort = 0;
  notifierPort = 0;
  receiver!: Receiver;
  readonly services: Record<ServiceName, Service>;
  private readonly options: PipelineOptions;

  constructor(options: PipelineOptions) {
    this.options = options;
    this.name = options.name;
    this.brokers = options.brokers;
    this.kafka = createKafka({ brokers: options.brokers, clientId: `faults-${options.name}`, logger: quietLogger });
    this.dir = tempDir(`usage-faults-${options.name}-`);
    this.logDir = join(this.dir, "logs");
    mkdirSync(this.logDir, { recursive: true });
    this.services = {
      pricing: new Service("pricing", ["run", "pricing"], () => this.env("pricing"), this),
      aggregator: new Service("aggregator", ["run", "aggregator"], () => this.env("aggregator"), this),
      notifier: new Service("notifier", ["run", "notifier"], () => this.env("notifier"), this),
    };
  }

  get base(): string {
    return `http://127.0.0.1:${this.apiPort}`;
  }

  get notifierBase(): string {
    return `http://127.0.0.1:${this.notifierPort}`;
  }

  group(service: ServiceName): string {
    return `faults-${this.name}-${service}-${this.startedAt}-r${this.run}`;
  }

  /** ClickHouse of one side: the aggregator's (and its API's) or the notifier's. */
  clickhouseEnv(side: "aggregator" | "notifier"): NodeJS.ProcessEnv {
    const url = this.options.clickhouseUrl;
    if (url) {
      return {
        CLICKHOUSE_URL: url,
        CLICKHOUSE_DATABASE: `faults_${this.name.replace(/\W/g, "_")}_${side}_${this.startedAt}`,
      };
    }
    return { USAGE_DATA_DIR: join(this.dir, side) };
  }

  env(service: ServiceName | "notifier-api"): NodeJS.ProcessEnv {
    const common: NodeJS.ProcessEnv = {
      KAFKA_BROKERS: this.brokers.join(","),
      LOG_LEVEL: process.env.FAULTS_LOG_LEVEL ?? "warn",
      USAGE_API_KEY: API_KEY,
      USAGE_PRICING_GROUP: this.group("pricing"),
      USAGE_AGGREGATOR_GROUP: this.group("aggregator"),
      USAGE_NOTIFIER_GROUP: this.group("notifier"),
      USAGE_INSTANCE_ID: `faults-${this.name}`,
      ...this.options.extraEnv,
    };
    switch (service) {
      case "pricing":
        return { ...common, USAGE_DATA_DIR: join(this.dir, "pricing") };
      case "aggregator":
        return { ...common, ...this.clickhouseEnv("aggregator"), USAGE_API_PORT: String(this.apiPort) };
      case "notifier":
        return {
          ...common,
          ...this.clickhouseEnv("notifier"),
          USAGE_NOTIFIER_METRICS_PORT: String(this.notifierPort),
          USAGE_WEBHOOK_RETRY_BASE_MS: "200",
          USAGE_WEBHOOK_RETRY_MAX_MS: "2000",
          USAGE_WEBHOOK_MAX_ATTEMPTS: "1000",
          USAGE_WEBHOOK_TIMEOUT_MS: "3000",
          USAGE_NOTIFIER_POLL_MS: "250",
        };
      case "notifier-api": {
        const { USAGE_FAULT_CLICKHOUSE_FILE: _ignored, ...rest } = common;
        return { ...rest, ...this.clickhouseEnv("notifier") };
      }
    }
  }

  /** Ports, the receiver, the notifier's webhooks (in its own ClickHouse), then the services (all three unless told). */
  async start(orgs: string[], which: ServiceName[] = ["pricing", "aggregator", "notifier"]): Promise<void> {
    this.apiPort = await freePort();
    this.notifierPort = await freePort();
    this.receiver = await startReceiver({ secret: WEBHOOK_SECRET, delayMs: this.options.receiverDelayMs });
    await this.withNotifierApi(async (api) => {
      for (const org of orgs) {
        await api(`/v1/orgs/${org}/webhook`, {
          method: "PUT",
          body: JSON.stringify({ url: this.receiver.url, secret: WEBHOOK_SECRET }),
        });
      }
    });
    for (const name of which) this.services[name].start();
    await this.waitHealthy();
  }

  async waitHealthy(timeoutMs = 90_000): Promise<void> {
    await waitFor(
      "the aggregator API and the notifier to be healthy",
      async () =>
        (!this.services.aggregator.running || (await fetch(`${this.base}/healthz`)).ok) &&
        (!this.services.notifier.running || (await fetch(`${this.notifierBase}/healthz`)).ok),
      timeoutMs,
    );
  }

  /** The aggregator's API (operator key). */
  async api<T>(path: string, init: RequestInit = {}): Promise<T> {
    return apiCall<T>(this.base, path, init);
  }

  /**
   * `usagectl run api` on the notifier's ClickHouse: to register webhooks before the notifier starts, and to read
   * the alerts table once it has stopped (the embedded engine has one owner at a time).
   */
  async withNotifierApi<T>(work: (api: <R>(path: string, init?: RequestInit) => Promise<R>) => Promise<T>): Promise<T> {
    if (this.services.notifier.running && !this.options.clickhouseUrl) {
      throw new Error("the notifier still owns its embedded ClickHouse");
    }
    const port = await freePort();
    const proc = new Service(
      "notifier-api",
      ["run", "api"],
      () => ({ ...this.env("notifier-api"), USAGE_API_PORT: String(port) }),
      this,
    );
    proc.start();
    const base = `http://127.0.0.1:${port}`;
    try {
      await waitFor("the API on the notifier's ClickHouse", async () => (await fetch(`${base}/healthz`)).ok, 60_000);
      return await work(<R>(path: string, init: RequestInit = {}) => apiCall<R>(base, path, init));
    } finally {
      await proc.stop();
    }
  }

  /** A Prometheus sample sum from the aggregator API's or the notifier's /metrics. */
  metric(side: "aggregator" | "notifier", name: string, labels = ""): Promise<number> {
    return metricSum(side === "aggregator" ? this.base : this.notifierBase, name, labels);
  }

  lag(service: ServiceName): Promise<number> {
    return groupLag(this.kafka, this.group(service), INPUT_TOPIC[service]);
  }

  /** Events the running aggregator process has handled: recorded, or dropped as already recorded. */
  async aggregatorHandled(): Promise<number> {
    return (
      (await this.metric("aggregator", "usage_aggregator_events_recorded_total")) +
      (await this.metric("aggregator", "usage_aggregator_duplicates_total"))
    );
  }

  /**
   * An operator's full replay: every service's consumer group reset to the earliest offsets of its topic (the
   * services must be stopped: Kafka refuses to move the offsets of a group with members). Returns the committed
   * offsets afterwards, per service and partition, with the topic's low watermarks, so a test can prove it.
   */
  async rewindGroups(): Promise<Record<ServiceName, { partition: number; offset: string; low: string }[]>> {
    const admin = this.kafka.admin();
    await admin.connect();
    try {
      const out = {} as Record<ServiceName, { partition: number; offset: string; low: string }[]>;
      for (const service of Object.keys(INPUT_TOPIC) as ServiceName[]) {
        const topic = INPUT_TOPIC[service];
        const groupId = this.group(service);
        // Explicit low watermarks rather than resetOffsets({ earliest: true }), which commits the sentinel -2 and
        // leaves the consumer's fallback to find the start.
        const ends = await admin.fetchTopicOffsets(topic);
        await admin.setOffsets({
          groupId,
          topic,
          partitions: ends.map((o) => ({ partition: o.partition, offset: o.low })),
        });
        const lows = new Map(ends.map((o) => [o.partition, o.low]));
        const [committed] = await admin.fetchOffsets({ groupId, topics: [topic] });
        out[service] = (committed?.partitions ?? []).map((c) => ({
          partition: c.partition,
          offset: c.offset,
          low: lows.get(c.partition) ?? "?",
        }));
      }
      return out;
    } finally {
      await admin.disconnect();
    }
  }

  /** New consumer groups for every service: the next start replays every topic from offset 0. */
  newGroups(): void {
    this.run++;
  }

  async stopAll(): Promise<void> {
    await Promise.all(Object.values(this.services).map((s) => s.stop()));
  }

  /** Keep the data dirs and logs at close (set when the scenario's test fails, to look into). */
  keepFiles = false;

  async close(): Promise<void> {
    await this.stopAll();
    await this.receiver?.close();
    if (this.keepFiles)
      process.stderr.write(`[faults ${this.name}] kept ${this.dir} (service logs in ${this.logDir})\n`);
    else rmSync(this.dir, { recursive: true, force: true });
  }

  /** Every service's output so far (for failure messages and the summary). */
  outputs(): string {
    return Object.values(this.services)
      .map((s) => `--- ${s.name}\n${s.output()}`)
      .join("\n");
  }
}

async function apiCall<T>(base: string, path: string, init: RequestInit = {}): Promise<T> {
  const res = await fetch(`${base}${path}`, {
    ...init,
    headers: { authorization: `Bearer ${API_KEY}`, "content-type": "application/json" },
  });
  const body = await res.json();
  if (!res.ok) throw new Error(`${init.method ?? "GET"} ${path}: ${res.status} ${JSON.stringify(body)}`);
  return body as T;
}
