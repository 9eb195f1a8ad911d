import { Money } from "@usage/money";
import { describe, expect, it } from "vitest";
import {
  type AutoReload,
  applyPurchase,
  armedAfterLoad,
  balanceOf,
  type CreditAccount,
  emptyAccount,
  parseAutoReload,
  parsePurchase,
  stepCredits,
} from "./credits.js";

const RELOAD: AutoReload = { enabled: true, when_below: "10", amount: "50", monthly_max: "120" };

function account(purchase: string): CreditAccount {
  const a = emptyAccount(0);
  applyPurchase(a, purchase);
  return a;
}

function spend(a: CreditAccount, amount: string): void {
  a.spent = a.spent.plus(amount);
}

describe("credits: balance and blocking", () => {
  it("draws the balance down exactly and blocks at exactly zero, not before", () => {
    const a = account("1");
    for (let i = 0; i < 9; i++) spend(a, "0.1");
    expect(stepCredits(a, undefined, "2026-11")).toEqual([]);
    expect(balanceOf(a).toFixed()).toBe("0.1");
    spend(a, "0.1");
    expect(stepCredits(a, undefined, "2026-11")).toEqual([{ kind: "exhausted", sequence: 1, balance: "0" }]);
    expect(a.blocked).toBe(true);
  });

  it("signals exhaustion once, and restores on a purchase with the ledger size as sequence", () => {
    const a = account("5");
    spend(a, "7.5");
    expect(stepCredits(a, undefined, "2026-11").map((x) => x.kind)).toEqual(["exhausted"]);
    spend(a, "1");
    expect(stepCredits(a, undefined, "2026-11")).toEqual([]);
    applyPurchase(a, "3");
    // -3.5 + 3 = -0.5: still blocked, nothing to say
    expect(stepCredits(a, undefined, "2026-11")).toEqual([]);
    applyPurchase(a, "1");
    expect(stepCredits(a, undefined, "2026-11")).toEqual([{ kind: "restored", sequence: 3, balance: "0.5" }]);
    // balance + spent = purchases + reloads
    expect(balanceOf(a).plus(a.spent).eq(a.purchased.plus(a.reloaded))).toBe(true);
  });
});

describe("credits: auto-reload", () => {
  it("reloads once when the balance falls below when_below, and not again until it has been back above", () => {
    const a = account("20");
    spend(a, "10.000001");
    const first = stepCredits(a, RELOAD, "2026-11");
    expect(first).toEqual([{ kind: "reload", sequence: 1, amount: "50", balanceAfter: "59.999999" }]);
    expect(a.armed).toBe(true);
    expect(stepCredits(a, RELOAD, "2026-11")).toEqual([]);
    spend(a, "50");
    expect(stepCredits(a, RELOAD, "2026-11").map((x) => x.kind)).toEqual(["reload"]);
    expect(a.reloads).toBe(2);
    expect(a.reloadedIn.get("2026-11")?.toFixed()).toBe("100");
  });

  it("at exactly when_below does not reload (below means strictly below)", () => {
    const a = account("20");
    spend(a, "10");
    expect(stepCredits(a, RELOAD, "2026-11")).toEqual([]);
  });

  it("a reload too small to lift the balance above when_below is not repeated until a purchase", () => {
    const small: AutoReload = { enabled: true, when_below: "100", amount: "5", monthly_max: "1000" };
    const a = account("50");
    expect(stepCredits(a, small, "2026-11").map((x) => x.kind)).toEqual(["reload"]);
    expect(a.armed).toBe(false);
    spend(a, "1");
    expect(stepCredits(a, small, "2026-11")).toEqual([]);
    applyPurchase(a, "1");
    expect(stepCredits(a, small, "2026-11").map((x) => x.kind)).toEqual(["reload"]);
  });

  it("never reloads beyond the monthly maximum, says so once per month, and reloads again next month", () => {
    const a = account("15");
    const kinds: string[] = [];
    for (let i = 0; i < 4; i++) {
      spend(a, "45");
      kinds.push(...stepCredits(a, RELOAD, "2026-11").map((x) => x.kind));
    }
    // 15 - 45 = -30 → reload → 20; - 45 → reload → 25 (100 reloaded ≤ 120); - 45 = -20: a third reload would make
    // 150 > 120 → the limit, and blocked; - 45 = -65: nothing new.
    expect(kinds).toEqual(["reload", "reload", "reload_limit", "exhausted"]);
    expect(a.reloaded.toFixed()).toBe("100");
    expect(stepCredits(a, RELOAD, "2026-11")).toEqual([]);
    const december = stepCredits(a, RELOAD, "2026-12");
    expect(december.map((x) => x.kind)).toEqual(["reload"]);
    expect(balanceOf(a).toFixed()).toBe("-15");
    expect(a.blocked).toBe(true);
  });

  it("a reload that lifts the balance above zero in the same step prevents the block", () => {
    const a = account("5");
    spend(a, "6");
    expect(stepCredits(a, RELOAD, "2026-11").map((x) => x.kind)).toEqual(["reload"]);
    expect(a.blocked).toBe(false);
  });

  it("disabled auto-reload records nothing", () => {
    const a = account("20");
    spend(a, "19");
    expect(stepCredits(a, { ...RELOAD, enabled: false }, "2026-11")).toEqual([]);
  });
});

describe("credits: armed after a restart equals armed in memory", () => {
  it("follows the latest entry", () => {
    expect(armedAfterLoad(undefined, new Money(5), "10")).toBe(true);
    expect(armedAfterLoad({ kind: "purchase", balanceAfter: "0" }, new Money(5), "10")).toBe(true);
    expect(armedAfterLoad({ kind: "reload", balanceAfter: "8" }, new Money(5), "10")).toBe(false);
    expect(armedAfterLoad({ kind: "reload", balanceAfter: "60" }, new Money(5), "10")).toBe(true);
    expect(armedAfterLoad({ kind: "reload", balanceAfter: "8" }, new Money(11), "10")).toBe(true);
    expect(armedAfterLoad({ kind: "reload", balanceAfter: "8" }, new Money(5), undefined)).toBe(true);
  });
});

describe("credits: input", () => {
  it("accepts settings and canonicalises amounts", () => {
    expect(parseAutoReload({ when_below: "10.50", amount: "100", monthly_max: "300" })).toEqual({
      ok: true,
      value: { enabled: true, when_below: "10.5", amount: "100", monthly_max: "300" },
    });
  });

  it.each([
    [{ when_below: "-1", amount: "1", monthly_max: "1" }, "when_below"],
    [{ when_below: "1", amount: "0", monthly_max: "1" }, "amount"],
    [{ when_below: "1", amount: 5, monthly_max: "10" }, "amount"],
    [{ when_below: "1", amount: "5", monthly_max: "4" }, "monthly_max"],
    [{ when_below: "1", amount: "5", monthly_max: "10", extra: 1 }, "extra"],
    [{ when_below: "1", amount: "5.1234567", monthly_max: "10" }, "amount"],
    [{ enabled: "yes", when_below: "1", amount: "5", monthly_max: "10" }, "enabled"],
  ])("rejects %j naming %s", (body, field) => {
    const r = parseAutoReload(body);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.field).toBe(field);
  });

  it("validates purchases", () => {
    expect(parsePurchase({ amount: "100.00", reference: "po-1" })).toEqual({
      ok: true,
      value: { amount: "100", reference: "po-1" },
    });
    expect(parsePurchase({ amount: "0" })).toMatchObject({ ok: false, field: "amount" });
    expect(parsePurchase({ amount: "1e3" })).toMatchObject({ ok: false, field: "amount" });
    expect(parsePurchase({ amount: "1", reference: "has space" })).toMatchObject({ ok: false, field: "reference" });
  });
});
