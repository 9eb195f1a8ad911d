/**
 * Prepaid credits in the aggregator: the account rebuilt from ClickHouse, and what a step of the account calls for
 * (reload entries for credit_ledger, credit signals). The rules are in @usage/policy (credits.ts).
 *
 * Order of work, as for caps (aggregator.ts): the batch's events are written first, the account moves in memory,
 * then the reload entries are written to credit_ledger, then the signals are published to spend.signals.v1 and
 * recorded in cap_signals, then the offset is committed. Reload entry ids and signal ids are derived from the reload number and the ledger size,
 * so whatever a crash cuts short is recorded again as the same entry and the same signal: after a restart the
 * account is rebuilt from credit_ledger and usage_events, a reload already recorded lifts the balance (no second
 * reload), and a reload whose signal was lost is signalled again (see missedReloadSignals).
 */
import {
  type CapSignalRow,
  type CreditLedgerRow,
  type CreditSummary,
  chDateTime,
  creditEntryId,
  parseChDateTime,
} from "@usage/clickhouse";
import { formatMoney, Money, parseMoney } from "@usage/money";
import {
  type AutoReload,
  armedAfterLoad,
  balanceOf,
  type CreditAccount,
  type CreditAction,
  emptyAccount,
} from "@usage/policy";
import { type CapSignal, signalId } from "./signals.js";
import type { OrgState } from "./state.js";

/** The account as credit_ledger and usage_events hold it; `previous` keeps what was signalled. */
export function accountFromSummary(
  s: CreditSummary,
  reloadedThisPeriod: string | undefined,
  period: string,
  autoReload: AutoReload | undefined,
  previous?: CreditAccount,
): CreditAccount {
  const a = emptyAccount(parseChDateTime(s.opened_at));
  a.purchased = parseMoney(s.purchased);
  a.reloaded = parseMoney(s.reloaded);
  a.spent = parseMoney(s.spent);
  a.entries = s.entries;
  a.reloads = s.reloads;
  if (reloadedThisPeriod !== undefined) a.reloadedIn.set(period, parseMoney(reloadedThisPeriod));
  a.armed = armedAfterLoad(
    { kind: s.latest_kind, balanceAfter: s.latest_balance_after },
    balanceOf(a),
    autoReload?.enabled ? autoReload.when_below : undefined,
  );
  if (previous) {
    a.blocked = previous.blocked;
    for (const p of previous.limitSignalled) a.limitSignalled.add(p);
  }
  return a;
}

/** The ledger entries and signals for a step's actions. */
export function creditEffects(
  org: OrgState,
  actions: CreditAction[],
  period: string,
  cause: string | null,
  at: number,
): { entries: CreditLedgerRow[]; signals: CapSignal[] } {
  const entries: CreditLedgerRow[] = [];
  const signals: CapSignal[] = [];
  const account = org.credits;
  if (!account) return { entries, signals };
  for (const action of actions) {
    if (action.kind === "reload") {
      entries.push({
        entry_id: creditEntryId(org.orgId, "reload", String(action.sequence)),
        org_id: org.orgId,
        kind: "reload",
        amount: action.amount,
        reference: `reload-${action.sequence}`,
        sequence: action.sequence,
        period,
        balance_after: action.balanceAfter,
        created_at: chDateTime(at),
        created_by: "aggregator",
      });
      signals.push(
        creditSignal(org, "credits_reload", period, cause, at, {
          sequence: action.sequence,
          amount: action.amount,
          balance: action.balanceAfter,
        }),
      );
    } else if (action.kind === "reload_limit") {
      signals.push(creditSignal(org, "credits_reload_limit", period, cause, at, { balance: action.balance }));
    } else {
      signals.push(
        creditSignal(org, action.kind === "exhausted" ? "credits_exhausted" : "credits_restored", period, cause, at, {
          sequence: action.sequence,
          balance: action.balance,
        }),
      );
    }
  }
  return { entries, signals };
}

/** A credit signal about an org. `limit` is the auto-reload monthly maximum for a reload-limit signal. */
export function creditSignal(
  org: OrgState,
  kind: "credits_reload" | "credits_reload_limit" | "credits_exhausted" | "credits_restored",
  period: string,
  cause: string | null,
  at: number,
  fields: { sequence?: number; amount?: string; balance: string },
): CapSignal {
  const entity = { type: "org" as const, id: org.orgId };
  const blocked = parseMoney(fields.balance, "balance").lte(0);
  const status = blocked ? "blocked" : "ok";
  const previous = kind === "credits_exhausted" ? "ok" : kind === "credits_restored" ? "blocked" : status;
  return {
    signal_id: signalId({
      orgId: org.orgId,
      entity,
      period,
      kind,
      threshold: null,
      policyVersion: org.policyVersion,
      sequence: fields.sequence,
    }),
    org_id: org.orgId,
    entity,
    period,
    kind,
    threshold: null,
    limit: kind === "credits_reload_limit" ? (org.autoReload?.settings.monthly_max ?? null) : null,
    spend: formatMoney(org.credits?.spent ?? new Money(0)),
    status,
    previous_status: previous,
    policy_version: org.policyVersion,
    cause_event_id: cause,
    created_at: new Date(at).toISOString(),
    ...(fields.sequence === undefined ? {} : { sequence: fields.sequence }),
    ...(fields.amount === undefined ? {} : { amount: fields.amount }),
    balance: fields.balance,
  };
}

/** Reloads of the period recorded in credit_ledger whose signal never reached cap_signals (a crash in between). */
export function missedReloadSignals(
  org: OrgState,
  ledger: CreditLedgerRow[],
  recorded: CapSignalRow[],
  period: string,
  at: number,
): CapSignal[] {
  const known = new Set(recorded.map((r) => r.signal_id));
  return ledger
    .filter((e) => e.kind === "reload" && e.period === period)
    .map((e) =>
      creditSignal(org, "credits_reload", period, null, at, {
        sequence: e.sequence,
        amount: e.amount,
        balance: e.balance_after,
      }),
    )
    .filter((s) => !known.has(s.signal_id));
}

/** What `GET /v1/orgs/{org}/credits` answers. */
export interface CreditView {
  org_id: string;
  balance: string;
  status: "ok" | "blocked";
  purchased: string;
  reloaded: string;
  spent: string;
  opened_at: string;
  entries: number;
  reloads: number;
  reloaded_this_month: string;
  auto_reload: (AutoReload & { version: number }) | null;
}

export function creditView(org: OrgState, period: string): CreditView | undefined {
  const a = org.credits;
  if (!a) return undefined;
  const balance = balanceOf(a);
  return {
    org_id: org.orgId,
    balance: formatMoney(balance),
    status: balance.lte(0) ? "blocked" : "ok",
    purchased: formatMoney(a.purchased),
    reloaded: formatMoney(a.reloaded),
    spent: formatMoney(a.spent),
    opened_at: new Date(a.openedAt).toISOString(),
    entries: a.entries,
    reloads: a.reloads,
    reloaded_this_month: formatMoney(a.reloadedIn.get(period) ?? new Money(0)),
    auto_reload: org.autoReload ? { ...org.autoReload.settings, version: org.autoReload.version } : null,
  };
}
