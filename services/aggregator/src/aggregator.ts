/**
 * The aggregator: usage.priced.v1 → ClickHouse (usage_events, spend_daily), running spend per org and user, cap
 * evaluation, and cap signals (cap_signals + spend.signals.v1).
 *
 * Order of work for one batch (one partition, one org-keyed slice of the stream):
 *   1. decode; drop ids repeated within the batch;
 *   2. dedup: ask usage_events which of the batch's event ids it already holds, and drop those (counted);
 *   3. write the new events to usage_events, then their rollup rows to spend_daily (both tagged with one batch id);
 *   4. only now add their spend to the in-memory totals, and evaluate caps for the orgs and users touched;
 *   5. write the resulting signals to cap_signals, then publish them to spend.signals.v1;
 *   6. commit the consumer offset.
 * The dedup record IS the usage_events row written in step 3, so no id is ever claimed before its event is stored
 * (the failure OpenMeter #5118 describes). A crash anywhere before 6 redelivers the batch: step 2 drops what step 3
 * already stored, so nothing counts twice. A crash between the two inserts of step 3 leaves a batch without rollup;
 * the start-up repair rebuilds it from usage_events. In-memory state is never trusted after a failure: it is
 * rebuilt from ClickHouse (totals from spend_daily, marks from cap_signals, policies from policy_versions), and a
 * full evaluation re-emits any signal whose step 5 did not complete. Signal ids are deterministic, so a re-emitted
 * signal is the same signal (the notifier deduplicates on it).
 */
import { randomUUID } from "node:crypto";
import {
  batchesMissingRollup,
  type CapSignalRow,
  type ClickHouseClient,
  capSignalsOfPeriod,
  existingEventIds,
  insertCapSignals,
  insertSpendDaily,
  insertUsageEvents,
  latestPolicies,
  latestSeatTiers,
  rebuildRollup,
  type SpendDailyRow,
  type UsageEventRow,
  userSpendBetween,
} from "@usage/clickhouse";
import { decode, type PricedUsageEvent, pricedUsageEventV1, SEAT_TIERS, type SeatTier } from "@usage/events";
import {
  type BatchConsumer,
  type ConsumedBatch,
  createBatchConsumer,
  createProducer,
  type Kafka,
  type Producer,
  TOPICS,
} from "@usage/kafka";
import { dayOf, monthStart, nextMonthStart, periodOf } from "@usage/periods";
import { type Allowance, type CapsReport, type Policy, parsePolicy } from "@usage/policy";
import { addMoney, netCost, resolveModelId } from "@usage/pricing";
import type { Logger } from "@usage/runtime";
import { Decimal } from "decimal.js";
import type { AggregatorMetrics } from "./metrics.js";
import { type CapSignal, signalMessage, signalRow, toSignal } from "./signals.js";
import { type EntityTransition, SpendState } from "./state.js";

export interface AggregatorDeps {
  kafka: Kafka;
  clickhouse: ClickHouseClient;
  logger: Logger;
  metrics: AggregatorMetrics;
  groupId: string;
  backfillDays: number;
  now?: () => number;
  /** How often policy_versions is polled for changes made by another process. 0 disables polling. */
  policyPollMs?: number;
  onFatal?: (err: Error) => void;
  /** Called after each recorded batch (benchmarks and tests measure freshness with it). */
  onRecorded?: (events: PricedUsageEvent[]) => void;
}

/** What the API needs from the aggregator: answers from in-memory state, policy changes applied at once. */
export interface SpendControl {
  caps(orgId: string): CapsReport;
  allowance(orgId: string, userId: string): Allowance;
  policy(orgId: string): { policy: Policy; version: number };
  /** Applies a policy already stored in policy_versions at `version`, re-evaluating every user of the org. */
  applyPolicy(orgId: string, policy: Policy, version: number): Promise<CapSignal[]>;
  isReady(): boolean;
}

export interface Aggregator extends SpendControl {
  start(): Promise<void>;
  stop(): Promise<void>;
  isHealthy(): boolean;
  consumer: BatchConsumer;
}

export function createAggregator(deps: AggregatorDeps): Aggregator {
  const log = deps.logger.child({ service: "aggregator" });
  const now = deps.now ?? Date.now;
  let state = new SpendState(now);
  let ready = false;
  let stale = false;
  let producer: Producer | undefined;
  let poller: NodeJS.Timeout | undefined;
  // Batches, policy changes and reloads mutate one state: they run one at a time.
  let queue: Promise<unknown> = Promise.resolve();
  const exclusive = <T>(work: () => Promise<T>): Promise<T> => {
    const run = queue.then(work, work);
    queue = run.catch(() => undefined);
    return run;
  };

  const consumer = createBatchConsumer({
    kafka: deps.kafka,
    groupId: deps.groupId,
    topics: [TOPICS.priced],
    logger: log,
    commit: "after-batch",
    // Each batch costs a dedup query and two inserts (two new parts) whatever its size: fetch generously.
    maxBytesPerPartition: 4 * 1024 * 1024,
    onFatal: deps.onFatal,
  });

  /** Rebuilds the state from ClickHouse, repairs missing rollups, and emits any signal not yet recorded. */
  async function load(): Promise<void> {
    for (const batchId of await batchesMissingRollup(deps.clickhouse)) {
      log.warn({ batch_id: batchId }, "rebuilding the rollup of a batch interrupted between its two inserts");
      await rebuildRollup(deps.clickhouse, batchId);
    }
    state = await loadSpendState({ clickhouse: deps.clickhouse, now, backfillDays: deps.backfillDays, logger: log });
    stale = false;
    const missed: EntityTransition[] = [];
    for (const orgId of state.orgIds()) missed.push(...state.evaluate(orgId));
    if (missed.length > 0) log.info({ signals: missed.length }, "emitting signals missed before the last stop");
    await emit(missed.map((m) => toSignal(m, null, now())));
  }

  async function emit(signals: CapSignal[]): Promise<void> {
    if (signals.length === 0) return;
    const rows: CapSignalRow[] = signals.map(signalRow);
    await insertCapSignals(deps.clickhouse, rows);
    await producer!.send({ topic: TOPICS.signals, messages: signals.map(signalMessage), acks: -1 });
    for (const s of signals) deps.metrics.signals.inc({ kind: s.kind });
    log.info(
      { signals: signals.map((s) => `${s.org_id}/${s.entity.type}:${s.entity.id} ${s.kind} ${s.threshold ?? ""}`) },
      "cap signals",
    );
  }

  async function handle(batch: ConsumedBatch): Promise<void> {
    await exclusive(async () => {
      const started = performance.now();
      if (stale) await load();
      try {
        await record(batch);
      } catch (err) {
        // Whatever part of the batch reached ClickHouse, the state is rebuilt from it before the redelivery.
        stale = true;
        throw err;
      }
      deps.metrics.batchSeconds.observe((performance.now() - started) / 1000);
      deps.metrics.lag.set(
        { partition: String(batch.partition) },
        Number(BigInt(batch.highWatermark) - BigInt(batch.nextOffset)),
      );
    });
  }

  async function record(batch: ConsumedBatch): Promise<void> {
    const events: { event: PricedUsageEvent; pricedAt: number }[] = [];
    const seen = new Set<string>();
    let duplicates = 0;
    for (const m of batch.messages) {
      const d = decode(m.value, pricedUsageEventV1);
      if (!d.ok) {
        log.error(
          { partition: batch.partition, offset: m.offset, reason: d.message },
          "undecodable priced event skipped",
        );
        continue;
      }
      const event = d.value as unknown as PricedUsageEvent;
      if (seen.has(event.event_id)) {
        duplicates++;
        continue;
      }
      seen.add(event.event_id);
      events.push({ event, pricedAt: Number(m.timestamp) || now() });
    }
    const orgIds = [...new Set(events.map((e) => e.event.org_id))];
    const existing = await existingEventIds(deps.clickhouse, orgIds, [...seen]);
    const fresh = events.filter((e) => !existing.has(e.event.event_id));
    duplicates += events.length - fresh.length;

    const batchId = `${batch.partition}-${batch.messages[0]?.offset}-${randomUUID().slice(0, 8)}`;
    const current = periodOf(now());
    const usageRows: UsageEventRow[] = [];
    const rollup = new Map<string, SpendDailyRow>();
    let late = 0;
    for (const { event: e, pricedAt } of fresh) {
      const discount = state.org(e.org_id).policy.discount_pct;
      const net = netCost(e.total_cost, discount);
      const period = periodOf(Date.parse(e.occurred_at));
      const isLate = period < periodOf(pricedAt);
      if (isLate) late++;
      const model = resolveModelId(e.model);
      usageRows.push({
        event_id: e.event_id,
        org_id: e.org_id,
        user_id: e.user_id,
        user_email: e.user_email ?? "",
        account_uuid: e.account_uuid ?? "",
        request_id: e.request_id ?? "",
        region: e.region ?? "",
        seat_tier: e.seat_tier,
        product: e.product,
        model: e.model,
        model_base: model,
        occurred_at: chTime(e.occurred_at),
        input_tokens: e.input_tokens,
        output_tokens: e.output_tokens,
        cache_write_tokens: e.cache_write_tokens,
        cache_read_tokens: e.cache_read_tokens,
        prompt_tokens: e.prompt_tokens,
        long_context: e.long_context,
        rate_card_version: e.rate_card_version,
        input_cost: e.input_cost,
        output_cost: e.output_cost,
        cache_write_cost: e.cache_write_cost,
        cache_read_cost: e.cache_read_cost,
        gross_cost: e.total_cost,
        discount_pct: discount,
        net_cost: net,
        priced_at: chTime(new Date(pricedAt).toISOString()),
        batch_id: batchId,
        is_late: isLate,
      });
      const day = e.occurred_at.slice(0, 10);
      const key = [e.org_id, day, e.user_id, e.seat_tier, e.product, model, e.region ?? "", e.long_context].join(
        "\u0000",
      );
      const r = rollup.get(key);
      if (r) {
        r.requests++;
        r.input_tokens += e.input_tokens;
        r.output_tokens += e.output_tokens;
        r.cache_write_tokens += e.cache_write_tokens;
        r.cache_read_tokens += e.cache_read_tokens;
        r.gross_cost = addMoney(r.gross_cost, e.total_cost);
        r.net_cost = addMoney(r.net_cost, net);
      } else {
        rollup.set(key, {
          org_id: e.org_id,
          day,
          user_id: e.user_id,
          seat_tier: e.seat_tier,
          product: e.product,
          model,
          region: e.region ?? "",
          long_context: e.long_context,
          batch_id: batchId,
          requests: 1,
          input_tokens: e.input_tokens,
          output_tokens: e.output_tokens,
          cache_write_tokens: e.cache_write_tokens,
          cache_read_tokens: e.cache_read_tokens,
          gross_cost: e.total_cost,
          net_cost: net,
        });
      }
    }
    await insertUsageEvents(deps.clickhouse, usageRows);
    await insertSpendDaily(deps.clickhouse, [...rollup.values()]);

    // Spend counts toward caps only in its own period: a late event's month is closed and no longer in the state.
    const touched = new Map<string, Set<string>>();
    const causes = new Map<string, string>();
    for (const [i, { event: e }] of fresh.entries()) {
      const period = periodOf(Date.parse(e.occurred_at));
      state.noteSeatTier(e.org_id, e.user_id, e.seat_tier, Date.parse(e.occurred_at));
      if (period < current) continue;
      state.addSpend(e.org_id, e.user_id, period, usageRows[i]!.net_cost);
      let users = touched.get(e.org_id);
      if (!users) {
        users = new Set();
        touched.set(e.org_id, users);
      }
      users.add(e.user_id);
      causes.set(`${e.org_id}\u0000${e.user_id}`, e.event_id);
      causes.set(e.org_id, e.event_id);
    }
    const signals: CapSignal[] = [];
    const t = now();
    for (const [orgId, users] of touched) {
      for (const tr of state.evaluate(orgId, users)) {
        const cause = tr.entity.type === "org" ? causes.get(orgId) : causes.get(`${orgId}\u0000${tr.entity.id}`);
        signals.push(toSignal(tr, cause ?? null, t));
      }
    }
    await emit(signals);

    const m = deps.metrics;
    m.recorded.inc(fresh.length);
    if (duplicates > 0) m.duplicates.inc(duplicates);
    if (late > 0) m.late.inc(late);
    const recordedAt = Date.now();
    for (const { pricedAt } of fresh) m.visibleSeconds.observe(Math.max(0, recordedAt - pricedAt) / 1000);
    deps.onRecorded?.(fresh.map((f) => f.event));
    log.info(
      {
        partition: batch.partition,
        in: batch.messages.length,
        recorded: fresh.length,
        duplicates,
        late,
        signals: signals.length,
      },
      "batch recorded",
    );
  }

  async function pollPolicies(): Promise<void> {
    const rows = await latestPolicies(deps.clickhouse);
    for (const row of rows) {
      if (row.version <= state.org(row.org_id).policyVersion) continue;
      const parsed = parsePolicy(JSON.parse(row.policy), row.org_id);
      if (parsed.ok) await applyPolicyNow(row.org_id, parsed.policy, row.version);
    }
  }

  async function applyPolicyNow(orgId: string, policy: Policy, version: number): Promise<CapSignal[]> {
    if (version <= state.org(orgId).policyVersion) return [];
    state.setPolicy(orgId, policy, version);
    const signals = state.evaluate(orgId).map((t) => toSignal(t, null, now()));
    try {
      await emit(signals);
    } catch (err) {
      stale = true;
      throw err;
    }
    log.info({ org_id: orgId, version, signals: signals.length }, "policy applied");
    return signals;
  }

  return {
    consumer,
    async start() {
      producer = createProducer(deps.kafka);
      await producer.connect();
      await exclusive(load);
      ready = true;
      await consumer.start(handle);
      const every = deps.policyPollMs ?? 1000;
      if (every > 0) {
        poller = setInterval(() => {
          void exclusive(pollPolicies).catch((err: unknown) => log.warn({ err }, "policy poll failed"));
        }, every);
        poller.unref();
      }
      log.info({ group: deps.groupId, orgs: state.orgIds().length }, "aggregator started");
    },
    async stop() {
      if (poller) clearInterval(poller);
      await consumer.stop();
      await queue;
      await producer?.disconnect();
    },
    isHealthy: () => ready && consumer.isHealthy(),
    isReady: () => ready,
    caps: (orgId) => {
      state.prune();
      return state.caps(orgId);
    },
    allowance: (orgId, userId) => state.allowance(orgId, userId),
    policy: (orgId) => {
      const org = state.org(orgId);
      return { policy: org.policy, version: org.policyVersion };
    },
    applyPolicy: (orgId, policy, version) => exclusive(() => applyPolicyNow(orgId, policy, version)),
  };
}

/**
 * Builds the spend state from ClickHouse: policies from policy_versions, the current (and next) month's spend per
 * user from spend_daily, seat tiers from the latest events, and what has been signalled from cap_signals.
 */
export async function loadSpendState(deps: {
  clickhouse: ClickHouseClient;
  now: () => number;
  backfillDays: number;
  logger: Logger;
}): Promise<SpendState> {
  const ch = deps.clickhouse;
  const fresh = new SpendState(deps.now);
  for (const row of await latestPolicies(ch)) {
    const parsed = parsePolicy(JSON.parse(row.policy), row.org_id);
    if (parsed.ok) fresh.setPolicy(row.org_id, parsed.policy, row.version);
    else
      deps.logger.error(
        { org_id: row.org_id, version: row.version, errors: parsed.errors },
        "stored policy no longer validates",
      );
  }
  const t = deps.now();
  // The current month, and the next one: an event may be up to 5 minutes ahead at a month's end.
  for (const from of [monthStart(t), nextMonthStart(t)]) {
    for (const s of await userSpendBetween(ch, dayOf(from), dayOf(nextMonthStart(from) - 1))) {
      fresh.addSpend(s.org_id, s.user_id, periodOf(from), s.net);
    }
  }
  for (const r of await latestSeatTiers(ch, t - deps.backfillDays * 86_400_000)) {
    if ((SEAT_TIERS as readonly string[]).includes(r.seat_tier))
      fresh.noteSeatTier(r.org_id, r.user_id, r.seat_tier as SeatTier, 0);
  }
  for (const row of await capSignalsOfPeriod(ch, fresh.currentPeriod())) {
    const key = row.entity_type === "org" ? "org" : `user:${row.entity_id}`;
    const mark = fresh.org(row.org_id).marks.get(row.period)?.get(key);
    const threshold = maxOf(mark?.threshold ?? null, row.threshold === null ? null : String(row.threshold));
    fresh.setMark(row.org_id, row.period, key, { threshold, status: row.status });
  }
  return fresh;
}

/** `YYYY-MM-DD HH:mm:ss.SSS` (UTC) for ClickHouse DateTime64(3, 'UTC'). */
function chTime(iso: string): string {
  return iso.replace("T", " ").replace("Z", "");
}

function maxOf(a: string | null, b: string | null): string | null {
  if (a === null) return b;
  if (b === null) return a;
  return new Decimal(a).gte(b) ? a : b;
}
