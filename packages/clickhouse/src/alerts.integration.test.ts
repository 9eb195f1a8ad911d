import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { testClickHouse } from "../../../test/harness/index.js";
import { type AlertRow, alertIdentities, insertAlerts } from "./alerts.js";
import type { ClickHouse } from "./client.js";
import { migrate } from "./migrations.js";

let ch: ClickHouse;
beforeAll(async () => {
  ch = await testClickHouse("alerts_pkg");
  await migrate(ch.client);
});
afterAll(async () => {
  await ch.close();
});

function alert(id: string, org: string, period: string, entity: ["org" | "user", string], threshold: string): AlertRow {
  return {
    alert_id: id,
    org_id: org,
    period,
    entity_type: entity[0],
    entity_id: entity[1],
    kind: "threshold",
    threshold,
    limit_value: "100",
    spend: "50",
    status: "warning",
    policy_version: 1,
    cause_event_id: `e_${id}`,
    signal_id: `s_${id}`,
    created_at: "2026-11-20 10:00:00.000",
    payload: "{}",
    source_group: "g",
    source_partition: 0,
    source_offset: "1",
    state: "pending",
    attempts: 0,
    last_error: "",
    next_attempt_at: "2026-11-20 10:00:00.000",
    delivered_at: null,
    updated_at: "2026-11-20 10:00:00.000",
  };
}

describe("alertIdentities", () => {
  it("returns the batch's alert ids and its entities' alerts, not every alert of the org's month", async () => {
    const month = "2026-11";
    const rows = [
      alert("a_org_50", "org_a", month, ["org", "org_a"], "0.5"),
      alert("a_u1_50", "org_a", month, ["user", "u1"], "0.5"),
      alert("a_u1_80", "org_a", month, ["user", "u1"], "0.8"),
      alert("a_u2_50", "org_a", month, ["user", "u2"], "0.5"),
      alert("a_u3_50", "org_a", month, ["user", "u3"], "0.5"),
      alert("a_u1_old", "org_a", "2026-10", ["user", "u1"], "0.9"),
      alert("b_u1_50", "org_b", month, ["user", "u1"], "0.5"),
    ];
    // Another version of one alert (a delivery outcome): still one identity.
    await insertAlerts(ch.client, [
      ...rows,
      { ...rows[1]!, state: "delivered", updated_at: "2026-11-20 10:00:01.000" },
    ]);
    const ids = async (scope: Parameters<typeof alertIdentities>[3]) =>
      (await alertIdentities(ch.client, ["org_a"], [month], scope)).map((a) => a.alert_id).sort();

    // A batch about user u1 with a new alert id: u1's alerts of the month (their thresholds), nothing of u2, u3, the
    // org as a whole, the month before or another org.
    expect(await ids({ alertIds: ["a_u1_new"], orgEntity: false, users: ["u1"] })).toEqual(["a_u1_50", "a_u1_80"]);
    // A batch naming an existing alert of u2 by id, and a signal about the org.
    expect(await ids({ alertIds: ["a_u2_50"], orgEntity: true, users: [] })).toEqual(["a_org_50", "a_u2_50"]);
    expect(await ids({ alertIds: [], orgEntity: false, users: [] })).toEqual([]);
    const u1 = await alertIdentities(ch.client, ["org_a"], [month], { alertIds: [], orgEntity: false, users: ["u1"] });
    expect(u1.map((a) => [a.alert_id, a.threshold, a.entity_type, a.entity_id]).sort()).toEqual([
      ["a_u1_50", "0.5", "user", "u1"],
      ["a_u1_80", "0.8", "user", "u1"],
    ]);
  });
});
