/**
 * Gives integration tests a real Kafka broker (and, with Docker, a ClickHouse server):
 *   1. KAFKA_BROKERS / CLICKHOUSE_URL from the environment when set;
 *   2. else testcontainers, when a Docker engine is reachable (apache/kafka, clickhouse/clickhouse-server);
 *   3. else the local broker from infra/kafka/kafka.sh, and each test file's own embedded ClickHouse.
 * Values reach the tests through vitest's provide/inject.
 */
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startLocalBroker } from "@usage/kafka";
import type { TestProject } from "vitest/node";

declare module "vitest" {
  export interface ProvidedContext {
    kafkaBrokers: string[];
    clickhouseUrl: string | undefined;
    infraKind: string;
  }
}

const LOCAL_TEST_PORT = Number(process.env.USAGE_TEST_KAFKA_PORT ?? 19092);

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const stops: (() => Promise<void>)[] = [];
  let brokers = process.env.KAFKA_BROKERS?.split(",");
  let clickhouseUrl = process.env.CLICKHOUSE_URL || undefined;
  let kind = brokers ? "KAFKA_BROKERS" : "";

  if (!brokers && dockerReachable()) {
    const containers = await import("./containers.js");
    const kafka = await containers.startKafkaContainer();
    brokers = kafka.brokers;
    stops.push(kafka.stop);
    if (!clickhouseUrl) {
      const ch = await containers.startClickHouseContainer();
      clickhouseUrl = ch.url;
      stops.push(ch.stop);
    }
    kind = "testcontainers";
  }
  if (!brokers) {
    const dataDir = mkdtempSync(join(tmpdir(), "usage-test-kafka-"));
    const broker = await startLocalBroker({ dataDir, port: LOCAL_TEST_PORT });
    brokers = broker.brokers;
    stops.push(async () => {
      await broker.stop();
      rmSync(dataDir, { recursive: true, force: true });
    });
    kind = "local broker";
  }
  project.provide("kafkaBrokers", brokers);
  project.provide("clickhouseUrl", clickhouseUrl);
  project.provide("infraKind", kind);
  process.stderr.write(
    `integration tests: Kafka ${brokers.join(",")} (${kind}); ClickHouse ${clickhouseUrl ?? "embedded per test file"}\n`,
  );
  return async () => {
    for (const stop of stops.reverse()) await stop();
  };
}

function dockerReachable(): boolean {
  if (process.env.USAGE_TEST_NO_DOCKER) return false;
  return Boolean(process.env.DOCKER_HOST) || existsSync("/var/run/docker.sock");
}
