/**
 * Fault: the Kafka broker stopped mid-stream (SIGTERM, a controlled shutdown) and started again 10 s later on the
 * same port and data dir — some 15 to 18 s without a broker — while 30,000 events (5% published twice, 1% late) and 500
 * malformed ones arrive in ten slices over some 30 s: the stop comes once the aggregator has recorded 30% of them,
 * preferably just after it published cap signals, with most of the workload still to be published. The scenario
 * owns this broker (harness/broker.ts); the rest of the suite's broker is untouched.
 *
 * What is accepted: producers stall or fail and publish again (`usagectl produce` run again on a failure, as a
 * surface would; the pipeline deduplicates on event_id); a service whose Kafka client gives up while the broker is
 * away exits non-zero and is restarted by the supervisor, as a deployment's would (each such exit is a finding,
 * counted in the report). What is not: an exit once the broker has been back for 30 s, a service that does not
 * come back, any total off by a digit, an alert created twice. A pricing transaction cut off by the outage must be
 * aborted (fenced by the restarted worker or timed out by the coordinator), never half-visible.
 */
import { afterAll, describe, expect, it } from "vitest";
import { type OwnBroker, startOwnBroker } from "./harness/broker.js";
import { produceInSlices, report, settle } from "./harness/checks.js";
import { type ServiceName, sleep, waitFor } from "./harness/pipeline.js";
import { checkEverything, openScenario, type Scenario, startServices } from "./harness/scenario.js";

/** How long the broker stays stopped; its start (log recovery, metadata) adds 3 to 6 s more of outage. */
const STOPPED_MS = 10_000;
/** After the broker is back, how long a service may still trip over the outage (reconnects, group rejoin). */
const GRACE_MS = 30_000;

describe("fault: Kafka broker restart", () => {
  let s: Scenario | undefined;
  let broker: OwnBroker | undefined;
  /** Capped entities whose alert for where they ended was never created (filled by the first test). */
  let missingFinal: string[] | undefined;
  afterAll(async () => {
    await s?.p.close();
    await broker?.close();
  });

  it("recovers from the broker stopping and starting mid-stream: totals exact, services back, no alert twice", async () => {
    broker = await startOwnBroker("restart");
    s = await openScenario("broker-restart", {
      workload: { seed: 707, count: 30_000, badCount: 500 },
      brokers: broker.brokers,
    });
    const { p, wl, ledger } = s;
    await startServices(s);
    // The workload in ten slices 1.5 s apart (some 30 s of publishing): the broker stops once the aggregator has
    // recorded 30% of it, so events are flowing through every stage and most are still to be published.
    let produced = false;
    const producing = produceInSlices(p, ledger, wl, { slices: 10, pauseMs: 1500, retry: true }).then(() => {
      produced = true;
    });

    await waitFor(
      "the aggregator to handle 30% of the events",
      async () => (await p.aggregatorHandled()) >= wl.distinct.size * 0.3,
      120_000,
    );
    // Preferably the moment the aggregator has just published cap signals (its next batches publish more while
    // the broker goes away), but no later than 2 s on.
    const signalled = await p.metric("aggregator", "usage_cap_signals_total");
    const signalDeadline = Date.now() + 2000;
    while (Date.now() < signalDeadline) {
      if ((await p.metric("aggregator", "usage_cap_signals_total")) > signalled) break;
      await sleep(50);
    }
    const services = Object.keys(p.services) as ServiceName[];
    const lagAtStop = {
      pricing: await p.lag("pricing"),
      aggregator: await p.lag("aggregator"),
      notifier: await p.lag("notifier"),
    };
    const handledAtStop = await p.aggregatorHandled();
    const producedAtStop = produced;

    const outageStarted = Date.now();
    await broker.stop();
    const stopMs = Date.now() - outageStarted;
    await sleep(STOPPED_MS);
    const restarting = Date.now();
    await broker.start();
    const brokerBack = Date.now();
    const startMs = brokerBack - restarting;

    await producing;
    await settle(p, wl, { timeoutMs: 300_000, finalAlerts: false });
    const caughtUpSeconds = (Date.now() - brokerBack) / 1000;
    const notRunning = services.filter((n) => !p.services[n].running);
    const findings = p.findings.map((f) => ({ ...f, at: f.atMs + p.startedAt }));

    const results = await checkEverything(s, { strictAlerts: false, allowMissingFinalAlerts: true });
    missingFinal = results.alerts.missingFinal;
    report(p, {
      events: wl.events.length,
      distinct: wl.distinct.size,
      bad: wl.bad.length,
      broker: broker.brokers[0],
      lag_at_stop: lagAtStop,
      aggregator_handled_at_stop: handledAtStop,
      broker_stop_ms: stopMs,
      broker_start_ms: startMs,
      outage_ms: brokerBack - outageStarted,
      // On the findings' clock (seconds since the scenario opened).
      outage_at_s: [outageStarted, brokerBack].map((t) => (t - p.startedAt) / 1000),
      produce_runs: ledger.produceRuns.map((r) => ({ code: r.code, ms: r.ms })),
      caught_up_seconds: caughtUpSeconds,
      ...results,
    });
    // Mid-stream: part of the workload recorded, the rest still to be published.
    expect(handledAtStop, "events recorded when the broker stopped").toBeGreaterThanOrEqual(wl.distinct.size * 0.3);
    expect(handledAtStop, "events recorded when the broker stopped").toBeLessThan(wl.distinct.size * 0.9);
    expect(producedAtStop, "every event already published when the broker stopped").toBe(false);
    expect(notRunning, "services not running once the pipeline settled").toEqual([]);
    expect(
      findings.filter((f) => f.at < outageStarted || f.at > brokerBack + GRACE_MS).map((f) => f.tail),
      "services that exited by themselves outside the outage",
    ).toEqual([]);
  });

  // The aggregator publishes a batch's signals before recording them in cap_signals (aggregator.ts, emit): a
  // publish cut off by the outage leaves them unrecorded, and the evaluation after the restart emits them again.
  // When the order was the other way round, the outage lost `blocked` alerts in most runs.
  it("creates the alert for where each capped entity ended, though the outage cut a signal publish", () => {
    expect(missingFinal, "capped entities without the alert for where they ended").toEqual([]);
  });
});
