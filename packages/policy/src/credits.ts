/**
 * Prepaid credits (pure). An org with at least one ledger entry (a purchase or a reload) is a prepaid org:
 *
 *   balance = purchases + reloads − net spend of the org's events that occurred at or after its first entry
 *
 * At or below zero the org is blocked (`blocked_by: "credits"`), alongside its caps, until a purchase or a reload
 * lifts the balance above zero. Late events that occurred after the first entry draw credits too: money spent is
 * money spent, whichever month it counts in.
 *
 * Auto-reload (`when_below`, `amount`, `monthly_max`): when the balance falls below `when_below`, one reload of
 * `amount` is recorded, unless the month's reloads would then exceed `monthly_max` (then none, and the admins are
 * told once per month). Once per crossing: after a reload, auto-reload is armed again only when the balance is back
 * at or above `when_below` (the reload itself may do that) or a purchase is made. The state after a restart is
 * rebuilt from the ledger with the same rule (see {@link armedAfterLoad}), so a crash never causes a second reload.
 */
import { formatMoney, Money, PLAIN_DECIMAL } from "@usage/money";

export interface AutoReload {
  enabled: boolean;
  /** Reload when the balance falls below this (USD, ≥ 0). */
  when_below: string;
  /** USD added per reload (> 0). */
  amount: string;
  /** The most reloads may add in one UTC calendar month (USD, ≥ amount to allow any reload). */
  monthly_max: string;
}

export type ParseResult<T> = { ok: true; value: T } | { ok: false; field: string; message: string };

/** Amounts of credit: plain decimals, at most 6 decimal places and 12 integer digits. */
const CREDIT_AMOUNT = /^\d{1,12}(\.\d{1,6})?$/;

function amountField(body: Record<string, unknown>, field: string, positive: boolean): ParseResult<string> {
  const v = body[field];
  if (typeof v !== "string" || !PLAIN_DECIMAL.test(v) || !CREDIT_AMOUNT.test(v)) {
    return {
      ok: false,
      field,
      message: `${field} must be a decimal string of USD with at most 6 decimal places, e.g. "100.00"`,
    };
  }
  const d = new Money(v);
  if (positive && d.lte(0)) return { ok: false, field, message: `${field} must be greater than 0` };
  return { ok: true, value: formatMoney(d) };
}

/** Validates an auto-reload settings body. */
export function parseAutoReload(body: unknown): ParseResult<AutoReload> {
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    return { ok: false, field: "body", message: "expected { enabled, when_below, amount, monthly_max }" };
  }
  const b = body as Record<string, unknown>;
  const unknown = Object.keys(b).filter((k) => !["enabled", "when_below", "amount", "monthly_max"].includes(k));
  if (unknown.length > 0) return { ok: false, field: unknown[0]!, message: `unknown field ${unknown[0]}` };
  const enabled = b.enabled ?? true;
  if (typeof enabled !== "boolean") return { ok: false, field: "enabled", message: "enabled must be true or false" };
  const whenBelow = amountField(b, "when_below", false);
  if (!whenBelow.ok) return whenBelow;
  const amount = amountField(b, "amount", true);
  if (!amount.ok) return amount;
  const max = amountField(b, "monthly_max", false);
  if (!max.ok) return max;
  if (new Money(max.value).lt(amount.value)) {
    return { ok: false, field: "monthly_max", message: "monthly_max must be at least amount, or no reload could run" };
  }
  return { ok: true, value: { enabled, when_below: whenBelow.value, amount: amount.value, monthly_max: max.value } };
}

/** Validates a purchase body `{ amount, reference? }`. */
export function parsePurchase(body: unknown): ParseResult<{ amount: string; reference: string | undefined }> {
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    return { ok: false, field: "body", message: 'expected { "amount": "100.00", "reference": "…" }' };
  }
  const b = body as Record<string, unknown>;
  const amount = amountField(b, "amount", true);
  if (!amount.ok) return amount;
  const ref = b.reference;
  if (ref !== undefined && (typeof ref !== "string" || !/^[\w.:-]{1,128}$/.test(ref))) {
    return {
      ok: false,
      field: "reference",
      message: "reference must be 1 to 128 letters, digits, '.', ':', '_' or '-'",
    };
  }
  return { ok: true, value: { amount: amount.value, reference: ref as string | undefined } };
}

/** One org's credit account as the aggregator keeps it. Amounts are exact decimals. */
export interface CreditAccount {
  /** Instant (ms) of the first ledger entry: events at or after it draw credits. */
  openedAt: number;
  purchased: Money;
  reloaded: Money;
  spent: Money;
  /** Ledger entries so far (purchases and reloads). */
  entries: number;
  /** Reloads so far, ever: the next reload's sequence is reloads + 1. */
  reloads: number;
  /** Period (YYYY-MM) → amount reloaded in it. */
  reloadedIn: Map<string, Money>;
  armed: boolean;
  /** The status last signalled: blocked at or below zero. */
  blocked: boolean;
  /** Whether the reload limit was signalled in a period. */
  limitSignalled: Set<string>;
}

export function balanceOf(a: Pick<CreditAccount, "purchased" | "reloaded" | "spent">): Money {
  return a.purchased.plus(a.reloaded).minus(a.spent);
}

export type CreditAction =
  | { kind: "reload"; sequence: number; amount: string; balanceAfter: string }
  | { kind: "reload_limit"; monthlyMax: string; reloadedThisPeriod: string; balance: string }
  | { kind: "exhausted"; sequence: number; balance: string }
  | { kind: "restored"; sequence: number; balance: string };

/**
 * Where the account stands now, and what to record and signal: at most one reload (so one crossing gives one
 * reload), then the blocked status against the balance after it. Mutates `a` as if the actions were recorded: the
 * caller records them before anything else depends on them.
 */
export function stepCredits(a: CreditAccount, autoReload: AutoReload | undefined, period: string): CreditAction[] {
  const out: CreditAction[] = [];
  let balance = balanceOf(a);
  if (autoReload?.enabled) {
    const below = balance.lt(autoReload.when_below);
    if (!below) a.armed = true;
    else if (a.armed) {
      const done = a.reloadedIn.get(period) ?? new Money(0);
      if (done.plus(autoReload.amount).lte(autoReload.monthly_max)) {
        a.reloads += 1;
        a.entries += 1;
        a.reloaded = a.reloaded.plus(autoReload.amount);
        a.reloadedIn.set(period, done.plus(autoReload.amount));
        balance = balanceOf(a);
        a.armed = !balance.lt(autoReload.when_below);
        out.push({
          kind: "reload",
          sequence: a.reloads,
          amount: autoReload.amount,
          balanceAfter: formatMoney(balance),
        });
      } else if (!a.limitSignalled.has(period)) {
        a.limitSignalled.add(period);
        out.push({
          kind: "reload_limit",
          monthlyMax: autoReload.monthly_max,
          reloadedThisPeriod: formatMoney(done),
          balance: formatMoney(balance),
        });
      }
    }
  } else {
    // Disabled (or never set): enabling it acts on the balance of that moment.
    a.armed = true;
  }
  const blocked = balance.lte(0);
  if (blocked !== a.blocked) {
    a.blocked = blocked;
    out.push({ kind: blocked ? "exhausted" : "restored", sequence: a.entries, balance: formatMoney(balance) });
  }
  return out;
}

/** A purchase recorded: the balance rises and auto-reload is armed again. */
export function applyPurchase(a: CreditAccount, amount: string): void {
  a.purchased = a.purchased.plus(amount);
  a.entries += 1;
  a.armed = true;
}

/**
 * Auto-reload's armed flag rebuilt from the ledger after a restart, the same as it was in memory: armed unless the
 * latest entry is a reload that left the balance below `when_below` and the balance is still below it (between a
 * reload and now the balance only falls, unless a purchase came, which re-arms).
 */
export function armedAfterLoad(
  latest: { kind: "purchase" | "reload"; balanceAfter: string } | undefined,
  balance: Money,
  whenBelow: string | undefined,
): boolean {
  if (whenBelow === undefined || !balance.lt(whenBelow)) return true;
  if (latest === undefined || latest.kind === "purchase") return true;
  return !new Money(latest.balanceAfter).lt(whenBelow);
}

export function emptyAccount(openedAt: number): CreditAccount {
  return {
    openedAt,
    purchased: new Money(0),
    reloaded: new Money(0),
    spent: new Money(0),
    entries: 0,
    reloads: 0,
    reloadedIn: new Map(),
    armed: true,
    blocked: false,
    limitSignalled: new Set(),
  };
}
