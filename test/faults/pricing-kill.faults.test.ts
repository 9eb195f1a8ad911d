/**
 * Fault: the pricing worker SIGKILLed mid-batch, twice, with a backlog of 30,000 events (5% published twice, 1%
 * late) and 500 malformed messages, and restarted each time under the same instance id (a supervisor's restart).
 * The kill is sent the moment a read_uncommitted reader sees records of a transaction on usage.priced.v1, before
 * its commit (the test proves at the end that some were aborted). The aborted transaction must stay invisible,
 * the batch be priced again by the restarted worker, and everything downstream be exact.
 */
import { TOPICS } from "@usage/kafka";
import { afterAll, describe, expect, it } from "vitest";
import { produce, report, settle } from "./harness/checks.js";
import { sleep } from "./harness/pipeline.js";
import { checkEverything, openScenario, type Scenario, startServices } from "./harness/scenario.js";

describe("fault: pricing worker SIGKILL", () => {
  let s: Scenario | undefined;
  afterAll(async () => {
    await s?.p.close();
  });

  it("prices every event exactly once across two SIGKILLs in the middle of a transaction", async () => {
    s = await openScenario("pricing-kill", { workload: { seed: 101, count: 30_000, badCount: 500 } });
    const { p, wl, ledger } = s;
    await startServices(s, ["aggregator", "notifier"]);
    // The backlog first, so the worker is busy from its first batch on.
    await produce(p, ledger, wl.events, wl.bad);

    // A read_uncommitted reader of usage.priced.v1 sees a transaction's records as soon as they are written, before
    // the commit: the moment to kill the worker. Everything it sees beyond the committed records was aborted.
    const watcher = p.kafka.consumer({
      groupId: `faults-watch-${p.group("pricing")}`,
      readUncommitted: true,
      maxWaitTimeInMs: 10,
    });
    let seen = 0;
    const kills: { atSeen: number; batch: number }[] = [];
    let armedAt = Number.POSITIVE_INFINITY;
    let killed: (() => void) | undefined;
    await watcher.connect();
    await watcher.subscribe({ topic: TOPICS.priced, fromBeginning: true });
    await watcher.run({
      eachBatchAutoResolve: true,
      eachBatch: async ({ batch }) => {
        seen += batch.messages.length;
        if (batch.messages.length > 0 && seen >= armedAt) {
          armedAt = Number.POSITIVE_INFINITY;
          void p.services.pricing.kill("SIGKILL").then(() => killed?.());
          kills.push({ atSeen: seen, batch: batch.messages.length });
        }
      },
    });
    try {
      p.services.pricing.start();
      for (const share of [0.2, 0.6]) {
        const done = new Promise<void>((r) => {
          killed = r;
        });
        armedAt = Math.floor(wl.distinct.size * share);
        await Promise.race([done, sleep(120_000)]);
        expect(kills.length, `a kill once ${share * 100}% of the events were priced`).toBeGreaterThan(0);
        p.services.pricing.start();
      }
      await settle(p, wl, { timeoutMs: 180_000 });
    } finally {
      await watcher.disconnect();
    }
    const results = await checkEverything(s, { strictAlerts: true });
    const aborted = seen - results.priced;
    report(p, {
      events: wl.events.length,
      distinct: wl.distinct.size,
      bad: wl.bad.length,
      kills,
      aborted_priced_records: aborted,
      ...results,
    });
    expect(kills).toHaveLength(2);
    // The proof that a kill cut a batch off: its records reached the topic, in a transaction that was aborted.
    expect(aborted, "records of aborted pricing transactions (read_uncommitted minus read_committed)").toBeGreaterThan(
      0,
    );
    expect(p.findings, "services that exited by themselves").toEqual([]);
  });
});
