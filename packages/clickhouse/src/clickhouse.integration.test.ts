import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { testClickHouse } from "../../../test/harness/index.js";
import type { ClickHouse } from "./client.js";
import { tuneMerges } from "./merge-tuning.js";
import { migrate, readMigrations } from "./migrations.js";
import { orgSpend, rebuildRollup } from "./spend-daily.js";
import { batchesMissingRollup, existingEventIds, insertUsageEvents, type UsageEventRow } from "./usage-events.js";

let ch: ClickHouse;
beforeAll(async () => {
  ch = await testClickHouse("clickhouse_pkg");
});
afterAll(async () => {
  await ch.close();
});

function row(id: string, batch: string, gross: string): UsageEventRow {
  return {
    event_id: id,
    org_id: "org_1",
    user_id: "u1",
    user_email: "",
    account_uuid: "",
    request_id: "",
    region: "eu-west-1",
    seat_tier: "premium",
    product: "chat",
    model: "claude-opus-4-5-20251101",
    model_base: "claude-opus-4-5",
    occurred_at: "2026-11-20 10:00:00.000",
    input_tokens: 1,
    output_tokens: 2,
    cache_write_tokens: 3,
    cache_read_tokens: 4,
    prompt_tokens: 8,
    long_context: false,
    rate_card_version: "v1",
    input_cost: gross,
    output_cost: "0",
    cache_write_cost: "0",
    cache_read_cost: "0",
    gross_cost: gross,
    discount_pct: "0",
    net_cost: gross,
    priced_at: "2026-11-20 10:00:01.000",
    batch_id: batch,
    is_late: false,
  };
}

describe("ClickHouse package", () => {
  it("applies every numbered migration once and records it, whoever of several racing migrators does", async () => {
    // As several services starting at once against one server: their statements interleave at every await. Without
    // the lock two of them run 012 side by side (one's CREATE of the copy fails, or both EXCHANGE).
    const raced = await Promise.all([1, 2, 3].map(() => migrate(ch.client, undefined, { shared: true })));
    const all = readMigrations().map((m) => m.name);
    expect(raced.filter((names) => names.length > 0)).toEqual([all]);
    expect(raced.flat().length).toBe(all.length);
    expect(await migrate(ch.client)).toEqual([]);
    expect(await migrate(ch.client, undefined, { shared: true })).toEqual([]);
    const rs = await ch.client.query({
      query: "SELECT count() AS n, uniqExact(version) AS versions FROM schema_migrations",
      format: "JSONEachRow",
    });
    expect(await rs.json()).toEqual([{ n: String(all.length), versions: String(all.length) }]);
    const lock = await ch.client.query({
      query: "SELECT count() AS n FROM system.tables WHERE database = currentDatabase() AND name LIKE '%lock%'",
      format: "JSONEachRow",
    });
    expect(await lock.json()).toEqual([{ n: "0" }]);
    const create = await ch.client.query({ query: "SHOW CREATE TABLE usage_events", format: "TabSeparatedRaw" });
    expect(await create.text()).toContain("index_granularity = 1024");
  });

  it("sets the merge policy of the tables written per batch, once, and again on a table rebuilt without it", async () => {
    const tuned = async () => {
      const rs = await ch.client.query({
        query: `SELECT name FROM system.tables WHERE database = currentDatabase()
                AND match(create_table_query, {setting:String}) ORDER BY name`,
        query_params: { setting: "merge_selector_base = 10(,|$)" },
        format: "JSONEachRow",
      });
      return (await rs.json<{ name: string }>()).map((r) => r.name);
    };
    const known = await ch.client.query({
      query: "SELECT count() AS n FROM system.merge_tree_settings WHERE name = 'merge_selector_base'",
      format: "JSONEachRow",
    });
    if ((await known.json<{ n: string }>())[0]?.n === "0") {
      // A server older than the setting: nothing is altered, and the migrations above went through all the same.
      expect(await tuneMerges(ch.client)).toEqual([]);
      expect(await tuned()).toEqual([]);
      return;
    }
    const busiest = ["alert_publications", "alerts", "cap_signals", "orgs", "spend_daily", "usage_events"];
    expect(await tuned()).toEqual(busiest);
    // A restart alters nothing.
    expect(await tuneMerges(ch.client)).toEqual([]);
    // A table that lost the setting (as a migration that rebuilds a table would leave it) gets it back at the next
    // start, and only that table is altered.
    await ch.client.command({ query: "ALTER TABLE spend_daily RESET SETTING merge_selector_base" });
    expect(await tuned()).toEqual(busiest.filter((t) => t !== "spend_daily"));
    expect(await migrate(ch.client, undefined, { shared: true })).toEqual([]);
    expect(await tuned()).toEqual(busiest);
  });

  it("keeps money exact to 18 decimal places, finds recorded ids and rebuilds a missing rollup", async () => {
    await insertUsageEvents(ch.client, [
      row("e1", "b1", "0.000000000000000001"),
      row("e2", "b1", "12345678901234567890.123456789012345678"),
    ]);
    expect([...(await existingEventIds(ch.client, ["org_1"], ["e1", "e3"]))]).toEqual(["e1"]);
    expect(await batchesMissingRollup(ch.client)).toEqual(["b1"]);
    await rebuildRollup(ch.client, "b1");
    expect(await batchesMissingRollup(ch.client)).toEqual([]);
    const spend = await orgSpend(ch.client, { orgId: "org_1", from: "2026-11-01", to: "2026-11-30" });
    expect(spend).toEqual([
      {
        key: "total",
        spend: "12345678901234567890.123456789012345679",
        gross_spend: "12345678901234567890.123456789012345679",
        requests: "2",
        input_tokens: "2",
        output_tokens: "4",
        cache_write_tokens: "6",
        cache_read_tokens: "8",
      },
    ]);
  });

  it("scopes a batch's deduplication token to its insert: a repeat is dropped, the inserts after it are kept", async () => {
    const count = async (query: string) =>
      (await (await ch.client.query({ query, format: "JSONEachRow" })).json<{ n: string }>())[0]?.n;
    await insertUsageEvents(ch.client, [row("t1", "b3", "1")], "b3");
    await insertUsageEvents(ch.client, [row("t2", "b4", "2")], "b4");
    // The same batch again (a redelivery with the same edges): one part.
    await insertUsageEvents(ch.client, [row("t2", "b4", "2")], "b4");
    expect(await count("SELECT toString(count()) AS n FROM usage_events WHERE batch_id = 'b4'")).toBe("1");
    // Two rollup repairs after those inserts, neither with a token of its own. Were b4's token left on the engine's
    // session, both would carry it and the second would be dropped as a repeat of the first.
    expect((await batchesMissingRollup(ch.client)).sort()).toEqual(["b3", "b4"]);
    await rebuildRollup(ch.client, "b3");
    await rebuildRollup(ch.client, "b4");
    expect(await batchesMissingRollup(ch.client)).toEqual([]);
    expect(await count("SELECT toString(count()) AS n FROM spend_daily WHERE batch_id IN ('b3', 'b4')")).toBe("2");
  });
});

describe("usage_events rebuilt with smaller granules (migration 012)", () => {
  it("keeps every row and figure when it runs over a table that holds data, and again after an interruption", async () => {
    await migrate(ch.client);
    await insertUsageEvents(ch.client, [row("g-1", "b-g", "1.000000000000000001"), row("g-2", "b-g", "2.5")]);
    const figures = async () => {
      const rs = await ch.client.query({
        query: "SELECT toString(count()) AS n, toString(sum(net_cost)) AS net FROM usage_events WHERE batch_id = 'b-g'",
        format: "JSONEachRow",
      });
      return rs.json<{ n: string; net: string }>();
    };
    const before = await figures();
    expect(before).toEqual([{ n: "2", net: "3.500000000000000001" }]);
    // As on an upgrade (or a rerun after a crash): the migration's statements over a table that holds rows.
    const rebuild = readMigrations().find((m) => m.name === "012_usage_events_granules")!;
    for (const query of rebuild.statements) await ch.client.command({ query });
    for (const query of rebuild.statements) await ch.client.command({ query });
    expect(await figures()).toEqual(before);
    const rs = await ch.client.query({ query: "SHOW CREATE TABLE usage_events", format: "TabSeparatedRaw" });
    expect(await rs.text()).toContain("index_granularity = 1024");
  });
});
