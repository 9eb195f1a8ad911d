import type { PricedUsageEvent, UsageEvent } from "@usage/events";
import { Money } from "@usage/money";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { createPricer, LONG_CONTEXT_THRESHOLD, resolveModelId } from "./price.js";
import { loadRateCard, parseRateCard } from "./rate-card.js";

const pricer = createPricer(loadRateCard());

function event(overrides: Partial<UsageEvent> = {}): UsageEvent {
  return {
    event_id: "6f1c2d3e-4b5a-4c6d-8e7f-9a0b1c2d3e4f",
    occurred_at: "2025-11-15T12:00:00.000Z",
    org_id: "org-1",
    user_id: "user-1",
    seat_tier: "premium",
    product: "claude_code",
    model: "claude-opus-4-5",
    input_tokens: 0,
    output_tokens: 0,
    cache_write_tokens: 0,
    cache_read_tokens: 0,
    ...overrides,
  };
}

function price(overrides: Partial<UsageEvent>, pricing = pricer): PricedUsageEvent {
  const result = pricing(event(overrides));
  if (!result.ok) throw new Error(`unexpected rejection: ${result.rejection.message}`);
  return result.value;
}

type Costs = [input: string, output: string, cacheWrite: string, cacheRead: string, total: string];

function costsOf(p: PricedUsageEvent): Costs {
  return [p.input_cost, p.output_cost, p.cache_write_cost, p.cache_read_cost, p.total_cost];
}

describe("resolveModelId", () => {
  it("strips a -YYYYMMDD suffix and nothing else", () => {
    expect(resolveModelId("claude-sonnet-4-5-20250929")).toBe("claude-sonnet-4-5");
    expect(resolveModelId("claude-3-5-haiku-20241022")).toBe("claude-3-5-haiku");
    expect(resolveModelId("claude-sonnet-4-5")).toBe("claude-sonnet-4-5");
    expect(resolveModelId("claude-opus-4-5-2025092")).toBe("claude-opus-4-5-2025092");
    expect(resolveModelId("claude-opus-4-5-202509291")).toBe("claude-opus-4-5-202509291");
    expect(resolveModelId("claude-opus-4-5-2025092x")).toBe("claude-opus-4-5-2025092x");
    expect(resolveModelId("claude-opus-4-5@20250929")).toBe("claude-opus-4-5@20250929");
  });
});

describe("createPricer with the default rate card", () => {
  it("prices 1,234,567 input tokens of claude-opus-4-5 at $5/MTok", () => {
    const p = price({ input_tokens: 1_234_567 });
    expect(p.input_cost).toBe("6.172835");
    expect(p.total_cost).toBe("6.172835");
    expect(p.output_cost).toBe("0");
  });

  // 123,456 input, 7,890 output, 45,678 cache write, 10,001 cache read: a 179,135-token prompt, so
  // standard rates everywhere. E.g. opus-4-5: 123456×5 = 0.61728, 7890×25 = 0.19725,
  // 45678×6.25 = 0.2854875, 10001×0.50 = 0.0050005 (each / 10^6); total 1.105018.
  const tokens = { input_tokens: 123_456, output_tokens: 7_890, cache_write_tokens: 45_678, cache_read_tokens: 10_001 };
  const expected: Record<string, Costs> = {
    "claude-opus-4-5": ["0.61728", "0.19725", "0.2854875", "0.0050005", "1.105018"],
    "claude-haiku-4-5": ["0.123456", "0.03945", "0.0570975", "0.0010001", "0.2210036"],
    "claude-sonnet-4-5": ["0.370368", "0.11835", "0.1712925", "0.0030003", "0.6630108"],
    "claude-opus-4-1": ["1.85184", "0.59175", "0.8564625", "0.0150015", "3.315054"],
    "claude-sonnet-4": ["0.370368", "0.11835", "0.1712925", "0.0030003", "0.6630108"],
    "claude-opus-4": ["1.85184", "0.59175", "0.8564625", "0.0150015", "3.315054"],
    "claude-3-7-sonnet": ["0.370368", "0.11835", "0.1712925", "0.0030003", "0.6630108"],
    "claude-3-opus": ["1.85184", "0.59175", "0.8564625", "0.0150015", "3.315054"],
    "claude-3-5-haiku": ["0.0987648", "0.03156", "0.045678", "0.00080008", "0.17680288"],
  };

  it.each(Object.entries(expected))("prices all four token kinds of %s", (model, costs) => {
    const p = price({ model, ...tokens });
    expect(costsOf(p)).toEqual(costs);
    expect(p.rate_card_version).toBe("2025-11-01");
    expect(p.long_context).toBe(false);
    expect(p.prompt_tokens).toBe(179_135);
  });

  it("keeps the event's fields, adds the priced fields at top level, and leaves the input untouched", () => {
    const input = event({ model: "claude-haiku-4-5", user_email: "a@example.com", region: null, ...tokens });
    const snapshot = structuredClone(input);
    const result = pricer(input);
    expect(result).toEqual({
      ok: true,
      value: {
        ...snapshot,
        rate_card_version: "2025-11-01",
        long_context: false,
        prompt_tokens: 179_135,
        input_cost: "0.123456",
        output_cost: "0.03945",
        cache_write_cost: "0.0570975",
        cache_read_cost: "0.0010001",
        total_cost: "0.2210036",
      },
    });
    expect(input).toEqual(snapshot);
  });

  it("prices an all-zero event at 0", () => {
    expect(costsOf(price({}))).toEqual(["0", "0", "0", "0", "0"]);
  });
});

describe("long context", () => {
  it("uses 200,000 as the threshold", () => {
    expect(LONG_CONTEXT_THRESHOLD).toBe(200_000);
  });

  // Prompt = input + cache write + cache read; 10,000 output tokens each time. Standard sonnet rates are
  // 3 / 15 / 3.75 / 0.30, long-context rates 6 / 22.50 / 7.50 / 0.60 (USD per MTok).
  const cases: [prompt: number, input: number, cacheWrite: number, cacheRead: number, costs: Costs][] = [
    // 199,999: not long. 199999×3 = 0.599997; 10000×15 = 0.15.
    [199_999, 199_999, 0, 0, ["0.599997", "0.15", "0", "0", "0.749997"]],
    [199_999, 0, 199_999, 0, ["0", "0.15", "0.74999625", "0", "0.89999625"]],
    [199_999, 0, 0, 199_999, ["0", "0.15", "0", "0.0599997", "0.2099997"]],
    [199_999, 100_000, 50_000, 49_999, ["0.3", "0.15", "0.1875", "0.0149997", "0.6524997"]],
    [199_999, 1, 199_997, 1, ["0.000003", "0.15", "0.74998875", "0.0000003", "0.89999205"]],
    // 200,000 exactly: still not long.
    [200_000, 200_000, 0, 0, ["0.6", "0.15", "0", "0", "0.75"]],
    [200_000, 0, 200_000, 0, ["0", "0.15", "0.75", "0", "0.9"]],
    [200_000, 0, 0, 200_000, ["0", "0.15", "0", "0.06", "0.21"]],
    [200_000, 100_000, 50_000, 50_000, ["0.3", "0.15", "0.1875", "0.015", "0.6525"]],
    [200_000, 1, 199_998, 1, ["0.000003", "0.15", "0.7499925", "0.0000003", "0.8999958"]],
    // 200,001: long, and all four kinds switch, output included (10000×22.50 = 0.225).
    [200_001, 200_001, 0, 0, ["1.200006", "0.225", "0", "0", "1.425006"]],
    [200_001, 0, 200_001, 0, ["0", "0.225", "1.5000075", "0", "1.7250075"]],
    [200_001, 0, 0, 200_001, ["0", "0.225", "0", "0.1200006", "0.3450006"]],
    // 100000×6 = 0.6, 50000×7.50 = 0.375, 50001×0.60 = 0.0300006.
    [200_001, 100_000, 50_000, 50_001, ["0.6", "0.225", "0.375", "0.0300006", "1.2300006"]],
    [200_001, 1, 199_999, 1, ["0.000006", "0.225", "1.4999925", "0.0000006", "1.7249991"]],
  ];

  for (const model of ["claude-sonnet-4-5", "claude-sonnet-4"]) {
    it.each(cases)(`${model}: prompt %i (input %i, cache write %i, cache read %i)`, (prompt, input, cw, cr, costs) => {
      const p = price({
        model,
        input_tokens: input,
        output_tokens: 10_000,
        cache_write_tokens: cw,
        cache_read_tokens: cr,
      });
      expect(p.prompt_tokens).toBe(prompt);
      expect(p.long_context).toBe(prompt > 200_000);
      expect(costsOf(p)).toEqual(costs);
    });
  }

  it("does not count output tokens towards the prompt", () => {
    const p = price({ model: "claude-sonnet-4-5", input_tokens: 200_000, output_tokens: 500_000 });
    expect(p.prompt_tokens).toBe(200_000);
    expect(p.long_context).toBe(false);
    expect(p.output_cost).toBe("7.5");
  });

  it("keeps the single rate of a model without brackets at 300,000 prompt tokens", () => {
    // 300000×5 = 1.5; 1000×25 = 0.025.
    const opus = price({ model: "claude-opus-4-5", input_tokens: 300_000, output_tokens: 1_000 });
    expect(opus.prompt_tokens).toBe(300_000);
    expect(opus.long_context).toBe(false);
    expect(costsOf(opus)).toEqual(["1.5", "0.025", "0", "0", "1.525"]);
    // 100000×3 = 0.3, 1000×15 = 0.015, 100000×3.75 = 0.375, 100000×0.30 = 0.03.
    const sonnet37 = price({
      model: "claude-3-7-sonnet",
      input_tokens: 100_000,
      output_tokens: 1_000,
      cache_write_tokens: 100_000,
      cache_read_tokens: 100_000,
    });
    expect(sonnet37.long_context).toBe(false);
    expect(costsOf(sonnet37)).toEqual(["0.3", "0.015", "0.375", "0.03", "0.72"]);
  });
});

describe("dated model ids", () => {
  it("prices claude-sonnet-4-5-20250929 as claude-sonnet-4-5 and keeps the model as sent", () => {
    const t = { input_tokens: 123_456, output_tokens: 7_890, cache_write_tokens: 45_678, cache_read_tokens: 10_001 };
    const dated = price({ model: "claude-sonnet-4-5-20250929", ...t });
    expect(dated.model).toBe("claude-sonnet-4-5-20250929");
    expect(costsOf(dated)).toEqual(["0.370368", "0.11835", "0.1712925", "0.0030003", "0.6630108"]);
    expect(costsOf(dated)).toEqual(costsOf(price({ model: "claude-sonnet-4-5", ...t })));
  });

  it("applies long-context rates to a dated id", () => {
    const p = price({ model: "claude-sonnet-4-20250514", input_tokens: 250_000 });
    expect(p.long_context).toBe(true);
    expect(p.input_cost).toBe("1.5"); // 250000 × 6
  });
});

describe("rejections", () => {
  it("rejects an unknown model with unknown_model, naming the model and the rate card version", () => {
    const result = pricer(event({ model: "claude-opus-9" }));
    expect(result).toEqual({
      ok: false,
      rejection: {
        code: "unknown_model",
        message: 'model "claude-opus-9" is not in rate card version 2025-11-01',
        event_id: "6f1c2d3e-4b5a-4c6d-8e7f-9a0b1c2d3e4f",
      },
    });
  });

  it("names the base id of an unknown dated model", () => {
    const result = pricer(event({ model: "claude-opus-9-20260101" }));
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.rejection.code).toBe("unknown_model");
    expect(result.rejection.message).toBe(
      'model "claude-opus-9-20260101" (base id "claude-opus-9") is not in rate card version 2025-11-01',
    );
  });

  it("does not mistake prototype names or near misses for models", () => {
    for (const model of ["toString", "constructor", "__proto__", "", "Claude-Opus-4-5", "claude-opus-4-5-2025092"]) {
      const result = pricer(event({ model }));
      expect(result.ok, model).toBe(false);
      if (!result.ok) expect(result.rejection.code).toBe("unknown_model");
    }
  });

  it("rejects an event from before every version with unknown_model", () => {
    const result = pricer(event({ occurred_at: "2025-10-31T23:59:59.999Z" }));
    expect(result).toEqual({
      ok: false,
      rejection: {
        code: "unknown_model",
        message:
          'no rate card version is in force at 2025-10-31T23:59:59.999Z, so model "claude-opus-4-5" has no price',
        event_id: "6f1c2d3e-4b5a-4c6d-8e7f-9a0b1c2d3e4f",
      },
    });
  });

  it("rejects token counts that cannot be priced exactly as invalid_field", () => {
    const bad: [keyof UsageEvent, unknown][] = [
      ["input_tokens", 1.5],
      ["output_tokens", -1],
      ["cache_write_tokens", 1_000_000_001],
      ["cache_read_tokens", Number.NaN],
      ["input_tokens", "5"],
    ];
    for (const [field, value] of bad) {
      const result = pricer({ ...event(), [field]: value } as UsageEvent);
      expect(result.ok).toBe(false);
      if (!result.ok) {
        expect(result.rejection.code).toBe("invalid_field");
        expect(result.rejection.field).toBe(field);
      }
    }
  });

  it("rejects an unparseable occurred_at as invalid_field", () => {
    const result = pricer(event({ occurred_at: "not a time" }));
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.rejection).toMatchObject({ code: "invalid_field", field: "occurred_at" });
  });
});

describe("effective-dated versions", () => {
  // Listed newest first on purpose: order in the file must not matter.
  const twoVersions = createPricer(
    parseRateCard({
      versions: [
        {
          version: "2026-01-01",
          effective_from: "2026-01-01T00:00:00Z",
          models: {
            "claude-opus-4-5": { input: "4", output: "20", cache_write: "5", cache_read: "0.40" },
            "claude-opus-5": { input: "10", output: "50", cache_write: "12.50", cache_read: "1" },
          },
        },
        {
          version: "2025-11-01",
          effective_from: "2025-11-01T00:00:00Z",
          models: { "claude-opus-4-5": { input: "5", output: "25", cache_write: "6.25", cache_read: "0.50" } },
        },
      ],
    }),
  );
  const t = { input_tokens: 1_000, output_tokens: 100, cache_write_tokens: 10, cache_read_tokens: 1 };

  it("uses the second version for an event exactly at its effective_from", () => {
    const p = price({ ...t, occurred_at: "2026-01-01T00:00:00.000Z" }, twoVersions);
    expect(p.rate_card_version).toBe("2026-01-01");
    // 1000×4 = 0.004, 100×20 = 0.002, 10×5 = 0.00005, 1×0.40 = 0.0000004.
    expect(costsOf(p)).toEqual(["0.004", "0.002", "0.00005", "0.0000004", "0.0060504"]);
  });

  it("uses the first version one millisecond before", () => {
    const p = price({ ...t, occurred_at: "2025-12-31T23:59:59.999Z" }, twoVersions);
    expect(p.rate_card_version).toBe("2025-11-01");
    // 1000×5 = 0.005, 100×25 = 0.0025, 10×6.25 = 0.0000625, 1×0.50 = 0.0000005.
    expect(costsOf(p)).toEqual(["0.005", "0.0025", "0.0000625", "0.0000005", "0.007563"]);
  });

  it("treats a model added in the second version as unknown before it", () => {
    const before = twoVersions(event({ ...t, model: "claude-opus-5", occurred_at: "2025-12-31T23:59:59.999Z" }));
    expect(before.ok).toBe(false);
    if (!before.ok) {
      expect(before.rejection.code).toBe("unknown_model");
      expect(before.rejection.message).toBe('model "claude-opus-5" is not in rate card version 2025-11-01');
    }
    const at = price({ ...t, model: "claude-opus-5", occurred_at: "2026-01-01T00:00:00.000Z" }, twoVersions);
    // 1000×10 = 0.01, 100×50 = 0.005, 10×12.50 = 0.000125, 1×1 = 0.000001.
    expect(costsOf(at)).toEqual(["0.01", "0.005", "0.000125", "0.000001", "0.015126"]);
  });
});

describe("maximum-size events stay exact", () => {
  const max = 1_000_000_000;

  it("prices 1,000,000,000 tokens of every kind on claude-opus-4-1 (no brackets, so single rate)", () => {
    const p = price({
      model: "claude-opus-4-1",
      input_tokens: max,
      output_tokens: max,
      cache_write_tokens: max,
      cache_read_tokens: max,
    });
    expect(p.prompt_tokens).toBe(3_000_000_000);
    expect(p.long_context).toBe(false);
    // 1e9 × 15, 75, 18.75, 1.50 / 1e6.
    expect(costsOf(p)).toEqual(["15000", "75000", "18750", "1500", "110250"]);
  });

  it("prices 999,999,999 tokens of every kind to the last digit", () => {
    const all = (model: string) =>
      price({
        model,
        input_tokens: max - 1,
        output_tokens: max - 1,
        cache_write_tokens: max - 1,
        cache_read_tokens: max - 1,
      });
    // 999999999 × 15 = 14999999985 → 14999.999985; × 18.75 = 18749999981.25 → 18749.99998125.
    expect(costsOf(all("claude-opus-4-1"))).toEqual([
      "14999.999985",
      "74999.999925",
      "18749.99998125",
      "1499.9999985",
      "110249.99988975",
    ]);
    const long = all("claude-sonnet-4-5");
    expect(long.long_context).toBe(true);
    expect(costsOf(long)).toEqual(["5999.999994", "22499.9999775", "7499.9999925", "599.9999994", "36599.9999634"]);
  });
});

describe("property: total_cost is the exact sum of tokens × rate / 10^6", () => {
  // Independent oracle: SPEC §4 rates and decimal arithmetic (Money), sharing no code with the pricer's integers.
  const standard: Record<string, readonly [string, string, string, string]> = {
    "claude-opus-4-5": ["5", "25", "6.25", "0.50"],
    "claude-haiku-4-5": ["1", "5", "1.25", "0.10"],
    "claude-sonnet-4-5": ["3", "15", "3.75", "0.30"],
    "claude-opus-4-1": ["15", "75", "18.75", "1.50"],
    "claude-sonnet-4": ["3", "15", "3.75", "0.30"],
    "claude-opus-4": ["15", "75", "18.75", "1.50"],
    "claude-3-7-sonnet": ["3", "15", "3.75", "0.30"],
    "claude-3-opus": ["15", "75", "18.75", "1.50"],
    "claude-3-5-haiku": ["0.80", "4", "1", "0.08"],
  };
  const longContext = ["6", "22.50", "7.50", "0.60"] as const;
  const hasLong = new Set(["claude-sonnet-4-5", "claude-sonnet-4"]);

  const tokenCount = fc.oneof(
    fc.integer({ min: 0, max: 1_000_000_000 }),
    fc.integer({ min: 0, max: 250_000 }),
    fc.constantFrom(0, 1, 66_666, 66_667, 199_999, 200_000, 200_001, 1_000_000_000),
  );

  it("holds for random events on every model", () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...Object.keys(standard)),
        fc.boolean(),
        tokenCount,
        tokenCount,
        tokenCount,
        tokenCount,
        (model, dated, input, output, cacheWrite, cacheRead) => {
          const p = price({
            model: dated ? `${model}-20250929` : model,
            input_tokens: input,
            output_tokens: output,
            cache_write_tokens: cacheWrite,
            cache_read_tokens: cacheRead,
          });
          const prompt = input + cacheWrite + cacheRead;
          const long = prompt > 200_000 && hasLong.has(model);
          const rates = long ? longContext : standard[model]!;
          const parts = [input, output, cacheWrite, cacheRead].map((n, i) =>
            new Money(n).times(rates[i]!).times("0.000001"),
          );
          const total = parts.reduce((a, b) => a.plus(b), new Money(0));
          expect(p.long_context).toBe(long);
          expect(p.prompt_tokens).toBe(prompt);
          expect(costsOf(p)).toEqual([...parts.map((d) => d.toString()), total.toString()]);
        },
      ),
      { numRuns: 3_000, seed: 20251101 },
    );
  });
});
