/** Kafka and ClickHouse in containers, for machines with a Docker engine (not used where none is reachable). */
import { GenericContainer, Wait } from "testcontainers";

const KAFKA_IMAGE = "apache/kafka:3.9.1";
const CLICKHOUSE_IMAGE = "clickhouse/clickhouse-server:25.8";

export async function startKafkaContainer(): Promise<{ brokers: string[]; stop: () => Promise<void> }> {
  // The advertised listener must carry the host port, so the port is fixed rather than mapped at random.
  const hostPort = Number(process.env.USAGE_TEST_KAFKA_PORT ?? 19092);
  const container = await new GenericContainer(KAFKA_IMAGE)
    .withExposedPorts({ container: 9092, host: hostPort })
    .withEnvironment({
      KAFKA_NODE_ID: "1",
      KAFKA_PROCESS_ROLES: "broker,controller",
      KAFKA_LISTENERS: "PLAINTEXT://:9092,CONTROLLER://:9093",
      KAFKA_ADVERTISED_LISTENERS: `PLAINTEXT://127.0.0.1:${hostPort}`,
      KAFKA_CONTROLLER_LISTENER_NAMES: "CONTROLLER",
      KAFKA_LISTENER_SECURITY_PROTOCOL_MAP: "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
      KAFKA_CONTROLLER_QUORUM_VOTERS: "1@localhost:9093",
      KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR: "1",
      KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR: "1",
      KAFKA_TRANSACTION_STATE_LOG_MIN_ISR: "1",
      KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS: "0",
      KAFKA_AUTO_CREATE_TOPICS_ENABLE: "false",
    })
    .withWaitStrategy(Wait.forLogMessage(/Kafka Server started/))
    .start();
  return { brokers: [`127.0.0.1:${hostPort}`], stop: async () => void (await container.stop()) };
}

export async function startClickHouseContainer(): Promise<{ url: string; stop: () => Promise<void> }> {
  const container = await new GenericContainer(CLICKHOUSE_IMAGE)
    .withExposedPorts(8123)
    .withEnvironment({ CLICKHOUSE_SKIP_USER_SETUP: "1" })
    .withWaitStrategy(Wait.forHttp("/ping", 8123))
    .start();
  return {
    url: `http://${container.getHost()}:${container.getMappedPort(8123)}`,
    stop: async () => void (await container.stop()),
  };
}
