import { mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { type ClickHouseClient, type ClickHouseSettings, createClient } from "@clickhouse/client";
import { embeddedConnection } from "./embedded.js";
import { clickHouseFaultsFromEnv } from "./faults.js";

export type { ClickHouseClient } from "@clickhouse/client";

export interface ClickHouseOptions {
  /** A ClickHouse server over HTTP; when unset, the embedded engine (chdb) at `<dataDir>/clickhouse`. */
  url?: string;
  user?: string;
  password?: string;
  database?: string;
  dataDir: string;
}

export interface ClickHouse {
  client: ClickHouseClient;
  database: string;
  /** "server" over HTTP or "embedded" in this process. */
  kind: "server" | "embedded";
  close(): Promise<void>;
}

export const DEFAULT_DATABASE = "usage";

type ClientConnection = NonNullable<NonNullable<Parameters<typeof createClient>[0]>["connection"]>;

// Money and 64-bit counts come back as JSON strings, never as floating-point numbers.
const SETTINGS: ClickHouseSettings = {
  output_format_json_quote_decimals: 1,
  output_format_json_quote_64bit_integers: 1,
  date_time_input_format: "best_effort",
};

/**
 * The one ClickHouse client factory. Both kinds speak the @clickhouse/client API, so every query, insert and
 * migration runs unchanged on a server or on the embedded engine. The embedded engine is a process singleton:
 * one process owns a data directory.
 */
export async function createClickHouse(options: ClickHouseOptions): Promise<ClickHouse> {
  const database = options.database ?? DEFAULT_DATABASE;
  if (options.url) {
    const bootstrap = createClient({
      url: options.url,
      username: options.user ?? "default",
      password: options.password ?? "",
      clickhouse_settings: SETTINGS,
    });
    await bootstrap.command({ query: "CREATE DATABASE IF NOT EXISTS {db:Identifier}", query_params: { db: database } });
    await bootstrap.close();
    const client = createClient({
      url: options.url,
      username: options.user ?? "default",
      password: options.password ?? "",
      database,
      clickhouse_settings: SETTINGS,
    });
    // TEST HOOK (faults.ts): with USAGE_FAULT_CLICKHOUSE_FILE set, writes fail while that file exists; unset, the
    // client is returned as is.
    return { client: clickHouseFaultsFromEnv(client), database, kind: "server", close: () => client.close() };
  }
  const path = resolve(join(options.dataDir, "clickhouse"));
  mkdirSync(path, { recursive: true });
  // Loaded here, not at the top: loading the engine's library costs a process about 145 MB of RSS, and most
  // processes that import this package (the pricing worker, `usagectl produce`, `price`, the API on a server)
  // never open an embedded engine.
  const { createChdbConnection } = await import("chdb/connection");
  // chdb implements the Connection interface of @clickhouse/client-common, which @clickhouse/client bundles as its
  // own copy of the same types; the cast bridges the two declarations, not two shapes.
  // Settings are scoped per call and inserts go to the engine as bytes (embedded.ts says why).
  const connection = (await embeddedConnection(
    createChdbConnection({ path }),
    SETTINGS,
  )) as unknown as ClientConnection;
  const client = createClient({ connection });
  await client.command({ query: "CREATE DATABASE IF NOT EXISTS {db:Identifier}", query_params: { db: database } });
  // The embedded engine has one session per process; USE makes unqualified table names resolve as on a server.
  await client.command({ query: `USE ${quoteIdentifier(database)}` });
  // TEST HOOK (faults.ts): with USAGE_FAULT_CLICKHOUSE_FILE set, writes fail while that file exists; unset, the
  // client is returned as is. Wrapped after the session setup above, which a fault file must not prevent.
  return { client: clickHouseFaultsFromEnv(client), database, kind: "embedded", close: () => client.close() };
}

function quoteIdentifier(name: string): string {
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw new Error(`invalid database name ${JSON.stringify(name)}`);
  return `\`${name}\``;
}
