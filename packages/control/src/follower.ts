/**
 * Follows the control log in this process: reads usage.control.v1 in full from offset 0 and keeps the state in
 * force (the latest policy and auto-reload settings per org, with their versions), then every change as it is
 * published. Each follower is its own throwaway consumer group that never commits: the group only satisfies
 * kafkajs, which cannot consume without one; where it starts is always offset 0, and after a rejoin (a stall past
 * the session timeout) kafkajs would start there again, so records below the position are skipped.
 *
 * Per record, in log order, one at a time: decode → update the state → await each listener → advance the position
 * → resolve the waiters. So `waitFor(v)` resolving means the state and every listener have seen version v.
 * A record that does not validate is logged, counted and skipped (the recorder dead-letters it, once); a listener
 * that throws is logged and the follower goes on: one bad listener must not stop every change after it.
 */
import { randomUUID } from "node:crypto";
import {
  CONSUMER_METADATA_MAX_AGE_MS,
  FOLLOWER_MAX_WAIT_MS,
  type Kafka,
  replaceConsumerWhenGivenUp,
} from "@usage/kafka";
import { type AutoReload, type Policy, seatsInForce } from "@usage/policy";
import type { Logger } from "@usage/runtime";
import type { Consumer, EachBatchPayload, KafkaMessage } from "kafkajs";
import {
  type ApiKeyChange,
  CONTROL_TOPIC,
  type ContractChange,
  decodeRecord,
  type InvoiceFinalChange,
  type LimitRequestChange,
  type SeatChange,
  type VersionedChange,
  versionOfOffset,
} from "./changes.js";

export type ChangeListener = (change: VersionedChange) => void | Promise<void>;

/**
 * A change is in the control log, and this follower has not applied it within the time asked (a follower catching up
 * after a restart, a broker away): it will, and reads here show it from then on.
 */
export class ControlLagging extends Error {
  constructor(
    readonly version: number,
    readonly appliedUpTo: number,
    readonly waitedMs: number,
  ) {
    super(
      `the change is recorded (control version ${version}) and this instance has not applied it within ${waitedMs} ms ` +
        `(it is at ${appliedUpTo}): it will; read again shortly`,
    );
    this.name = "ControlLagging";
  }
}

export interface ControlFollower {
  /** Resolves once the follower has read up to the end offset that existed when start was called. */
  start(): Promise<void>;
  stop(): Promise<void>;
  /** True between the end of start's catch-up and stop (a consumer kafkajs gives up on is replaced meanwhile). */
  isReady(): boolean;
  /** The highest version read: applied, or skipped as invalid. 0 before the first record. */
  position(): number;
  /** Resolves once `version` has been applied here (listeners included); rejects after `timeoutMs`, or on stop. */
  waitFor(version: number, timeoutMs: number): Promise<void>;
  policy(orgId: string): { policy: Policy; version: number } | undefined;
  /** An API key as it now stands (the latest record for its id), or undefined. */
  apiKey(keyId: string): ApiKeyState | undefined;
  /** The org's API keys, oldest first. */
  apiKeys(orgId: string): ApiKeyState[];
  autoReload(orgId: string): { settings: AutoReload; version: number } | undefined;
  /** The org's contract in force, or undefined (no contract: legacy terms — the policy's discount, no seat fees). */
  contract(orgId: string): ContractState | undefined;
  /** Every seat assignment of the org, in effect order (effective_at, then version). */
  seats(orgId: string): SeatState[];
  /** Each user's seat tier in force at `atMs` (the latest assignment with effective_at ≤ atMs). */
  seatTiersAt(orgId: string, atMs: number): Record<string, SeatState["tier"]>;
  /** The org's limit requests as they now stand, oldest first. */
  limitRequests(orgId: string): LimitRequestState[];
  limitRequest(orgId: string, requestId: string): LimitRequestState | undefined;
  /** The org's final invoice of `period`: the first finalization in log order, or undefined while it is a draft. */
  invoiceFinal(orgId: string, period: string): InvoiceFinalState | undefined;
  /** The org's final invoices, by period. */
  invoiceFinals(orgId: string): InvoiceFinalState[];
  /** Orgs with any change, sorted. */
  orgIds(): string[];
  /** Called for every change in log order, history first when registered before start; returns an unsubscribe. */
  onChange(listener: ChangeListener): () => void;
  /** Records skipped because they did not validate. */
  invalidCount(): number;
  readonly groupId: string;
}

/** An API key as the control log last recorded it. */
export type ApiKeyState = ApiKeyChange & { version: number };
export type ContractState = ContractChange & { version: number };
export type SeatState = SeatChange & { version: number };
export type LimitRequestState = LimitRequestChange & { version: number };
export type InvoiceFinalState = InvoiceFinalChange & { version: number };

export interface ControlFollowerDeps {
  kafka: Kafka;
  logger: Logger;
  /** Prefix of the throwaway group id (default `usage-control-follower`). */
  groupPrefix?: string;
  /** How long the broker may hold a fetch that finds nothing new. Default FOLLOWER_MAX_WAIT_MS (@usage/kafka says why). */
  maxWaitTimeMs?: number;
}

interface Waiter {
  version: number;
  resolve: () => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

export function createControlFollower(deps: ControlFollowerDeps): ControlFollower {
  const groupId = `${deps.groupPrefix ?? "usage-control-follower"}-${process.pid}-${randomUUID()}`;
  const log = deps.logger.child({ component: "control-follower", group: groupId });
  const policies = new Map<string, { policy: Policy; version: number }>();
  const autoReloads = new Map<string, { settings: AutoReload; version: number }>();
  const orgs = new Set<string>();
  const apiKeys = new Map<string, ApiKeyState>();
  const contracts = new Map<string, ContractState>();
  /** org → record key → assignment (a record under the same key replaces the previous one). */
  const seats = new Map<string, Map<string, SeatState>>();
  const requests = new Map<string, Map<string, LimitRequestState>>();
  /** org → period → the first finalization read. */
  const finals = new Map<string, Map<string, InvoiceFinalState>>();
  const inner = <V>(outer: Map<string, Map<string, V>>, key: string) => {
    let m = outer.get(key);
    if (!m) {
      m = new Map();
      outer.set(key, m);
    }
    return m;
  };
  /** org → its assignments in effect order, and the tiers in force until the next one starts (cached). */
  const seatViews = new Map<
    string,
    { list: SeatState[]; inForce?: ReturnType<typeof seatsInForce> & { at: number } }
  >();
  const seatView = (orgId: string) => {
    let v = seatViews.get(orgId);
    if (!v) {
      const list = [...(seats.get(orgId)?.values() ?? [])].sort((a, b) =>
        a.effective_at === b.effective_at
          ? a.version - b.version
          : Date.parse(a.effective_at) - Date.parse(b.effective_at),
      );
      v = { list };
      seatViews.set(orgId, v);
    }
    return v;
  };
  const seatList = (orgId: string): SeatState[] => seatView(orgId).list;
  let listeners: ChangeListener[] = [];
  let waiters: Waiter[] = [];
  /** The next offset to apply, which is also the version of the last record read (offset + 1). */
  let next = 0;
  let invalid = 0;
  let ready = false;
  let stopped = false;
  let consumer: Consumer | undefined;
  let caughtUp: { end: number; resolve: () => void; reject: (err: Error) => void } | undefined;

  function advance(to: number): void {
    if (to <= next) return;
    next = to;
    if (waiters.length > 0) {
      const due = waiters.filter((w) => w.version <= next);
      waiters = waiters.filter((w) => w.version > next);
      for (const w of due) {
        clearTimeout(w.timer);
        w.resolve();
      }
    }
    if (caughtUp && next >= caughtUp.end) {
      caughtUp.resolve();
      caughtUp = undefined;
    }
  }

  async function apply(message: KafkaMessage): Promise<void> {
    const version = versionOfOffset(message.offset);
    const decoded = decodeRecord(message.key, message.value);
    if (!decoded.ok) {
      invalid++;
      log.error(
        { version, key: message.key?.toString("utf8"), reason: decoded.reason, field: decoded.field },
        `control record skipped: ${decoded.message}`,
      );
      return;
    }
    const change: VersionedChange = { ...decoded.change, version, key: message.key!.toString("utf8") };
    orgs.add(change.org_id);
    if (change.kind === "policy") policies.set(change.org_id, { policy: change.policy, version });
    else if (change.kind === "auto_reload") autoReloads.set(change.org_id, { settings: change.settings, version });
    else if (change.kind === "api_key") {
      // A revocation keeps what the key was (role, scope) for listing; a key id never moves to another org.
      const held = apiKeys.get(change.key_id);
      if (!held || held.org_id === change.org_id) apiKeys.set(change.key_id, { ...held, ...change, version });
    } else if (change.kind === "contract") contracts.set(change.org_id, { ...change, version });
    else if (change.kind === "seat") {
      inner(seats, change.org_id).set(change.key, { ...change, version });
      seatViews.delete(change.org_id);
    } else if (change.kind === "limit_request") {
      // A request id never moves to another user: a record naming another user for a known id is ignored.
      const held = requests.get(change.org_id)?.get(change.request_id);
      if (!held || held.user_id === change.user_id) {
        inner(requests, change.org_id).set(change.request_id, { ...change, version });
      }
    } else if (change.kind === "invoice_final") {
      const byPeriod = inner(finals, change.org_id);
      if (!byPeriod.has(change.period)) byPeriod.set(change.period, { ...change, version });
    }
    for (const listener of [...listeners]) {
      try {
        await listener(change);
      } catch (err) {
        log.error({ err, version, kind: change.kind, org_id: change.org_id }, "control change listener failed");
      }
    }
  }

  async function eachBatch(payload: EachBatchPayload): Promise<void> {
    const { batch } = payload;
    for (const message of batch.messages) {
      const version = versionOfOffset(message.offset);
      // Already applied: a refetch after a rejoin starts from offset 0 again.
      if (version <= next) continue;
      await apply(message);
      advance(version);
      payload.resolveOffset(message.offset);
      await payload.heartbeat();
    }
    // Records the batch held but kafkajs filtered (none are written today: no transactions on this topic).
    payload.resolveOffset(batch.lastOffset());
    advance(versionOfOffset(batch.lastOffset()));
  }

  /**
   * Starts a kafkajs consumer from the position reached. kafkajs restarts a consumer after a retriable failure; one it
   * gives up on (its retries exhausted while the brokers were away) is replaced (`replaceConsumerWhenGivenUp`), for as
   * long as the follower runs: a process's follower must never stop following.
   */
  async function launch(): Promise<void> {
    const c = deps.kafka.consumer({
      groupId,
      readUncommitted: false,
      maxWaitTimeInMs: deps.maxWaitTimeMs ?? FOLLOWER_MAX_WAIT_MS,
      metadataMaxAge: CONSUMER_METADATA_MAX_AGE_MS,
      sessionTimeout: 30000,
      heartbeatInterval: 3000,
      retry: { retries: 10 },
    });
    consumer = c;
    c.on(c.events.GROUP_JOIN, () => {
      // A (re)join starts from offset 0 (nothing is committed): skip ahead rather than refetch the whole log.
      // Only an optimisation: eachBatch skips what was applied whether or not the seek took.
      if (next > 0) {
        try {
          c.seek({ topic: CONTROL_TOPIC, partition: 0, offset: String(next) });
        } catch (err) {
          log.warn({ err }, "control follower could not seek after a rejoin; refetching from offset 0");
        }
      }
    });
    replaceConsumerWhenGivenUp(c, {
      current: () => (stopped ? undefined : consumer),
      launch,
      log,
      what: "control follower",
    });
    c.on(c.events.END_BATCH_PROCESS, (e) => {
      // Batches kafkajs filtered entirely never reach eachBatch, but their end still counts as read.
      if (consumer === c && e.payload.batchSize === 0) advance(versionOfOffset(e.payload.lastOffset));
    });
    await c.connect();
    await c.subscribe({ topics: [CONTROL_TOPIC], fromBeginning: true });
    await c.run({ autoCommit: false, eachBatchAutoResolve: false, partitionsConsumedConcurrently: 1, eachBatch });
  }

  return {
    groupId,
    async start() {
      if (consumer) throw new Error("control follower already started");
      const admin = deps.kafka.admin();
      await admin.connect();
      let end: number;
      try {
        // A topic just created may not have its leader settled yet: ask again for a while.
        let offsets: Awaited<ReturnType<typeof admin.fetchTopicOffsets>> = [];
        for (let attempt = 0; ; attempt++) {
          try {
            offsets = await admin.fetchTopicOffsets(CONTROL_TOPIC);
            break;
          } catch (err) {
            if (attempt >= 40) throw err;
            await new Promise((r) => setTimeout(r, 250));
          }
        }
        if (offsets.length !== 1) {
          throw new Error(`${CONTROL_TOPIC} must have exactly one partition, it has ${offsets.length}`);
        }
        end = Number(offsets[0]!.high);
      } finally {
        await admin.disconnect();
      }
      const done = new Promise<void>((resolve, reject) => {
        caughtUp = { end, resolve, reject };
      });
      // Awaited below unless the log is empty; never an unhandled rejection when it is not.
      done.catch(() => undefined);
      await launch();
      if (next >= end) {
        caughtUp = undefined;
      } else {
        await done;
      }
      ready = !stopped;
      log.info({ version: next, orgs: orgs.size, invalid }, "control log read up to its end at start");
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      ready = false;
      const pending = waiters;
      waiters = [];
      for (const w of pending) {
        clearTimeout(w.timer);
        w.reject(new Error("control follower stopped"));
      }
      caughtUp?.reject(new Error("control follower stopped"));
      caughtUp = undefined;
      await consumer?.disconnect();
    },
    isReady: () => ready,
    position: () => next,
    waitFor(version, timeoutMs) {
      if (version <= next) return Promise.resolve();
      if (stopped) return Promise.reject(new Error("control follower stopped"));
      return new Promise<void>((resolve, reject) => {
        const waiter: Waiter = {
          version,
          resolve,
          reject,
          timer: setTimeout(() => {
            waiters = waiters.filter((w) => w !== waiter);
            reject(new ControlLagging(version, next, timeoutMs));
          }, timeoutMs),
        };
        waiters.push(waiter);
      });
    },
    policy: (orgId) => policies.get(orgId),
    apiKey: (keyId) => apiKeys.get(keyId),
    apiKeys: (orgId) => [...apiKeys.values()].filter((k) => k.org_id === orgId).sort((a, b) => a.version - b.version),
    autoReload: (orgId) => autoReloads.get(orgId),
    contract: (orgId) => contracts.get(orgId),
    seats: seatList,
    seatTiersAt(orgId, atMs) {
      const v = seatView(orgId);
      // Kept for the present (the API asks at "now" on every allowance call) until the next assignment starts.
      if (v.inForce && atMs >= v.inForce.at && atMs < v.inForce.until) return v.inForce.tiers;
      const computed = seatsInForce(
        v.list.map((s) => ({ user_id: s.user_id, tier: s.tier, at: Date.parse(s.effective_at) })),
        atMs,
      );
      v.inForce = { ...computed, at: atMs };
      return computed.tiers;
    },
    limitRequests: (orgId) =>
      [...(requests.get(orgId)?.values() ?? [])].sort((a, b) =>
        a.requested_at === b.requested_at
          ? a.request_id.localeCompare(b.request_id)
          : Date.parse(a.requested_at) - Date.parse(b.requested_at),
      ),
    limitRequest: (orgId, requestId) => requests.get(orgId)?.get(requestId),
    invoiceFinal: (orgId, period) => finals.get(orgId)?.get(period),
    invoiceFinals: (orgId) =>
      [...(finals.get(orgId)?.values() ?? [])].sort((a, b) => (a.period < b.period ? -1 : a.period > b.period ? 1 : 0)),
    orgIds: () => [...orgs].sort(),
    onChange(listener) {
      listeners = [...listeners, listener];
      return () => {
        listeners = listeners.filter((l) => l !== listener);
      };
    },
    invalidCount: () => invalid,
  };
}
