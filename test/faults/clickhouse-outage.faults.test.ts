/**
 * Fault: ClickHouse refuses every write for 30 s mid-stream (the test hook USAGE_FAULT_CLICKHOUSE_FILE, see
 * packages/clickhouse/src/faults.ts: inserts, DDL and commands fail while the file exists; reads keep working, so
 * a batch gets as far as its dedup read before its insert fails). 30,000 events (5% published twice, 1% late) and
 * 500 malformed ones arrive in four slices, so a backlog builds up behind the outage. It starts once a fifth of the
 * events are recorded, the moment a webhook POST arrives (the receiver holds its answer 300 ms), so the notifier
 * cannot record that delivery either. Both services must retry (a batch whose insert failed is redelivered, the
 * state rebuilt from ClickHouse first) and catch up once writes work again: totals exact, alerts never twice.
 *
 * A service that exits during the outage and is restarted by the supervisor is accepted (a deployment runs one; the
 * services exit non-zero on an error they cannot retry precisely so that it restarts them) and counted in the
 * report; one exiting after the outage is not. Webhook POSTs may repeat: a POST that succeeded while its delivery
 * state could not be written is sent again (documented at-least-once; receivers deduplicate on alert_id).
 */
import { rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { FAULT_CLICKHOUSE_FILE_ENV, INJECTED_WRITE_FAILURE } from "@usage/clickhouse";
import { afterAll, describe, expect, it } from "vitest";
import { tempDir } from "../harness/index.js";
import { produceInSlices, report, settle } from "./harness/checks.js";
import { type Pipeline, sleep, waitFor } from "./harness/pipeline.js";
import { checkEverything, openScenario, type Scenario, startServices } from "./harness/scenario.js";

const OUTAGE_MS = 30_000;

/** The aggregator's recorded count, or null while its process (and API) is down. */
async function recorded(p: Pipeline): Promise<number | null> {
  try {
    return await p.metric("aggregator", "usage_aggregator_events_recorded_total");
  } catch {
    return null;
  }
}

describe("fault: ClickHouse write outage", () => {
  let s: Scenario | undefined;
  /** The most verified POSTs any one alert got (filled by the first test). */
  let mostPostsOfOneAlert: number | undefined;
  const faultDir = tempDir("usage-faults-clickhouse-");
  const faultFile = join(faultDir, "writes-fail");
  afterAll(async () => {
    rmSync(faultDir, { recursive: true, force: true });
    await s?.p.close();
  });

  it("catches up after 30 s of failing writes with totals exact and no alert twice", async () => {
    s = await openScenario("clickhouse-outage", {
      workload: { seed: 505, count: 30_000, badCount: 500 },
      extraEnv: { [FAULT_CLICKHOUSE_FILE_ENV]: faultFile },
      receiverDelayMs: 300,
    });
    const { p, wl, ledger } = s;
    await startServices(s);
    const producing = produceInSlices(p, ledger, wl, { slices: 4, pauseMs: 5000 });

    await waitFor(
      "the aggregator to handle a fifth of the events",
      async () => (await p.aggregatorHandled()) >= wl.distinct.size * 0.2,
      120_000,
    );
    // The outage starts the moment the next webhook POST arrives: the receiver holds its answer 300 ms, so the
    // notifier learns of the success only once writes fail, and cannot record it.
    let outageStarted = 0;
    const postInFlight = new Promise<void>((resolve) => {
      p.receiver.onPost = () => {
        if (outageStarted > 0) return;
        writeFileSync(faultFile, "writes\n");
        outageStarted = Date.now();
        resolve();
      };
    });
    await Promise.race([postInFlight, sleep(60_000)]);
    p.receiver.onPost = undefined;
    expect(outageStarted, "an outage started with a webhook POST in flight").toBeGreaterThan(0);
    const postsAtStart = p.receiver.posts;
    const recordedAtStart = await recorded(p);
    // A batch already past its inserts when the file appeared may still finish; after that nothing is recorded.
    await sleep(5000);
    const recordedEarly = await recorded(p);
    await sleep(OUTAGE_MS - (Date.now() - outageStarted));
    const recordedLate = await recorded(p);
    const postsDuringOutage = p.receiver.posts - postsAtStart;
    const lagAtEnd = { aggregator: await p.lag("aggregator"), notifier: await p.lag("notifier") };
    rmSync(faultFile);
    const outageEnded = Date.now();

    await producing;
    await settle(p, wl, { timeoutMs: 240_000 });
    const caughtUpSeconds = (Date.now() - outageEnded) / 1000;
    const repairs = p.services.aggregator.logCount("rebuilding the rollup");
    const failedWrites = [p.services.aggregator, p.services.notifier]
      .map((service) => service.logCount(INJECTED_WRITE_FAILURE))
      .reduce((a, b) => a + b, 0);

    const results = await checkEverything(s, { strictAlerts: false });
    mostPostsOfOneAlert = Math.max(...p.receiver.received.values());
    report(p, {
      events: wl.events.length,
      distinct: wl.distinct.size,
      bad: wl.bad.length,
      outage_ms: outageEnded - outageStarted,
      outage_at_s: [outageStarted, outageEnded].map((t) => (t - p.startedAt) / 1000),
      recorded_at_start: recordedAtStart,
      recorded_5s_in: recordedEarly,
      recorded_at_end: recordedLate,
      lag_at_end: lagAtEnd,
      posts_at_start: postsAtStart,
      posts_during_outage: postsDuringOutage,
      most_posts_of_one_alert: mostPostsOfOneAlert,
      failed_writes_logged: failedWrites,
      rollup_repairs: repairs,
      caught_up_seconds: caughtUpSeconds,
      ...results,
    });
    // The outage took hold: nothing recorded in its last 25 s, a backlog behind it, failures seen by the services.
    if (recordedEarly !== null && recordedLate !== null) {
      expect(recordedLate, "events recorded while every write failed").toBe(recordedEarly);
    }
    expect(lagAtEnd.aggregator, "priced events waiting when writes came back").toBeGreaterThan(1000);
    expect(failedWrites, "write failures the services logged").toBeGreaterThan(0);
    expect(
      p.findings.filter((f) => f.atMs > outageEnded - p.startedAt + 5000),
      "services that exited by themselves after the outage",
    ).toEqual([]);
  });

  // The delivery loop keeps the outcomes it could not store and writes them first at every later tick, POSTing
  // nothing meanwhile (delivery.ts). At-least-once allows the POST whose outcome was not recorded to come once more
  // after a crash, not once per poll: before that, 30 s of failing writes gave up to 54 POSTs of one alert.
  it("POSTs an alert at most twice across the outage", () => {
    expect(mostPostsOfOneAlert, "verified POSTs of the most-repeated alert").toBeLessThanOrEqual(2);
  });
});
