/**
 * recordRows and accountStep over generated batches: the spend_daily rollup and the running totals they leave must
 * be the exact sums of the batch's events, computed here event by event with decimal.js (Money).
 */
import type { PricedUsageEvent } from "@usage/events";
import { formatMoney, Money } from "@usage/money";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { PartitionState, SeenIds } from "./partition.js";
import { SpendState } from "./state.js";
import { accountStep, recordRows } from "./steps.js";

const NOW = Date.parse("2026-11-20T12:00:00.000Z");
const DISCOUNTS: Record<string, string> = { org_a: "0", org_b: "12.5", org_c: "33.3333" };

const amount = fc
  .tuple(fc.bigInt({ min: 0n, max: 10n ** 18n }), fc.integer({ min: 0, max: 12 }))
  .map(([n, scale]) => new Money(n.toString()).div(new Money(10).pow(scale)).toFixed());

const event = fc.record({
  org: fc.constantFrom("org_a", "org_b", "org_c"),
  user: fc.constantFrom("u1", "u2", "u3"),
  // From last month (late: its period is closed) to 4 minutes ahead.
  occurredAt: fc.constantFrom(
    "2026-10-31T23:59:59.999Z",
    "2026-11-01T00:00:00.000Z",
    "2026-11-19T08:00:00.000Z",
    "2026-11-20T11:59:00.000Z",
  ),
  tier: fc.constantFrom("standard", "premium"),
  model: fc.constantFrom("claude-opus-4-5", "claude-opus-4-5-20251101", "claude-haiku-4-5"),
  tokens: fc.integer({ min: 0, max: 1_000_000 }),
  total: amount,
  pricedAt: fc.constantFrom(NOW - 1000, NOW - 1000, NOW),
});

function partition(): PartitionState {
  const spend = new SpendState(() => NOW);
  for (const [org, discount_pct] of Object.entries(DISCOUNTS)) {
    spend.setContract(org, { plan: "sales_assisted", discount_pct, version: 1 });
  }
  const seen = { add: () => undefined } as unknown as SeenIds;
  return { partition: 0, generation: 1, spend, orgs: new Set(), seen };
}

const netOf = (gross: string, pct: string) => new Money(gross).times(new Money(100).minus(pct)).div(100);

describe("recordRows and accountStep", () => {
  it("roll up and account each batch's events exactly", () => {
    fc.assert(
      fc.property(fc.array(event, { minLength: 1, maxLength: 80 }), (specs) => {
        const part = partition();
        const fresh = specs.map((s, i) => ({
          event: {
            event_id: `00000000-0000-4000-8000-${String(i).padStart(12, "0")}`,
            occurred_at: s.occurredAt,
            org_id: s.org,
            user_id: s.user,
            user_email: null,
            account_uuid: null,
            request_id: null,
            region: null,
            seat_tier: s.tier,
            product: "chat",
            model: s.model,
            input_tokens: s.tokens,
            output_tokens: 1,
            cache_write_tokens: 0,
            cache_read_tokens: 0,
            rate_card_version: "v1",
            long_context: false,
            prompt_tokens: s.tokens,
            input_cost: s.total,
            output_cost: "0",
            cache_write_cost: "0",
            cache_read_cost: "0",
            total_cost: s.total,
          } as PricedUsageEvent,
          pricedAt: s.pricedAt,
        }));
        const batch = { topic: "usage.priced.v1", partition: 0, messages: [{ offset: "7" }, { offset: "9" }] };
        const { rows, late, write } = recordRows(part, batch as never, fresh, () => NOW);

        // The rollup: one row per org, day, user, tier, product and base model, with the exact sums.
        const expected = new Map<string, { requests: number; tokens: number; gross: Money; net: Money }>();
        for (const s of specs) {
          const key = [s.org, s.occurredAt.slice(0, 10), s.user, s.tier, s.model.replace(/-\d{8}$/, "")].join("|");
          const e = expected.get(key) ?? { requests: 0, tokens: 0, gross: new Money(0), net: new Money(0) };
          e.requests++;
          e.tokens += s.tokens;
          e.gross = e.gross.plus(s.total);
          e.net = e.net.plus(netOf(s.total, DISCOUNTS[s.org]!));
          expected.set(key, e);
        }
        const got = new Map(
          write.rollup.map((r) => [
            [r.org_id, r.day, r.user_id, r.seat_tier, r.model].join("|"),
            { requests: r.requests, tokens: r.input_tokens, gross: r.gross_cost, net: r.net_cost },
          ]),
        );
        expect(got).toEqual(
          new Map(
            [...expected].map(([k, e]) => [
              k,
              { requests: e.requests, tokens: e.tokens, gross: formatMoney(e.gross), net: formatMoney(e.net) },
            ]),
          ),
        );
        expect(late).toBe(specs.filter((s) => s.occurredAt < "2026-11").length);
        expect(rows.map((r) => r.row.net_cost)).toEqual(
          specs.map((s) => formatMoney(netOf(s.total, DISCOUNTS[s.org]!))),
        );

        // The running totals: the current period's net spend of each user and org; a late event counts nowhere.
        accountStep(part, rows);
        for (const org of Object.keys(DISCOUNTS)) {
          const mine = specs.filter((s) => s.org === org && s.occurredAt >= "2026-11");
          const spend = part.spend.org(org).periods.get("2026-11");
          const orgTotal = mine.reduce((sum, s) => sum.plus(netOf(s.total, DISCOUNTS[org]!)), new Money(0));
          expect(formatMoney(spend?.org ?? new Money(0))).toBe(formatMoney(orgTotal));
          for (const user of ["u1", "u2", "u3"]) {
            const userTotal = mine
              .filter((s) => s.user === user)
              .reduce((sum, s) => sum.plus(netOf(s.total, DISCOUNTS[org]!)), new Money(0));
            expect(formatMoney(spend?.users.get(user) ?? new Money(0))).toBe(formatMoney(userTotal));
          }
          expect(part.spend.org(org).periods.has("2026-10")).toBe(false);
        }
      }),
      { numRuns: 200 },
    );
  });
});
