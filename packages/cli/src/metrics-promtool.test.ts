/**
 * SPEC §8 `/metrics`: what every service exposes passes `promtool check metrics` (counters end in `_total`, units in
 * names, help text on every family). Each registry is built as the service builds it, from the services' own metric
 * factories, and every family is given samples before the text goes through promtool.
 *
 * promtool comes with Debian's `prometheus` package (`.ci/run` installs it); without it this test fails.
 */
import { spawnSync } from "node:child_process";
import { createAggregatorMetrics } from "@usage/aggregator";
import { notifierMetrics } from "@usage/notifier";
import { createPricingMetrics } from "@usage/pricing-service";
import { Registry } from "prom-client";
import { describe, expect, it } from "vitest";

const PROMTOOL = process.env.PROMTOOL ?? "promtool";

function promtoolCheck(text: string): { status: number | null; output: string } {
  const run = spawnSync(PROMTOOL, ["check", "metrics"], { input: text, encoding: "utf8", timeout: 20_000 });
  if ((run.error as NodeJS.ErrnoException | undefined)?.code === "ENOENT") {
    throw new Error(
      `promtool not found (${PROMTOOL}): install Debian's prometheus package ` +
        "(apt-get install -y prometheus; CI installs it in .ci/run), or point PROMTOOL at a promtool binary",
    );
  }
  if (run.error) throw run.error;
  return { status: run.status, output: `${run.stdout}${run.stderr}`.trim() };
}

// The label values a running pipeline would give each family.
function touchPricing(registry: Registry): void {
  const m = createPricingMetrics(registry);
  m.eventsIn.inc(120);
  m.priced.inc(117);
  m.rejected.inc({ reason: "unknown_model" }, 2);
  m.rejected.inc({ reason: "invalid_field" });
  m.duplicates.inc({ stage: "pricing" }, 3);
  m.lag.set({ group: "usage-pricing", topic: "usage.events.v1", partition: "0" }, 42);
  m.batchSeconds.set(0.031);
}

function touchAggregator(registry: Registry): void {
  const m = createAggregatorMetrics(registry, { group: "usage-aggregator" });
  m.recorded.inc(117);
  m.duplicates.inc(3);
  m.dedupLookups.inc(5);
  m.rejected.inc({ reason: "invalid_encoding" });
  m.abandoned.inc();
  m.late.inc(2);
  m.signals.inc({ kind: "threshold" });
  m.signals.inc({ kind: "cap_reached" });
  m.accessViolation("claude_code");
  m.accessViolation("api", 4);
  m.lag.set({ partition: "3" }, 7);
  m.batchSeconds.observe(0.012);
  m.visibleSeconds.observe(0.4);
}

function touchNotifier(registry: Registry): void {
  const m = notifierMetrics(registry, { group: "usage-notifier" });
  m.created.inc({ kind: "threshold" });
  m.skipped.inc({ reason: "duplicate" });
  m.skipped.inc({ reason: "passed" });
  m.skipped.inc({ reason: "invalid" });
  m.published.inc(2);
  m.delivery("delivered");
  m.delivery("no_webhook");
  for (const category of ["timeout", "refused", "dns", "tls", "connection_reset", "network", "http_4xx", "http_5xx"]) {
    m.delivery("retry", category);
  }
  m.delivery("dead", "blocked_address");
  m.delivery("dead", "webhook url refused: https is required");
  m.delivery("dead", "secret_unreadable");
  m.due.set({ member: "0" }, 4);
  m.lag.set({ partition: "1" }, 0);
}

/** Each registry as a process builds it: `usagectl run <service>` and `usagectl start` (all in one registry). */
const PROCESSES: { name: string; build: (registry: Registry) => void }[] = [
  { name: "pricing (usagectl run pricing)", build: touchPricing },
  // `usagectl run aggregator` also serves one API instance from the same registry; the API registers nothing.
  { name: "aggregator (usagectl run aggregator)", build: touchAggregator },
  { name: "notifier (usagectl run notifier)", build: touchNotifier },
  { name: "api (usagectl run api)", build: () => undefined },
  {
    // pipeline.ts: notifiers first, then the aggregator, then pricing, then the APIs, all on one registry.
    name: "all in one (usagectl start)",
    build: (registry) => {
      touchNotifier(registry);
      touchAggregator(registry);
      touchPricing(registry);
    },
  },
];

/** Families of the text (`# TYPE` lines) and whether each has at least one sample. */
function families(text: string): Map<string, { type: string; samples: number }> {
  const out = new Map<string, { type: string; samples: number }>();
  for (const line of text.split("\n")) {
    const type = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (type) out.set(type[1]!, { type: type[2]!, samples: 0 });
  }
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const name = /^([a-zA-Z_:][a-zA-Z0-9_:]*)/.exec(line)?.[1] ?? "";
    const family = out.get(name) ?? out.get(name.replace(/_(bucket|sum|count)$/, ""));
    if (family) family.samples++;
  }
  return out;
}

describe("/metrics passes promtool check metrics", () => {
  it("promtool is installed (Debian's prometheus package)", () => {
    const { status, output } = promtoolCheck("");
    expect(status, output).toBe(0);
  });

  for (const p of PROCESSES) {
    it(`${p.name}: every family has samples, promtool reports nothing`, async () => {
      const registry = new Registry();
      p.build(registry);
      const text = await registry.metrics();
      for (const [name, f] of families(text)) expect(f.samples, `family ${name} has no sample`).toBeGreaterThan(0);
      const { status, output } = promtoolCheck(text);
      expect(output, `promtool check metrics on ${p.name}:\n${output}`).toBe("");
      expect(status).toBe(0);
    });
  }

  it("has consumer lag per partition, delivery outcomes per category, product-access violations", async () => {
    const registry = new Registry();
    touchNotifier(registry);
    touchAggregator(registry);
    touchPricing(registry);
    const text = await registry.metrics();
    const all = families(text);
    expect(all.get("usage_consumer_lag_messages")?.type).toBe("gauge");
    expect(text).toContain(
      'usage_consumer_lag_messages{group="usage-pricing",topic="usage.events.v1",partition="0"} 42',
    );
    expect(text).toContain(
      'usage_consumer_lag_messages{group="usage-aggregator",topic="usage.priced.v1",partition="3"} 7',
    );
    expect(text).toContain(
      'usage_consumer_lag_messages{group="usage-notifier",topic="spend.signals.v1",partition="1"} 0',
    );

    expect(all.get("usage_alert_deliveries_total")?.type).toBe("counter");
    expect(text).toContain('usage_alert_deliveries_total{outcome="delivered"} 1');
    expect(text).toContain('usage_alert_deliveries_total{outcome="retry",category="timeout"} 1');
    expect(text).toContain('usage_alert_deliveries_total{outcome="retry",category="http_5xx"} 1');
    expect(text).toContain('usage_alert_deliveries_total{outcome="dead",category="blocked_address"} 1');
    expect(text).toContain('usage_alert_deliveries_total{outcome="dead",category="url_refused"} 1');

    expect(all.get("usage_aggregator_access_violations_total")?.type).toBe("counter");
    expect(text).toContain(
      "# HELP usage_aggregator_access_violations_total Priced usage events of a product the user may not use under" +
        " the org's product_access policy (still priced and billed)",
    );
    expect(text).toContain('usage_aggregator_access_violations_total{product="api"} 4');
  });
});
