/**
 * The aggregator's running state: each org's current policy, every user's spend per period (net, what the org
 * pays; caps are measured against it), each user's latest seat tier, and what has been signalled per entity and
 * period. It is rebuilt from ClickHouse at start, so it always equals what ClickHouse holds plus what the
 * aggregator has written since.
 */
import type { SeatTier } from "@usage/events";
import { formatMoney, Money, type MoneyValue } from "@usage/money";
import { periodOf } from "@usage/periods";
import {
  type Allowance,
  type AutoReload,
  balanceOf,
  type CapsReport,
  type CreditAccount,
  type CreditAction,
  defaultPolicy,
  entityStatus,
  highestThresholdReached,
  type OrgSnapshot,
  type Policy,
  type SeatInForce,
  seatsInForce,
  snapshotAllowance,
  snapshotCaps,
  stepCredits,
  type UserCap,
  userCap,
} from "@usage/policy";
import { type Mark, NO_MARK, quietMark, type Transition, transition } from "./transitions.js";

export interface PeriodSpend {
  org: Money;
  users: Map<string, Money>;
}

export interface OrgState {
  orgId: string;
  policy: Policy;
  policyVersion: number;
  periods: Map<string, PeriodSpend>;
  seatTiers: Map<string, { tier: SeatTier; at: number }>;
  /** period → entity key (`org` or `user:<id>`) → mark */
  marks: Map<string, Map<string, Mark>>;
  /** A prepaid org's credit account (absent for other orgs). */
  credits?: CreditAccount;
  autoReload?: { settings: AutoReload; version: number };
  /** period → entity keys a forecast signal was emitted for. */
  forecasts: Map<string, Set<string>>;
  /** The contract's terms that matter here (SPEC §13): its plan (credits gate only self-serve usage) and discount. */
  contract?: { plan: "sales_assisted" | "self_serve"; discount_pct: string; version: number };
  /** Seat assignments (SPEC §13), in effect order: the seat tier in force decides a user's tier before the rest. */
  seats: SeatInForce[];
  /** The seat tiers in force now, and until when (seatsInForce); dropped when the seats change. */
  seatsNow?: { tiers: Record<string, SeatTier>; until: number; at: number };
  /** The UTC day (YYYY-MM-DD) a limit-requests digest was last emitted for. */
  digestDay?: string;
}

export interface EntityTransition extends Transition {
  orgId: string;
  entity: { type: "org" | "user"; id: string };
  period: string;
  limit: string | "unlimited" | null;
  spend: string;
  policyVersion: number;
}

const ownTier = (tiers: Record<string, SeatTier>, userId: string) =>
  Object.hasOwn(tiers, userId) ? tiers[userId] : undefined;

export class SpendState {
  private readonly orgs = new Map<string, OrgState>();

  constructor(private readonly now: () => number) {}

  org(orgId: string): OrgState {
    let s = this.orgs.get(orgId);
    if (!s) {
      s = {
        orgId,
        policy: defaultPolicy(orgId),
        policyVersion: 0,
        periods: new Map(),
        seatTiers: new Map(),
        marks: new Map(),
        forecasts: new Map(),
        seats: [],
      };
      this.orgs.set(orgId, s);
    }
    return s;
  }

  orgIds(): string[] {
    return [...this.orgs.keys()];
  }

  currentPeriod(): string {
    return periodOf(this.now());
  }

  addSpend(orgId: string, userId: string, period: string, net: MoneyValue): void {
    const org = this.org(orgId);
    let p = org.periods.get(period);
    if (!p) {
      p = { org: new Money(0), users: new Map() };
      org.periods.set(period, p);
    }
    p.org = p.org.plus(net);
    p.users.set(userId, (p.users.get(userId) ?? new Money(0)).plus(net));
  }

  /**
   * Counts an event's net spend toward the caps of its own period when that period is the current one or ahead (an
   * event may be stamped up to 5 minutes in the future, into next month). A late event's month is closed: it never
   * counts toward current caps, and false says so.
   */
  recordSpend(orgId: string, userId: string, occurredAt: number, net: MoneyValue): boolean {
    const period = this.capPeriodOf(occurredAt);
    if (period === undefined) return false;
    this.addSpend(orgId, userId, period, net);
    return true;
  }

  /** The period an event's spend counts toward caps in (see recordSpend), or undefined for a late event. */
  capPeriodOf(occurredAt: number): string | undefined {
    const period = periodOf(occurredAt);
    return period < this.currentPeriod() ? undefined : period;
  }

  /** Net spend of an event of a prepaid org draws its credits when it occurred at or after the account opened. */
  addCreditSpend(orgId: string, occurredAt: number, net: MoneyValue): void {
    const account = this.orgs.get(orgId)?.credits;
    if (account && occurredAt >= account.openedAt) account.spent = account.spent.plus(net);
  }

  /** What auto-reload and the balance call for now (see stepCredits); the account moves as if it was recorded. */
  stepCredits(orgId: string): CreditAction[] {
    const org = this.org(orgId);
    if (!org.credits) return [];
    return stepCredits(org.credits, org.autoReload?.settings, this.currentPeriod());
  }

  /** Whether a forecast signal went out for an entity in a period; marks it as sent. */
  markForecast(orgId: string, period: string, entityKey: string): boolean {
    const forecasts = this.org(orgId).forecasts;
    let sent = forecasts.get(period);
    if (!sent) {
      sent = new Set();
      forecasts.set(period, sent);
    }
    if (sent.has(entityKey)) return false;
    sent.add(entityKey);
    return true;
  }

  noteSeatTier(orgId: string, userId: string, tier: SeatTier, at: number): void {
    const tiers = this.org(orgId).seatTiers;
    const known = tiers.get(userId);
    if (!known || known.at <= at) tiers.set(userId, { tier, at });
  }

  setPolicy(orgId: string, policy: Policy, version: number): void {
    const org = this.org(orgId);
    org.policy = policy;
    org.policyVersion = version;
  }

  setContract(orgId: string, contract: OrgState["contract"]): void {
    this.org(orgId).contract = contract;
  }

  /** Replaces the org's seat assignments (every one, in effect order). */
  setSeats(orgId: string, seats: OrgState["seats"]): void {
    const org = this.org(orgId);
    org.seats = seats;
    org.seatsNow = undefined;
  }

  /** The discount on usage recorded now: the contract's, else the policy's (set before contracts existed). */
  discountOf(orgId: string): string {
    const org = this.org(orgId);
    return org.contract?.discount_pct ?? org.policy.discount_pct;
  }

  /** Each user's assigned seat tier now; computed once until the seats change or a later assignment starts. */
  private assigned(org: OrgState): Record<string, SeatTier> {
    const t = this.now();
    if (!org.seatsNow || t < org.seatsNow.at || t >= org.seatsNow.until) {
      org.seatsNow = { ...seatsInForce(org.seats, t), at: t };
    }
    return org.seatsNow.tiers;
  }

  setMark(orgId: string, period: string, entityKey: string, mark: Mark): void {
    const marks = this.org(orgId).marks;
    let m = marks.get(period);
    if (!m) {
      m = new Map();
      marks.set(period, m);
    }
    m.set(entityKey, mark);
  }

  /** Drops periods before the current one: late events never count toward current caps. */
  prune(): void {
    const current = this.currentPeriod();
    for (const org of this.orgs.values()) {
      for (const p of org.periods.keys()) if (p < current) org.periods.delete(p);
      for (const p of org.marks.keys()) if (p < current) org.marks.delete(p);
      for (const p of org.forecasts.keys()) if (p < current) org.forecasts.delete(p);
    }
  }

  private periodSpend(org: OrgState, period: string): PeriodSpend {
    return org.periods.get(period) ?? { org: new Money(0), users: new Map() };
  }

  private tierOf(org: OrgState, userId: string): SeatTier | undefined {
    return org.seatTiers.get(userId)?.tier;
  }

  /** The org's figures as every API instance sees them (spend.totals.v1): caps and allowance are computed alike. */
  snapshot(orgId: string): OrgSnapshot {
    const org = this.org(orgId);
    const spend = this.periodSpend(org, this.currentPeriod());
    const users: Record<string, string> = {};
    for (const [u, v] of spend.users) users[u] = formatMoney(v);
    const seatTiers: Record<string, SeatTier> = {};
    for (const [u, t] of org.seatTiers) seatTiers[u] = t.tier;
    return {
      policy: org.policy,
      orgTotal: formatMoney(spend.org),
      users,
      seatTiers,
      creditBalance: org.credits && this.creditsGate(org) ? formatMoney(balanceOf(org.credits)) : undefined,
      seats: this.assigned(org),
    };
  }

  caps(orgId: string): CapsReport {
    return snapshotCaps(this.snapshot(orgId));
  }

  /** Whether prepaid credits gate the org's usage: not for a sales-assisted contract (billed in arrears). */
  private creditsGate(org: OrgState): boolean {
    return org.contract?.plan !== "sales_assisted";
  }

  /** A prepaid org whose balance is at or below zero (and whose credits gate its usage). */
  creditsExhausted(orgId: string): boolean {
    const org = this.orgs.get(orgId);
    const account = org?.credits;
    return account !== undefined && this.creditsGate(org!) && balanceOf(account).lte(0);
  }

  userCap(orgId: string, userId: string): UserCap {
    const org = this.org(orgId);
    const spend = this.periodSpend(org, this.currentPeriod());
    return userCap(
      org.policy,
      userId,
      formatMoney(spend.users.get(userId) ?? new Money(0)),
      formatMoney(spend.org),
      this.tierOf(org, userId),
      false,
      ownTier(this.assigned(org), userId),
    );
  }

  allowance(orgId: string, userId: string): Allowance {
    return snapshotAllowance(this.snapshot(orgId), userId);
  }

  /**
   * Re-evaluates the org and the given users (all known users when omitted) in the current period and returns the
   * signals to emit, updating the marks as if they were emitted: the caller writes them before anything else.
   */
  evaluate(orgId: string, userIds?: Iterable<string>): EntityTransition[] {
    const org = this.org(orgId);
    const period = this.currentPeriod();
    const spend = this.periodSpend(org, period);
    const out: EntityTransition[] = [];
    const thresholds = org.policy.thresholds;

    const orgLimit = org.policy.org_limit ?? null;
    const orgSpend = formatMoney(spend.org);
    this.step(org, period, "org", { type: "org", id: orgId }, orgLimit, orgSpend, thresholds, out);

    const users = userIds ? new Set(userIds) : this.knownUsers(org, period);
    for (const userId of users) {
      const cap = this.userCap(orgId, userId);
      this.step(org, period, `user:${userId}`, { type: "user", id: userId }, cap.limit, cap.spend, thresholds, out);
    }
    return out;
  }

  private knownUsers(org: OrgState, period: string): Set<string> {
    const users = new Set<string>(this.periodSpend(org, period).users.keys());
    for (const u of Object.keys(org.policy.users)) users.add(u);
    for (const s of org.seats) users.add(s.user_id);
    for (const g of Object.values(org.policy.groups)) for (const u of g.members) users.add(u);
    for (const u of org.marks.get(period)?.keys() ?? []) if (u.startsWith("user:")) users.add(u.slice(5));
    return users;
  }

  private step(
    org: OrgState,
    period: string,
    key: string,
    entity: { type: "org" | "user"; id: string },
    limit: string | "unlimited" | null,
    spend: string,
    thresholds: string[],
    out: EntityTransition[],
  ): void {
    const previous = org.marks.get(period)?.get(key) ?? NO_MARK;
    const now = {
      threshold: highestThresholdReached(spend, limit, thresholds),
      status: entityStatus(spend, limit, thresholds),
    };
    const t = transition(previous, now);
    this.setMark(org.orgId, period, key, t ? t.next : quietMark(previous, now));
    if (t) out.push({ ...t, orgId: org.orgId, entity, period, limit, spend, policyVersion: org.policyVersion });
  }
}
