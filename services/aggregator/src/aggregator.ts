/**
 * The aggregator: usage.priced.v1 → ClickHouse (usage_events, spend_daily), running spend per org and user, cap
 * evaluation, and cap signals (cap_signals + spend.signals.v1).
 *
 * Order of work for one batch (one partition, one org-keyed slice of the stream):
 *   1. decode; drop ids repeated within the batch;
 *   2. dedup: ask usage_events which of the batch's event ids it already holds, and drop those (counted);
 *   3. write the new events to usage_events, then their rollup rows to spend_daily (both tagged with one batch id);
 *   4. only now add their spend to the in-memory totals, and evaluate caps for the orgs and users touched;
 *   5. move prepaid credit accounts (credits.ts) and write any auto-reload to credit_ledger;
 *   6. publish the resulting signals to spend.signals.v1, then record them in cap_signals;
 *   7. commit the consumer offset.
 * The dedup record IS the usage_events row written in step 3, so no id is ever claimed before its event is stored
 * (the failure OpenMeter #5118 describes). A crash anywhere before 7 redelivers the batch: step 2 drops what step 3
 * already stored, so nothing counts twice. A crash between the two inserts of step 3 leaves a batch without rollup;
 * the start-up repair rebuilds it from usage_events. In-memory state is never trusted after a failure: it is
 * rebuilt from ClickHouse (totals from spend_daily, marks from cap_signals, policies from policy_versions), and a
 * full evaluation re-emits any signal whose step 6 did not complete. Signal ids are deterministic, so a re-emitted
 * signal is the same signal (the notifier deduplicates on it).
 */
import { randomUUID } from "node:crypto";
import {
  batchesMissingRollup,
  type CapSignalRow,
  type ClickHouseClient,
  type CreditLedgerRow,
  capSignalsOfPeriod,
  creditEntryCounts,
  creditLedger,
  creditSummaries,
  dailyNetSpend,
  existingEventIds,
  insertCapSignals,
  insertCreditEntries,
  insertSpendDaily,
  insertUsageEvents,
  latestAutoReloads,
  latestCreditStatuses,
  latestPolicies,
  latestSeatTiers,
  rebuildRollup,
  reloadedInPeriod,
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
import { addMoney, Money, netCost } from "@usage/money";
import { dayOf, monthStart, nextMonthStart, periodOf } from "@usage/periods";
import {
  type Allowance,
  type AutoReload,
  type CapsReport,
  type Policy,
  parseAutoReload,
  parsePolicy,
} from "@usage/policy";
import { resolveModelId } from "@usage/pricing";
import type { Logger } from "@usage/runtime";
import { accountFromSummary, type CreditView, creditEffects, creditView, missedReloadSignals } from "./credits.js";
import { forecastSignals } from "./forecasts.js";
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
  /** How often forecasts run (forecasts.ts). 0 or unset disables them. */
  forecastMs?: number;
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
  /** A prepaid org's credit account; undefined for an org without credits. */
  credits(orgId: string): CreditView | undefined;
  /** Re-reads an org's credit ledger (after a purchase was stored) and applies it at once. */
  applyCredits(orgId: string): Promise<CapSignal[]>;
  /** Applies auto-reload settings already stored in credit_auto_reload at `version`. */
  applyAutoReload(orgId: string, settings: AutoReload, version: number): Promise<CapSignal[]>;
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
  let forecaster: NodeJS.Timeout | undefined;
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
    const t = now();
    const signals = missed.map((m) => toSignal(m, null, t));
    const period = state.currentPeriod();
    const recorded = await capSignalsOfPeriod(deps.clickhouse, period);
    for (const orgId of state.orgIds()) {
      const org = state.org(orgId);
      if (!org.credits?.reloadedIn.has(period)) continue;
      const ledger = await creditLedger(deps.clickhouse, orgId);
      signals.push(...missedReloadSignals(org, ledger, recorded, period, t));
    }
    const credits = stepCredits(state.orgIds(), new Map(), t);
    signals.push(...credits.signals);
    if (signals.length > 0) log.info({ signals: signals.length }, "emitting signals missed before the last stop");
    await emit(signals, credits.entries);
  }

  /** Credit steps of the given orgs: reload entries and signals, `causes` naming the event behind each org's. */
  function stepCredits(orgIds: Iterable<string>, causes: Map<string, string>, at: number) {
    const entries: CreditLedgerRow[] = [];
    const signals: CapSignal[] = [];
    const period = state.currentPeriod();
    for (const orgId of orgIds) {
      const org = state.org(orgId);
      if (!org.credits) continue;
      const effects = creditEffects(org, state.stepCredits(orgId), period, causes.get(orgId) ?? null, at);
      entries.push(...effects.entries);
      signals.push(...effects.signals);
    }
    return { entries, signals };
  }

  async function emit(signals: CapSignal[], entries: CreditLedgerRow[] = []): Promise<void> {
    // Reloads first: a signal never announces a reload that is not recorded.
    if (entries.length > 0) {
      await insertCreditEntries(deps.clickhouse, entries);
      log.info({ reloads: entries.map((e) => `${e.org_id} #${e.sequence} +${e.amount}`) }, "auto-reload recorded");
    }
    if (signals.length === 0) return;
    // Published before they are recorded: cap_signals is what a restart takes as sent, so a signal that never got
    // out (the broker away too long, a crash) must not be in it; it is emitted again, with the same id, by the
    // evaluation after the restart. A signal published but not recorded is published again the same way, and the
    // notifier drops the copy on its id.
    await producer!.send({ topic: TOPICS.signals, messages: signals.map(signalMessage), acks: -1 });
    const rows: CapSignalRow[] = signals.map(signalRow);
    await insertCapSignals(deps.clickhouse, rows);
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
    const lastEventOf = new Map<string, string>();
    for (const [i, { event: e }] of fresh.entries()) {
      const occurredAt = Date.parse(e.occurred_at);
      const period = periodOf(occurredAt);
      state.noteSeatTier(e.org_id, e.user_id, e.seat_tier, occurredAt);
      // Credits: every event of a prepaid org after its account opened, late or not.
      state.addCreditSpend(e.org_id, occurredAt, usageRows[i]!.net_cost);
      lastEventOf.set(e.org_id, e.event_id);
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
    const credits = stepCredits(lastEventOf.keys(), lastEventOf, t);
    signals.push(...credits.signals);
    await emit(signals, credits.entries);

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

  /** Picks up what another process (`usagectl run api`) stored: policies, auto-reload settings, purchases. */
  async function pollPolicies(): Promise<void> {
    const rows = await latestPolicies(deps.clickhouse);
    for (const row of rows) {
      if (row.version <= state.org(row.org_id).policyVersion) continue;
      const parsed = parsePolicy(JSON.parse(row.policy), row.org_id);
      if (parsed.ok) await applyPolicyNow(row.org_id, parsed.policy, row.version);
    }
    for (const row of await latestAutoReloads(deps.clickhouse)) {
      if (row.version <= (state.org(row.org_id).autoReload?.version ?? 0)) continue;
      const parsed = parseAutoReload(JSON.parse(row.settings));
      if (parsed.ok) await applyAutoReloadNow(row.org_id, parsed.value, row.version);
    }
    for (const [orgId, entries] of await creditEntryCounts(deps.clickhouse)) {
      if (entries !== (state.org(orgId).credits?.entries ?? 0)) await applyCreditsNow(orgId);
    }
  }

  /** Emits the forecast signals due now (forecasts.ts). */
  async function forecastNow(): Promise<CapSignal[]> {
    if (stale) await load();
    const t = now();
    // Through the month's last day, as the forecast route reads: an event stamped a few minutes ahead counts too.
    const to = dayOf(nextMonthStart(t) - 1);
    const rows = await dailyNetSpend(deps.clickhouse, { fromDay: dayOf(monthStart(t)), toDay: to });
    const signals = forecastSignals(state, rows, t, (orgId) => state.caps(orgId));
    try {
      await emit(signals);
    } catch (err) {
      stale = true;
      throw err;
    }
    return signals;
  }

  /** Re-reads the org's account from credit_ledger and usage_events, keeping what was signalled, and steps it. */
  async function applyCreditsNow(orgId: string): Promise<CapSignal[]> {
    const org = state.org(orgId);
    const [summary] = await creditSummaries(deps.clickhouse, orgId);
    if (!summary) return [];
    const period = state.currentPeriod();
    const reloaded = (await reloadedInPeriod(deps.clickhouse, period)).get(orgId);
    org.credits = accountFromSummary(summary, reloaded, period, org.autoReload?.settings, org.credits);
    return commitCreditStep(orgId);
  }

  async function applyAutoReloadNow(orgId: string, settings: AutoReload, version: number): Promise<CapSignal[]> {
    const org = state.org(orgId);
    if (version <= (org.autoReload?.version ?? 0)) return [];
    org.autoReload = { settings, version };
    log.info({ org_id: orgId, version, ...settings }, "auto-reload settings applied");
    return commitCreditStep(orgId);
  }

  async function commitCreditStep(orgId: string): Promise<CapSignal[]> {
    const { entries, signals } = stepCredits([orgId], new Map(), now());
    try {
      await emit(signals, entries);
    } catch (err) {
      stale = true;
      throw err;
    }
    return signals;
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
      if (deps.forecastMs && deps.forecastMs > 0) {
        forecaster = setInterval(() => {
          void exclusive(forecastNow).catch((err: unknown) => log.warn({ err }, "forecast failed"));
        }, deps.forecastMs);
        forecaster.unref();
      }
      log.info({ group: deps.groupId, orgs: state.orgIds().length }, "aggregator started");
    },
    async stop() {
      if (poller) clearInterval(poller);
      if (forecaster) clearInterval(forecaster);
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
    credits: (orgId) => creditView(state.org(orgId), state.currentPeriod()),
    applyCredits: (orgId) => exclusive(() => applyCreditsNow(orgId)),
    applyAutoReload: (orgId, settings, version) => exclusive(() => applyAutoReloadNow(orgId, settings, version)),
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
  const period = fresh.currentPeriod();
  for (const row of await latestAutoReloads(ch)) {
    const parsed = parseAutoReload(JSON.parse(row.settings));
    if (parsed.ok) fresh.org(row.org_id).autoReload = { settings: parsed.value, version: row.version };
  }
  const reloaded = await reloadedInPeriod(ch, period);
  for (const s of await creditSummaries(ch)) {
    const org = fresh.org(s.org_id);
    org.credits = accountFromSummary(s, reloaded.get(s.org_id), period, org.autoReload?.settings);
  }
  for (const s of await latestCreditStatuses(ch)) {
    const account = fresh.org(s.org_id).credits;
    if (account) account.blocked = s.kind === "credits_exhausted";
  }
  for (const row of await capSignalsOfPeriod(ch, period)) {
    const key = row.entity_type === "org" ? "org" : `user:${row.entity_id}`;
    if (row.kind === "forecast") {
      fresh.markForecast(row.org_id, row.period, key);
      continue;
    }
    if (row.kind === "credits_reload_limit") {
      fresh.org(row.org_id).credits?.limitSignalled.add(row.period);
      continue;
    }
    if (row.kind !== "threshold" && row.kind !== "blocked" && row.kind !== "unblocked") continue;
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
  return new Money(a).gte(b) ? a : b;
}
