/**
 * Numbered migrations from `schemas/clickhouse/NNN_name.sql`, applied in order at start and recorded in
 * `schema_migrations`. A shipped migration is never edited: a change is a new file. Statements are separated
 * by a line ending in `;` and each is written to be idempotent (IF NOT EXISTS), so a crash between a statement
 * and its record is repaired by running the file again.
 */
import { createHash } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import type { ClickHouseClient } from "@clickhouse/client";
import { tuneMerges } from "./merge-tuning.js";

export const MIGRATIONS_DIR = new URL("../../../schemas/clickhouse/", import.meta.url);

export interface Migration {
  version: number;
  name: string;
  statements: string[];
  checksum: string;
}

export function readMigrations(dir: URL = MIGRATIONS_DIR): Migration[] {
  const files = readdirSync(dir)
    .filter((f) => /^\d{3}_[a-z0-9_]+\.sql$/.test(f))
    .sort();
  const seen = new Set<number>();
  return files.map((file) => {
    const version = Number(file.slice(0, 3));
    if (seen.has(version)) throw new Error(`two migrations are numbered ${version}`);
    seen.add(version);
    const text = readFileSync(new URL(file, dir), "utf8");
    const statements = text
      .split(/;\s*$/m)
      .map((s) =>
        s
          .split("\n")
          .filter((line) => !line.trim().startsWith("--"))
          .join("\n")
          .trim(),
      )
      .filter((s) => s.length > 0);
    return {
      version,
      name: file.replace(/\.sql$/, ""),
      statements,
      checksum: createHash("sha256").update(text).digest("hex"),
    };
  });
}

/**
 * Applies every migration not yet recorded, then the merge policy of the busiest tables (merge-tuning.ts); returns
 * the names of the migrations applied now.
 *
 * `shared`: other processes may migrate the same database at the same time (several services or instances starting
 * against one ClickHouse server). Migrations are then applied by one process at a time, under a lock (see
 * withMigrationLock); the others wait and find them recorded. Without it two processes could both run a migration
 * that rebuilds a table (012: copy, EXCHANGE, DROP) and swap the copy back out or drop it. The embedded engine is
 * owned by one process and needs no lock.
 */
export async function migrate(
  client: ClickHouseClient,
  dir: URL = MIGRATIONS_DIR,
  options: { shared?: boolean } = {},
): Promise<string[]> {
  let applied: string[] = [];
  if (!options.shared) applied = await applyMigrations(client, dir);
  // The common case, a restart: everything is recorded already and no lock is taken.
  else if ((await pending(client, dir)) > 0)
    applied = await withMigrationLock(client, () => applyMigrations(client, dir));
  // Tables a directory of migrations does not hold are left out.
  await tuneMerges(client);
  return applied;
}

async function pending(client: ClickHouseClient, dir: URL): Promise<number> {
  const exists = await client.query({
    query: "SELECT count() AS n FROM system.tables WHERE database = currentDatabase() AND name = 'schema_migrations'",
    format: "JSONEachRow",
  });
  if (Number((await exists.json<{ n: string }>())[0]?.n ?? 0) === 0) return readMigrations(dir).length;
  const rs = await client.query({ query: "SELECT version FROM schema_migrations", format: "JSONEachRow" });
  const applied = new Set((await rs.json<{ version: number }>()).map((r) => Number(r.version)));
  return readMigrations(dir).filter((m) => !applied.has(m.version)).length;
}

/** A lock older than this is taken to belong to a migrator that died holding it. */
export const MIGRATION_LOCK_STALE_SECONDS = 30 * 60;
const LOCK_TABLE = "schema_migrations_lock";

/**
 * Runs `fn` while holding the database's migration lock: the table `schema_migrations_lock`, which exactly one of
 * the processes racing to CREATE it creates (the others get TABLE_ALREADY_EXISTS and wait). Dropped when `fn`
 * settles. A process killed while holding it leaves it behind: it is broken once older than
 * MIGRATION_LOCK_STALE_SECONDS (no migration of ours takes that long; two waiters breaking the same stale lock at the
 * same moment could both go ahead, the bound of this lock after a crash mid-migration).
 */
async function withMigrationLock<T>(client: ClickHouseClient, fn: () => Promise<T>): Promise<T> {
  for (;;) {
    const rs = await client.query({
      query: `SELECT dateDiff('second', metadata_modification_time, now()) AS age FROM system.tables
              WHERE database = currentDatabase() AND name = {name:String}`,
      query_params: { name: LOCK_TABLE },
      format: "JSONEachRow",
    });
    const held = (await rs.json<{ age: string }>())[0];
    // Asked first so that waiting is quiet (the client logs every refused statement as an error).
    if (!held) {
      try {
        await client.command({ query: `CREATE TABLE ${LOCK_TABLE} (taken_at DateTime DEFAULT now()) ENGINE = Memory` });
        break;
      } catch (err) {
        if ((err as { code?: string }).code !== "57") throw err;
        continue;
      }
    }
    if (Number(held.age) > MIGRATION_LOCK_STALE_SECONDS) {
      await client.command({ query: `DROP TABLE IF EXISTS ${LOCK_TABLE}` });
      continue;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  try {
    return await fn();
  } finally {
    await client.command({ query: `DROP TABLE IF EXISTS ${LOCK_TABLE}` });
  }
}

async function applyMigrations(client: ClickHouseClient, dir: URL): Promise<string[]> {
  await client.command({
    query: `CREATE TABLE IF NOT EXISTS schema_migrations (
      version UInt32, name String, checksum String, applied_at DateTime64(3, 'UTC') DEFAULT now64(3)
    ) ENGINE = MergeTree ORDER BY version`,
  });
  const rs = await client.query({ query: "SELECT version, checksum FROM schema_migrations", format: "JSONEachRow" });
  const applied = new Map(
    (await rs.json<{ version: number; checksum: string }>()).map((r) => [Number(r.version), r.checksum]),
  );
  const done: string[] = [];
  for (const m of readMigrations(dir)) {
    const previous = applied.get(m.version);
    if (previous !== undefined) {
      if (previous !== m.checksum) {
        throw new Error(`migration ${m.name} was edited after it was applied; add a new migration instead`);
      }
      continue;
    }
    for (const statement of m.statements) await client.command({ query: statement });
    await client.insert({
      table: "schema_migrations",
      values: [{ version: m.version, name: m.name, checksum: m.checksum }],
      format: "JSONEachRow",
    });
    done.push(m.name);
  }
  return done;
}
