/**
 * The merge policy of the tables the pipeline writes on every batch or tick, set after the migrations.
 *
 * Why: each aggregator batch is an insert into usage_events, spend_daily and orgs (and cap_signals when it
 * signals); each notifier batch one into alerts and alert_publications. At the engine's default
 * (`merge_selector_base` = 5) the merge selector, facing a new small part beside a larger one, merges them, so while
 * a table is small the whole of it is rewritten at almost every insert. Measured on the embedded engine at about 9
 * aggregator batches a second (`node test/bench/e2e.mjs --rate 100`): usage_events' largest part had been merged 574
 * times in 90 s, 153 MB written for 8,191 rows, and the merge threads took 0.27 of a core; with a base of 10, 0.03.
 * A higher base means fewer, wider merges (less write amplification) for a few more parts at a time, which reads
 * pay for; every read aggregates or takes FINAL, so the number of parts never changes a figure.
 *
 * Why not a migration: `merge_selector_base` is a MergeTree setting of recent ClickHouse versions; a server that
 * does not know it would refuse the ALTER and with it every later migration. It is set only where the engine lists
 * it in system.merge_tree_settings, on the tables that do not have it yet, so a restart changes nothing. ALTER …
 * MODIFY SETTING changes metadata only: no data is rewritten, and services racing to apply it agree.
 */
import type { ClickHouseClient } from "@clickhouse/client";

const MERGE_SELECTOR_BASE = 10;

/** The tables written on every batch or delivery tick. */
const MERGE_TUNED_TABLES = [
  "usage_events",
  "spend_daily",
  "orgs",
  "cap_signals",
  "alerts",
  "alert_publications",
] as const;

/** Sets `merge_selector_base` on MERGE_TUNED_TABLES where the engine supports it; returns the tables it changed. */
export async function tuneMerges(client: ClickHouseClient): Promise<string[]> {
  const known = await client.query({
    query: "SELECT count() AS n FROM system.merge_tree_settings WHERE name = 'merge_selector_base'",
    format: "JSONEachRow",
  });
  if (Number((await known.json<{ n: string }>())[0]?.n ?? 0) === 0) return [];
  const rs = await client.query({
    query: `SELECT name FROM system.tables
            WHERE database = currentDatabase() AND name IN {tables:Array(String)}
              AND NOT match(create_table_query, {setting:String})`,
    query_params: { tables: [...MERGE_TUNED_TABLES], setting: `\\bmerge_selector_base = ${MERGE_SELECTOR_BASE}\\b` },
    format: "JSONEachRow",
  });
  const untuned = (await rs.json<{ name: string }>()).map((r) => r.name);
  for (const table of untuned) {
    // The name comes from MERGE_TUNED_TABLES (a constant list), found again in system.tables: never from input.
    await client.command({
      query: `ALTER TABLE ${table} MODIFY SETTING merge_selector_base = ${MERGE_SELECTOR_BASE}`,
    });
  }
  return untuned;
}
