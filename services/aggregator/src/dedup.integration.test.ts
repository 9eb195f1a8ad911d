/**
 * The dedup step over a partition's id filter (partition.ts SeenIds), against a real ClickHouse: which ids it looks
 * up, and that it never lets a stored id through, before the filter is ready, after, and for an event older than
 * the filter's horizon.
 */
import { randomUUID } from "node:crypto";
import { type ClickHouse, migrate } from "@usage/clickhouse";
import type { PricedUsageEvent } from "@usage/events";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { quietLogger, testClickHouse, waitFor } from "../../../test/harness/index.js";
import { SeenIds } from "./partition.js";
import { type DecodedEvent, dedupStep } from "./steps.js";

const NOW = Date.parse("2026-11-20T12:00:00Z");
const DAY = 86_400_000;

function event(id: string, occurredAt: number): DecodedEvent {
  return {
    event: { event_id: id, org_id: "org_d", occurred_at: new Date(occurredAt).toISOString() } as PricedUsageEvent,
    pricedAt: NOW,
  };
}

describe("dedupStep with the partition's id filter", () => {
  let ch: ClickHouse;
  const stored = Array.from({ length: 50 }, () => randomUUID());
  const old = randomUUID();

  beforeAll(async () => {
    ch = await testClickHouse("dedup-filter");
    await migrate(ch.client);
    const row = (id: string, at: number) => ({
      event_id: id,
      org_id: "org_d",
      user_id: "u",
      seat_tier: "premium",
      product: "chat",
      model: "m",
      model_base: "m",
      occurred_at: new Date(at).toISOString().replace("T", " ").replace("Z", ""),
      priced_at: "2026-11-20 12:00:00.000",
      batch_id: "b",
    });
    await ch.client.insert({
      table: "usage_events",
      values: [...stored.map((id, i) => row(id, NOW - i * 3_600_000)), row(old, NOW - 60 * DAY)],
      format: "JSONEachRow",
    });
  });
  afterAll(async () => {
    await ch?.close();
  });

  it("looks up every id until the filter is ready, then only the ones it cannot rule out", async () => {
    const seen = new SeenIds({
      clickhouse: ch.client,
      orgIds: () => ["org_d"],
      now: () => NOW,
      backfillDays: 35,
      logger: quietLogger,
      partition: 0,
    });
    const fresh = Array.from({ length: 200 }, () => randomUUID());
    const batch = [...stored.map((id) => event(id, NOW)), ...fresh.map((id) => event(id, NOW))];

    // Not ready: everything is looked up, and the stored ids are dropped.
    expect(seen.ready).toBe(false);
    const before = await dedupStep(ch.client, seen, batch);
    expect(before.lookedUp).toBe(batch.length);
    expect(before.fresh.map((e) => e.event.event_id).sort()).toEqual([...fresh].sort());

    seen.refresh();
    // Written while the load reads (here: before its first page): the new filter must hold it all the same.
    const whileLoading = randomUUID();
    seen.add(whileLoading);
    await waitFor("the filter ready", () => seen.ready, 20_000);
    expect(seen.doubtful(whileLoading, NOW)).toBe(true);

    // Ready: the stored ids are all "maybe" (looked up and dropped); of 200 new ones hardly any (0.01% each) are looked up.
    const after = await dedupStep(ch.client, seen, batch);
    expect(after.fresh.map((e) => e.event.event_id).sort()).toEqual([...fresh].sort());
    expect(after.lookedUp).toBeGreaterThanOrEqual(stored.length);
    expect(after.lookedUp).toBeLessThan(stored.length + 3);

    // An event older than the horizon (36 days) is looked up whatever the filter says: the stored one is dropped.
    const late = await dedupStep(ch.client, seen, [event(old, NOW - 60 * DAY), event(randomUUID(), NOW - 60 * DAY)]);
    expect(late.lookedUp).toBe(2);
    expect(late.fresh.map((e) => e.event.event_id)).not.toContain(old);
    expect(late.fresh).toHaveLength(1);

    // An id added (about to be inserted) is "maybe" from then on: never ruled out.
    const added = randomUUID();
    seen.add(added);
    expect(seen.doubtful(added, NOW)).toBe(true);
  });
});
