import type { ClickHouseClient } from "@clickhouse/client";
import { describe, expect, it } from "vitest";
import { awaitRunningRollupInserts, insertSpendDaily, ROLLUP_QUERY_PREFIX, type SpendDailyRow } from "./spend-daily.js";

/** A client whose system.processes answers come from `answers`, one per query, the last one repeated. */
function processes(answers: string[][]) {
  const asked: string[] = [];
  const client = {
    query: async (params: { query: string; query_params?: Record<string, unknown> }) => {
      asked.push(params.query);
      expect(params.query_params?.prefix).toBe(ROLLUP_QUERY_PREFIX);
      const ids = answers.length > 1 ? answers.shift()! : answers[0]!;
      return { json: async () => ids.map((query_id) => ({ query_id })) };
    },
  } as unknown as ClickHouseClient;
  return { client, asked };
}

describe("awaitRunningRollupInserts", () => {
  it("answers at once when no rollup insert is running", async () => {
    const { client, asked } = processes([[]]);
    expect(await awaitRunningRollupInserts(client, { pollMs: 1 })).toBe(0);
    expect(asked).toHaveLength(1);
  });

  it("waits until every insert running at the call has ended, whatever starts meanwhile", async () => {
    const a = `${ROLLUP_QUERY_PREFIX}a`;
    const b = `${ROLLUP_QUERY_PREFIX}b`;
    const c = `${ROLLUP_QUERY_PREFIX}c`;
    const d = `${ROLLUP_QUERY_PREFIX}d`;
    // a and b run at the call; c and d start later and keep running: only a and b are waited for.
    const { client, asked } = processes([
      [a, b],
      [a, b, c],
      [b, c],
      [c, d],
    ]);
    const reports: number[] = [];
    const n = await awaitRunningRollupInserts(client, {
      pollMs: 1,
      reportMs: 0,
      onWaiting: (left) => reports.push(left.length),
    });
    expect(n).toBe(2);
    expect(asked).toHaveLength(4);
    expect(reports).toEqual([2, 1]);
  });
});

describe("insertSpendDaily", () => {
  it("gives every rollup insert a query id of its own under the prefix the wait looks for", async () => {
    const ids: string[] = [];
    const client = {
      insert: async (params: { query_id?: string }) => {
        ids.push(params.query_id ?? "");
      },
    } as unknown as ClickHouseClient;
    const row = { org_id: "o" } as SpendDailyRow;
    await insertSpendDaily(client, [row], "t1");
    await insertSpendDaily(client, [row]);
    await insertSpendDaily(client, []);
    expect(ids).toHaveLength(2);
    for (const id of ids) expect(id.startsWith(ROLLUP_QUERY_PREFIX)).toBe(true);
    expect(new Set(ids).size).toBe(2);
  });
});
