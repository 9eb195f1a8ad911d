/**
 * TEST HOOK — ClickHouse fault injection, for the fault suite (`npm run test:faults`). Not a feature: never set it
 * in production.
 *
 * When the environment variable `USAGE_FAULT_CLICKHOUSE_FILE` names a path, `createClickHouse` wraps the client it
 * returns (server or embedded alike). While a file exists at that path:
 *
 *   - every write fails: `insert()`, `command()` (DDL, `INSERT … SELECT`, `USE`) and `exec()` reject with
 *     `Error("injected ClickHouse write failure")` and never reach ClickHouse;
 *   - reads keep working (`query()`, `ping()`), as during a write outage of a server that still answers SELECTs
 *     (read-only mode, a full disk, inserts refused for too many parts) — the harder case for a service, which
 *     gets as far as its dedup read before its write fails;
 *   - unless the file's content (trimmed) is `all`: then reads fail too, `query()` rejecting with
 *     `Error("injected ClickHouse read failure")` and `ping()` answering `{ success: false }`, as with a server
 *     that is down;
 *   - or unless it is `table <name>`: then only the writes into that table fail (`insert()` into it, and an
 *     `INSERT INTO <name> …` statement through `command()` or `exec()`), as with one table refusing inserts (too
 *     many parts): a batch gets past its other inserts and fails at that one.
 *
 * The file is looked at on every call, so a test turns an outage on and off while the services run by creating and
 * deleting the file (the embedded engine has no server process to stop). When the variable is unset the client is
 * returned untouched: no wrapper, no cost. The variable is read by `createClickHouse` (client.ts) only.
 */
import { existsSync, readFileSync } from "node:fs";
import type { ClickHouseClient } from "@clickhouse/client";

/** The environment variable naming the fault file. */
export const FAULT_CLICKHOUSE_FILE_ENV = "USAGE_FAULT_CLICKHOUSE_FILE";
export const INJECTED_WRITE_FAILURE = "injected ClickHouse write failure";
export const INJECTED_READ_FAILURE = "injected ClickHouse read failure";

/**
 * What the fault file asks for right now: nothing (no file), failing writes, failing reads and writes, or failing
 * writes into one table.
 */
export type ClickHouseFault = "none" | "writes" | "all" | { table: string };

export function currentClickHouseFault(file: string): ClickHouseFault {
  if (!existsSync(file)) return "none";
  try {
    const content = readFileSync(file, "utf8").trim();
    // A database-qualified name (`usage.spend_daily`) means its table.
    const table = /^table\s+(?:[A-Za-z_][A-Za-z0-9_]*\.)?([A-Za-z_][A-Za-z0-9_]*)$/.exec(content)?.[1];
    if (table) return { table };
    return content === "all" ? "all" : "writes";
  } catch {
    // Deleted between the two calls (or unreadable): the outage is ending; treat it as still on for this call.
    return existsSync(file) ? "writes" : "none";
  }
}

const WRITES = new Set<PropertyKey>(["insert", "command", "exec"]);

/** The table a write call goes to: `insert({ table })`, or the target of an `INSERT INTO t …` statement. */
function tableOf(args: unknown[]): string | undefined {
  const params = args[0] as { table?: unknown; query?: unknown } | undefined;
  if (typeof params?.table === "string") return params.table;
  if (typeof params?.query === "string")
    return /^\s*INSERT\s+INTO\s+(?:TABLE\s+)?([`A-Za-z_][`A-Za-z0-9_.]*)/i.exec(params.query)?.[1]?.replace(/`/g, "");
  return undefined;
}

function writeFails(fault: ClickHouseFault, args: unknown[]): boolean {
  if (fault === "none") return false;
  if (typeof fault === "object") return tableOf(args)?.split(".").pop() === fault.table;
  return true;
}

/** Wraps `client` so that its calls fail while `file` exists (see the header). Other members pass through. */
export function withClickHouseFaults(client: ClickHouseClient, file: string): ClickHouseClient {
  return new Proxy(client, {
    get(target, prop) {
      const value: unknown = Reflect.get(target, prop, target);
      if (typeof value !== "function") return value;
      const call = (...args: unknown[]): unknown => (value as (...a: unknown[]) => unknown).apply(target, args);
      if (WRITES.has(prop)) {
        return (...args: unknown[]) =>
          writeFails(currentClickHouseFault(file), args)
            ? Promise.reject(new Error(INJECTED_WRITE_FAILURE))
            : call(...args);
      }
      if (prop === "query") {
        return (...args: unknown[]) =>
          currentClickHouseFault(file) === "all" ? Promise.reject(new Error(INJECTED_READ_FAILURE)) : call(...args);
      }
      if (prop === "ping") {
        return (...args: unknown[]) =>
          currentClickHouseFault(file) === "all"
            ? Promise.resolve({ success: false, error: new Error(INJECTED_READ_FAILURE) })
            : call(...args);
      }
      return call;
    },
  });
}

/** The client wrapped when `USAGE_FAULT_CLICKHOUSE_FILE` is set in `env`, else the client itself. */
export function clickHouseFaultsFromEnv(
  client: ClickHouseClient,
  env: NodeJS.ProcessEnv = process.env,
): ClickHouseClient {
  const file = env[FAULT_CLICKHOUSE_FILE_ENV];
  return file ? withClickHouseFaults(client, file) : client;
}
