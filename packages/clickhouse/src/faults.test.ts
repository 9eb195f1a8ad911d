import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ClickHouseClient } from "@clickhouse/client";
import { afterEach, describe, expect, it } from "vitest";
import { INJECTED_READ_FAILURE, INJECTED_WRITE_FAILURE, withClickHouseFaults } from "./faults.js";

/** A stand-in client that answers every call with the call's name: what reached "ClickHouse". */
function standIn(): ClickHouseClient {
  const answer = (name: string) => async () => name;
  return {
    insert: answer("insert"),
    command: answer("command"),
    exec: answer("exec"),
    query: answer("query"),
    ping: async () => ({ success: true }),
  } as unknown as ClickHouseClient;
}

describe("ClickHouse fault file", () => {
  const dir = mkdtempSync(join(tmpdir(), "usage-faults-unit-"));
  const file = join(dir, "fault");
  afterEach(() => rmSync(file, { force: true }));

  it("takes a database-qualified name in the file as its table", async () => {
    writeFileSync(file, "table usage.spend_daily\n");
    const ch = withClickHouseFaults(standIn(), file);
    await expect(ch.insert({ table: "spend_daily", values: [] })).rejects.toThrow(INJECTED_WRITE_FAILURE);
    await expect(ch.insert({ table: "usage_events", values: [] })).resolves.toBe("insert");
  });

  it("passes every call through while the file is absent", async () => {
    const ch = withClickHouseFaults(standIn(), file);
    await expect(ch.insert({ table: "spend_daily", values: [] })).resolves.toBe("insert");
    await expect(ch.command({ query: "INSERT INTO spend_daily SELECT 1" })).resolves.toBe("command");
  });

  it("fails every write, and only writes, while it holds anything else", async () => {
    writeFileSync(file, "writes\n");
    const ch = withClickHouseFaults(standIn(), file);
    await expect(ch.insert({ table: "usage_events", values: [] })).rejects.toThrow(INJECTED_WRITE_FAILURE);
    await expect(ch.command({ query: "CREATE TABLE t (x UInt8) ENGINE = Memory" })).rejects.toThrow(
      INJECTED_WRITE_FAILURE,
    );
    await expect(ch.query({ query: "SELECT 1" })).resolves.toBe("query");
  });

  it("fails reads too with `all`", async () => {
    writeFileSync(file, "all\n");
    const ch = withClickHouseFaults(standIn(), file);
    await expect(ch.query({ query: "SELECT 1" })).rejects.toThrow(INJECTED_READ_FAILURE);
    await expect(ch.ping()).resolves.toMatchObject({ success: false });
  });

  it("fails only the writes into the table `table <name>` names", async () => {
    writeFileSync(file, "table spend_daily\n");
    const ch = withClickHouseFaults(standIn(), file);
    await expect(ch.insert({ table: "spend_daily", values: [] })).rejects.toThrow(INJECTED_WRITE_FAILURE);
    await expect(ch.insert({ table: "usage.spend_daily", values: [] })).rejects.toThrow(INJECTED_WRITE_FAILURE);
    await expect(
      ch.command({ query: "INSERT INTO spend_daily\n SELECT * FROM usage_events WHERE batch_id = {b:String}" }),
    ).rejects.toThrow(INJECTED_WRITE_FAILURE);
    await expect(ch.command({ query: "INSERT INTO TABLE `usage`.`spend_daily` SELECT 1" })).rejects.toThrow(
      INJECTED_WRITE_FAILURE,
    );
    await expect(ch.insert({ table: "usage_events", values: [] })).resolves.toBe("insert");
    await expect(ch.insert({ table: "spend_daily_rebuilt", values: [] })).resolves.toBe("insert");
    await expect(ch.command({ query: "INSERT INTO cap_signals SELECT 1" })).resolves.toBe("command");
    await expect(ch.query({ query: "SELECT count() FROM spend_daily" })).resolves.toBe("query");
  });
});
