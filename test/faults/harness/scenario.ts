/** One fault scenario's set-up and its closing checks: see checks.ts for what "correct" means. */
import { inject, onTestFailed } from "vitest";
import { resetTopics, testBrokers } from "../../harness/index.js";
import { type AlertReport, checkAlerts, checkCaps, checkDlq, checkPricedOnce, checkTotals, Ledger } from "./checks.js";
import { Pipeline, type PipelineOptions, type ServiceName } from "./pipeline.js";
import { makeWorkload, type Workload, type WorkloadOptions } from "./workload.js";

export interface Scenario {
  p: Pipeline;
  wl: Workload;
  ledger: Ledger;
}

/**
 * Its own topics (reset), data dirs, consumer groups, ports and receiver; the workload computed up front. Call it
 * inside the test.
 */
export async function openScenario(
  name: string,
  options: { workload: WorkloadOptions; brokers?: string[] } & Omit<PipelineOptions, "name" | "brokers">,
): Promise<Scenario> {
  const p = new Pipeline({
    name,
    brokers: options.brokers ?? testBrokers(),
    clickhouseUrl: options.clickhouseUrl ?? inject("clickhouseUrl"),
    extraEnv: options.extraEnv,
    receiverDelayMs: options.receiverDelayMs,
  });
  // A failed scenario keeps its data dirs and service logs; a passed one deletes them at close.
  onTestFailed(() => {
    p.keepFiles = true;
  });
  await resetTopics(p.kafka);
  return { p, wl: makeWorkload(options.workload), ledger: new Ledger() };
}

/** Starts the services (all unless told) and sets every org's policy through the API before any event is sent. */
export async function startServices(s: Scenario, which?: ServiceName[]): Promise<void> {
  await s.p.start(s.wl.orgs, which);
  for (const org of s.wl.orgs) {
    await s.p.api(`/v1/orgs/${org}/policy`, { method: "PUT", body: JSON.stringify(s.wl.policies[org]) });
  }
}

export interface Results {
  priced: number;
  alerts: AlertReport;
}

/** Totals, caps, priced exactly once, the DLQ, alerts never twice. */
export async function checkEverything(
  s: Scenario,
  options: { passes?: number; strictAlerts: boolean; allowMissingFinalAlerts?: boolean },
): Promise<Results> {
  await checkTotals(s.p, s.wl);
  await checkCaps(s.p, s.wl);
  const priced = await checkPricedOnce(s.p, s.wl, s.ledger, options.passes ?? 1);
  await checkDlq(s.p, s.wl, s.ledger, options.passes ?? 1);
  const alerts = await checkAlerts(s.p, s.wl, {
    strict: options.strictAlerts,
    allowMissingFinal: options.allowMissingFinalAlerts,
  });
  return { priced, alerts };
}
