/**
 * The delivery loop against a real ClickHouse (embedded) and real HTTP receivers: signed POSTs, delivered on 2xx,
 * retried with backoff, dead-lettered after the last attempt (and kept), no_webhook when the org has none; only the
 * owned orgs' alerts, and nothing POSTed or written once the ownership is lost.
 */
import { createServer, type IncomingMessage, type Server } from "node:http";
import {
  type AlertRow,
  alertStateCounts,
  alertsOfPeriod,
  type ClickHouse,
  type ClickHouseClient,
  chDateTime,
  insertAlerts,
  migrate,
  upsertWebhook,
} from "@usage/clickhouse";
import type { CapSignal } from "@usage/events";
import { createLogger } from "@usage/runtime";
import { ALERT_ID_HEADER, SIGNATURE_HEADER, verifySignature } from "@usage/webhooks";
import { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { testClickHouse, testSecrets } from "../../../test/harness/index.js";
import { newAlertRow } from "./alert.js";
import { createDeliveryLoop } from "./delivery.js";
import { createNotifierMetrics } from "./metrics.js";
import type { Ownership } from "./ownership.js";

const SECRET = "delivery-test-secret-0123456789";
const PERIOD = "2026-11";

interface Received {
  alertId: string | undefined;
  header: string;
  verified: boolean;
  body: string;
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve) => {
    let body = "";
    req.setEncoding("utf8").on("data", (d: string) => {
      body += d;
    });
    req.on("end", () => resolve(body));
  });
}

/** A webhook receiver answering `status()`; it verifies signatures as of `nowMs()` (the test's clock). */
async function receiver(
  status: () => number | "hang",
  nowMs: () => number = Date.now,
): Promise<{ url: string; got: Received[]; server: Server }> {
  const got: Received[] = [];
  const server = createServer(async (req, res) => {
    const body = await readBody(req);
    const header = req.headers[SIGNATURE_HEADER.toLowerCase()];
    got.push({
      alertId: req.headers[ALERT_ID_HEADER.toLowerCase()] as string | undefined,
      header: String(header),
      verified: verifySignature({
        header: header as string,
        rawBody: body,
        secret: SECRET,
        now: Math.floor(nowMs() / 1000),
      }).ok,
      body,
    });
    const s = status();
    if (s === "hang") return; // never answers
    res.writeHead(s).end();
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return { url: `http://127.0.0.1:${(server.address() as { port: number }).port}/hook`, got, server };
}

function signal(org: string, user: string): CapSignal {
  return {
    signal_id: `sig-${org}-${user}`,
    org_id: org,
    entity: { type: "user", id: user },
    period: PERIOD,
    kind: "threshold",
    threshold: "0.5",
    limit: "10",
    spend: "5.25",
    status: "warning",
    previous_status: "ok",
    policy_version: 1,
    cause_event_id: null,
    created_at: "2026-11-20T10:00:00.000Z",
  };
}

let ch: ClickHouse;
const servers: Server[] = [];
beforeAll(async () => {
  ch = await testClickHouse("notifier_delivery");
  await migrate(ch.client);
});
afterAll(async () => {
  for (const s of servers) s.closeAllConnections();
  for (const s of servers) s.close();
  await ch.close();
});

describe("delivery loop", () => {
  it("delivers, retries, dead-letters and records no_webhook, from the alerts table", async () => {
    let clock = Date.parse("2026-11-20T10:00:00.000Z");
    const ok = await receiver(
      () => 204,
      () => clock,
    );
    const failing = await receiver(
      () => 500,
      () => clock,
    );
    const hanging = await receiver(
      () => "hang",
      () => clock,
    );
    servers.push(ok.server, failing.server, hanging.server);
    const at = () => chDateTime(clock);
    await upsertWebhook(ch.client, { org_id: "o_ok", url: "http://127.0.0.1:1/old", secret: "x", updated_at: at() });
    clock += 1;
    await upsertWebhook(ch.client, { org_id: "o_ok", url: ok.url, secret: SECRET, updated_at: at() });
    await upsertWebhook(ch.client, { org_id: "o_fail", url: failing.url, secret: SECRET, updated_at: at() });
    await upsertWebhook(ch.client, { org_id: "o_hang", url: hanging.url, secret: SECRET, updated_at: at() });
    await upsertWebhook(ch.client, { org_id: "o_bad", url: "ftp://10.1.2.3/hook", secret: SECRET, updated_at: at() });
    const rows: AlertRow[] = ["o_ok", "o_fail", "o_hang", "o_bad", "o_none"].map((org, i) =>
      newAlertRow(signal(org, "u1"), { group: "g", partition: 0, offset: String(i) }, clock),
    );
    await insertAlerts(ch.client, rows);
    const byOrg = Object.fromEntries(rows.map((r) => [r.org_id, r]));

    const registry = new Registry();
    const metrics = createNotifierMetrics(registry);
    const loop = createDeliveryLoop({
      secrets: testSecrets,
      clickhouse: ch.client,
      logger: createLogger({ level: "silent" }),
      metrics,
      retry: { baseMs: 1000, maxMs: 4000, maxAttempts: 3 },
      timeoutMs: 300,
      allowPrivate: true,
      pollMs: 50,
      now: () => clock,
      random: () => 0.999, // the ceiling: 1 s, then 2 s
    });

    expect(await loop.runOnce()).toBe(5);
    const state = async (org: string) => (await alertsOfPeriod(ch.client, org, PERIOD))[0]!;
    expect(await state("o_ok")).toMatchObject({ state: "delivered", attempts: 1, delivered_at: at() });
    expect(await state("o_none")).toMatchObject({ state: "no_webhook", attempts: 0 });
    expect(await state("o_bad")).toMatchObject({ state: "dead", last_error: /webhook url refused/ });
    expect(await state("o_fail")).toMatchObject({
      state: "retrying",
      attempts: 1,
      last_error: "http_5xx",
      next_attempt_at: chDateTime(clock + 999),
    });
    expect(await state("o_hang")).toMatchObject({ state: "retrying", attempts: 1, last_error: "timeout" });

    // The receiver saw the stored payload, byte for byte, signed with the org's current secret.
    expect(ok.got).toHaveLength(1);
    expect(ok.got[0]).toMatchObject({ alertId: byOrg.o_ok!.alert_id, verified: true, body: byOrg.o_ok!.payload });
    expect(failing.got.every((g) => g.verified && g.alertId === byOrg.o_fail!.alert_id)).toBe(true);

    // Not due yet: nothing is attempted.
    clock += 500;
    expect(await loop.runOnce()).toBe(0);
    clock += 600;
    expect(await loop.runOnce()).toBe(2);
    expect(await state("o_fail")).toMatchObject({ state: "retrying", attempts: 2 });
    clock += 2000;
    expect(await loop.runOnce()).toBe(2);
    expect(await state("o_fail")).toMatchObject({ state: "dead", attempts: 3, last_error: "http_5xx" });
    expect(await state("o_hang")).toMatchObject({ state: "dead", attempts: 3 });
    expect(failing.got).toHaveLength(3);

    // Terminal states stay put, and every alert is still there.
    clock += 60_000;
    expect(await loop.runOnce()).toBe(0);
    expect(ok.got).toHaveLength(1);
    const counts = await alertStateCounts(ch.client);
    expect(counts).toEqual({ delivered: 1, dead: 3, no_webhook: 1 });
    const text = await registry.metrics();
    expect(text).toMatch(/usage_alert_deliveries_total\{outcome="delivered"\} 1/);
    // Failed attempts by category: o_fail's 5xx answers, o_hang's timeouts, o_bad's refused URL.
    expect(text).toMatch(/usage_alert_deliveries_total\{outcome="retry",category="http_5xx"\} 2/);
    expect(text).toMatch(/usage_alert_deliveries_total\{outcome="retry",category="timeout"\} 2/);
    expect(text).toMatch(/usage_alert_deliveries_total\{outcome="dead",category="http_5xx"\} 1/);
    expect(text).toMatch(/usage_alert_deliveries_total\{outcome="dead",category="timeout"\} 1/);
    expect(text).toMatch(/usage_alert_deliveries_total\{outcome="dead",category="url_refused"\} 1/);
    expect(text).toMatch(/usage_alert_deliveries_total\{outcome="no_webhook"\} 1/);
  });

  it("signs with the sealed secret, and with the previous one too while a rotation's overlap lasts", async () => {
    let clock = Date.parse("2026-11-05T00:00:00.000Z");
    // The receiver still knows only the old secret (SECRET): it verifies during the overlap, not after.
    const hook = await receiver(
      () => 204,
      () => clock,
    );
    servers.push(hook.server);
    const fresh = "the-new-secret-after-rotation-0123";
    await upsertWebhook(ch.client, {
      org_id: "o_rot",
      url: hook.url,
      secret: testSecrets.seal(fresh, "o_rot"),
      previous_secret: testSecrets.seal(SECRET, "o_rot"),
      previous_until: chDateTime(clock + 60_000),
      updated_at: chDateTime(clock),
    });
    const loop = createDeliveryLoop({
      secrets: testSecrets,
      clickhouse: ch.client,
      logger: createLogger({ level: "silent" }),
      metrics: createNotifierMetrics(new Registry()),
      retry: { baseMs: 1000, maxMs: 1000, maxAttempts: 10 },
      timeoutMs: 1000,
      allowPrivate: true,
      pollMs: 50,
      now: () => clock,
    });
    await insertAlerts(ch.client, [
      newAlertRow(signal("o_rot", "u1"), { group: "g", partition: 0, offset: "1" }, clock),
    ]);
    expect(await loop.runOnce()).toBe(1);
    expect(hook.got[0]!.header.match(/v1=/g)).toHaveLength(2);
    expect(hook.got[0]!.verified).toBe(true);
    expect(
      verifySignature({ header: hook.got[0]!.header, rawBody: hook.got[0]!.body, secret: fresh, now: clock / 1000 }).ok,
    ).toBe(true);

    clock += 120_000;
    await insertAlerts(ch.client, [
      newAlertRow(signal("o_rot", "u2"), { group: "g", partition: 0, offset: "2" }, clock),
    ]);
    expect(await loop.runOnce()).toBe(1);
    expect(hook.got[1]!.header.match(/v1=/g)).toHaveLength(1);
    expect(hook.got[1]!.verified).toBe(false);
  });

  it("keeps the newest version on top when the clock does not move", async () => {
    // Earlier than the first test's clock, so its alerts are not due here.
    const clock = Date.parse("2026-11-10T00:00:00.000Z");
    let status = 503;
    const flaky = await receiver(
      () => status,
      () => clock,
    );
    servers.push(flaky.server);
    await upsertWebhook(ch.client, {
      org_id: "o_flaky",
      url: flaky.url,
      secret: SECRET,
      updated_at: chDateTime(clock),
    });
    await insertAlerts(ch.client, [
      newAlertRow(signal("o_flaky", "u9"), { group: "g", partition: 0, offset: "9" }, clock),
    ]);
    const loop = createDeliveryLoop({
      secrets: testSecrets,
      clickhouse: ch.client,
      logger: createLogger({ level: "silent" }),
      metrics: createNotifierMetrics(new Registry()),
      retry: { baseMs: 1000, maxMs: 1000, maxAttempts: 10 },
      timeoutMs: 1000,
      allowPrivate: true,
      pollMs: 50,
      now: () => clock,
      random: () => 0, // due again at once, at the same millisecond
    });
    for (let i = 1; i <= 4; i++) {
      expect(await loop.runOnce()).toBe(1);
      expect((await alertsOfPeriod(ch.client, "o_flaky", PERIOD))[0]).toMatchObject({ state: "retrying", attempts: i });
    }
    status = 200;
    expect(await loop.runOnce()).toBe(1);
    const [row] = await alertsOfPeriod(ch.client, "o_flaky", PERIOD);
    expect(row).toMatchObject({ state: "delivered", attempts: 5, last_error: "http_5xx" });
    expect(flaky.got).toHaveLength(5);
  });

  it("runs on its own once started, and a kick delivers at once", async () => {
    const ok = await receiver(() => 200);
    servers.push(ok.server);
    await upsertWebhook(ch.client, {
      org_id: "o_loop",
      url: ok.url,
      secret: SECRET,
      updated_at: chDateTime(Date.now()),
    });
    const loop = createDeliveryLoop({
      secrets: testSecrets,
      clickhouse: ch.client,
      logger: createLogger({ level: "silent" }),
      metrics: createNotifierMetrics(new Registry()),
      retry: { baseMs: 10, maxMs: 10, maxAttempts: 3 },
      timeoutMs: 1000,
      allowPrivate: true,
      pollMs: 60_000,
    });
    loop.start();
    try {
      await new Promise((r) => setTimeout(r, 200)); // the first tick has run and found nothing
      await insertAlerts(ch.client, [
        newAlertRow(signal("o_loop", "u1"), { group: "g", partition: 0, offset: "1" }, Date.now()),
      ]);
      loop.kick();
      const deadline = Date.now() + 10_000;
      while (ok.got.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      expect(ok.got).toHaveLength(1);
    } finally {
      await loop.stop();
    }
  });

  it("delivers only the owned orgs' alerts, and neither POSTs nor stores outcomes once the ownership is lost", async () => {
    // Earlier than every other test's clock, so their alerts are not due here (this test runs last).
    const clock = Date.parse("2026-11-01T00:00:00.000Z");
    const ok = await receiver(
      () => 200,
      () => clock,
    );
    servers.push(ok.server);
    const orgs = ["o_mine_1", "o_mine_2", "o_theirs"];
    for (const org of orgs) {
      await upsertWebhook(ch.client, { org_id: org, url: ok.url, secret: SECRET, updated_at: chDateTime(clock) });
    }
    const rows = orgs.map((org, i) =>
      newAlertRow(signal(org, "u1"), { group: "g", partition: 0, offset: `${i}` }, clock),
    );
    await insertAlerts(ch.client, rows);
    const id = Object.fromEntries(rows.map((r) => [r.org_id, r.alert_id]));
    const state = async (org: string) => (await alertsOfPeriod(ch.client, org, PERIOD))[0]!;

    let holding = true;
    // False once a rebalance is seen; a lease that only ran out leaves it true (Ownership.writable).
    let writing = true;
    let own: Ownership | undefined;
    // One partition of two, as a member of a group of two holds: some orgs are another member's.
    const ownership = (): Ownership => ({
      owns: (org) => org.startsWith("o_mine"),
      held: () => holding,
      writable: () => writing,
      partitions: [0],
      partitionCount: 2,
    });
    let failInserts = false;
    // The real client, with inserts refused on demand (a ClickHouse write outage).
    const clickhouse = new Proxy(ch.client, {
      get(target, prop) {
        if (prop === "insert" && failInserts) return async () => Promise.reject(new Error("injected write failure"));
        const v = Reflect.get(target, prop);
        return typeof v === "function" ? v.bind(target) : v;
      },
    }) as ClickHouseClient;
    let loseAfterPost = false;
    let lapseAfterPost = false;
    const loop = createDeliveryLoop({
      secrets: testSecrets,
      clickhouse,
      logger: createLogger({ level: "silent" }),
      metrics: createNotifierMetrics(new Registry()),
      retry: { baseMs: 1000, maxMs: 1000, maxAttempts: 5 },
      timeoutMs: 1000,
      allowPrivate: true,
      pollMs: 50,
      concurrency: 1,
      now: () => clock,
      ownership: async () => own,
      fetch: async (url, init) => {
        const res = await fetch(url, init);
        if (loseAfterPost) {
          holding = false; // a rebalance while this POST was in flight
          writing = false;
        }
        if (lapseAfterPost) holding = false; // the lease ran out (the coordinator silent), no rebalance
        return res;
      },
    });

    // No ownership (between rebalances): nothing at all.
    expect(await loop.runOnce()).toBe(0);
    expect(ok.got).toHaveLength(0);

    // Lost after the first POST: the second is not started, and neither outcome is stored.
    own = ownership();
    loseAfterPost = true;
    expect(await loop.runOnce()).toBe(0);
    expect(ok.got).toHaveLength(1);
    expect(ok.got[0]!.alertId).not.toBe(id.o_theirs);
    for (const org of orgs) expect(await state(org)).toMatchObject({ state: "pending", attempts: 0 });

    // Owned again (a new assignment that gives the org back): the outcome of the POST made before the rebalance is
    // stored then (nobody wrote the alert since), so that alert is not POSTed again; the other one of ours is
    // delivered; the other org's alert is left to its owner.
    loseAfterPost = false;
    holding = true;
    writing = true;
    own = ownership();
    expect(await loop.runOnce()).toBe(1);
    expect(await state("o_mine_1")).toMatchObject({ state: "delivered", attempts: 1 });
    expect(await state("o_mine_2")).toMatchObject({ state: "delivered", attempts: 1 });
    expect(await state("o_theirs")).toMatchObject({ state: "pending", attempts: 0 });
    expect(ok.got.filter((g) => g.alertId === id.o_theirs)).toHaveLength(0);
    expect(ok.got).toHaveLength(2);
    expect(new Set(ok.got.map((g) => g.alertId))).toEqual(new Set([id.o_mine_1, id.o_mine_2]));

    // Lost again mid-tick, and another owner writes the alert before this member owns the org again: the kept
    // outcome is dropped, and what the other owner wrote stays.
    const contested = newAlertRow(signal("o_mine_2", "u4"), { group: "g", partition: 0, offset: "7" }, clock);
    await insertAlerts(ch.client, [contested]);
    loseAfterPost = true;
    own = ownership();
    expect(await loop.runOnce()).toBe(0);
    expect(ok.got.filter((g) => g.alertId === contested.alert_id)).toHaveLength(1);
    // The same updated_at as the kept outcome (both attempted from the same version): a tie, which the last insert wins.
    const theirs: AlertRow = { ...contested, state: "delivered", attempts: 7, updated_at: chDateTime(clock + 1) };
    await insertAlerts(ch.client, [theirs]);
    loseAfterPost = false;
    holding = true;
    writing = true;
    own = ownership();
    expect(await loop.runOnce()).toBe(0);
    const u4 = (await alertsOfPeriod(ch.client, "o_mine_2", PERIOD)).find((a) => a.entity_id === "u4");
    expect(u4).toMatchObject({ state: "delivered", attempts: 7 });
    expect(ok.got.filter((g) => g.alertId === contested.alert_id)).toHaveLength(1);
    expect(ok.got).toHaveLength(3);

    // The lease runs out after the first POST, with no rebalance seen: the second is not started, and the first's
    // outcome is stored, so it is not POSTed again when the ownership is confirmed.
    const lapsed = ["o_mine_1", "o_mine_2"].map((org, i) =>
      newAlertRow(signal(org, "u3"), { group: "g", partition: 0, offset: `${5 + i}` }, clock),
    );
    await insertAlerts(ch.client, lapsed);
    const u3 = async (org: string) => (await alertsOfPeriod(ch.client, org, PERIOD)).find((a) => a.entity_id === "u3")!;
    lapseAfterPost = true;
    own = ownership();
    expect(await loop.runOnce()).toBe(2); // both were due
    expect(ok.got).toHaveLength(4);
    const first = lapsed.find((r) => r.alert_id === ok.got[3]!.alertId)!;
    const second = lapsed.find((r) => r !== first)!;
    expect(await u3(first.org_id)).toMatchObject({ state: "delivered", attempts: 1 });
    expect(await u3(second.org_id)).toMatchObject({ state: "pending", attempts: 0 });
    lapseAfterPost = false;
    holding = true;
    own = ownership();
    expect(await loop.runOnce()).toBe(1);
    expect(ok.got.map((g) => g.alertId).slice(3)).toEqual([first.alert_id, second.alert_id]);
    expect(await u3(second.org_id)).toMatchObject({ state: "delivered", attempts: 1 });

    // An outcome held back by a failed insert is dropped once the ownership it was made under is gone: the
    // alert is attempted afresh (POSTed again) rather than the old outcome stored.
    const late = newAlertRow(signal("o_mine_1", "u2"), { group: "g", partition: 0, offset: "9" }, clock);
    await insertAlerts(ch.client, [late]);
    failInserts = true;
    await expect(loop.runOnce()).rejects.toThrow(/injected write failure/);
    expect(ok.got.filter((g) => g.alertId === late.alert_id)).toHaveLength(1);
    failInserts = false;
    holding = false;
    writing = false;
    own = undefined;
    expect(await loop.runOnce()).toBe(0);
    const pendingLate = (await alertsOfPeriod(ch.client, "o_mine_1", PERIOD)).find((a) => a.entity_id === "u2");
    expect(pendingLate).toMatchObject({ state: "pending", attempts: 0 });
    holding = true;
    writing = true;
    own = ownership();
    expect(await loop.runOnce()).toBe(1);
    expect(ok.got.filter((g) => g.alertId === late.alert_id)).toHaveLength(2);
    const deliveredLate = (await alertsOfPeriod(ch.client, "o_mine_1", PERIOD)).find((a) => a.entity_id === "u2");
    expect(deliveredLate).toMatchObject({ state: "delivered", attempts: 1 });
  });
});
