/**
 * What an API instance answers caps, allowance and credits from, with no state of its own (SPEC §12): the running
 * totals of spend.totals.v1 (published by the aggregator members after every batch, compacted, read here in full)
 * and the policies and auto-reload settings of the control plane (usage.control.v1, read in full by the process's
 * control follower). Any instance answers for any org, as fresh as the last totals record it read: the follower
 * fetches with a 50 ms wait, so an event shows within a second of being recorded.
 *
 * Records of a key replace the previous one in log order (one partition per org, one owner at a time: the
 * aggregator checks ownership before it publishes); a record of another period than the current one counts as 0,
 * so caps reset when the month turns even before an org's next event.
 */
import { decodeTotals, type OrgTotals, SEAT_TIERS, type SeatTier, type UserTotals } from "@usage/events";
import { createTopicFollower, type Kafka, TOPICS, type TopicFollower } from "@usage/kafka";
import { periodOf } from "@usage/periods";
import {
  type Allowance,
  type AutoReload,
  type CapsReport,
  defaultPolicy,
  type OrgSnapshot,
  type Policy,
  snapshotAllowance,
  snapshotCaps,
} from "@usage/policy";
import type { Logger } from "@usage/runtime";

/** What the API needs of the control plane's follower. */
export interface ControlReader {
  policy(orgId: string): { policy: Policy; version: number } | undefined;
  autoReload(orgId: string): { settings: AutoReload; version: number } | undefined;
  /** The org's contract: its plan decides whether prepaid credits gate usage (self-serve) or not (sales-assisted). */
  contract(orgId: string): { contract: { plan: "sales_assisted" | "self_serve" } } | undefined;
  /** Each user's assigned seat tier at an instant (SPEC §13). */
  seatTiersAt(orgId: string, atMs: number): Record<string, SeatTier>;
  isReady(): boolean;
}

export type CreditsAnswer = NonNullable<OrgTotals["credits"]> & { org_id: string };

/** The reads every route of spend control answers from (caps, allowance, policy, credits). */
export interface SpendReader {
  caps(orgId: string): CapsReport;
  /** `product`: the product the request is for; access to it is checked before caps (SPEC §5). */
  allowance(orgId: string, userId: string, product?: string): Allowance;
  policy(orgId: string): { policy: Policy; version: number };
  credits(orgId: string): CreditsAnswer | undefined;
  autoReload(orgId: string): { settings: AutoReload; version: number } | undefined;
  isReady(): boolean;
  /** Resolves true once `check` holds for what this instance reads (a change it just made is in force), else false. */
  waitUntil(check: () => boolean, timeoutMs: number): Promise<boolean>;
}

export interface SpendReadModel extends SpendReader {
  start(): Promise<void>;
  stop(): Promise<void>;
}

interface OrgView {
  org?: OrgTotals;
  users: Map<string, UserTotals>;
}

export function createSpendReadModel(deps: {
  kafka: Kafka;
  logger: Logger;
  control: ControlReader;
  now?: () => number;
  /** Names this instance's throwaway consumer group. */
  name?: string;
}): SpendReadModel {
  const now = deps.now ?? Date.now;
  const log = deps.logger.child({ component: "read-model" });
  const orgs = new Map<string, OrgView>();
  const waiters = new Set<() => void>();
  let invalid = 0;
  const view = (orgId: string) => {
    let v = orgs.get(orgId);
    if (!v) {
      v = { users: new Map() };
      orgs.set(orgId, v);
    }
    return v;
  };

  const follower: TopicFollower = createTopicFollower({
    kafka: deps.kafka,
    topic: TOPICS.totals,
    logger: deps.logger,
    name: deps.name ?? "usage-api-totals",
    onBatch: (_partition, messages) => {
      for (const m of messages) {
        const d = decodeTotals(m.value);
        if (!d.ok) {
          // Written by the aggregator only; a record this build cannot read is reported, and the next one replaces it.
          if (invalid++ < 10) log.error({ offset: m.offset, reason: d.message }, "unreadable totals record");
          continue;
        }
        const r = d.record;
        if (r.type === "org") view(r.org_id).org = r;
        else view(r.org_id).users.set(r.user_id, r);
      }
      for (const w of waiters) w();
    },
  });

  function snapshot(orgId: string): OrgSnapshot {
    const period = periodOf(now());
    const v = orgs.get(orgId);
    const users: Record<string, string> = {};
    const seatTiers: Record<string, SeatTier> = {};
    for (const [userId, u] of v?.users ?? []) {
      if (u.period === period && u.spend !== "0") users[userId] = u.spend;
      if (u.seat_tier && (SEAT_TIERS as readonly string[]).includes(u.seat_tier))
        seatTiers[userId] = u.seat_tier as SeatTier;
    }
    // A sales-assisted org is billed in arrears: credits it may hold never gate its usage.
    const gated = deps.control.contract(orgId)?.contract.plan !== "sales_assisted";
    const credits = gated ? (v?.org?.credits ?? undefined) : undefined;
    return {
      policy: deps.control.policy(orgId)?.policy ?? defaultPolicy(orgId),
      orgTotal: v?.org && v.org.period === period ? v.org.spend : "0",
      users,
      seatTiers,
      creditBalance: credits ? credits.balance : undefined,
      seats: deps.control.seatTiersAt(orgId, now()),
    };
  }

  return {
    start: () => follower.start(),
    stop: () => follower.stop(),
    isReady: () => follower.isCaughtUp() && deps.control.isReady(),
    caps: (orgId) => snapshotCaps(snapshot(orgId)),
    allowance: (orgId, userId, product) => snapshotAllowance(snapshot(orgId), userId, product),
    policy: (orgId) => deps.control.policy(orgId) ?? { policy: defaultPolicy(orgId), version: 0 },
    autoReload: (orgId) => deps.control.autoReload(orgId),
    credits: (orgId) => {
      const c = orgs.get(orgId)?.org?.credits;
      return c ? { org_id: orgId, ...c } : undefined;
    },
    waitUntil(check, timeoutMs) {
      if (check()) return Promise.resolve(true);
      return new Promise((resolve) => {
        const done = (ok: boolean) => {
          clearTimeout(timer);
          waiters.delete(poke);
          resolve(ok);
        };
        const poke = () => {
          if (check()) done(true);
        };
        const timer = setTimeout(() => done(false), timeoutMs);
        waiters.add(poke);
      });
    },
  };
}
