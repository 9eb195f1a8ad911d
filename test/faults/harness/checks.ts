/**
 * Producing the workload, waiting for the pipeline to settle, and the checks every fault scenario ends with:
 *
 *   - totals: MTD/QTD/YTD per org and YTD per user (spend and request counts) from the API, and the caps report's
 *     spend and statuses, equal to the independent recomputation (workload.ts), exactly;
 *   - pricing exactly once: every event id published once is on usage.priced.v1 (read_committed) exactly once per
 *     pricing pass, never more than it was published;
 *   - the DLQ: every malformed message there once per pricing pass, with its reason (and field), its original bytes,
 *     and nothing else;
 *   - alerts never twice: the notifier's alerts table (through the API) lists no alert id twice and no alert it
 *     should not have (a threshold passed, an entity without a limit, a second blocked alert), has the alert for
 *     where each capped entity ended, every one delivered; spend.alerts.v1 and the webhook receiver carry exactly
 *     those ids (each once, unless the scenario allows the documented at-least-once repeats).
 */
import { decode, pricedUsageEventV1, type UsageEvent } from "@usage/events";
import { createProducer, type Kafka, type KafkaMessage, readDeadLetter, TOPICS } from "@usage/kafka";
import { periodOf } from "@usage/periods";
import { expect } from "vitest";
import { Exact } from "../../harness/exact.js";
import { runCli } from "../../harness/index.js";
import { type AlertPayload, type Pipeline, sleep, waitFor } from "./pipeline.js";
import { type BadMessage, currentSpend, type Workload, windowSum } from "./workload.js";

/** What was published, attempt by attempt (a retried publish may publish an event twice). */
export class Ledger {
  readonly good = new Map<string, number>();
  readonly bad = new Map<string, number>();
  produceRuns: { code: number | null; ms: number; tail: string }[] = [];
}

/** Publishes good events with `usagectl produce` while malformed ones go straight to the topic, interleaved. */
export async function produce(
  p: Pipeline,
  ledger: Ledger,
  events: UsageEvent[],
  bad: BadMessage[],
  options: { retry?: boolean } = {},
): Promise<void> {
  const sendBad = (async () => {
    if (bad.length === 0) return;
    const producer = createProducer(p.kafka);
    await producer.connect();
    try {
      for (let i = 0; i < bad.length; i += 250) {
        const chunk = bad.slice(i, i + 250);
        await producer.send({ topic: TOPICS.events, messages: chunk.map((b) => b.message), acks: -1 });
        for (const b of chunk) ledger.bad.set(b.message.key, (ledger.bad.get(b.message.key) ?? 0) + 1);
        await sleep(60);
      }
    } finally {
      await producer.disconnect();
    }
  })();
  const input = events.map((e) => JSON.stringify(e)).join("\n");
  for (let attempt = 1; ; attempt++) {
    for (const e of events) ledger.good.set(e.event_id, (ledger.good.get(e.event_id) ?? 0) + 1);
    const started = Date.now();
    const run = await runCli(["produce"], {
      env: { KAFKA_BROKERS: p.brokers.join(","), LOG_LEVEL: "error" },
      input,
    });
    ledger.produceRuns.push({ code: run.code, ms: Date.now() - started, tail: run.stderr.slice(-600) });
    if (run.code === 0) break;
    if (!options.retry || attempt >= 3)
      throw new Error(`usagectl produce exited ${run.code}: ${run.stderr.slice(-2000)}`);
    // A surface whose publish failed publishes again; the pipeline deduplicates on event_id.
    process.stderr.write(`[faults ${p.name}] FINDING: usagectl produce exited ${run.code}; publishing again\n`);
  }
  await sendBad;
}

/**
 * The workload in `slices` parts, `pauseMs` apart, the malformed messages with the first: events keep arriving for a
 * while, so a fault lands while services are busy and more comes after it.
 */
export async function produceInSlices(
  p: Pipeline,
  ledger: Ledger,
  wl: Workload,
  options: { slices: number; pauseMs: number; retry?: boolean },
): Promise<void> {
  const size = Math.ceil(wl.events.length / options.slices);
  for (let i = 0; i < options.slices; i++) {
    if (i > 0) await sleep(options.pauseMs);
    await produce(p, ledger, wl.events.slice(i * size, (i + 1) * size), i === 0 ? wl.bad : [], {
      retry: options.retry,
    });
  }
}

/** Reads a whole topic from offset 0: until `minCount` messages have come and nothing new for `quietMs`. */
export async function readAll(
  kafka: Kafka,
  topic: string,
  options: { minCount?: number; quietMs?: number; timeoutMs?: number; uncommitted?: boolean } = {},
): Promise<KafkaMessage[]> {
  const consumer = kafka.consumer({
    groupId: `faults-read-${topic}-${Date.now()}-${Math.random()}`,
    readUncommitted: options.uncommitted ?? false,
    maxWaitTimeInMs: 200,
    maxBytesPerPartition: 4 * 1024 * 1024,
  });
  const messages: KafkaMessage[] = [];
  let last = 0;
  await consumer.connect();
  try {
    await consumer.subscribe({ topic, fromBeginning: true });
    await consumer.run({
      eachBatchAutoResolve: true,
      eachBatch: async ({ batch }) => {
        if (batch.messages.length === 0) return;
        messages.push(...batch.messages);
        last = Date.now();
      },
    });
    const started = Date.now();
    const quiet = options.quietMs ?? 1500;
    const min = options.minCount ?? 0;
    while (Date.now() < started + (options.timeoutMs ?? 60_000)) {
      if (messages.length >= min && Date.now() - Math.max(last, started + 2500) > quiet) break;
      await sleep(100);
    }
    return messages.slice();
  } finally {
    await consumer.disconnect();
  }
}

interface SpendBody {
  total: string;
  rows: { key: string; spend: string; requests: string }[];
}

async function totalsExact(p: Pipeline, wl: Workload): Promise<boolean> {
  for (const org of wl.orgs) {
    const body = await p.api<SpendBody>(`/v1/orgs/${org}/spend?window=ytd`);
    const want = windowSum(wl, org, "ytd");
    const requests = body.rows.reduce((n, r) => n + Number(r.requests), 0);
    if (!Exact.of(body.total).eq(want.spend) || requests !== want.requests) return false;
  }
  return true;
}

export interface SettleOptions {
  timeoutMs?: number;
  /** Wait for the notifier too (it is running and its alerts must be out). */
  alerts?: boolean;
  /** Require the alert for where each capped entity ended at the receiver (default); false: wait 20 s at most. */
  finalAlerts?: boolean;
}

/** Waits until the aggregator's totals are exact, every input consumed, and every final alert at the receiver. */
export async function settle(p: Pipeline, wl: Workload, options: SettleOptions = {}): Promise<void> {
  const timeoutMs = options.timeoutMs ?? 120_000;
  await waitFor("every distinct event in the YTD totals, exactly", () => totalsExact(p, wl), timeoutMs);
  await waitFor("the pricing worker to consume usage.events.v1", async () => (await p.lag("pricing")) === 0, 60_000);
  if (options.alerts === false) return;
  await waitFor("the notifier to consume spend.signals.v1", async () => (await p.lag("notifier")) === 0, 60_000);
  const finalAlerts = waitFor(
    "the alert for where each capped entity ended, at the webhook receiver",
    () => {
      const missing = missingFinalAlerts(p, wl);
      if (missing.length > 0) throw new Error(`${missing.length} missing, e.g. ${missing.slice(0, 5).join(", ")}`);
      return true;
    },
    options.finalAlerts === false ? 20_000 : 60_000,
  );
  // Not required: give them 20 s, then let the checks say which are missing.
  await (options.finalAlerts === false ? finalAlerts.catch(() => undefined) : finalAlerts);
  // Let anything still in flight (a wrong extra alert, a repeated POST) arrive before the checks.
  await waitFor("the receiver to be quiet for 2 s", () => Date.now() - p.receiver.lastPostAt > 2000, 60_000);
}

function missingFinalAlerts(p: Pipeline, wl: Workload): string[] {
  const have = new Set<string>();
  for (const a of p.receiver.payloads.values()) {
    if (a.period !== wl.period) continue;
    have.add(`${a.org_id}/${a.entity.type}:${a.entity.id}/${a.kind === "blocked" ? "blocked" : a.threshold}`);
  }
  const missing: string[] = [];
  for (const e of wl.entities) {
    if (e.threshold === null && !e.blocked) continue;
    const key = `${e.org}/${e.type}:${e.id}/${e.blocked ? "blocked" : e.threshold}`;
    if (!have.has(key)) missing.push(key);
  }
  return missing;
}

/** Spend per org and window, per user for YTD (spend and requests), exactly as recomputed. */
export async function checkTotals(p: Pipeline, wl: Workload): Promise<void> {
  for (const org of wl.orgs) {
    for (const window of ["mtd", "qtd", "ytd"] as const) {
      const body = await p.api<SpendBody>(`/v1/orgs/${org}/spend?window=${window}&group_by=user`);
      const want = windowSum(wl, org, window);
      expect(Exact.of(body.total).eq(want.spend), `${org} ${window} total ${body.total} vs ${want.spend}`).toBe(true);
      const users = new Set([...wl.priced.values()].filter((x) => x.org === org).map((x) => x.user));
      const expectedRows: string[] = [];
      for (const user of users) if (windowSum(wl, org, window, user).requests > 0) expectedRows.push(user);
      expect(body.rows.map((r) => r.key).sort(), `${org} ${window} users`).toEqual(expectedRows.sort());
      for (const row of body.rows) {
        const u = windowSum(wl, org, window, row.key);
        expect(Exact.of(row.spend).eq(u.spend), `${org} ${window} ${row.key} spend ${row.spend} vs ${u.spend}`).toBe(
          true,
        );
        expect(Number(row.requests), `${org} ${window} ${row.key} requests`).toBe(u.requests);
      }
    }
  }
}

interface CapsBody {
  org: { limit: string | null; spend: string; status: string };
  users: Record<string, { limit: string | null; spend: string; status: string }>;
}

/** The caps report (the aggregator's in-memory state): current-month spend and each capped entity's status. */
export async function checkCaps(p: Pipeline, wl: Workload): Promise<void> {
  const current = currentSpend(wl.priced, wl.period);
  for (const org of wl.orgs) {
    const caps = await p.api<CapsBody>(`/v1/orgs/${org}/caps`);
    const want = current.get(org);
    expect(Exact.of(caps.org.spend).eq(want?.total ?? 0), `${org} caps org spend ${caps.org.spend}`).toBe(true);
    for (const [user, spend] of want?.users ?? []) {
      const got = caps.users[user];
      expect(got, `${org} caps user ${user}`).toBeDefined();
      expect(Exact.of(got!.spend).eq(spend), `${org} caps ${user} spend ${got!.spend} vs ${spend}`).toBe(true);
    }
    // SPEC §5: at the org ceiling every user of the org is blocked (blocked_by "org"), whatever their own cap says.
    const orgBlocked = wl.entities.some((x) => x.org === org && x.type === "org" && x.blocked);
    for (const e of wl.entities.filter((x) => x.org === org)) {
      const own = e.blocked ? "blocked" : e.threshold !== null ? "warning" : "ok";
      const status = e.type === "user" && orgBlocked ? "blocked" : own;
      const got = e.type === "org" ? caps.org.status : caps.users[e.id]?.status;
      expect(got, `${org} ${e.type}:${e.id} status`).toBe(status);
    }
  }
}

/**
 * usage.priced.v1, read_committed: every event id once per pricing pass (`passes`), never more often than it was
 * published (a crash may re-price an id published twice, whose first copy was priced by the worker before it).
 * Returns how many priced messages the topic holds.
 */
export async function checkPricedOnce(p: Pipeline, wl: Workload, ledger: Ledger, passes = 1): Promise<number> {
  const messages = await readAll(p.kafka, TOPICS.priced, { minCount: wl.distinct.size * passes });
  const copies = new Map<string, number>();
  for (const m of messages) {
    const d = decode(m.value, pricedUsageEventV1);
    expect(d.ok, "a priced message decodes").toBe(true);
    if (!d.ok) continue;
    const id = d.value.event_id as string;
    copies.set(id, (copies.get(id) ?? 0) + 1);
  }
  const strangers = [...copies.keys()].filter((id) => !wl.distinct.has(id));
  expect(strangers, "priced ids that were never published as good events").toEqual([]);
  const wrong: string[] = [];
  for (const id of wl.distinct.keys()) {
    const n = copies.get(id) ?? 0;
    const published = ledger.good.get(id) ?? 0;
    const ok = published === 1 ? n === passes : n >= passes && n <= published * passes;
    if (!ok) wrong.push(`${id}: published ${published}, priced ${n}`);
  }
  expect(wrong.slice(0, 20), `${wrong.length} event ids not priced exactly once per pass`).toEqual([]);
  return messages.length;
}

/** Records in aborted transactions on usage.priced.v1: proof that a pricing transaction was cut off mid-batch. */
export async function abortedPricedRecords(p: Pipeline, committed: number): Promise<number> {
  const all = await readAll(p.kafka, TOPICS.priced, { minCount: committed, uncommitted: true });
  return all.length - committed;
}

/** usage.dlq.v1: each malformed message once per pricing pass, with its reason, field and original bytes. */
export async function checkDlq(p: Pipeline, wl: Workload, ledger: Ledger, passes = 1): Promise<void> {
  const wantTotal = [...ledger.bad.values()].reduce((a, b) => a + b, 0) * passes;
  const messages = await readAll(p.kafka, TOPICS.dlq, { minCount: wantTotal });
  const byKey = new Map(wl.bad.map((b) => [b.message.key, b]));
  const seen = new Map<string, number>();
  const problems: string[] = [];
  for (const m of messages) {
    const key = m.key?.toString() ?? "";
    const b = byKey.get(key);
    if (!b) {
      problems.push(`unexpected DLQ message key ${JSON.stringify(key)}: ${JSON.stringify(readDeadLetter(m.headers))}`);
      continue;
    }
    seen.set(key, (seen.get(key) ?? 0) + 1);
    const dl = readDeadLetter(m.headers);
    if (dl.reason !== b.reason || dl.field !== b.field) {
      problems.push(`${key} (${b.kind}): reason ${dl.reason}/${dl.field} instead of ${b.reason}/${b.field}`);
    }
    if (dl.sourceTopic !== TOPICS.events) problems.push(`${key}: source topic ${dl.sourceTopic}`);
    if (dl.message === "") problems.push(`${key}: no dlq.message`);
    const sent = b.message.value === null ? null : Buffer.from(b.message.value as Buffer).toString("hex");
    const got = m.value === null ? null : m.value.toString("hex");
    // A null value and an empty one are the same record to Kafka.
    if ((sent ?? "") !== (got ?? "")) problems.push(`${key} (${b.kind}): DLQ value differs from the original bytes`);
  }
  for (const [key, sent] of ledger.bad) {
    const n = seen.get(key) ?? 0;
    if (n !== sent * passes)
      problems.push(`${key} (${byKey.get(key)?.kind}): ${n} times in the DLQ, expected ${sent * passes}`);
  }
  expect(problems.slice(0, 25), `${problems.length} DLQ problems`).toEqual([]);
  expect(messages.length).toBe(wantTotal);
}

interface ListedAlert extends AlertPayload {
  delivery: { state: string; attempts: number; last_error: string | null };
}

export interface AlertReport {
  alerts: number;
  /** Capped entities whose alert for where they ended was never created (`org/entity/threshold|blocked`). */
  missingFinal: string[];
  topicMessages: number;
  topicRepeats: number;
  receiverPosts: number;
  receiverRepeats: number;
}

/**
 * Alerts never twice. Stops the notifier (its embedded ClickHouse is then readable through `usagectl run api`).
 * `strict`: spend.alerts.v1 and the receiver carry each alert exactly once; otherwise repeats of an existing alert
 * id are allowed there (documented at-least-once after a crash or an outage between store and publish/POST) and
 * counted in the report.
 */
export async function checkAlerts(
  p: Pipeline,
  wl: Workload,
  options: { strict: boolean; allowMissingFinal?: boolean },
): Promise<AlertReport> {
  const code = await p.services.notifier.stop();
  expect(code, "the notifier stops cleanly on SIGTERM").toBe(0);
  const previous = periodOf(Date.UTC(Number(wl.period.slice(0, 4)), Number(wl.period.slice(5, 7)) - 1, 1) - 1);
  const { listed, older } = await p.withNotifierApi(async (api) => {
    const listed: ListedAlert[] = [];
    const older: ListedAlert[] = [];
    for (const org of wl.orgs) {
      listed.push(...(await api<{ alerts: ListedAlert[] }>(`/v1/orgs/${org}/alerts?period=${wl.period}`)).alerts);
      older.push(...(await api<{ alerts: ListedAlert[] }>(`/v1/orgs/${org}/alerts?period=${previous}`)).alerts);
    }
    return { listed, older };
  });

  const problems: string[] = [];
  const missingFinal: string[] = [];
  const ids = listed.map((a) => a.alert_id);
  if (new Set(ids).size !== ids.length) problems.push("the alerts API lists an alert id twice");
  if (older.length > 0) problems.push(`${older.length} alerts for ${previous}: late events never count toward caps`);
  for (const a of listed) {
    if (a.delivery.state !== "delivered") {
      problems.push(`${a.alert_id} ${describe(a)}: delivery ${a.delivery.state} (${a.delivery.last_error})`);
    }
  }
  const byEntity = new Map<string, ListedAlert[]>();
  for (const a of listed) {
    const key = `${a.org_id}/${a.entity.type}:${a.entity.id}`;
    byEntity.set(key, [...(byEntity.get(key) ?? []), a]);
  }
  for (const e of wl.entities) {
    const key = `${e.org}/${e.type}:${e.id}`;
    const alerts = byEntity.get(key) ?? [];
    byEntity.delete(key);
    const blocked = alerts.filter((a) => a.kind === "blocked");
    const unblocked = alerts.filter((a) => a.kind === "unblocked");
    const thresholds = alerts.filter((a) => a.kind === "threshold").map((a) => a.threshold ?? "");
    if (unblocked.length > 0) problems.push(`${key}: unblocked alert, but no policy ever changed`);
    if (e.blocked && blocked.length === 0) missingFinal.push(`${key}/blocked`);
    else if (blocked.length !== (e.blocked ? 1 : 0)) {
      problems.push(`${key}: ${blocked.length} blocked alerts, expected ${e.blocked ? 1 : 0}`);
    }
    if (new Set(thresholds).size !== thresholds.length)
      problems.push(`${key}: a threshold alerted twice: ${thresholds}`);
    for (const t of thresholds) {
      if (e.threshold === null || Exact.of(t).gt(e.threshold) || (e.blocked && Exact.of(t).gte(1))) {
        problems.push(`${key}: threshold ${t} alerted, but the entity ended at ${e.threshold} (blocked: ${e.blocked})`);
      }
    }
    if (!e.blocked && e.threshold !== null && !thresholds.some((t) => Exact.of(t).eq(e.threshold!))) {
      missingFinal.push(`${key}/${e.threshold} (alerted: ${thresholds})`);
    }
  }
  if (!options.allowMissingFinal) {
    for (const m of missingFinal) problems.push(`${m}: no alert for where the entity ended`);
  }
  for (const [key, alerts] of byEntity) problems.push(`${key}: ${alerts.length} alerts for an entity without a limit`);

  // spend.alerts.v1 and the receiver: exactly the stored alerts.
  const topic = await readAll(p.kafka, TOPICS.alerts, { minCount: listed.length });
  const onTopic = new Map<string, number>();
  for (const m of topic) {
    const id = (JSON.parse(m.value!.toString()) as AlertPayload).alert_id;
    onTopic.set(id, (onTopic.get(id) ?? 0) + 1);
  }
  const stored = new Set(ids);
  const sameSet = (a: Iterable<string>) => [...a].sort().join(",") === [...stored].sort().join(",");
  if (!sameSet(onTopic.keys())) problems.push("spend.alerts.v1 does not hold exactly the stored alert ids");
  if (!sameSet(p.receiver.received.keys())) problems.push("the receiver did not get exactly the stored alert ids");
  if (p.receiver.badSignatures > 0) problems.push(`${p.receiver.badSignatures} POSTs with a bad signature`);
  if (p.receiver.mismatchedIds > 0) problems.push(`${p.receiver.mismatchedIds} POSTs whose header named another id`);
  const topicRepeats = [...onTopic.values()].reduce((n, c) => n + c - 1, 0);
  const receiverRepeats = [...p.receiver.received.values()].reduce((n, c) => n + c - 1, 0);
  if (options.strict && topicRepeats > 0) problems.push(`${topicRepeats} repeated alerts on spend.alerts.v1`);
  if (options.strict && receiverRepeats > 0) problems.push(`${receiverRepeats} repeated webhook POSTs`);
  expect(problems.slice(0, 30), `${problems.length} alert problems`).toEqual([]);
  expect(listed.length).toBeGreaterThan(10);
  return {
    alerts: listed.length,
    missingFinal,
    topicMessages: topic.length,
    topicRepeats,
    receiverPosts: p.receiver.posts,
    receiverRepeats,
  };
}

function describe(a: AlertPayload): string {
  return `${a.org_id}/${a.entity.type}:${a.entity.id}/${a.kind}/${a.threshold}`;
}

/** One line per scenario on stderr: what happened and how long it took. */
export function report(p: Pipeline, facts: Record<string, unknown>): void {
  const line = {
    scenario: p.name,
    seconds: Math.round((Date.now() - p.startedAt) / 100) / 10,
    findings: p.findings.map((f) => ({ service: f.service, code: f.code, signal: f.signal, at_s: f.atMs / 1000 })),
    restarts: Object.fromEntries(Object.values(p.services).map((s) => [s.name, { starts: s.starts, kills: s.kills }])),
    ...facts,
  };
  process.stderr.write(`[faults] ${JSON.stringify(line)}\n`);
}
