/**
 * Fault: 10,000 malformed messages of 23 kinds — truncated Avro, unknown and wrong schemas, wrong types on the wire,
 * huge and negative token counts, empty and non-UUID ids, future and too-old timestamps, unknown models, null and
 * empty values — written straight to usage.events.v1, interleaved with 20,000 good events from `usagectl produce`.
 * Every bad one must reach usage.dlq.v1 once, with its reason, field and original bytes; every good one must be
 * priced once and counted exactly; alerts never twice.
 */
import { afterAll, describe, expect, it } from "vitest";
import { produce, report, settle } from "./harness/checks.js";
import { checkEverything, openScenario, type Scenario, startServices } from "./harness/scenario.js";

describe("fault: malformed messages", () => {
  let s: Scenario | undefined;
  afterAll(async () => {
    await s?.p.close();
  });

  it("routes 10,000 malformed messages to the DLQ with their reasons while the good ones are counted exactly", async () => {
    s = await openScenario("malformed", { workload: { seed: 601, count: 20_000, badCount: 10_000 } });
    await startServices(s);
    await produce(s.p, s.ledger, s.wl.events, s.wl.bad);
    await settle(s.p, s.wl);
    const results = await checkEverything(s, { strictAlerts: true });
    report(s.p, {
      events: s.wl.events.length,
      distinct: s.wl.distinct.size,
      bad: s.wl.bad.length,
      bad_kinds: new Set(s.wl.bad.map((b) => b.kind)).size,
      ...results,
    });
    expect(s.p.findings, "services that exited by themselves").toEqual([]);
  });
});
