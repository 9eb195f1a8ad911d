/**
 * One aggregator member: usage.priced.v1 → ClickHouse (usage_events, spend_daily), running spend per org and user
 * for the partitions this member owns, cap evaluation, cap signals (spend.signals.v1 + cap_signals), and the running
 * totals every API instance reads (spend.totals.v1). Any number of members run in one consumer group, in one process
 * or many (SPEC §12).
 *
 * State is owned per partition. Every topic is keyed by org_id, so a partition of usage.priced.v1 holds complete
 * orgs. When the group assigns a partition, the member loads that partition's state (partition.ts: the orgs whose
 * key the default partitioner sends there, their current-month spend, seat tiers, credits and what was signalled,
 * and their policies from the control plane) and emits any signal a previous owner did not get out; when the
 * partition is revoked (every rebalance revokes everything: eager protocol) the state is dropped, and the next
 * assignment loads it again from ClickHouse, which then holds everything any earlier owner wrote.
 *
 * Batches of one partition run one at a time, in offset order, with that partition's loads, control changes and
 * forecasts (`exclusive`); batches of different partitions run side by side (kafkajs partitionsConsumedConcurrently),
 * since their states share nothing and every write below is per org.
 *
 * Order of work for one batch (steps.ts; one partition, in offset order):
 *   1. decode: a record that does not decode as a priced event, or whose amounts or ids are unusable, goes to
 *      usage.dlq.v1 with its original bytes and reason (acked by all replicas first) and is counted; ids repeated in
 *      the batch are dropped;
 *   2. dedup: ask usage_events which of the batch's ids it already holds, and drop those (counted); only the ids the
 *      partition's Bloom filter of stored ids cannot rule out are asked (partition.ts SeenIds; ids enter the filter
 *      before their insert, and a "maybe" is always confirmed in ClickHouse, so the filter never claims an id);
 *   3. record: OWNERSHIP CHECK, then orgs (new ones), usage_events — every row tagged with its batch's deterministic
 *      identity (topic:partition:first-last offsets) as batch_id. The batches of the partitions that reach this step
 *      together (one fetch) share each insert: one per table, with their identities, sorted, as insert deduplication
 *      token (steps.ts writeEvents); a failed insert fails every batch in it;
 *   4. account: only now add the spend to the partition's in-memory totals;
 *   5. evaluate caps and credits for the orgs and users touched;
 *   6. emit: auto-reloads to credit_ledger, then signals to spend.signals.v1;
 *   7. OWNERSHIP CHECK, then the batch's spend_daily rollup (tagged and grouped as in 3: steps.ts writeRollups),
 *      then the touched orgs' and users' totals to spend.totals.v1;
 *   8. the signals of 6 recorded in cap_signals (after the totals, so that an allowance does not wait for it);
 *   9. the consumer commits the offset once the handler returns (only while it still owns the partition).
 * The dedup record IS the usage_events row written in 3: no id is claimed before its event is stored (OpenMeter
 * #5118). A crash anywhere before 9 redelivers the batch: step 2 drops what step 3 stored. A batch whose usage_events
 * rows landed and whose rollup did not (a crash or failure between 3 and 7) is rebuilt from usage_events by the
 * partition's next load, before the load reads spend_daily, and once the rollup inserts the server is still running
 * have ended (one whose client gave up may yet land: a rebuild beside it would count the batch twice). The rollup
 * waits for step 7 so that the signals do not wait for its insert (what they report is in usage_events by then); the
 * totals do, so that a reader who sees a batch in the totals finds it in every figure read from spend_daily
 * (analytics, exports, invoices) too. A failure anywhere in the batch drops the partition's state, so it is loaded
 * again before the redelivery; a load takes cap_signals as what was sent and emits again any signal its evaluation
 * finds missing there (a crash or failure between 6 and 8). Signal ids and reload entry ids are derived from what
 * they are, so anything re-emitted is the same signal.
 *
 * Fencing: why a member that lost its partition cannot change a total, a cap status or an alert count.
 *   - Totals are sums over usage_events and spend_daily. The inserts of steps 3 and 7 are the only writes that add
 *     to a sum and cannot be undone. Right before each the member confirms with the group coordinator that it is
 *     still a member of the generation that assigned it the partition (ConsumedBatch.ensureOwned: a heartbeat, which
 *     an evicted or rebalanced member gets refused, plus this member's own view of the assignment). A successful
 *     heartbeat at time t means the coordinator cannot hand the partition to another member before t + session
 *     timeout (10 s; a rebalance waits rebalance timeout, 15 s, for this member to rejoin), and ensureOwned passes
 *     only if the last request the coordinator answered for this member (its join or a heartbeat, under the member
 *     id of its last join) was sent at most heartbeatInterval + 1 s (2 s) before: the session runs from when the
 *     coordinator received it, and kafkajs skips a heartbeat answered less than heartbeatInterval ago or shares one
 *     in flight, whose answer a paused process may read long after it was given (an older confirmation makes the
 *     check ask again, an interval later, up to three times: a live member is confirmed afresh, an evicted one is
 *     refused). So the inserts land before any other member can own the partition (and load it, which would rebuild
 *     a rollup missing then), unless this process is frozen for more than ~8 s between ensureOwned returning and the
 *     insert reaching ClickHouse — the bound of this design, stated
 *     rather than hidden. A member that stalled longer (GC, SIGSTOP, a test's stall) before step 3 or 7 finds out at
 *     the check and abandons the batch, which the new owner processes from the committed offset (after 3, with the
 *     batch's rollup rebuilt by its load).
 *   - A redelivered batch (a crash between step 3 and the commit) finds its events in usage_events at step 2 and
 *     writes none of them again; a group written again with the same batches carries the same insert deduplication
 *     token, and ClickHouse drops the repeat too. Sharing an insert across partitions changes none of this: each
 *     batch's ownership was confirmed before it was handed over, at most a few inserts earlier (one group of a step
 *     runs at a time), which is well inside the bound above.
 *   - Everything else a member writes is idempotent by identity, whoever writes it: signals (cap_signals is a
 *     ReplacingMergeTree on a signal id derived from entity, period, threshold or policy version; the notifier
 *     makes one alert per id), reload entries (entry id from the reload number), orgs rows. A zombie can repeat them,
 *     not add to them. Totals records are checked for ownership again before they are published (step 7), so a
 *     reader never sees a stale owner's figures after the new owner's.
 *   - Control changes (policies, auto-reload, purchases) are applied by whichever member owns the org's partition;
 *     what they emit is signals and reload entries, idempotent as above.
 *   - Offsets: the consumer commits only while the member owns the partition (kafkajs refuses a commit from an
 *     old generation), and a commit lost that way only means a redelivery, which step 2 makes harmless.
 */
import {
  type ClickHouseClient,
  type CreditLedgerRow,
  creditSummaries,
  dailyNetSpend,
  firstUsageBetween,
  insertCapSignals,
  insertCreditEntries,
  reloadedInPeriod,
} from "@usage/clickhouse";
import { type OrgTotals, type PricedUsageEvent, type SeatTier, type TotalsRecord, totalsKey } from "@usage/events";
import {
  type BatchConsumer,
  type ConsumedBatch,
  createBatchConsumer,
  createProducer,
  type Kafka,
  type Message,
  OwnershipLost,
  type Producer,
  partitionOf,
  TOPICS,
} from "@usage/kafka";
import { dayOf, monthStart, nextMonthStart, periodOf } from "@usage/periods";
import { type Allowance, type AutoReload, type CapsReport, type Policy, productAllowed } from "@usage/policy";
import { createGroupCommit, type Logger } from "@usage/runtime";
import { accountFromSummary, type CreditView, creditView } from "./credits.js";
import { forecastSignals } from "./forecasts.js";
import type { AggregatorMetrics } from "./metrics.js";
import { applyTerms, loadPartition, type PartitionState } from "./partition.js";
import { type CapSignal, signalId, signalMessage, signalRow, toSignal } from "./signals.js";
import {
  accountStep,
  type BatchWrite,
  decodeStep,
  dedupStep,
  evaluateStep,
  recordRows,
  stepCredits,
  writeEvents,
  writeRollups,
} from "./steps.js";

/** What the aggregator needs of the control plane (the process's follower of usage.control.v1). */
export interface ControlView {
  policy(orgId: string): { policy: Policy; version: number } | undefined;
  autoReload(orgId: string): { settings: AutoReload; version: number } | undefined;
  contract(
    orgId: string,
  ): { contract: { plan: "sales_assisted" | "self_serve"; discount_pct: string }; version: number } | undefined;
  seats(orgId: string): { user_id: string; tier: SeatTier; effective_at: string }[];
  limitRequests(orgId: string): {
    request_id: string;
    user_id: string;
    status: string;
    requested_at: string;
    note: string | null;
  }[];
  /** Orgs with any control change (a policy, a purchase…), used or not. */
  orgIds(): string[];
}

/** A change read from the control plane, in log order. */
export interface ControlChange {
  kind: string;
  org_id: string;
  version: number;
}

export interface AggregatorDeps {
  kafka: Kafka;
  clickhouse: ClickHouseClient;
  logger: Logger;
  metrics: AggregatorMetrics;
  groupId: string;
  backfillDays: number;
  control: ControlView;
  /** This member's index in its process (logs). */
  member?: number;
  now?: () => number;
  /** How often pending limit requests are checked for the day's digest (default 60 s; a request filed is at once). */
  digestMs?: number;
  /** How often forecasts run (forecasts.ts). 0 or unset disables them. */
  forecastMs?: number;
  onFatal?: (err: Error) => void;
  /** Called after each recorded batch (benchmarks and tests measure freshness with it). */
  onRecorded?: (events: PricedUsageEvent[]) => void;
}

export interface Aggregator {
  start(): Promise<void>;
  stop(): Promise<void>;
  isHealthy(): boolean;
  isReady(): boolean;
  consumer: BatchConsumer;
  /** Applies a control change to the org's partition state when this member owns it (called in log order). */
  onControlChange(change: ControlChange): Promise<void>;
  /** Partitions of usage.priced.v1 whose state this member holds now. */
  ownedPartitions(): number[];
  /** Answers for an org this member owns (undefined otherwise): the API reads spend.totals.v1 instead. */
  caps(orgId: string): CapsReport | undefined;
  allowance(orgId: string, userId: string): Allowance | undefined;
  credits(orgId: string): CreditView | undefined;
  /**
   * TEST HOOK: the next batch with events to record waits this long right before one of its ownership checks: the
   * one before its usage_events insert (step 3, "events", the default) or the one before its rollup (step 7,
   * "rollup"). `onStall` is told when the wait starts and ends (the fault suite freezes the member's connections
   * meanwhile), then how the batch ended: "abandoned" at an ownership check, "recorded", or "failed" otherwise.
   */
  stallNextBatch(ms: number, onStall?: (phase: StallPhase) => void, before?: "events" | "rollup"): void;
}

/** What the stall test hook reports of the stalled batch, in order. */
export type StallPhase = "start" | "end" | "abandoned" | "recorded" | "failed";

/** The steps of `record` whose milliseconds each "batch recorded" log line carries, in order. */
const STEP_NAMES = [
  "dedup",
  "owned",
  "record",
  "evaluate",
  "emit",
  "owned_again",
  "rollup",
  "totals",
  "signals",
] as const;

export function createAggregator(deps: AggregatorDeps): Aggregator {
  const log = deps.logger.child({ service: "aggregator", member: deps.member ?? 0 });
  const now = deps.now ?? Date.now;
  const partitions = new Map<number, PartitionState>();
  let partitionCount = 0;
  let ready = false;
  let producer: Producer | undefined;
  let forecaster: NodeJS.Timeout | undefined;
  let digester: NodeJS.Timeout | undefined;
  let stall = 0;
  let stallBefore: "events" | "rollup" = "events";
  let onStall: ((phase: StallPhase) => void) | undefined;
  let stalled: ConsumedBatch | undefined;
  // Batches, loads, control changes and forecasts touch a partition's state: on one partition they run one at a
  // time, in the order they came; different partitions run side by side (their states share nothing), so one
  // partition's batch does not wait behind another's inserts.
  // Step 3's and step 7's inserts, one per table for the batches of all partitions that reach the step together
  // (steps.ts writeEvents, writeRollups).
  const writeBatchEvents = createGroupCommit((writes: BatchWrite[]) => writeEvents(deps.clickhouse, writes));
  const writeBatchRollups = createGroupCommit((writes: BatchWrite[]) => writeRollups(deps.clickhouse, writes));
  const queues = new Map<number, Promise<unknown>>();
  const exclusive = <T>(partition: number, work: () => Promise<T>): Promise<T> => {
    const run = (queues.get(partition) ?? Promise.resolve()).then(work, work);
    const settled = run.catch(() => undefined);
    queues.set(partition, settled);
    void settled.then(() => {
      if (queues.get(partition) === settled) queues.delete(partition);
    });
    return run;
  };

  const consumer = createBatchConsumer({
    kafka: deps.kafka,
    groupId: deps.groupId,
    topics: [TOPICS.priced],
    logger: log,
    commit: "after-batch",
    // Each batch costs two inserts (two new parts) whatever its size: fetch generously.
    maxBytesPerPartition: 4 * 1024 * 1024,
    // Partitions are handled side by side (their states are independent; see `exclusive`).
    partitionsConsumedConcurrently: 4,
    // A fetch waits for 128 KiB or 50 ms: each batch costs new parts in ClickHouse whatever its size.
    minBytes: 128 * 1024,
    maxWaitTimeMs: 50,
    onFatal: deps.onFatal,
    onAssignment: (assignment, generation) => {
      const mine = new Set(assignment.get(TOPICS.priced) ?? []);
      // Every rebalance revokes everything: whatever is held was loaded in an older generation.
      for (const [p, s] of partitions) {
        if (!mine.has(p) || s.generation !== generation) drop(p);
      }
      for (const p of mine) void exclusive(p, () => ensureLoaded(p, generation)).catch(loadFailed(p));
    },
  });

  const drop = (p: number) => {
    partitions.get(p)?.seen.stop();
    partitions.delete(p);
  };

  const loadFailed = (p: number) => (err: unknown) =>
    log.warn({ err, partition: p }, "partition state not loaded; the next batch of the partition loads it");

  /** The partition's state, loaded from ClickHouse for this generation when it is not held yet. */
  async function ensureLoaded(p: number, generation: number): Promise<PartitionState | undefined> {
    const held = partitions.get(p);
    if (held && held.generation === generation) return held;
    if (!(consumer.assignment().get(TOPICS.priced) ?? []).includes(p)) return undefined;
    const t = performance.now();
    const loaded = await loadPartition({
      clickhouse: deps.clickhouse,
      control: deps.control,
      partition: p,
      partitions: partitionCount,
      generation,
      now,
      backfillDays: deps.backfillDays,
      logger: log,
      onRollupRebuilt: () => deps.metrics.rollupsRebuilt.inc(),
    });
    // Anything a previous owner computed but did not get out (a crash, a revoked batch), and totals as loaded.
    // Today's limit-requests digests too: a restart or a new owner sends them again and the notifier keeps one.
    loaded.signals.push(...digestSignals(loaded.state, loaded.state.spend.orgIds(), now()));
    await emit(loaded.state, loaded.signals, loaded.entries);
    await publishTotals(loaded.state, loaded.state.spend.orgIds(), "0");
    partitions.set(p, loaded.state);
    log.info(
      {
        partition: p,
        generation,
        orgs: loaded.state.spend.orgIds().length,
        signals: loaded.signals.length,
        ms: Math.round(performance.now() - t),
      },
      "partition state loaded",
    );
    return loaded.state;
  }

  async function emit(part: PartitionState, signals: CapSignal[], entries: CreditLedgerRow[] = []): Promise<void> {
    await announce(signals, entries);
    await recordSignals(part, signals);
  }

  /** Auto-reloads to credit_ledger, then the signals to spend.signals.v1. */
  async function announce(signals: CapSignal[], entries: CreditLedgerRow[]): Promise<void> {
    // Reloads first: a signal never announces a reload that is not recorded.
    if (entries.length > 0) {
      await insertCreditEntries(deps.clickhouse, entries);
      log.info({ reloads: entries.map((e) => `${e.org_id} #${e.sequence} +${e.amount}`) }, "auto-reload recorded");
    }
    if (signals.length === 0) return;
    await producer!.send({ topic: TOPICS.signals, messages: signals.map(signalMessage), acks: -1 });
  }

  /**
   * The signals announced, in cap_signals. Always after `announce`: cap_signals is what a load takes as sent, so a
   * signal that never got out must not be in it; the next load evaluates again and emits it under the same id.
   */
  async function recordSignals(part: PartitionState, signals: CapSignal[]): Promise<void> {
    if (signals.length === 0) return;
    await insertCapSignals(deps.clickhouse, signals.map(signalRow));
    for (const s of signals) deps.metrics.signals.inc({ kind: s.kind });
    log.info(
      {
        partition: part.partition,
        signals: signals.map((s) => `${s.org_id}/${s.entity.type}:${s.entity.id} ${s.kind} ${s.threshold ?? ""}`),
      },
      "cap signals",
    );
  }

  /** The orgs' (and their touched users') running totals, to the same partition of spend.totals.v1. */
  async function publishTotals(
    part: PartitionState,
    orgIds: Iterable<string>,
    offset: string,
    users?: Map<string, Set<string>>,
  ): Promise<void> {
    const period = part.spend.currentPeriod();
    const at = new Date(now()).toISOString();
    const source = { partition: part.partition, offset };
    const messages: Message[] = [];
    for (const orgId of orgIds) {
      const org = part.spend.org(orgId);
      const spend = org.periods.get(period);
      const record: TotalsRecord = {
        type: "org",
        org_id: orgId,
        period,
        spend: spend ? spend.org.toFixed() : "0",
        credits: (creditView(org, period) ?? null) as OrgTotals["credits"],
        source,
        at,
      };
      messages.push({ key: totalsKey(orgId), value: JSON.stringify(record), partition: part.partition });
      const userIds = users?.get(orgId) ?? new Set([...(spend?.users.keys() ?? []), ...org.seatTiers.keys()]);
      for (const userId of userIds) {
        const u: TotalsRecord = {
          type: "user",
          org_id: orgId,
          user_id: userId,
          period,
          spend: spend?.users.get(userId)?.toFixed() ?? "0",
          seat_tier: org.seatTiers.get(userId)?.tier ?? null,
          source,
          at,
        };
        messages.push({ key: totalsKey(orgId, userId), value: JSON.stringify(u), partition: part.partition });
      }
    }
    if (messages.length === 0) return;
    await producer!.send({ topic: TOPICS.totals, messages, acks: -1 });
  }

  async function handle(batch: ConsumedBatch): Promise<void> {
    await exclusive(batch.partition, async () => {
      const started = performance.now();
      const part = await ensureLoaded(batch.partition, batch.generation);
      // Revoked meanwhile: not ours to record; the consumer resolves and commits nothing.
      if (!part) throw new OwnershipLost(batch.topic, batch.partition, "revoked before its state was loaded");
      // A month that turned is forgotten: the state holds the current month (and the next, for events ahead).
      part.spend.prune();
      try {
        await record(part, batch);
        if (stalled === batch) onStall?.("recorded");
      } catch (err) {
        // Whatever part of the batch reached ClickHouse, the partition is loaded again before the redelivery.
        drop(batch.partition);
        if (err instanceof OwnershipLost) deps.metrics.abandoned.inc();
        if (stalled === batch) onStall?.(err instanceof OwnershipLost ? "abandoned" : "failed");
        throw err;
      } finally {
        if (stalled === batch) stalled = undefined;
      }
      deps.metrics.batchSeconds.observe((performance.now() - started) / 1000);
      deps.metrics.lag.set(
        { partition: String(batch.partition) },
        Number(BigInt(batch.highWatermark) - BigInt(batch.nextOffset)),
      );
    });
  }

  /** The stall test hook, where record() calls it; a batch with nothing to record is not the one stalled. */
  async function stallHere(batch: ConsumedBatch, fresh: number): Promise<void> {
    if (stall <= 0 || fresh === 0) return;
    const ms = stall;
    stall = 0;
    log.warn({ partition: batch.partition, ms, before: stallBefore }, "TEST HOOK: stalling before an ownership check");
    stalled = batch;
    onStall?.("start");
    await new Promise((r) => setTimeout(r, ms));
    onStall?.("end");
  }

  async function record(part: PartitionState, batch: ConsumedBatch): Promise<void> {
    const started = performance.now();
    const decoded = decodeStep(batch, now);
    for (const d of decoded.rejects) {
      log.error(
        { partition: batch.partition, offset: d.offset, reason: d.code, message: d.message },
        "to usage.dlq.v1",
      );
    }
    if (decoded.dead.length > 0) await producer!.send({ topic: TOPICS.dlq, messages: decoded.dead, acks: -1 });

    const marks: number[] = [performance.now()];
    part.seen.refresh();
    const { fresh, lookedUp } = await dedupStep(deps.clickhouse, part.seen, decoded.events);
    deps.metrics.dedupLookups.inc(lookedUp);
    const duplicates = decoded.duplicates + decoded.events.length - fresh.length;
    if (stallBefore === "events") await stallHere(batch, fresh.length);
    marks.push(performance.now());
    await batch.ensureOwned();
    marks.push(performance.now());
    const recorded = recordRows(part, batch, fresh, now);
    const insertGroup = await writeBatchEvents(recorded.write);
    for (const o of recorded.write.newOrgs) part.orgs.add(o);
    marks.push(performance.now());

    const touched = accountStep(part, recorded.rows);
    const t = now();
    const signals = evaluateStep(part, touched, t);
    const credits = stepCredits(part, touched.lastEventOf.keys(), touched.lastEventOf, t);
    signals.push(...credits.signals);
    marks.push(performance.now());
    await announce(signals, credits.entries);
    marks.push(performance.now());

    if (stallBefore === "rollup") await stallHere(batch, fresh.length);
    await batch.ensureOwned();
    marks.push(performance.now());
    // Right after the check, as step 3's inserts after theirs.
    if (recorded.write.rollup.length > 0) await writeBatchRollups(recorded.write);
    marks.push(performance.now());
    await publishTotals(part, touched.users.keys(), batch.nextOffset, touched.users);
    marks.push(performance.now());
    // After the totals: a reader's allowance does not wait for this insert.
    await recordSignals(part, signals);
    marks.push(performance.now());

    const m = deps.metrics;
    m.recorded.inc(fresh.length);
    // Counted once the batch is through, as its events are: a batch abandoned or failed and delivered again sends its
    // dead letters again (each names its source offset) but counts them once.
    for (const [reason, n] of decoded.rejectedBy) m.rejected.inc({ reason }, n);
    // Usage of a product closed to the user (SPEC §5) happened: it is priced and billed, and counted here.
    for (const { event: e } of fresh) {
      if (!productAllowed(part.spend.org(e.org_id).policy, e.user_id, e.product)) m.accessViolation(e.product);
    }
    if (duplicates > 0) m.duplicates.inc(duplicates);
    if (recorded.late > 0) m.late.inc(recorded.late);
    const recordedAt = Date.now();
    for (const { pricedAt } of fresh) m.visibleSeconds.observe(Math.max(0, recordedAt - pricedAt) / 1000);
    deps.onRecorded?.(fresh.map((f) => f.event));
    log.info(
      {
        partition: batch.partition,
        in: batch.messages.length,
        recorded: fresh.length,
        duplicates,
        late: recorded.late,
        rejected: decoded.dead.length,
        signals: signals.length,
        // How many batches (of this member's partitions) shared this batch's inserts.
        insert_group: insertGroup,
        ms: Math.round(performance.now() - started),
        // Milliseconds per step: where a batch's time goes (the e2e benchmark reads these at LOG_LEVEL=info).
        steps_ms: Object.fromEntries(STEP_NAMES.map((name, i) => [name, Math.round(marks[i + 1]! - marks[i]!)])),
      },
      "batch recorded",
    );
  }

  /** The partition state holding an org, when this member owns the org's partition and has it loaded. */
  function partOf(orgId: string): PartitionState | undefined {
    if (partitionCount === 0) return undefined;
    return partitions.get(partitionOf(orgId, partitionCount));
  }

  async function applyControl(change: ControlChange): Promise<void> {
    if (partitionCount === 0) return;
    const p = partitionOf(change.org_id, partitionCount);
    const held = partitions.get(p);
    // Not loaded yet: the load reads the control plane as it is then, this change included.
    if (!held) return;
    const org = held.spend.org(change.org_id);
    const t = now();
    let signals: CapSignal[] = [];
    let entries: CreditLedgerRow[] = [];
    if (change.kind === "policy") {
      const p = deps.control.policy(change.org_id);
      if (!p || p.version <= org.policyVersion) return;
      held.spend.setPolicy(change.org_id, p.policy, p.version);
      signals = held.spend.evaluate(change.org_id).map((tr) => toSignal(tr, null, t));
      log.info({ org_id: change.org_id, version: p.version, signals: signals.length }, "policy applied");
    } else if (change.kind === "auto_reload") {
      const a = deps.control.autoReload(change.org_id);
      if (!a || a.version <= (org.autoReload?.version ?? 0)) return;
      org.autoReload = { settings: a.settings, version: a.version };
      log.info({ org_id: change.org_id, version: a.version }, "auto-reload settings applied");
      ({ signals, entries } = stepCredits(held, [change.org_id], new Map(), t));
    } else if (change.kind === "contract" || change.kind === "seat") {
      // A seat decides a user's tier (and so a limit); a contract's plan decides whether credits gate usage.
      applyTerms(held.spend, deps.control, change.org_id);
      signals = held.spend.evaluate(change.org_id).map((tr) => toSignal(tr, null, t));
      log.info({ org_id: change.org_id, kind: change.kind, version: change.version }, "terms applied");
    } else if (change.kind === "limit_request") {
      signals = digestSignals(held, [change.org_id], t);
      if (signals.length === 0) return;
    } else if (change.kind === "credit_purchase") {
      // The API stored the ledger entry before it published the change: the account is read again, on notice.
      const [summary] = await creditSummaries(deps.clickhouse, change.org_id);
      if (!summary) return;
      const period = held.spend.currentPeriod();
      const reloaded = (await reloadedInPeriod(deps.clickhouse, period, [change.org_id])).get(change.org_id);
      org.credits = accountFromSummary(summary, reloaded, period, org.autoReload?.settings, org.credits);
      ({ signals, entries } = stepCredits(held, [change.org_id], new Map(), t));
    } else {
      return;
    }
    try {
      await emit(held, signals, entries);
      await publishTotals(held, [change.org_id], "0", new Map([[change.org_id, new Set<string>()]]));
    } catch (err) {
      drop(p);
      throw err;
    }
  }

  /**
   * The limit-requests digest (SPEC §8): one `limit_requests_digest` signal per org and UTC day while any request is
   * pending. Its id is derived from (org, day), so the notifier makes one alert of it whatever restarts and replays
   * send it again; the day is also kept in memory so a member sends it once per day of its own.
   */
  function digestSignals(part: PartitionState, orgIds: Iterable<string>, t: number): CapSignal[] {
    const out: CapSignal[] = [];
    const day = dayOf(t);
    for (const orgId of orgIds) {
      const pending = deps.control.limitRequests(orgId).filter((r) => r.status === "pending");
      const org = part.spend.org(orgId);
      if (pending.length === 0 || org.digestDay === day) continue;
      org.digestDay = day;
      const caps = part.spend.caps(orgId);
      const period = periodOf(t);
      const sequence = Number(day.replaceAll("-", ""));
      const entity = { type: "org" as const, id: orgId };
      out.push({
        signal_id: signalId({
          orgId,
          entity,
          period,
          kind: "limit_requests_digest",
          threshold: null,
          policyVersion: org.policyVersion,
          sequence,
        }),
        org_id: orgId,
        entity,
        period,
        kind: "limit_requests_digest",
        threshold: null,
        limit: caps.org.limit,
        spend: caps.org.spend,
        status: caps.org.status,
        previous_status: caps.org.status,
        policy_version: org.policyVersion,
        cause_event_id: null,
        created_at: new Date(t).toISOString(),
        sequence,
        limit_requests: {
          pending: pending.length,
          requests: pending.slice(0, 50).map((r) => ({
            request_id: r.request_id,
            user_id: r.user_id,
            requested_at: r.requested_at,
            note: r.note,
          })),
        },
      });
    }
    return out;
  }

  /** Emits the digests due now, for the partitions held (a day that turns while requests are pending). */
  async function digestNow(): Promise<void> {
    const t = now();
    for (const p of [...partitions.keys()]) {
      await exclusive(p, async () => {
        const part = partitions.get(p);
        if (!part) return;
        const signals = digestSignals(part, part.spend.orgIds(), t);
        if (signals.length === 0) return;
        try {
          await emit(part, signals);
        } catch (err) {
          drop(p);
          throw err;
        }
      });
    }
  }

  /** Emits the forecast signals due now (forecasts.ts), for the partitions held. */
  async function forecastNow(): Promise<void> {
    if (partitions.size === 0) return;
    const t = now();
    // Through the month's last day, as the forecast route reads: an event stamped a few minutes ahead counts too.
    const rows = await dailyNetSpend(deps.clickhouse, {
      fromDay: dayOf(monthStart(t)),
      toDay: dayOf(nextMonthStart(t) - 1),
    });
    // After the series (see firstUsageBetween): every day with spend then has its first usage.
    const firsts = await firstUsageBetween(deps.clickhouse, { from: monthStart(t), to: nextMonthStart(t) });
    for (const p of [...partitions.keys()]) {
      await exclusive(p, async () => {
        const part = partitions.get(p);
        if (!part) return;
        const signals = forecastSignals(part.spend, rows, firsts, t, (orgId) => part.spend.caps(orgId));
        try {
          await emit(part, signals);
        } catch (err) {
          drop(p);
          throw err;
        }
      });
    }
  }

  return {
    consumer,
    async start() {
      producer = createProducer(deps.kafka);
      await producer.connect();
      partitionCount = await topicPartitions(deps.kafka, TOPICS.priced);
      ready = true;
      await consumer.start(handle);
      if (deps.forecastMs && deps.forecastMs > 0) {
        forecaster = setInterval(() => {
          void forecastNow().catch((err: unknown) => log.warn({ err }, "forecast failed"));
        }, deps.forecastMs);
        forecaster.unref();
      }
      digester = setInterval(() => {
        void digestNow().catch((err: unknown) => log.warn({ err }, "limit-requests digest failed"));
      }, deps.digestMs ?? 60_000);
      digester.unref();
      log.info({ group: deps.groupId, partitions: partitionCount }, "aggregator member started");
    },
    async stop() {
      if (forecaster) clearInterval(forecaster);
      if (digester) clearInterval(digester);
      await consumer.stop();
      await Promise.all(queues.values());
      for (const p of [...partitions.keys()]) drop(p);
      await producer?.disconnect();
    },
    isHealthy: () => ready && consumer.isHealthy(),
    isReady: () => ready,
    onControlChange: (change) =>
      exclusive(partitionCount === 0 ? -1 : partitionOf(change.org_id, partitionCount), () =>
        applyControl(change),
      ).catch((err: unknown) => {
        if (!(err instanceof OwnershipLost))
          log.warn({ err, change }, "control change not applied; the next load reads it");
      }),
    ownedPartitions: () => [...partitions.keys()].sort((a, b) => a - b),
    caps: (orgId) => partOf(orgId)?.spend.caps(orgId),
    allowance: (orgId, userId) => partOf(orgId)?.spend.allowance(orgId, userId),
    credits: (orgId) => {
      const part = partOf(orgId);
      return part ? creditView(part.spend.org(orgId), part.spend.currentPeriod()) : undefined;
    },
    stallNextBatch(ms, hook, before = "events") {
      stall = ms;
      stallBefore = before;
      onStall = hook;
    },
  };
}

/** The partition count of a topic, from the cluster's metadata. */
async function topicPartitions(kafka: Kafka, topic: string): Promise<number> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const { topics } = await admin.fetchTopicMetadata({ topics: [topic] });
    const n = topics[0]?.partitions.length ?? 0;
    if (n < 1) throw new Error(`topic ${topic} has no partitions`);
    return n;
  } finally {
    await admin.disconnect();
  }
}
