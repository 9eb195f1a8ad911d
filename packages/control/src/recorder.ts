/**
 * Records the control log's history in ClickHouse. One consumer group, so one active member (the log has one
 * partition). Per batch, in this order:
 *   1. decode every record;
 *   2. write the valid changes: policy → policy_versions, auto_reload → credit_auto_reload (version = offset + 1,
 *      created_at = the change's `at`, created_by = its actor), and every change → control_changes;
 *   3. dead-letter the invalid records that control_rejects does not hold yet (usage.dlq.v1, with dlq.source.*
 *      headers), then write their control_rejects rows;
 *   4. commit the offset (the batch consumer does, once this handler has returned).
 * A redelivery (crash before 4) or a replay (offsets reset, a new group) writes the same rows again, and every
 * table is a ReplacingMergeTree on its version read with FINAL (or argMax), so nothing counts twice; a reject is
 * sent again only if the crash fell between its send and its row. Only the recorder dead-letters: followers skip.
 */
import {
  type ClickHouseClient,
  chDateTime,
  deadLetteredVersions,
  insertAutoReloads,
  insertControlChanges,
  insertControlRejects,
  insertPolicyVersions,
} from "@usage/clickhouse";
import {
  type BatchConsumer,
  type ConsumedBatch,
  createBatchConsumer,
  createProducer,
  deadLetterMessage,
  type Kafka,
  type KafkaMessage,
  type Producer,
  TOPICS,
} from "@usage/kafka";
import type { Logger } from "@usage/runtime";
import { type Change, CONTROL_TOPIC, decodeRecord, encodeChange, versionOfOffset } from "./changes.js";

export interface ControlRecorder {
  start(): Promise<void>;
  stop(): Promise<void>;
  isHealthy(): boolean;
  /** Invalid records this recorder has read (a redelivered one counts again). */
  invalidCount(): number;
  readonly groupId: string;
}

export interface ControlRecorderDeps {
  kafka: Kafka;
  clickhouse: ClickHouseClient;
  logger: Logger;
  groupId: string;
  onFatal?: (err: Error) => void;
}

interface Reject {
  message: KafkaMessage;
  version: number;
  reason: "invalid_encoding" | "invalid_field";
  field?: string;
  text: string;
}

export function createControlRecorder(deps: ControlRecorderDeps): ControlRecorder {
  const log = deps.logger.child({ component: "control-recorder", group: deps.groupId });
  let invalid = 0;
  let producer: Producer | undefined;
  let consumer: BatchConsumer | undefined;

  async function record(batch: ConsumedBatch): Promise<void> {
    const changes: { change: Change; version: number; key: string }[] = [];
    const rejects: Reject[] = [];
    for (const message of batch.messages) {
      const version = versionOfOffset(message.offset);
      const decoded = decodeRecord(message.key, message.value);
      if (decoded.ok) {
        changes.push({ change: decoded.change, version, key: message.key!.toString("utf8") });
      } else {
        invalid++;
        log.error(
          { version, key: message.key?.toString("utf8"), reason: decoded.reason, field: decoded.field },
          `invalid control record: ${decoded.message}`,
        );
        rejects.push({ message, version, reason: decoded.reason, field: decoded.field, text: decoded.message });
      }
    }

    await Promise.all([
      insertPolicyVersions(
        deps.clickhouse,
        changes.flatMap(({ change, version }) =>
          change.kind === "policy"
            ? [
                {
                  org_id: change.org_id,
                  version,
                  policy: JSON.stringify(change.policy),
                  created_at: chDateTime(Date.parse(change.at)),
                  created_by: change.actor,
                },
              ]
            : [],
        ),
      ),
      insertAutoReloads(
        deps.clickhouse,
        changes.flatMap(({ change, version }) =>
          change.kind === "auto_reload"
            ? [
                {
                  org_id: change.org_id,
                  version,
                  settings: JSON.stringify(change.settings),
                  created_at: chDateTime(Date.parse(change.at)),
                  created_by: change.actor,
                },
              ]
            : [],
        ),
      ),
      insertControlChanges(
        deps.clickhouse,
        changes.map(({ change, version, key }) => ({
          version,
          org_id: change.org_id,
          kind: change.kind,
          key,
          change: encodeChange(change),
          actor: change.actor,
          at: chDateTime(Date.parse(change.at)),
        })),
      ),
    ]);
    await batch.heartbeat();

    let sent = 0;
    if (rejects.length > 0) {
      const done = await deadLetteredVersions(
        deps.clickhouse,
        rejects.map((r) => r.version),
      );
      const due = rejects.filter((r) => !done.has(r.version));
      // A member that lost the partition leaves the dead-lettering to the next owner.
      if (due.length > 0 && batch.isRunning()) {
        await producer!.send({
          topic: TOPICS.dlq,
          acks: -1,
          messages: due.map((r) =>
            deadLetterMessage({
              value: r.message.value,
              key: r.message.key,
              code: r.reason,
              message: r.text,
              field: r.field,
              source: { topic: batch.topic, partition: batch.partition, offset: r.message.offset },
            }),
          ),
        });
        const now = chDateTime(Date.now());
        await insertControlRejects(
          deps.clickhouse,
          due.map((r) => ({
            version: r.version,
            key: r.message.key?.toString("utf8") ?? "",
            reason: r.reason,
            field: r.field ?? "",
            message: r.text,
            dead_lettered_at: now,
          })),
        );
        sent = due.length;
      }
    }
    log.info(
      { records: batch.messages.length, changes: changes.length, rejects: rejects.length, dead_lettered: sent },
      "control batch recorded",
    );
  }

  return {
    groupId: deps.groupId,
    async start() {
      if (consumer) throw new Error("control recorder already started");
      producer = createProducer(deps.kafka);
      await producer.connect();
      consumer = createBatchConsumer({
        kafka: deps.kafka,
        groupId: deps.groupId,
        topics: [CONTROL_TOPIC],
        logger: deps.logger,
        commit: "after-batch",
        fromBeginning: true,
        onFatal: deps.onFatal,
      });
      await consumer.start(record);
    },
    async stop() {
      await consumer?.stop();
      await producer?.disconnect();
    },
    isHealthy: () => consumer?.isHealthy() ?? false,
    invalidCount: () => invalid,
  };
}
