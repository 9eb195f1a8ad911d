import { fstatSync } from "node:fs";
import { createKafka, ensureTopics, topicOptions } from "@usage/kafka";
import { createUsageProducer, type PublishResult } from "@usage/producer";
import { baseEnvSchema, createLogger, DEFAULT_KAFKA_BROKERS, parseEnv } from "@usage/runtime";
import type { Command } from "commander";
import { createLineWriter, readLines } from "../lines.js";
import { createProgress, formatBytes, formatRate, type Progress } from "../progress.js";

const readEnv = () =>
  parseEnv(
    baseEnvSchema.pick({
      KAFKA_BROKERS: true,
      LOG_LEVEL: true,
      USAGE_BACKFILL_DAYS: true,
      KAFKA_PARTITIONS: true,
      KAFKA_REPLICATION_FACTOR: true,
      KAFKA_MIN_INSYNC_REPLICAS: true,
    }),
  );

export function registerProduce(program: Command): void {
  program
    .command("produce")
    .description(
      "publish JSON-lines usage events from stdin to usage.events.v1; rejects are listed on stderr (exit 1 if any)",
    )
    .action(async () => {
      const env = readEnv();
      // On a terminal, a progress line on stderr from the start (a broker that does not answer is retried for a
      // while), erased before the summary or an error is printed. Piped, nothing.
      const progress = createProgress();
      try {
        await produce(env, progress);
      } finally {
        progress.done();
      }
    });
}

async function produce(env: ReturnType<typeof readEnv>, progress: Progress): Promise<void> {
  const brokers = env.KAFKA_BROKERS ?? DEFAULT_KAFKA_BROKERS;
  progress.update(`connecting to Kafka at ${brokers.join(",")}…`);
  // stderr carries the reject lines; only errors are logged there unless LOG_LEVEL asks for more.
  const logger = createLogger({ level: process.env.LOG_LEVEL ? env.LOG_LEVEL : "error", name: "usagectl" });
  const kafka = createKafka({
    brokers,
    clientId: "usagectl-produce",
    logger,
  });
  await ensureTopics(kafka, topicOptions(env));
  const producer = createUsageProducer({ kafka, logger, backfillDays: env.USAGE_BACKFILL_DAYS });
  await producer.connect();
  const err = createLineWriter(process.stderr, 1);
  const started = performance.now();
  let rejected = 0;
  let read = 0;
  let bytes = 0;
  let closing = false;
  if (progress.active) {
    // Bytes of the input only when its size is known: a file redirect has one, a pipe does not.
    const size = inputSize();
    process.stdin.on("data", (chunk: Buffer | string) => {
      bytes += chunk.length;
    });
    progress.track(() => {
      const of = size === undefined ? "" : ` of ${formatBytes(size)} (${Math.floor((100 * bytes) / (size || 1))}%)`;
      return (
        `read ${read} lines · published ${producer.stats.published} · rejected ${rejected} · ` +
        `${formatRate(read, performance.now() - started)} · ${formatBytes(bytes)}${of}` +
        (closing ? ` · waiting for Kafka (acknowledged ${producer.stats.acknowledged})` : "")
      );
    });
  }
  try {
    for await (const { line, number } of readLines(process.stdin)) {
      read++;
      const result = await publishLine(producer.publish, line);
      if (!result.ok) {
        rejected++;
        const r = result.rejection;
        progress.clear();
        await err.write(
          JSON.stringify({
            line: number,
            event_id: r.event_id ?? null,
            code: r.code,
            field: r.field,
            message: r.message,
          }),
        );
      }
    }
  } finally {
    closing = true;
    try {
      await producer.close();
    } finally {
      progress.done();
    }
  }
  const seconds = (performance.now() - started) / 1000;
  await err.write(
    `produced ${producer.stats.published} events to usage.events.v1 in ${seconds.toFixed(1)} s; rejected ${rejected}`,
  );
  await err.flush();
  if (rejected > 0) process.exitCode = 1;
}

/** The size of stdin when it is a regular file (`< events.jsonl`); undefined for a pipe or a terminal. */
function inputSize(): number | undefined {
  try {
    const stat = fstatSync(0);
    return stat.isFile() ? stat.size : undefined;
  } catch {
    return undefined;
  }
}

async function publishLine(publish: (event: unknown) => Promise<PublishResult>, line: string): Promise<PublishResult> {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch (e) {
    return { ok: false, rejection: { code: "invalid_encoding", message: `not valid JSON: ${(e as Error).message}` } };
  }
  return publish(value);
}
