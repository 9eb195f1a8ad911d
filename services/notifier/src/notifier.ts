/**
 * The notifier: spend.signals.v1 → alerts (ClickHouse) → spend.alerts.v1, and signed webhooks from the alerts table.
 * Any number of members run in one consumer group, in one process or many (service.ts builds one per call); each
 * creates the alerts of the partitions it is assigned and delivers the alerts of the orgs those partitions carry.
 *
 * Order of work for one batch (one partition of spend.signals.v1; every signal of an org is on one partition):
 *   1. decode and validate the signals (an unreadable one is logged with its offset, counted, and set aside for
 *      usage.dlq.v1 in step 6; it creates nothing and is never retried);
 *   2. derive each signal's alert id (alert.ts); look the ids up in memory (the alerts of recent periods, loaded
 *      at start and kept since) and, when any is not there, in the alerts table (in the batch's orgs and periods:
 *      the alerts with the batch's ids and every alert of the batch's entities, whose thresholds step 3 compares),
 *      so no alert is created without the table having been asked;
 *   3. decide per signal, in offset order: its alert exists → skip (duplicate), except when that alert was created
 *      by this very message in this consumer group and alert_publications has no record of it, which means a
 *      redelivery after a crash between steps 4 and 5b → publish it again; a threshold at or below one already
 *      alerted for the entity in the period → skip (passed, SPEC §7); else a new alert, state pending, due at once;
 *   4. insert the new alerts into alerts;
 *   5. publish the new (and re-published) alerts to spend.alerts.v1, keyed by org_id, acked by all replicas;
 *   5b. record them in alert_publications;
 *   6. send the unreadable records to usage.dlq.v1 (original bytes, `dlq.reason` invalid_encoding or invalid_field,
 *      `dlq.source.*`), acked by all replicas;
 *   7. the consumer commits the offset when the handler returns; the delivery loop is kicked.
 * The alert row written in 4 is the dedup record: no id is claimed before its alert is stored, and memory learns of
 * an alert only after its insert. A crash before 4 redelivers the batch, which creates the same alerts (same ids).
 * A crash between 4 and 5b redelivers it too: its alerts are found, created by these very messages, not recorded
 * as published, and published again (same alert ids; consumers of spend.alerts.v1 deduplicate on alert_id, as
 * webhook receivers do). A replay — a new consumer group from offset 0, or this group's offsets reset — finds every
 * alert, created by another group's messages or already recorded as published: nothing is created, published or
 * delivered again. The dead letters go last so that a batch retried through a ClickHouse outage does not send them
 * at every try; a crash between 6 and 7 sends them again on redelivery (the same `dlq.source.*` headers tell the
 * copies apart).
 *
 * Webhook delivery never runs in the batch: see delivery.ts. The consumer's assignment says which orgs this member's
 * delivery loop serves (ownership.ts); every change of assignment kicks a tick, so a member that gets a departed
 * member's partitions takes over its pending deliveries within a kick delay (250 ms).
 */
import {
  type AlertIdentity,
  type AlertRow,
  alertIdentities,
  alertIdentitiesSince,
  alertsByIds,
  type ClickHouseClient,
  chDateTime,
  insertAlertPublications,
  insertAlerts,
  publishedAlertIds,
} from "@usage/clickhouse";
import { type CapSignal, decodeSignal } from "@usage/events";
import {
  type BatchConsumer,
  CONSUMER_SESSION_TIMEOUT_MS,
  type ConsumedBatch,
  createBatchConsumer,
  createProducer,
  deadLetterMessage,
  type Kafka,
  type Message,
  type Producer,
  partitionCount,
  TOPICS,
} from "@usage/kafka";
import { Money } from "@usage/money";
import { monthStart, periodOf } from "@usage/periods";
import type { Logger } from "@usage/runtime";
import type { SecretBox } from "@usage/webhooks";
import { alertId, entityKey, newAlertRow } from "./alert.js";
import type { RetryPolicy } from "./backoff.js";
import { createDeliveryLoop, type DeliveryLoop } from "./delivery.js";
import type { NotifierMetrics } from "./metrics.js";
import { createOwnershipTracker } from "./ownership.js";

export interface NotifierDeps {
  kafka: Kafka;
  clickhouse: ClickHouseClient;
  logger: Logger;
  metrics: NotifierMetrics;
  groupId: string;
  retry: RetryPolicy;
  deliveryTimeoutMs: number;
  /** USAGE_WEBHOOK_ALLOW_PRIVATE: deliver to plain http and local addresses (development and tests only). */
  allowPrivateWebhooks?: boolean;
  /** Opens the sealed webhook secrets (USAGE_SECRET_KEY). */
  secrets: SecretBox;
  pollMs: number;
  now?: () => number;
  random?: () => number;
  fetch?: typeof fetch;
  onFatal?: (err: Error) => void;
  /** This member's name among the members of one process (logs, the `due` gauge). Default "0". */
  member?: string;
}

export interface Notifier {
  start(): Promise<void>;
  /** Stops intake, waits for the batch and the delivery tick in progress, then the producer. May run twice. */
  stop(): Promise<void>;
  isHealthy(): boolean;
  consumer: BatchConsumer;
  delivery: DeliveryLoop;
}

/** Per org and period: each known alert's source (`group/partition/offset`) and the highest threshold per entity. */
interface Known {
  sources: Map<string, string>;
  marks: Map<string, string>;
}

const pairKey = (orgId: string, period: string) => `${orgId}\u0000${period}`;

/** How much a fetch of spend.signals.v1 waits for, and for how long at most (see the consumer below). */
const NOTIFIER_FETCH_MIN_BYTES = 64 * 1024;
const NOTIFIER_FETCH_MAX_WAIT_MS = 250;

export function createNotifier(deps: NotifierDeps): Notifier {
  const member = deps.member ?? "0";
  const log = deps.logger.child({ service: "notifier", member });
  const now = deps.now ?? Date.now;
  const known = new Map<string, Known>();
  let producer: Producer | undefined;
  let started = false;
  let stopping: Promise<void> | undefined;

  const consumer: BatchConsumer = createBatchConsumer({
    kafka: deps.kafka,
    groupId: deps.groupId,
    topics: [TOPICS.signals],
    logger: log,
    commit: "after-batch",
    // A batch costs its engine calls (the alerts lookup, two inserts) whatever it carries, and signals come a few at
    // a time: the broker holds a fetch until 64 KiB or 250 ms, so a member makes at most four batches a second
    // instead of one per signal or two. An alert is created up to 250 ms later; the cap signal it follows
    // (what gates spend) is not delayed.
    minBytes: NOTIFIER_FETCH_MIN_BYTES,
    maxWaitTimeMs: NOTIFIER_FETCH_MAX_WAIT_MS,
    onFatal: deps.onFatal,
    onAssignment(assignment) {
      ownership.assigned(assignment);
      log.info({ partitions: assignment.get(TOPICS.signals) ?? [] }, "spend.signals.v1 partitions assigned");
      delivery.kick();
    },
  });
  const ownership = createOwnershipTracker({
    topic: TOPICS.signals,
    heartbeatAgeMs: () => consumer.heartbeatAgeMs(),
    leaseMs: CONSUMER_SESSION_TIMEOUT_MS / 2,
    // Outcomes of POSTs made under the lease are stored until 3/4 of a session timeout after the last answer: the
    // last quarter (2.5 s) is for the insert to land before the coordinator can evict this member.
    writeWindowMs: (CONSUMER_SESSION_TIMEOUT_MS * 3) / 4,
    partitionCount: () => partitionCount(deps.kafka, TOPICS.signals),
  });
  const delivery = createDeliveryLoop({
    clickhouse: deps.clickhouse,
    logger: log,
    metrics: deps.metrics,
    retry: deps.retry,
    timeoutMs: deps.deliveryTimeoutMs,
    allowPrivate: deps.allowPrivateWebhooks ?? false,
    secrets: deps.secrets,
    pollMs: deps.pollMs,
    now,
    random: deps.random,
    fetch: deps.fetch,
    ownership: () => ownership.current(),
    member,
  });

  function remember(
    a: Pick<AlertIdentity, "alert_id" | "org_id" | "period" | "entity_type" | "entity_id" | "threshold">,
    source: string,
  ) {
    const key = pairKey(a.org_id, a.period);
    let k = known.get(key);
    if (!k) {
      k = { sources: new Map(), marks: new Map() };
      known.set(key, k);
    }
    k.sources.set(a.alert_id, source);
    if (a.threshold !== null) {
      const entity = entityKey({ type: a.entity_type, id: a.entity_id });
      const mark = k.marks.get(entity);
      if (mark === undefined || new Money(a.threshold).gt(mark)) k.marks.set(entity, a.threshold);
    }
  }
  const sourceOf = (a: Pick<AlertIdentity, "source_group" | "source_partition" | "source_offset">) =>
    `${a.source_group}/${a.source_partition}/${a.source_offset}`;

  async function handle(batch: ConsumedBatch): Promise<void> {
    const signals: { signal: CapSignal; offset: string; id: string }[] = [];
    const dead: Message[] = [];
    for (const m of batch.messages) {
      const d = decodeSignal(m.value);
      if (!d.ok) {
        log.error(
          { partition: batch.partition, offset: m.offset, signal_id: d.signalId, code: d.code, reason: d.message },
          "unreadable cap signal sent to usage.dlq.v1 and skipped",
        );
        dead.push(
          deadLetterMessage({
            key: m.key,
            value: m.value,
            code: d.code,
            message: d.message,
            field: d.field,
            source: { topic: batch.topic, partition: batch.partition, offset: m.offset },
          }),
        );
        continue;
      }
      signals.push({ signal: d.signal, offset: m.offset, id: alertId(d.signal) });
    }
    const invalid = dead.length;

    // Step 2: the table is asked whenever memory does not already know every alert of the batch: for the batch's
    // alert ids and the alerts of its entities (their marks), which is all step 3 reads; not for every alert of its
    // orgs and periods, which grows with the month.
    const pairs = new Map(signals.map((s) => [pairKey(s.signal.org_id, s.signal.period), s.signal]));
    const unknown = signals.some((s) => !known.get(pairKey(s.signal.org_id, s.signal.period))?.sources.has(s.id));
    if (unknown) {
      const orgIds = [...new Set([...pairs.values()].map((s) => s.org_id))];
      const periods = [...new Set([...pairs.values()].map((s) => s.period))];
      const scope = {
        alertIds: signals.map((s) => s.id),
        orgEntity: signals.some((s) => s.signal.entity.type === "org"),
        users: [...new Set(signals.filter((s) => s.signal.entity.type === "user").map((s) => s.signal.entity.id))],
      };
      for (const a of await alertIdentities(deps.clickhouse, orgIds, periods, scope)) remember(a, sourceOf(a));
    }

    // Step 3, against a working copy: memory learns of new alerts only once they are stored.
    const fresh: AlertRow[] = [];
    const freshSource = new Map<string, string>();
    const freshMarks = new Map<string, string>();
    const republish = new Set<string>();
    let duplicates = 0;
    let passed = 0;
    for (const { signal, offset, id } of signals) {
      const source = `${deps.groupId}/${batch.partition}/${offset}`;
      const k = known.get(pairKey(signal.org_id, signal.period));
      const existing = k?.sources.get(id) ?? freshSource.get(id);
      if (existing !== undefined) {
        if (existing === source) republish.add(id);
        else duplicates++;
        continue;
      }
      const markKey = `${pairKey(signal.org_id, signal.period)}\u0000${entityKey(signal.entity)}`;
      const mark = freshMarks.get(markKey) ?? k?.marks.get(entityKey(signal.entity));
      if (signal.kind === "threshold" && mark !== undefined && new Money(mark).gte(signal.threshold!)) {
        passed++;
        log.debug(
          { signal_id: signal.signal_id, alert_id: id, threshold: signal.threshold, alerted: mark },
          "threshold already passed in this period",
        );
        continue;
      }
      const row = newAlertRow(signal, { group: deps.groupId, partition: batch.partition, offset }, now());
      fresh.push(row);
      freshSource.set(id, source);
      if (row.threshold !== null && (mark === undefined || new Money(row.threshold).gt(mark))) {
        freshMarks.set(markKey, row.threshold);
      }
    }

    // Step 4.
    await insertAlerts(deps.clickhouse, fresh);
    for (const row of fresh) remember(row, freshSource.get(row.alert_id)!);

    // Step 5: the new alerts, and those of this very message never recorded as published (a crash before 5b).
    const rowsOut: AlertRow[] = [...fresh];
    let replayed = 0;
    if (republish.size > 0) {
      const orgIds = [...new Set(signals.map((s) => s.signal.org_id))];
      const published = await publishedAlertIds(deps.clickhouse, orgIds, [...republish]);
      const ids = [...republish].filter((id) => !published.has(id));
      replayed = republish.size - ids.length;
      if (ids.length > 0) {
        log.warn({ partition: batch.partition, alert_ids: ids }, "publishing alerts again after an interrupted batch");
        rowsOut.push(...(await alertsByIds(deps.clickhouse, orgIds, ids)));
      }
      duplicates += replayed;
    }
    const messages: Message[] = rowsOut.map(alertMessage);
    if (messages.length > 0) {
      await producer!.send({ topic: TOPICS.alerts, messages, acks: -1 });
      // Step 5b.
      const at = chDateTime(now());
      await insertAlertPublications(
        deps.clickhouse,
        rowsOut.map((r) => ({ org_id: r.org_id, alert_id: r.alert_id, published_at: at })),
      );
    }

    // Step 6.
    if (dead.length > 0) await producer!.send({ topic: TOPICS.dlq, messages: dead, acks: -1 });

    deps.metrics.skipped.inc({ reason: "invalid" }, invalid);
    for (const row of fresh) deps.metrics.created.inc({ kind: row.kind });
    deps.metrics.skipped.inc({ reason: "duplicate" }, duplicates);
    deps.metrics.skipped.inc({ reason: "passed" }, passed);
    deps.metrics.published.inc(messages.length);
    deps.metrics.lag.set(
      { partition: String(batch.partition) },
      Number(BigInt(batch.highWatermark) - BigInt(batch.nextOffset)),
    );
    if (fresh.length > 0) delivery.kick();
    log.info(
      {
        partition: batch.partition,
        signals: batch.messages.length,
        created: fresh.length,
        duplicates,
        passed,
        invalid,
        republished: republish.size - replayed,
        alert_ids: fresh.map((r) => r.alert_id),
      },
      "cap signals processed",
    );
  }

  return {
    consumer,
    delivery,
    async start() {
      producer = createProducer(deps.kafka);
      await producer.connect();
      // The alerts of this period and the last are kept in memory; older ones are asked of the table when a replay
      // brings their signals back.
      const from = periodOf(monthStart(now()) - 1);
      const loaded = await alertIdentitiesSince(deps.clickhouse, from);
      for (const a of loaded) remember(a, sourceOf(a));
      delivery.start();
      await consumer.start(handle);
      started = true;
      log.info({ group: deps.groupId, alerts_loaded: loaded.length, since: from }, "notifier started");
    },
    stop() {
      stopping ??= (async () => {
        await consumer.stop();
        await delivery.stop();
        await producer?.disconnect();
        started = false;
      })();
      return stopping;
    },
    isHealthy: () => started && consumer.isHealthy(),
  };
}

function alertMessage(row: AlertRow): Message {
  return { key: row.org_id, value: row.payload, headers: { alert_id: row.alert_id } };
}
