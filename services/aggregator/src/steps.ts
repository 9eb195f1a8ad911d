/**
 * The aggregator's steps over one batch, in the order aggregator.ts runs them: decode → dedup → record → account →
 * evaluate (and the credit step). Each takes what it uses and returns values; only dedup and record do I/O.
 */
import {
  type ClickHouseClient,
  type CreditLedgerRow,
  existingEventIds,
  insertOrgs,
  insertSpendDaily,
  insertUsageEvents,
  type SpendDailyRow,
  type UsageEventRow,
} from "@usage/clickhouse";
import { decode, type PricedUsageEvent, pricedUsageEventV1 } from "@usage/events";
import { type ConsumedBatch, deadLetterMessage, type Message } from "@usage/kafka";
import { DecimalSum, netCost } from "@usage/money";
import { periodOf } from "@usage/periods";
import { resolveModelId } from "@usage/pricing";
import { creditEffects } from "./credits.js";
import type { PartitionState, SeenIds } from "./partition.js";
import { type CapSignal, toSignal } from "./signals.js";

export interface DecodedEvent {
  event: PricedUsageEvent;
  /** The priced record's Kafka timestamp: when pricing published it (late or not is judged against it). */
  pricedAt: number;
}

export interface Decoded {
  events: DecodedEvent[];
  /** usage.dlq.v1 messages: the original bytes, the reason in headers. */
  dead: Message[];
  rejects: { offset: string; code: string; message: string }[];
  rejectedBy: Map<string, number>;
  /** Ids repeated within the batch. */
  duplicates: number;
}

const PLAIN_DECIMAL = /^\d+(?:\.\d+)?$/;
const MONEY_FIELDS = ["input_cost", "output_cost", "cache_write_cost", "cache_read_cost", "total_cost"] as const;

/**
 * What makes a decoded priced record unusable, as a DLQ reason: the Avro schema fixes the types, but the amounts
 * are strings and the ids may be empty, and either would fail the batch's insert again at every redelivery.
 */
export function pricedEventProblem(
  value: Record<string, unknown>,
): { code: string; message: string; field?: string } | undefined {
  for (const field of ["event_id", "org_id", "user_id"] as const) {
    const v = value[field];
    if (typeof v !== "string" || v.length === 0 || v.length > 128) {
      return { code: "invalid_field", field, message: `${field} must be 1 to 128 characters` };
    }
  }
  for (const field of MONEY_FIELDS) {
    const v = value[field];
    if (typeof v !== "string" || !PLAIN_DECIMAL.test(v)) {
      return { code: "invalid_field", field, message: `${field} must be a non-negative plain decimal string` };
    }
  }
  if (typeof value.occurred_at !== "string" || Number.isNaN(Date.parse(value.occurred_at))) {
    return { code: "invalid_field", field: "occurred_at", message: "occurred_at is not a timestamp" };
  }
  return undefined;
}

/** Step 1: decode; a record that cannot be used becomes a dead letter; ids repeated in the batch are dropped. */
export function decodeStep(batch: ConsumedBatch, now: () => number): Decoded {
  const out: Decoded = { events: [], dead: [], rejects: [], rejectedBy: new Map(), duplicates: 0 };
  const seen = new Set<string>();
  for (const m of batch.messages) {
    const d = decode(m.value, pricedUsageEventV1);
    const problem = d.ok ? pricedEventProblem(d.value) : { code: "invalid_encoding", message: d.message };
    if (problem) {
      out.dead.push(
        deadLetterMessage({
          key: m.key,
          value: m.value,
          code: problem.code,
          message: problem.message,
          field: "field" in problem ? problem.field : undefined,
          eventId: d.ok && typeof d.value.event_id === "string" ? d.value.event_id : undefined,
          source: { topic: batch.topic, partition: batch.partition, offset: m.offset },
        }),
      );
      out.rejects.push({ offset: m.offset, code: problem.code, message: problem.message });
      out.rejectedBy.set(problem.code, (out.rejectedBy.get(problem.code) ?? 0) + 1);
      continue;
    }
    const event = (d as { value: unknown }).value as PricedUsageEvent;
    if (seen.has(event.event_id)) {
      out.duplicates++;
      continue;
    }
    seen.add(event.event_id);
    out.events.push({ event, pricedAt: Number(m.timestamp) || now() });
  }
  return out;
}

/**
 * Step 2: the events usage_events does not hold yet (the stored row is the dedup record). Only the ids the
 * partition's filter cannot rule out — a duplicate, a false positive (about 0.01%), or an event older than the filter's
 * horizon — are looked up in ClickHouse, so the check costs what the batch holds, not what the table holds.
 */
export async function dedupStep(
  clickhouse: ClickHouseClient,
  seen: SeenIds,
  events: DecodedEvent[],
): Promise<{ fresh: DecodedEvent[]; lookedUp: number }> {
  const doubtful = events.filter((e) => seen.doubtful(e.event.event_id, Date.parse(e.event.occurred_at)));
  if (doubtful.length === 0) return { fresh: events, lookedUp: 0 };
  const existing = await existingEventIds(
    clickhouse,
    [...new Set(doubtful.map((e) => e.event.org_id))],
    doubtful.map((e) => e.event.event_id),
  );
  return { fresh: events.filter((e) => !existing.has(e.event.event_id)), lookedUp: doubtful.length };
}

/** The batch's deterministic identity: the same records always make the same id (ClickHouse insert dedup token). */
export function batchIdentity(batch: Pick<ConsumedBatch, "topic" | "partition" | "messages">): string {
  const first = batch.messages[0]?.offset ?? "0";
  const last = batch.messages[batch.messages.length - 1]?.offset ?? first;
  return `${batch.topic}:${batch.partition}:${first}-${last}`;
}

export interface RecordedRow {
  event: PricedUsageEvent;
  row: UsageEventRow;
  late: boolean;
}

/** What a batch writes: its new orgs and usage_events rows (step 3), its spend_daily rollup (step 7). */
export interface BatchWrite {
  batchId: string;
  newOrgs: string[];
  rows: UsageEventRow[];
  rollup: SpendDailyRow[];
}

/**
 * Step 3, first half: the batch's rows, each tagged with the batch identity as batch_id, and its rollup. The ids go
 * into the partition's filter here, before their insert.
 */
export function recordRows(
  part: PartitionState,
  batch: Pick<ConsumedBatch, "topic" | "partition" | "messages">,
  fresh: DecodedEvent[],
  now: () => number,
): { rows: RecordedRow[]; late: number; write: BatchWrite } {
  const batchId = batchIdentity(batch);
  const rows: RecordedRow[] = [];
  // The rollup's amounts are summed exactly as bigints and written out once, after the loop.
  const rollup = new Map<string, { row: SpendDailyRow; gross: DecimalSum; net: DecimalSum }>();
  let late = 0;
  const pricedAtText = lastValue((ms: number) => chTime(new Date(ms).toISOString()));
  for (const { event: e, pricedAt } of fresh) {
    const discount = part.spend.discountOf(e.org_id);
    const net = netCost(e.total_cost, discount);
    const isLate = periodOf(Date.parse(e.occurred_at)) < periodOf(pricedAt || now());
    if (isLate) late++;
    const model = resolveModelId(e.model);
    const row: UsageEventRow = {
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
      priced_at: pricedAtText(pricedAt),
      batch_id: batchId,
      is_late: isLate,
    };
    rows.push({ event: e, row, late: isLate });
    const day = e.occurred_at.slice(0, 10);
    const key = `${e.org_id}\u0000${day}\u0000${e.user_id}\u0000${e.seat_tier}\u0000${e.product}\u0000${model}\u0000${e.region ?? ""}\u0000${e.long_context}`;
    const r = rollup.get(key);
    if (r) {
      r.row.requests++;
      r.row.input_tokens += e.input_tokens;
      r.row.output_tokens += e.output_tokens;
      r.row.cache_write_tokens += e.cache_write_tokens;
      r.row.cache_read_tokens += e.cache_read_tokens;
      r.gross.add(e.total_cost);
      r.net.add(net);
    } else {
      const row: SpendDailyRow = {
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
        gross_cost: "",
        net_cost: "",
      };
      rollup.set(key, { row, gross: new DecimalSum().add(e.total_cost), net: new DecimalSum().add(net) });
    }
  }
  const rollupRows: SpendDailyRow[] = [];
  for (const { row, gross, net } of rollup.values()) {
    row.gross_cost = gross.toString();
    row.net_cost = net.toString();
    rollupRows.push(row);
  }
  // Into the filter before the inserts: a "maybe" is only ever confirmed in ClickHouse, so an id whose insert then
  // fails costs a lookup at its redelivery, never a miss.
  for (const f of fresh) part.seen.add(f.event.event_id);
  const newOrgs = [...new Set(fresh.map((f) => f.event.org_id))].filter((o) => !part.orgs.has(o));
  return { rows, late, write: { batchId, newOrgs, rows: rows.map((r) => r.row), rollup: rollupRows } };
}

/**
 * Step 3, second half (every caller has confirmed ownership of its partition): the new orgs, then usage_events, one
 * insert per table for all the batches handed over together (the batches of one fetch, from several partitions:
 * createGroupCommit). Each row keeps its own batch's identity as batch_id, which is what the load's repair goes by;
 * the insert deduplication token is the group's batch identities, so the same group written twice is one part. A
 * group that fails fails every batch in it (each is redelivered and its partition loaded again).
 */
export async function writeEvents(clickhouse: ClickHouseClient, writes: BatchWrite[]): Promise<void> {
  await insertOrgs(clickhouse, [...new Set(writes.flatMap((w) => w.newOrgs))]);
  await insertUsageEvents(
    clickhouse,
    writes.flatMap((w) => w.rows),
    groupToken(writes),
  );
}

/**
 * Step 7's rollup (the caller has confirmed ownership again): the batches' spend_daily rows, one insert for the
 * batches handed over together, as writeEvents. Always after the same batches' writeEvents; a batch whose rollup
 * never lands (a crash, a failed insert) is rebuilt from usage_events by the partition's next load.
 */
export async function writeRollups(clickhouse: ClickHouseClient, writes: BatchWrite[]): Promise<void> {
  await insertSpendDaily(
    clickhouse,
    writes.flatMap((w) => w.rollup),
    groupToken(writes),
  );
}

function groupToken(writes: BatchWrite[]): string {
  return writes
    .map((w) => w.batchId)
    .sort()
    .join(",");
}

export interface Touched {
  /** org → users whose current-period spend moved. */
  users: Map<string, Set<string>>;
  /** `org` and `org NUL user` → the last event that moved it (the cause of a signal). */
  causes: Map<string, string>;
  /** org → its last event (credits move on every event of a prepaid org, late or not). */
  lastEventOf: Map<string, string>;
}

/**
 * Step 4: the recorded events' net spend into the partition's running totals. Spend counts toward caps only in its
 * own period and only while that period is current or ahead (an event up to 5 minutes in the future may fall in next
 * month): a late event's month is closed (SpendState.recordSpend).
 */
export function accountStep(part: PartitionState, rows: RecordedRow[]): Touched {
  const touched: Touched = { users: new Map(), causes: new Map(), lastEventOf: new Map() };
  // Each user's net spend of the batch per period, summed exactly, then added to the running totals once: nothing
  // in this loop reads those totals, and exact sums do not depend on the order of the additions.
  const spends = new Map<string, { orgId: string; userId: string; period: string; net: DecimalSum }>();
  for (const { event: e, row } of rows) {
    const occurredAt = Date.parse(e.occurred_at);
    part.spend.noteSeatTier(e.org_id, e.user_id, e.seat_tier, occurredAt);
    part.spend.addCreditSpend(e.org_id, occurredAt, row.net_cost);
    touched.lastEventOf.set(e.org_id, e.event_id);
    let users = touched.users.get(e.org_id);
    if (!users) {
      users = new Set();
      touched.users.set(e.org_id, users);
    }
    users.add(e.user_id);
    const period = part.spend.capPeriodOf(occurredAt);
    if (period === undefined) continue;
    const key = `${e.org_id}\u0000${e.user_id}\u0000${period}`;
    const spend = spends.get(key);
    if (spend) spend.net.add(row.net_cost);
    else spends.set(key, { orgId: e.org_id, userId: e.user_id, period, net: new DecimalSum().add(row.net_cost) });
    touched.causes.set(`${e.org_id}\u0000${e.user_id}`, e.event_id);
    touched.causes.set(e.org_id, e.event_id);
  }
  for (const s of spends.values()) part.spend.addSpend(s.orgId, s.userId, s.period, s.net.toString());
  return touched;
}

/** Step 5: cap transitions of the touched orgs and users, as signals. */
export function evaluateStep(part: PartitionState, touched: Touched, at: number): CapSignal[] {
  const signals: CapSignal[] = [];
  for (const [orgId, users] of touched.users) {
    for (const tr of part.spend.evaluate(orgId, users)) {
      const cause =
        tr.entity.type === "org" ? touched.causes.get(orgId) : touched.causes.get(`${orgId}\u0000${tr.entity.id}`);
      signals.push(toSignal(tr, cause ?? null, at));
    }
  }
  return signals;
}

/** Credit steps of the given orgs: reload entries and signals, `causes` naming the event behind each org's. */
export function stepCredits(
  part: PartitionState,
  orgIds: Iterable<string>,
  causes: Map<string, string>,
  at: number,
): { entries: CreditLedgerRow[]; signals: CapSignal[] } {
  const entries: CreditLedgerRow[] = [];
  const signals: CapSignal[] = [];
  const period = part.spend.currentPeriod();
  for (const orgId of orgIds) {
    const org = part.spend.org(orgId);
    if (!org.credits) continue;
    const effects = creditEffects(org, part.spend.stepCredits(orgId), period, causes.get(orgId) ?? null, at);
    entries.push(...effects.entries);
    signals.push(...effects.signals);
  }
  return { entries, signals };
}

/** `YYYY-MM-DD HH:mm:ss.SSS` (UTC) for ClickHouse DateTime64(3, 'UTC'). */
function chTime(iso: string): string {
  return iso.replace("T", " ").replace("Z", "");
}

/** `f`, answering a repeat of the previous argument from memory (a batch's records share their timestamps in runs). */
function lastValue<T>(f: (arg: number) => T): (arg: number) => T {
  let lastArg = Number.NaN;
  let last: T | undefined;
  return (arg) => {
    if (arg !== lastArg) {
      last = f(arg);
      lastArg = arg;
    }
    return last as T;
  };
}
