import { ConfigError, type Logger } from "@usage/runtime";
import { type ISocketFactory, Kafka, logLevel as KafkaLogLevel, type LogEntry } from "kafkajs";
import "./kafkajs-patches.js";

/**
 * The topics of SPEC §2. Every one is keyed by `org_id`, except `control` (keyed by `<org_id>/<what>`, see
 * @usage/control): one partition, compacted, read in full by every instance.
 */
export const TOPICS = {
  events: "usage.events.v1",
  priced: "usage.priced.v1",
  dlq: "usage.dlq.v1",
  signals: "spend.signals.v1",
  alerts: "spend.alerts.v1",
  control: "usage.control.v1",
  /** The aggregator's running totals per org and user, compacted; every API instance reads it in full. */
  totals: "spend.totals.v1",
} as const;
export type TopicName = (typeof TOPICS)[keyof typeof TOPICS];

export interface KafkaOptions {
  brokers: string[];
  clientId: string;
  logger: Logger;
  /** TEST HOOK: the sockets the client opens (the fault suite freezes one member's connections). */
  socketFactory?: ISocketFactory;
}

/**
 * How old a consumer's view of the cluster (partition leaders) may get, in ms. kafkajs refreshes it every 5 minutes by
 * default and does not refresh it when a fetch fails to connect: after a broker dies, a consumer kept fetching the
 * partitions it led from the dead address until the refresh, and consumed nothing meanwhile (the scale-out scenario
 * stalled 3 minutes). Every consumer of the project refreshes it this often instead (one small request).
 */
export const CONSUMER_METADATA_MAX_AGE_MS = 5000;

/**
 * How long the broker may hold a follower's fetch that finds nothing new, in ms. Not a staleness: a follower's fetch
 * asks for one byte, so the broker answers as soon as a record arrives (about 6 ms whatever this is:
 * test/bench/follow-latency.mjs). It sets how often a quiet topic is asked again (each ask costs the process and the
 * broker a request) and how long a stop may wait for the fetch in flight.
 */
export const FOLLOWER_MAX_WAIT_MS = 250;

/** One kafkajs client whose log lines go through pino (kafkajs INFO is routine chatter: debug here). */
export function createKafka(options: KafkaOptions): Kafka {
  const log = options.logger.child({ component: "kafkajs" });
  return new Kafka({
    clientId: options.clientId,
    brokers: options.brokers,
    connectionTimeout: 3000,
    requestTimeout: 30000,
    retry: { initialRetryTime: 200, retries: 8, maxRetryTime: 5000 },
    ...(options.socketFactory ? { socketFactory: options.socketFactory } : {}),
    logLevel: KafkaLogLevel.INFO,
    logCreator:
      () =>
      ({ level, log: entry }: LogEntry) => {
        const { message, ...rest } = entry;
        // kafkajs logs every retried request at ERROR (a coordinator still loading, a transaction still completing,
        // a leader moving); those are routine and retried, so they stay at debug. What gives up still surfaces:
        // as an error from the call, or as a consumer crash.
        if (level === KafkaLogLevel.ERROR && isRetried(entry)) log.debug(rest, message);
        else if (level === KafkaLogLevel.ERROR) log.error(rest, message);
        // A member re-joining a rebalancing group is what every rebalance looks like: routine, not a warning.
        else if (level === KafkaLogLevel.WARN && isRetried(entry)) log.debug(rest, message);
        else if (level === KafkaLogLevel.WARN) log.warn(rest, message);
        else log.debug(rest, message);
      },
  });
}

const RETRIED = [
  "concurrent operation on the same transaction",
  "coordinator is loading",
  "coordinator is not available",
  "not the correct coordinator",
  "does not host this topic-partition",
  "no leader for this topic-partition",
  "leader is not available",
  "not the leader for that topic-partition",
  "the group is rebalancing",
];

function isRetried(entry: { message: string; retryCount?: number; error?: unknown }): boolean {
  if (typeof entry.retryCount === "number") return true;
  const text = `${entry.message} ${typeof entry.error === "string" ? entry.error : ""}`.toLowerCase();
  return RETRIED.some((m) => text.includes(m));
}

/**
 * Per-topic settings (SPEC §12). Every topic is keyed by org_id.
 *   - usage.events.v1, usage.priced.v1, usage.dlq.v1, spend.signals.v1, spend.alerts.v1: kept for ever
 *     (retention.ms = -1). A replay — a new consumer group from offset 0, or offsets reset by an operator — re-derives
 *     every figure from them; deduplication makes it change nothing. An operator who must bound disk sets a retention
 *     on usage.events.v1 no shorter than the backfill window plus the time a replay may need, and keeps usage.priced.v1
 *     as long as ClickHouse may have to be rebuilt from it.
 *   - usage.control.v1: ONE partition (its offsets are the changes' versions, in one order) and compacted: the latest
 *     change per key (an org's policy, auto-reload, webhook; each purchase, each key) is kept for ever;
 *     min.compaction.lag.ms keeps every change readable for a day before compaction may fold it.
 *   - spend.totals.v1: compacted; the latest totals record per org and per user is all a reader needs.
 */
export const TOPIC_SETTINGS: Record<TopicName, { onePartition?: boolean; config: Record<string, string> }> = {
  [TOPICS.events]: { config: { "retention.ms": "-1" } },
  [TOPICS.priced]: { config: { "retention.ms": "-1" } },
  [TOPICS.dlq]: { config: { "retention.ms": "-1" } },
  [TOPICS.signals]: { config: { "retention.ms": "-1" } },
  [TOPICS.alerts]: { config: { "retention.ms": "-1" } },
  [TOPICS.control]: {
    onePartition: true,
    config: { "cleanup.policy": "compact", "retention.ms": "-1", "min.compaction.lag.ms": "86400000" },
  },
  [TOPICS.totals]: { config: { "cleanup.policy": "compact", "retention.ms": "-1" } },
};

export interface TopicOptions {
  partitions: number;
  /** KAFKA_REPLICATION_FACTOR (default 1). */
  replicationFactor?: number;
  /** KAFKA_MIN_INSYNC_REPLICAS (default 1): with acks=all, a write needs this many replicas in sync. */
  minInsyncReplicas?: number;
}

/** The topic options of a service's environment (SPEC §10). */
export function topicOptions(env: {
  KAFKA_PARTITIONS: number;
  KAFKA_REPLICATION_FACTOR: number;
  KAFKA_MIN_INSYNC_REPLICAS: number;
}): TopicOptions {
  if (env.KAFKA_MIN_INSYNC_REPLICAS > env.KAFKA_REPLICATION_FACTOR) {
    throw new ConfigError(
      `invalid environment: KAFKA_MIN_INSYNC_REPLICAS (${env.KAFKA_MIN_INSYNC_REPLICAS}) must not exceed KAFKA_REPLICATION_FACTOR (${env.KAFKA_REPLICATION_FACTOR}): no write could ever be acknowledged`,
    );
  }
  return {
    partitions: env.KAFKA_PARTITIONS,
    replicationFactor: env.KAFKA_REPLICATION_FACTOR,
    minInsyncReplicas: env.KAFKA_MIN_INSYNC_REPLICAS,
  };
}

/**
 * Creates the pipeline's topics when missing (idempotent), with TOPIC_SETTINGS, the replication factor and
 * min.insync.replicas. Existing topics are left as they are: a partition count or replication change is an
 * operator decision (kafka-reassign-partitions, kafka-configs), not something a service start does.
 */
export async function ensureTopics(kafka: Kafka, options: TopicOptions): Promise<void> {
  const replicationFactor = options.replicationFactor ?? 1;
  const minIsr = String(options.minInsyncReplicas ?? 1);
  await createTopics(
    kafka,
    Object.values(TOPICS).map((topic) => {
      const s = TOPIC_SETTINGS[topic];
      return {
        topic,
        partitions: s.onePartition ? 1 : options.partitions,
        replicationFactor,
        config: { ...s.config, "min.insync.replicas": minIsr },
      };
    }),
  );
}

/**
 * Creates the topics that are missing and waits until every partition has a leader. kafkajs' own
 * `waitForLeaders` can reject outside the caller's promise on a just-created topic, so the wait is done here.
 */
export async function createTopics(
  kafka: Kafka,
  topics: { topic: string; partitions: number; replicationFactor?: number; config?: Record<string, string> }[],
): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const existing = new Set(await admin.listTopics());
    const missing = topics.filter((t) => !existing.has(t.topic));
    if (missing.length > 0) {
      await admin.createTopics({
        waitForLeaders: false,
        topics: missing.map(({ topic, partitions, replicationFactor, config }) => ({
          topic,
          numPartitions: partitions,
          replicationFactor: replicationFactor ?? 1,
          configEntries: Object.entries({ "retention.ms": "-1", ...config }).map(([name, value]) => ({ name, value })),
        })),
      });
    }
    const deadline = Date.now() + 30_000;
    for (;;) {
      try {
        const { topics: meta } = await admin.fetchTopicMetadata({ topics: topics.map((t) => t.topic) });
        if (meta.every((t) => t.partitions.length > 0 && t.partitions.every((p) => p.leader >= 0))) return;
      } catch (err) {
        if (Date.now() > deadline) throw err;
      }
      if (Date.now() > deadline)
        throw new Error(`topics have no leader after 30 s: ${topics.map((t) => t.topic).join(", ")}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    await admin.disconnect();
  }
}

/** How many partitions a topic has now, as the brokers' metadata says. */
export async function partitionCount(kafka: Kafka, topic: string): Promise<number> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const { topics } = await admin.fetchTopicMetadata({ topics: [topic] });
    const n = topics[0]?.partitions.length ?? 0;
    if (n === 0) throw new Error(`topic ${topic} has no partitions in the metadata`);
    return n;
  } finally {
    await admin.disconnect();
  }
}

/** Consumer lag of a group on a topic: high watermark minus committed offset, summed over partitions. */
export async function groupLag(kafka: Kafka, groupId: string, topic: string): Promise<number> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const [ends, committed] = await Promise.all([
      admin.fetchTopicOffsets(topic),
      admin.fetchOffsets({ groupId, topics: [topic] }),
    ]);
    const done = new Map(committed[0]?.partitions.map((p) => [p.partition, Number(p.offset)]) ?? []);
    let lag = 0;
    for (const end of ends) {
      const high = Number(end.high);
      const at = done.get(end.partition) ?? -1;
      lag += at < 0 ? high - Number(end.low) : Math.max(0, high - at);
    }
    return lag;
  } finally {
    await admin.disconnect();
  }
}
