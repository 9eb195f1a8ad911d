/**
 * The state one aggregator member holds for one partition of usage.priced.v1, and how it is loaded when the
 * partition is assigned.
 *
 * Which orgs a partition holds is derived from the key with Kafka's default partitioner (murmur2 of org_id modulo
 * the partition count, @usage/kafka partitionOf) over the `orgs` table and the orgs known to the control plane,
 * rather than stored with every row: it stays right when an operator adds partitions, and it costs one small read of
 * the org list. Everything else is read for those orgs only (`org_id IN …` on tables ordered by org_id), so loading
 * a partition costs what the partition holds, not what the tables hold.
 *
 * Load: repair any batch of these orgs interrupted between its usage_events and spend_daily inserts → policies and
 * auto-reload settings from the control plane → current (and next) month's spend per user from spend_daily → seat
 * tiers from the latest events → credit accounts → what was signalled (cap_signals) → evaluate every org, so any signal a previous owner computed but did
 * not get out is emitted again under its deterministic id.
 */
import {
  allOrgIds,
  awaitRunningRollupInserts,
  batchesMissingRollup,
  type ClickHouseClient,
  type CreditLedgerRow,
  capSignalsOfPeriod,
  countEventsSince,
  creditLedger,
  creditSummaries,
  forEachEventIdSince,
  latestCreditStatuses,
  latestSeatTiers,
  rebuildRollup,
  reloadedInPeriod,
  userSpendBetween,
} from "@usage/clickhouse";
import { SEAT_TIERS, type SeatTier } from "@usage/events";
import { partitionOf } from "@usage/kafka";
import { Money } from "@usage/money";
import { dayOf, monthStart, nextMonthStart, periodOf } from "@usage/periods";
import type { Logger } from "@usage/runtime";
import type { ControlView } from "./aggregator.js";
import { accountFromSummary, missedReloadSignals } from "./credits.js";
import { IdFilter } from "./id-filter.js";
import { type CapSignal, toSignal } from "./signals.js";
import { SpendState } from "./state.js";
import { stepCredits } from "./steps.js";

export interface PartitionState {
  partition: number;
  /** The group generation (as counted by the member's consumer) the state was loaded in. */
  generation: number;
  spend: SpendState;
  /** Orgs known to be in the `orgs` table (written before an org's first event). */
  orgs: Set<string>;
  /** The event ids the partition may hold (dedupStep): see SeenIds. */
  seen: SeenIds;
}

/**
 * The event ids a partition may hold, for dedupStep: a Bloom filter of every id of the partition's orgs that occurred
 * at or after `horizon`, as read from usage_events, plus every id this member writes (added before its insert). An
 * event older than the horizon is looked up in ClickHouse whatever the filter says. The horizon is a day before the
 * backfill window: pricing refuses events older than the window, and a resent event carries its original
 * occurred_at, so a resend is either inside the horizon or looked up directly.
 *
 * The filter is read in the background: a partition is usable as soon as it is assigned, and until the filter is
 * ready every id is looked up (as if the filter said "maybe" to all). Past its capacity the filter is rebuilt twice
 * as large, also in the background, the full one answering meanwhile (it never rules out an id it was given, it
 * only says "maybe" more often). Every id added while a load runs is also kept for the new filter, which takes
 * over only with them: whichever page of the load an insert landed before or after, the new filter holds its id. Loading 20 M ids took 46 s on the benchmark machine (aggregator-growth.mjs).
 */
export class SeenIds {
  private filter = new IdFilter(1024);
  private horizon = Number.POSITIVE_INFINITY;
  /** Ids added since the running load started (it adds them to its filter before taking over); undefined idle. */
  private during: string[] | undefined;
  private load: number | undefined;
  private loads = 0;
  private stopped = false;

  constructor(
    private readonly deps: {
      clickhouse: ClickHouseClient;
      /** The orgs whose ids the partition holds (read when a load starts). */
      orgIds: () => string[];
      now: () => number;
      backfillDays: number;
      logger: Logger;
      partition: number;
    },
  ) {}

  get ready(): boolean {
    return Number.isFinite(this.horizon);
  }

  /** Whether `id` must be looked up in ClickHouse: it may be stored, or the filter cannot tell. */
  doubtful(id: string, occurredAtMs: number): boolean {
    return occurredAtMs < this.horizon || this.filter.mightContain(id);
  }

  /** Called with every id about to be inserted. */
  add(id: string): void {
    this.filter.add(id);
    this.during?.push(id);
  }

  /** Starts the first load, or a rebuild when the filter is past its capacity; no-op while one runs. */
  refresh(): void {
    if (this.stopped || this.load !== undefined || (this.ready && !this.filter.full)) return;
    // Claimed before the first await: one load at a time, and every id added from now on is kept for it.
    const load = ++this.loads;
    this.load = load;
    this.during = [];
    void this.run(load);
  }

  /** The partition was dropped: a load in progress stops at its next page. */
  stop(): void {
    this.stopped = true;
    this.load = undefined;
    this.during = undefined;
  }

  private async run(load: number): Promise<void> {
    const { clickhouse, logger } = this.deps;
    const started = performance.now();
    const horizon = this.deps.now() - (this.deps.backfillDays + 1) * 86_400_000;
    const orgIds = this.deps.orgIds();
    try {
      const held = await countEventsSince(clickhouse, orgIds, horizon);
      const next = new IdFilter(Math.max(1 << 20, 2 * (held + (this.during?.length ?? 0))));
      await forEachEventIdSince(clickhouse, orgIds, horizon, (ids) => {
        if (this.load !== load) throw new Error("stopped");
        for (const id of ids) next.add(id);
      });
      if (this.load !== load) return;
      // What this member wrote while the load read (its inserts may or may not be in the pages it read).
      for (const id of this.during ?? []) next.add(id);
      this.filter = next;
      this.horizon = horizon;
      logger.info(
        {
          partition: this.deps.partition,
          ids: next.count,
          mb: Number((next.bytes / 2 ** 20).toFixed(1)),
          ms: Math.round(performance.now() - started),
        },
        "event id filter ready",
      );
    } catch (err) {
      if (this.stopped || this.load !== load) return;
      // Meanwhile the filter in place answers (before the first load: every id is looked up); the next batch of the
      // partition starts another load.
      logger.warn({ err, partition: this.deps.partition }, "event id filter not loaded; looking ids up meanwhile");
    } finally {
      if (this.load === load) {
        this.load = undefined;
        this.during = undefined;
      }
    }
  }
}

/** The org's contract terms and seat assignments as the control plane holds them now. */
export function applyTerms(spend: SpendState, control: ControlView, orgId: string): void {
  const c = control.contract(orgId);
  spend.setContract(
    orgId,
    c ? { plan: c.contract.plan, discount_pct: c.contract.discount_pct, version: c.version } : undefined,
  );
  spend.setSeats(
    orgId,
    control.seats(orgId).map((s) => ({ user_id: s.user_id, tier: s.tier, at: Date.parse(s.effective_at) })),
  );
}

export async function loadPartition(deps: {
  clickhouse: ClickHouseClient;
  control: ControlView;
  partition: number;
  partitions: number;
  generation: number;
  now: () => number;
  backfillDays: number;
  logger: Logger;
  /** Told of each batch whose rollup the load rebuilt. */
  onRollupRebuilt?: () => void;
}): Promise<{ state: PartitionState; signals: CapSignal[]; entries: CreditLedgerRow[] }> {
  const ch = deps.clickhouse;
  const mine = (orgId: string) => partitionOf(orgId, deps.partitions) === deps.partition;
  const recorded = (await allOrgIds(ch)).filter(mine);
  const orgIds = [...new Set([...recorded, ...deps.control.orgIds().filter(mine)])];

  // A rollup insert still running on the server (one its client gave up on, or a stalled previous owner's) would
  // land beside a rebuild of its batch: wait those out first.
  await awaitRunningRollupInserts(ch, {
    onWaiting: (left, waitedMs) =>
      deps.logger.warn({ running: left.length, waited_ms: waitedMs }, "waiting for rollup inserts still running"),
  });
  for (const batchId of await batchesMissingRollup(ch, recorded)) {
    deps.logger.warn({ batch_id: batchId }, "rebuilding the rollup of a batch interrupted between its two inserts");
    await rebuildRollup(ch, batchId);
    deps.onRollupRebuilt?.();
  }

  const spend = new SpendState(deps.now);
  for (const orgId of orgIds) {
    const policy = deps.control.policy(orgId);
    if (policy) spend.setPolicy(orgId, policy.policy, policy.version);
    const autoReload = deps.control.autoReload(orgId);
    if (autoReload) spend.org(orgId).autoReload = { settings: autoReload.settings, version: autoReload.version };
    applyTerms(spend, deps.control, orgId);
  }
  const t = deps.now();
  // The current month, and the next one: an event may be up to 5 minutes ahead at a month's end.
  for (const from of [monthStart(t), nextMonthStart(t)]) {
    for (const s of await userSpendBetween(ch, dayOf(from), dayOf(nextMonthStart(from) - 1), recorded)) {
      spend.addSpend(s.org_id, s.user_id, periodOf(from), s.net);
    }
  }
  for (const r of await latestSeatTiers(ch, t - deps.backfillDays * 86_400_000, recorded)) {
    if ((SEAT_TIERS as readonly string[]).includes(r.seat_tier))
      spend.noteSeatTier(r.org_id, r.user_id, r.seat_tier as SeatTier, 0);
  }
  const period = spend.currentPeriod();
  const reloaded = await reloadedInPeriod(ch, period, orgIds);
  for (const s of await creditSummaries(ch, orgIds)) {
    const org = spend.org(s.org_id);
    org.credits = accountFromSummary(s, reloaded.get(s.org_id), period, org.autoReload?.settings);
  }
  for (const s of await latestCreditStatuses(ch, orgIds)) {
    const account = spend.org(s.org_id).credits;
    if (account) account.blocked = s.kind === "credits_exhausted";
  }
  const signalled = await capSignalsOfPeriod(ch, period, orgIds);
  for (const row of signalled) {
    const key = row.entity_type === "org" ? "org" : `user:${row.entity_id}`;
    if (row.kind === "forecast") {
      spend.markForecast(row.org_id, row.period, key);
      continue;
    }
    if (row.kind === "credits_reload_limit") {
      spend.org(row.org_id).credits?.limitSignalled.add(row.period);
      continue;
    }
    if (row.kind !== "threshold" && row.kind !== "blocked" && row.kind !== "unblocked") continue;
    const mark = spend.org(row.org_id).marks.get(row.period)?.get(key);
    const threshold = maxOf(mark?.threshold ?? null, row.threshold === null ? null : String(row.threshold));
    spend.setMark(row.org_id, row.period, key, { threshold, status: row.status });
  }

  const orgs = new Set(recorded);
  const seen = new SeenIds({
    clickhouse: ch,
    orgIds: () => [...orgs],
    now: deps.now,
    backfillDays: deps.backfillDays,
    logger: deps.logger,
    partition: deps.partition,
  });
  seen.refresh();
  const state: PartitionState = { partition: deps.partition, generation: deps.generation, spend, orgs, seen };
  const signals: CapSignal[] = [];
  for (const orgId of spend.orgIds()) for (const tr of spend.evaluate(orgId)) signals.push(toSignal(tr, null, t));
  for (const orgId of spend.orgIds()) {
    const org = spend.org(orgId);
    if (!org.credits?.reloadedIn.has(period)) continue;
    signals.push(...missedReloadSignals(org, await creditLedger(ch, orgId), signalled, period, t));
  }
  const credits = stepCredits(state, spend.orgIds(), new Map(), t);
  signals.push(...credits.signals);
  return { state, signals, entries: credits.entries };
}

function maxOf(a: string | null, b: string | null): string | null {
  if (a === null) return b;
  if (b === null) return a;
  return new Money(a).gte(b) ? a : b;
}
