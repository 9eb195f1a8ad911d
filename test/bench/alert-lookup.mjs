// The notifier's "does this alert exist" lookup (step 2 of notifier.ts) as an org's month fills with alerts: the
// bounded lookup it makes (the batch's alert ids and its entities' alerts: alertIdentities) against the one it made
// before (every alert of the org's month), with --alerts N alerts already in the org's month (N/3 users, thresholds
// 0.5, 0.8 and 1), a batch of one signal about one user. CPU and wall time per lookup, the engine in this process.
// Also the delivery tick's read of the orgs with alerts due (dueAlertOrgs), once every alert is delivered.
//   node test/bench/alert-lookup.mjs [--alerts 1000,10000,30000] [--lookups 50]
import { spawnSync } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { alertIdentities, createClickHouse, dueAlertOrgs, insertAlerts, migrate } from "@usage/clickhouse";
import { newAlertRow } from "@usage/notifier";
import { writeResult } from "./lib.mjs";

const arg = (name, fallback) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : fallback;
};
const LOOKUPS = Number(arg("--lookups", 50));
const MONTH = "2026-11";

if (arg("--child", undefined) === undefined) {
  // One engine per process: each size in a child of its own.
  const runs = [];
  for (const alerts of arg("--alerts", "1000,10000,30000").split(",").map(Number)) {
    const child = spawnSync(
      process.execPath,
      [fileURLToPath(import.meta.url), "--child", String(alerts), "--lookups", String(LOOKUPS)],
      { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] },
    );
    if (child.status !== 0) throw new Error(`child for ${alerts} alerts failed`);
    runs.push(JSON.parse(child.stdout.trim().split("\n").at(-1)));
  }
  writeResult("alert-lookup", { lookups: LOOKUPS, runs });
} else {
  const alerts = Number(arg("--child", "0"));
  const ch = await createClickHouse({ dataDir: mkdtempSync(join(tmpdir(), "usage-bench-alerts-")) });
  await migrate(ch.client);
  const thresholds = ["0.5", "0.8", "1"];
  // The alerts the notifier makes of the aggregator's threshold signals, as it stores them.
  const rows = [];
  for (let i = 0; i < alerts; i++) {
    const signal = {
      signal_id: `s_${i}`,
      org_id: "org_a",
      entity: { type: "user", id: `u${Math.floor(i / 3)}` },
      period: MONTH,
      kind: "threshold",
      threshold: thresholds[i % 3],
      limit: "100",
      spend: "81.25",
      status: "warning",
      previous_status: "ok",
      policy_version: 1,
      cause_event_id: `e_${i}`,
      created_at: "2026-11-20T10:00:00.000Z",
    };
    rows.push(
      newAlertRow(signal, { group: "notifier", partition: 0, offset: String(i) }, Date.parse(signal.created_at)),
    );
  }
  // In batches, as the notifier writes them (a part per insert, merged in the background).
  for (let i = 0; i < rows.length; i += 1000) await insertAlerts(ch.client, rows.slice(i, i + 1000));
  // The lookup of notifier.ts before it was bounded: every alert of the batch's orgs and periods.
  const everyAlert = async () => {
    const rs = await ch.client.query({
      query: `SELECT alert_id, org_id, period, entity_type, entity_id, kind, threshold, source_group, source_partition,
                     source_offset
              FROM alerts WHERE org_id IN {orgs:Array(String)} AND period IN {periods:Array(String)}
              LIMIT 1 BY alert_id`,
      query_params: { orgs: ["org_a"], periods: [MONTH] },
      format: "JSONEachRow",
    });
    return rs.json();
  };
  const bounded = (i) =>
    alertIdentities(ch.client, ["org_a"], [MONTH], {
      alertIds: [`al_new_${i}`],
      orgEntity: false,
      users: [`u${i % Math.max(1, Math.floor(alerts / 3))}`],
    });
  const measure = async (lookup) => {
    await lookup(0);
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    let returned = 0;
    for (let i = 1; i <= LOOKUPS; i++) returned += (await lookup(i)).length;
    const wall = (performance.now() - t0) / LOOKUPS;
    const cpu = process.cpuUsage(cpu0);
    return {
      cpu_ms_per_lookup: Number(((cpu.user + cpu.system) / 1000 / LOOKUPS).toFixed(2)),
      wall_ms_per_lookup: Number(wall.toFixed(2)),
      rows_returned_per_lookup: returned / LOOKUPS,
    };
  };
  // The delivery tick's first read (delivery.ts), with every one of these alerts delivered: it reads the whole
  // table (FINAL) whatever is due, so it grows with every alert ever stored. Not bounded yet.
  await insertAlerts(
    ch.client,
    rows.map((r) => ({ ...r, state: "delivered", attempts: 1, updated_at: "2026-11-20 10:00:01.000" })),
  );
  const due = () => dueAlertOrgs(ch.client, Date.parse("2026-11-20T11:00:00.000Z"));
  const result = {
    alerts_in_month: alerts,
    bounded: await measure(bounded),
    every_alert: await measure(everyAlert),
    delivery_tick_due_orgs: await measure(due),
  };
  await ch.close();
  console.log(JSON.stringify(result));
}
