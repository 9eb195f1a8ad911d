/**
 * Fault: spend_daily refuses every insert for 8 s mid-stream while every other table takes them (the test hook's
 * `table spend_daily`, packages/clickhouse/src/faults.ts). The aggregator writes a batch's usage_events rows, emits
 * its signals, and only then, after checking ownership again, its spend_daily rollup (services/aggregator/src/
 * aggregator.ts, steps 3 to 7): here the rollup fails with the events stored and the signals out. The batch must be
 * redelivered and find its events stored, the partition's load must rebuild the missing rollup from usage_events
 * (once writes work again: the rebuild is a spend_daily write too), and a signal sent before the failure must not
 * make a second alert. 12,000 events (5% published twice, 1% late) in four slices, policies that cap users and orgs.
 *
 * A service that exits during the outage and is restarted by the supervisor is accepted and counted in the report;
 * one exiting after the outage is not.
 */
import { rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { FAULT_CLICKHOUSE_FILE_ENV, INJECTED_WRITE_FAILURE } from "@usage/clickhouse";
import { afterAll, describe, expect, it } from "vitest";
import { tempDir } from "../harness/index.js";
import { produceInSlices, report, settle } from "./harness/checks.js";
import { sleep, waitFor } from "./harness/pipeline.js";
import { checkEverything, openScenario, type Scenario, startServices } from "./harness/scenario.js";

const OUTAGE_MS = 8000;

describe("fault: spend_daily refuses inserts", () => {
  let s: Scenario | undefined;
  const faultDir = tempDir("usage-faults-rollup-");
  const faultFile = join(faultDir, "spend-daily-fails");
  afterAll(async () => {
    rmSync(faultDir, { recursive: true, force: true });
    await s?.p.close();
  });

  it("rebuilds every rollup left behind, totals exact, no alert twice", async () => {
    s = await openScenario("rollup-outage", {
      workload: { seed: 606, count: 12_000, badCount: 0 },
      extraEnv: { [FAULT_CLICKHOUSE_FILE_ENV]: faultFile },
    });
    const { p, wl, ledger } = s;
    await startServices(s);
    const producing = produceInSlices(p, ledger, wl, { slices: 4, pauseMs: 3000 });

    await waitFor(
      "the aggregator to handle a fifth of the events",
      async () => (await p.aggregatorHandled()) >= wl.distinct.size * 0.2,
      120_000,
    );
    writeFileSync(faultFile, "table spend_daily\n");
    const outageStarted = Date.now();
    await sleep(OUTAGE_MS);
    const failedWrites = p.services.aggregator.logCount(INJECTED_WRITE_FAILURE);
    rmSync(faultFile);
    const outageEnded = Date.now();

    await producing;
    await settle(p, wl, { timeoutMs: 180_000 });
    const repairs = await p.metric("aggregator", "usage_aggregator_rollups_rebuilt_total");
    const results = await checkEverything(s, { strictAlerts: true });
    report(p, {
      events: wl.events.length,
      distinct: wl.distinct.size,
      outage_ms: outageEnded - outageStarted,
      outage_at_s: [outageStarted, outageEnded].map((t) => (t - p.startedAt) / 1000),
      failed_writes_logged: failedWrites,
      rollup_repairs: repairs,
      ...results,
    });
    // The outage took hold (a batch reached its rollup and failed there), and what it left was rebuilt.
    expect(failedWrites, "spend_daily write failures the aggregator logged").toBeGreaterThan(0);
    expect(repairs, "batches whose rollup a load rebuilt").toBeGreaterThan(0);
    expect(
      p.findings.filter((f) => f.atMs > outageEnded - p.startedAt + 5000),
      "services that exited by themselves after the outage",
    ).toEqual([]);
  });
});
