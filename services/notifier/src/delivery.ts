/**
 * Webhook delivery runs from the alerts table, not from the consumer, so a delivery survives any restart: whatever
 * is pending or retrying in the table is what gets delivered.
 *
 * Who delivers what: each notifier member runs one loop and delivers only the alerts of the orgs it owns
 * (ownership.ts: the org's spend.signals.v1 partition is assigned to this member's consumer, confirmed by the group
 * coordinator within a lease). A member that owns nothing — before its first assignment, between a rebalance and the
 * next join, once stopping, or cut off from the broker — delivers nothing. When a member leaves or dies, the survivor
 * that gets its partitions finds the pending and retrying alerts in the table: nothing is handed over. Ownership is
 * per consumer group, so one notifier group delivers from a database: a second group running beside it (a replay
 * under another group id) would deliver every alert again.
 *
 * One tick (ticks never overlap; a new alert or a new assignment kicks one kickDelayMs later, else every pollMs):
 *   0. take the current ownership; write the outcomes held back by a failed insert if it is still the ownership
 *      they were made under, else drop them (see below);
 *   1. read the orgs with alerts due now, keep the owned ones, read their due alerts: state pending or retrying,
 *      next_attempt_at reached (FINAL: the newest version);
 *   2. read the webhooks of their orgs;
 *   3. POST each alert's stored payload, signed afresh (bounded concurrency, per-request timeout, no redirects),
 *      each only while the ownership is still held;
 *   4. if the ownership is still writable (held, or its lease ran out without a rebalance moments ago: see
 *      Ownership.writable), write one new row version per alert (one insert): delivered (2xx), retrying
 *      (with the next attempt time: exponential backoff, full jitter), dead (the last attempt failed; kept and
 *      visible, never dropped), or no_webhook (the org has none; the alert is still on spend.alerts.v1);
 *   5. count outcomes.
 * A crash between 3 and 4 repeats those POSTs after the restart: delivery is at-least-once and receivers
 * deduplicate on alert_id (X-Usage-Alert-Id, and in the body). When the insert of 4 fails (ClickHouse refusing
 * writes), the outcomes are kept in memory and written first at every later tick; no alert is POSTed again, and
 * nothing new is attempted, until they are stored — so an outage of ClickHouse never turns into a storm of repeats.
 * Row versions of an alert get strictly increasing updated_at, so FINAL always picks the latest.
 *
 * A member that loses its partitions mid-tick must not write over the new owner. The outcome rows are versions of
 * ReplacingMergeTree(updated_at): the highest updated_at wins (a tie: the last inserted), whoever wrote it, and a
 * member's updated_at comes from its own clock. So a stale member's outcome written after the new owner's could
 * win — with the clocks of two hosts apart, even when it describes an older attempt. Hence the checks in 3 and 4:
 * a POST is not started once the ownership is not held, and outcomes are not written once it is not writable (a
 * rebalance was seen, or the coordinator has been silent for most of a session timeout); outcomes held back by a
 * failed insert are dropped when the ownership they were made under is gone. Outcomes not written because a rebalance
 * was seen mid-tick are kept: at the next tick, if this member owns their orgs again (the usual end of a rebalance:
 * every one revokes everything) and an alert's stored version is still the one it was attempted from, the outcome is
 * stored then, under an ownership no other member shares, instead of the alert being POSTed again (adoptOrphans).
 * A dropped outcome only costs a repeated POST:
 * the new owner finds the alert still pending or retrying and POSTs it again (at-least-once across a rebalance, as
 * across a crash). What remains is an insert already under way when the rebalance is seen or the lease runs out.
 * The new owner gets the partition only after this member has rejoined (a live member, eager rebalancing) or half
 * a session timeout after its lease ended (a member stalled or cut off), so that insert has normally landed before
 * the new owner reads. If both versions still met, each starts from the same stored version (same attempt number)
 * and describes a POST that really happened, so whichever wins is delivered (the receiver has it), retrying (one
 * more POST) or dead (that attempt was the last for both): never a lost alert.
 */
import {
  type AlertRow,
  alertsByIds,
  type ClickHouseClient,
  chDateTime,
  dueAlertOrgs,
  dueAlerts,
  insertAlerts,
  parseChDateTime,
  type WebhookRow,
  webhooksOf,
} from "@usage/clickhouse";
import type { Logger } from "@usage/runtime";
import {
  ALERT_ID_HEADER,
  publicOnlyAgent,
  type SecretBox,
  SIGNATURE_HEADER,
  signPayload,
  webhookUrlProblem,
} from "@usage/webhooks";
import { afterAttempt, type RetryPolicy } from "./backoff.js";
import type { NotifierMetrics } from "./metrics.js";
import { OWNS_ALL, type Ownership } from "./ownership.js";

export interface DeliveryDeps {
  clickhouse: ClickHouseClient;
  logger: Logger;
  metrics: NotifierMetrics;
  retry: RetryPolicy;
  /** Per POST, connection included. */
  timeoutMs: number;
  /** Deliver to plain http and local addresses (USAGE_WEBHOOK_ALLOW_PRIVATE; development and tests only). */
  allowPrivate: boolean;
  /** Opens the stored (sealed) webhook secrets to sign with. */
  secrets: SecretBox;
  pollMs: number;
  /**
   * How long a kick waits before its tick (default 250 ms): alerts written meanwhile, by later batches, go out in the
   * same tick. A tick costs a few engine calls whatever it delivers, and a batch of signals often creates one alert.
   */
  kickDelayMs?: number;
  /** Alerts attempted per tick at most. */
  batchLimit?: number;
  /** POSTs in flight at once. */
  concurrency?: number;
  now?: () => number;
  random?: () => number;
  fetch?: typeof fetch;
  /** Which orgs this loop delivers for, asked at every tick (ownership.ts); without it, every org of the database. */
  ownership?: () => Promise<Ownership | undefined>;
  /** The member this loop belongs to, in the `due` gauge and the logs. */
  member?: string;
}

export interface DeliveryLoop {
  start(): void;
  /** Stops polling and waits for the tick in progress. */
  stop(): Promise<void>;
  /** Runs a tick soon (new alerts were just written). */
  kick(): void;
  /** One tick; returns how many alerts were attempted. */
  runOnce(): Promise<number>;
}

const MAX_ERROR_LENGTH = 500;

export function createDeliveryLoop(deps: DeliveryDeps): DeliveryLoop {
  const member = deps.member ?? "0";
  const log = deps.logger.child({ component: "delivery", member });
  const now = deps.now ?? Date.now;
  const random = deps.random ?? Math.random;
  const post = deps.fetch ?? globalThis.fetch;
  // SSRF guard: every connection resolves its host through safeLookup, which refuses non-public addresses, so the
  // address checked is the address connected to (a rebinding name is refused at delivery, not only at registration).
  const dispatcher = deps.allowPrivate ? undefined : publicOnlyAgent();
  const limit = deps.batchLimit ?? 500;
  const concurrency = deps.concurrency ?? 16;
  let stopped = true;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<number> | undefined;
  let again = false;
  /** Outcomes POSTed but not yet stored (their insert failed): written before anything else is attempted. */
  const unwritten = new Map<string, AlertRow>();
  /** The ownership the unwritten outcomes were made under. */
  let unwrittenUnder: Ownership = OWNS_ALL;
  /**
   * Outcomes of POSTs made under an ownership lost before they could be stored, each with the stored version
   * (updated_at) it was attempted from: stored at the next tick if this member owns the org again and nobody has
   * written the alert since (see adoptOrphans), else dropped.
   */
  const orphaned = new Map<string, { outcome: AlertRow; from: string }>();

  const kickDelayMs = deps.kickDelayMs ?? 250;
  /** When the scheduled tick runs (performance.now()). */
  let dueAt = Number.POSITIVE_INFINITY;

  function schedule(delayMs: number): void {
    if (stopped) return;
    clearTimeout(timer);
    dueAt = performance.now() + delayMs;
    timer = setTimeout(() => {
      dueAt = Number.POSITIVE_INFINITY;
      void tick();
    }, delayMs);
  }

  async function tick(): Promise<void> {
    if (running) {
      again = true;
      return;
    }
    let attempted = 0;
    running = runOnce();
    try {
      attempted = await running;
    } catch (err) {
      log.warn({ err }, "delivery tick failed; retrying at the next poll");
    } finally {
      running = undefined;
    }
    const kicked = again;
    again = false;
    schedule(attempted >= limit ? 0 : kicked ? kickDelayMs : deps.pollMs);
  }

  async function runOnce(): Promise<number> {
    const own = deps.ownership ? await deps.ownership() : OWNS_ALL;
    if (unwritten.size > 0) {
      if (!unwrittenUnder.held()) {
        log.warn(
          { alerts: unwritten.size, alert_ids: [...unwritten.keys()].slice(0, 20) },
          "partitions lost before held-back delivery outcomes were stored: dropped; their new owner POSTs them again",
        );
        unwritten.clear();
      } else {
        await insertAlerts(deps.clickhouse, [...unwritten.values()]);
        log.info({ alerts: unwritten.size }, "stored delivery outcomes held back by a failed write");
        unwritten.clear();
      }
    }
    if (!own) {
      deps.metrics.due.set({ member }, 0);
      return 0;
    }
    if (orphaned.size > 0) await adoptOrphans(own);
    // A member holding every partition of the topic owns every org: no need to ask which orgs have alerts due.
    const ownsEvery = own === OWNS_ALL || new Set(own.partitions).size >= own.partitionCount;
    const orgs = ownsEvery ? undefined : (await dueAlertOrgs(deps.clickhouse, now())).filter(own.owns);
    const due = await dueAlerts(deps.clickhouse, now(), limit, orgs);
    deps.metrics.due.set({ member }, due.length);
    if (due.length === 0) return 0;
    const hooks = await webhooksOf(deps.clickhouse, [...new Set(due.map((a) => a.org_id))]);
    const versions: AlertRow[] = [];
    let unsent = 0;
    await forEachLimited(due, concurrency, async (alert) => {
      // A POST cannot be taken back: none is started once this member may no longer own the alert.
      if (!own.held()) {
        unsent++;
        return;
      }
      versions.push(await attempt(alert, hooks.get(alert.org_id)));
    });
    if (!own.writable()) {
      const from = new Map(due.map((a) => [a.alert_id, a.updated_at]));
      for (const v of versions) orphaned.set(v.alert_id, { outcome: v, from: from.get(v.alert_id)! });
      log.warn(
        { posted: versions.length, not_posted: unsent, alert_ids: versions.slice(0, 20).map((v) => v.alert_id) },
        "partitions lost during a delivery tick: outcomes kept for the next assignment (stored if this member owns the orgs again and nobody wrote the alerts since; else their owner attempts them again)",
      );
      return 0;
    }
    if (!own.held()) {
      // The lease ran out mid-tick (the coordinator slow to answer, or moving to another broker), and no rebalance was
      // seen: no other member can own these alerts yet, so what was POSTed is stored rather than POSTed again later.
      log.warn(
        { posted: versions.length, not_posted: unsent },
        "lease ran out during a delivery tick: storing the outcomes of the POSTs made; the rest waits for the next owner",
      );
    }
    await store(versions, own);
    const counts = { delivered: 0, retry: 0, dead: 0, no_webhook: 0 };
    const failures: { alert_id: string; org_id: string; attempt: number; error: string }[] = [];
    for (const v of versions) {
      const outcome = v.state === "retrying" ? "retry" : (v.state as "delivered" | "dead" | "no_webhook");
      counts[outcome]++;
      deps.metrics.delivery(outcome, v.last_error);
      if (v.state === "retrying" || v.state === "dead") {
        failures.push({ alert_id: v.alert_id, org_id: v.org_id, attempt: v.attempts, error: v.last_error });
      }
      if (v.state === "dead") {
        log.error(
          { alert_id: v.alert_id, org_id: v.org_id, attempts: v.attempts, last_error: v.last_error },
          "webhook delivery gave up: alert dead-lettered (state dead)",
        );
      }
    }
    if (failures.length > 0) {
      log.warn({ failures: failures.slice(0, 20), more: Math.max(0, failures.length - 20) }, "webhook attempts failed");
    }
    log.info(counts, "webhook deliveries");
    return due.length;
  }

  /**
   * Outcomes orphaned by a rebalance (usually one that gave this member its partitions back: every rebalance revokes
   * everything). Under the ownership now held no other member can write these alerts, so an outcome is stored when
   * this member owns its org and the alert's stored version is still the one it was attempted from: nobody wrote it
   * in between (another owner's attempt would have). The rest are dropped: their owner attempts them.
   */
  async function adoptOrphans(own: Ownership): Promise<void> {
    const mine = [...orphaned.values()].filter((o) => own.owns(o.outcome.org_id));
    const others = orphaned.size - mine.length;
    orphaned.clear();
    const stored = new Map(
      (
        await alertsByIds(
          deps.clickhouse,
          [...new Set(mine.map((o) => o.outcome.org_id))],
          mine.map((o) => o.outcome.alert_id),
        )
      ).map((a) => [a.alert_id, a.updated_at]),
    );
    const unchanged = mine.filter((o) => stored.get(o.outcome.alert_id) === o.from).map((o) => o.outcome);
    if (!own.held()) return;
    await store(unchanged, own);
    log.info(
      { stored: unchanged.length, dropped: mine.length - unchanged.length + others },
      "outcomes of POSTs made before a rebalance: stored where this member owns the alert again and nobody wrote it since",
    );
  }

  /** Writes outcomes made under `own`; when the insert fails they are held back and written first at later ticks. */
  async function store(outcomes: AlertRow[], own: Ownership): Promise<void> {
    if (outcomes.length === 0) return;
    try {
      await insertAlerts(deps.clickhouse, outcomes);
    } catch (err) {
      for (const v of outcomes) unwritten.set(v.alert_id, v);
      unwrittenUnder = own;
      throw err;
    }
  }

  async function attempt(alert: AlertRow, hook: WebhookRow | undefined): Promise<AlertRow> {
    const t = now();
    const updated_at = chDateTime(Math.max(t, parseChDateTime(alert.updated_at) + 1));
    if (!hook || hook.url === "") return { ...alert, state: "no_webhook", updated_at };
    const attempts = alert.attempts + 1;
    const checked = webhookUrlProblem(hook.url, deps.allowPrivate);
    if (!checked.ok) {
      // A URL the rules no longer allow will not become deliverable by retrying.
      return { ...alert, state: "dead", attempts, last_error: `webhook url refused: ${checked.message}`, updated_at };
    }
    const error = await send(alert, hook);
    const outcome = afterAttempt(deps.retry, attempts, error === undefined, random);
    if (outcome.state === "delivered") {
      return { ...alert, state: "delivered", attempts, delivered_at: chDateTime(now()), updated_at };
    }
    if (outcome.state === "dead") return { ...alert, state: "dead", attempts, last_error: error!, updated_at };
    return {
      ...alert,
      state: "retrying",
      attempts,
      last_error: error!,
      next_attempt_at: chDateTime(now() + outcome.delayMs),
      updated_at,
    };
  }

  /** POSTs the payload; undefined on a 2xx answer, else what went wrong (no secret, no URL: it may hold a token). */
  async function send(alert: AlertRow, hook: WebhookRow): Promise<string | undefined> {
    let secrets: string[];
    try {
      secrets = [deps.secrets.open(hook.secret, hook.org_id)];
      const until = hook.previous_until ? parseChDateTime(hook.previous_until) : 0;
      if (hook.previous_secret && until > now()) secrets.push(deps.secrets.open(hook.previous_secret, hook.org_id));
    } catch {
      // Sealed under another key (USAGE_SECRET_KEY differs from the API's): nothing to sign with until it matches.
      log.warn({ org_id: hook.org_id }, "webhook secret does not open with this process's USAGE_SECRET_KEY");
      return "secret_unreadable";
    }
    const signature = signPayload(secrets, alert.payload, Math.floor(now() / 1000));
    try {
      const res = await post(hook.url, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          "user-agent": "usage-notifier/1",
          [SIGNATURE_HEADER]: signature,
          [ALERT_ID_HEADER]: alert.alert_id,
        },
        body: alert.payload,
        redirect: "manual",
        signal: AbortSignal.timeout(deps.timeoutMs),
        ...(dispatcher ? { dispatcher } : {}),
      } as RequestInit);
      await res.body?.cancel().catch(() => undefined);
      if (res.status >= 200 && res.status < 300) return undefined;
      return `http_${Math.floor(res.status / 100)}xx`;
    } catch (err) {
      // The org sees a category (alerts' last_error); the operator's log has the socket error.
      const category = failureCategory(err);
      log.debug(
        { alert_id: alert.alert_id, org_id: alert.org_id, category, error: describeError(err, deps.timeoutMs) },
        "webhook POST failed",
      );
      return category;
    }
  }

  return {
    start() {
      if (!stopped) return;
      stopped = false;
      schedule(0);
    },
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await running?.catch(() => undefined);
    },
    kick() {
      if (stopped) return;
      if (running) again = true;
      // A tick already due sooner is not put off.
      else if (performance.now() + kickDelayMs < dueAt) schedule(kickDelayMs);
    },
    runOnce,
  };
}

/**
 * What an org is told about a failed POST: `timeout`, `refused`, `dns`, `tls`, `connection_reset`,
 * `blocked_address` (the host resolved to a non-public address), or `network`; an answer is `http_4xx`/`http_5xx`.
 * Never the socket error itself: it would tell an org what listens where inside the operator's network.
 */
export function failureCategory(err: unknown): string {
  const e = err as Error & { code?: string; cause?: { code?: string; cause?: { code?: string } } };
  if (e?.name === "TimeoutError" || e?.name === "AbortError") return "timeout";
  const code = e?.cause?.code ?? e?.cause?.cause?.code ?? e?.code ?? "";
  if (code === "EBLOCKEDADDRESS") return "blocked_address";
  if (code === "ECONNREFUSED") return "refused";
  if (code === "ENOTFOUND" || code === "EAI_AGAIN") return "dns";
  if (code === "ECONNRESET" || code === "EPIPE" || code === "UND_ERR_SOCKET") return "connection_reset";
  if (/CERT|TLS|SSL|SELF_SIGNED|UNABLE_TO_VERIFY/.test(code)) return "tls";
  if (code === "UND_ERR_CONNECT_TIMEOUT" || code === "ETIMEDOUT") return "timeout";
  return "network";
}

function describeError(err: unknown, timeoutMs: number): string {
  const e = err as Error & { cause?: { code?: string; message?: string } };
  if (e?.name === "TimeoutError" || e?.name === "AbortError") return `timed out after ${timeoutMs} ms`;
  const cause = e?.cause;
  const text = cause?.code ? `${cause.code}${cause.message ? `: ${cause.message}` : ""}` : (e?.message ?? String(err));
  return text.slice(0, MAX_ERROR_LENGTH);
}

async function forEachLimited<T>(items: T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const item = items[next++]!;
      await work(item);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}
