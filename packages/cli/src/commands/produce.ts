import { createKafka, ensureTopics, topicOptions } from "@usage/kafka";
import { createUsageProducer, type PublishResult } from "@usage/producer";
import { baseEnvSchema, createLogger, DEFAULT_KAFKA_BROKERS, parseEnv } from "@usage/runtime";
import type { Command } from "commander";
import { createLineWriter, readLines } from "../lines.js";

export function registerProduce(program: Command): void {
  program
    .command("produce")
    .description(
      "publish JSON-lines usage events from stdin to usage.events.v1; rejects are listed on stderr (exit 1 if any)",
    )
    .action(async () => {
      const env = parseEnv(
        baseEnvSchema.pick({
          KAFKA_BROKERS: true,
          LOG_LEVEL: true,
          USAGE_BACKFILL_DAYS: true,
          KAFKA_PARTITIONS: true,
          KAFKA_REPLICATION_FACTOR: true,
          KAFKA_MIN_INSYNC_REPLICAS: true,
        }),
      );
      // stderr carries the reject lines; only errors are logged there unless LOG_LEVEL asks for more.
      const logger = createLogger({ level: process.env.LOG_LEVEL ? env.LOG_LEVEL : "error", name: "usagectl" });
      const kafka = createKafka({
        brokers: env.KAFKA_BROKERS ?? DEFAULT_KAFKA_BROKERS,
        clientId: "usagectl-produce",
        logger,
      });
      await ensureTopics(kafka, topicOptions(env));
      const producer = createUsageProducer({ kafka, logger, backfillDays: env.USAGE_BACKFILL_DAYS });
      await producer.connect();
      const err = createLineWriter(process.stderr, 1);
      const started = performance.now();
      let rejected = 0;
      try {
        for await (const { line, number } of readLines(process.stdin)) {
          const result = await publishLine(producer.publish, line);
          if (!result.ok) {
            rejected++;
            const r = result.rejection;
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
        await producer.close();
      }
      const seconds = (performance.now() - started) / 1000;
      await err.write(
        `produced ${producer.stats.published} events to usage.events.v1 in ${seconds.toFixed(1)} s; rejected ${rejected}`,
      );
      await err.flush();
      if (rejected > 0) process.exitCode = 1;
    });
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
