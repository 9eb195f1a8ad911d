/**
 * Numbered migrations from `schemas/clickhouse/NNN_name.sql`, applied in order at start and recorded in
 * `schema_migrations`. A shipped migration is never edited: a change is a new file. Statements are separated
 * by a line ending in `;` and each is written to be idempotent (IF NOT EXISTS), so a crash between a statement
 * and its record is repaired by running the file again.
 */
import { createHash } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import type { ClickHouseClient } from "@clickhouse/client";

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

/** Applies every migration not yet recorded; returns the names applied now. */
export async function migrate(client: ClickHouseClient, dir: URL = MIGRATIONS_DIR): Promise<string[]> {
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
