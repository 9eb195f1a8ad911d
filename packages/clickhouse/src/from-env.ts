import type { BaseEnv } from "@usage/runtime";
import { type ClickHouse, createClickHouse } from "./client.js";
import { migrate } from "./migrations.js";

type ClickHouseEnv = Pick<
  BaseEnv,
  "CLICKHOUSE_URL" | "CLICKHOUSE_USER" | "CLICKHOUSE_PASSWORD" | "CLICKHOUSE_DATABASE" | "USAGE_DATA_DIR"
>;

/** The ClickHouse of SPEC §10's variables (a server at CLICKHOUSE_URL, else embedded), migrated and ready. */
export async function openClickHouse(env: ClickHouseEnv): Promise<ClickHouse & { applied: string[] }> {
  const clickhouse = await createClickHouse({
    url: env.CLICKHOUSE_URL,
    user: env.CLICKHOUSE_USER,
    password: env.CLICKHOUSE_PASSWORD,
    database: env.CLICKHOUSE_DATABASE,
    dataDir: env.USAGE_DATA_DIR,
  });
  try {
    // On a server, other services and instances may be starting against the same database.
    const applied = await migrate(clickhouse.client, undefined, { shared: clickhouse.kind === "server" });
    return Object.assign(clickhouse, { applied });
  } catch (err) {
    await clickhouse.close();
    throw err;
  }
}
