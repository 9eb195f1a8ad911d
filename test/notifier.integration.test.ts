/**
 * Notifier acceptance, on the real broker and a real ClickHouse (embedded, owned by the child process while it
 * runs): cap signals published straight to spend.signals.v1 — one twice, one re-emitted after a restart, a jump
 * past several thresholds, a lower threshold after it, blocked/unblocked, another period, an org without a webhook,
 * an unreadable message — are turned into alerts by `usagectl run notifier`. A local receiver verifies every
 * signature and is down for 30 s (connection refused, then 503); every alert still arrives. The notifier is then
 * SIGKILLed and a new one replays the whole signals topic under a new consumer group on the same data: no alert is
 * created, published or delivered again.
 */
import { rmSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { CapSignal } from "@usage/aggregator";
import { type ClickHouse, createClickHouse, DEFAULT_DATABASE, migrate } from "@usage/clickhouse";
import { createProducer, groupLag } from "@usage/kafka";
import { monthStart, periodOf } from "@usage/periods";
import { verifySignature } from "@usage/webhooks";
import Fastify, { type FastifyRequest } from "fastify";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { registerAlertRoutes } from "../services/api/src/alert-routes.js";
import {
  freePort,
  metricSum,
  readTopic,
  resetTopics,
  spawnCli,
  TEST_SECRET_KEY,
  TOPICS,
  tempDir,
  testBrokers,
  testKafka,
  testSecrets,
  waitFor,
} from "./harness/index.js";

const SECRET = "notifier-test-secret-6f1c2a9e";
const DOWN_CLOSED_MS = 15_000;
const DOWN_503_MS = 15_000;

const metric = metricSum;

interface Delivery {
  at: number;
  alertId: string;
  payload: { alert_id: string; org_id: string; entity: { type: string; id: string }; period: string; kind: string };
  verified: boolean;
  answered: number;
}

/** The org's webhook receiver: verifies every signature, answers 503 while `mode` says so, records alert ids. */
function createReceiver() {
  const deliveries: Delivery[] = [];
  const accepted = new Set<string>();
  let mode: "503" | "up" = "503";
  const handler = (req: IncomingMessage, res: ServerResponse) => {
    let raw = "";
    req.setEncoding("utf8").on("data", (d: string) => {
      raw += d;
    });
    req.on("end", () => {
      const verified = verifySignature({
        header: req.headers["x-usage-signature"] as string | undefined,
        rawBody: raw,
        secret: SECRET,
      }).ok;
      const answered = !verified ? 401 : mode === "up" ? 200 : 503;
      const payload = JSON.parse(raw) as Delivery["payload"];
      deliveries.push({
        at: Date.now(),
        alertId: String(req.headers["x-usage-alert-id"]),
        payload,
        verified,
        answered,
      });
      if (answered === 200) accepted.add(payload.alert_id);
      res.writeHead(answered, { "content-type": "application/json" }).end("{}");
    });
  };
  let server: Server | undefined;
  return {
    deliveries,
    accepted,
    setMode(m: "503" | "up") {
      mode = m;
    },
    listen(port: number) {
      server = createServer(handler);
      return new Promise<void>((resolve) => server!.listen(port, "127.0.0.1", resolve));
    },
    close() {
      if (!server) return;
      server.closeAllConnections();
      server.close();
      server = undefined;
    },
  };
}

/** The alert routes on a bare fastify app, with a test authorize: the route's org, errors as the API shapes them. */
function alertApi(ch: ClickHouse) {
  const app = Fastify();
  app.setErrorHandler((err: Error & { statusCode?: number }, _request, reply) =>
    reply.code(err.statusCode ?? 500).send({ error: { code: "error", message: err.message } }),
  );
  registerAlertRoutes(app, {
    secrets: testSecrets,
    clickhouse: ch.client,
    allowPrivateWebhooks: true,
    authorize: (request: FastifyRequest) => ({
      orgId: (request.params as { org: string }).org,
      principal: { kind: "operator" as const },
    }),
  });
  return app;
}

describe("notifier", () => {
  const kafka = testKafka("notifier-test");
  const clickhouseUrl = inject("clickhouseUrl");
  const database = clickhouseUrl ? `test_notifier_${process.pid}` : DEFAULT_DATABASE;
  const dataDir = tempDir("usage-notifier-test-");
  // The embedded engine allows one process per data dir: the test opens it only while no notifier runs.
  const openClickHouse = () => createClickHouse({ url: clickhouseUrl, database, dataDir });
  const receiver = createReceiver();
  beforeAll(async () => {
    await resetTopics(kafka);
  });
  afterAll(() => {
    receiver.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it("alerts once per threshold, delivers every alert through a receiver outage, and never again on replay", async () => {
    const now = Date.now();
    const period = periodOf(now);
    const lastPeriod = periodOf(monthStart(now) - 1);
    const hookPort = await freePort();
    const metricsPort = await freePort();
    const metricsBase = `http://127.0.0.1:${metricsPort}`;

    // The org admin registers a webhook through the API routes; the secret never comes back.
    let ch = await openClickHouse();
    await migrate(ch.client);
    let api = alertApi(ch);
    const put = (org: string, body: unknown) =>
      api.inject({ method: "PUT", url: `/v1/orgs/${org}/webhook`, payload: body as object });
    const refusedUrl = await put("org_n1", { url: "https://user:pw@hooks.example.com/usage", secret: SECRET });
    expect(refusedUrl.statusCode).toBe(400);
    expect(refusedUrl.json()).toEqual({ error: { code: "invalid_webhook_url", message: expect.any(String) } });
    expect((await put("org_n1", { url: "ftp://127.0.0.1/x", secret: SECRET })).statusCode).toBe(400);
    const shortSecret = await put("org_n1", { url: `http://127.0.0.1:${hookPort}/hook`, secret: "short" });
    expect(shortSecret.statusCode).toBe(400);
    expect(shortSecret.json().error.code).toBe("invalid_webhook_secret");
    const stored = await put("org_n1", { url: `http://127.0.0.1:${hookPort}/hook`, secret: SECRET });
    expect(stored.statusCode).toBe(200);
    expect(stored.json()).toEqual({ url: `http://127.0.0.1:${hookPort}/hook`, updated_at: expect.any(String) });
    expect(stored.body).not.toContain(SECRET);
    const badPeriod = await api.inject({ method: "GET", url: "/v1/orgs/org_n1/alerts?period=2026-13" });
    expect(badPeriod.statusCode).toBe(400);
    expect(badPeriod.json().error.code).toBe("invalid_period");
    await api.close();
    await ch.close();

    // Cap signals as the aggregator publishes them.
    const signal = (patch: Partial<CapSignal> & Pick<CapSignal, "org_id" | "entity" | "kind">): CapSignal => ({
      signal_id: `sig-${Math.random().toString(16).slice(2)}`,
      period,
      threshold: "0.5",
      limit: "100",
      spend: "50.5",
      status: "warning",
      previous_status: "ok",
      policy_version: 1,
      cause_event_id: "6d0f6a39-8a0e-4c0b-9c61-3c8f0a8e0001",
      created_at: new Date(now).toISOString(),
      ...patch,
    });
    const u1 = signal({ org_id: "org_n1", entity: { type: "user", id: "u1" }, kind: "threshold" });
    const signals: CapSignal[] = [
      u1,
      u1, // the same message twice
      { ...u1, cause_event_id: null, created_at: new Date(now + 5000).toISOString() }, // re-emitted after a restart
      // A jump from 40% to 95%: one alert, for 0.9; 0.75 arriving after it counts as passed.
      signal({
        org_id: "org_n1",
        entity: { type: "user", id: "u2" },
        kind: "threshold",
        threshold: "0.9",
        spend: "95",
      }),
      signal({
        org_id: "org_n1",
        entity: { type: "user", id: "u2" },
        kind: "threshold",
        threshold: "0.75",
        spend: "96",
      }),
      signal({
        org_id: "org_n1",
        entity: { type: "org", id: "org_n1" },
        kind: "threshold",
        limit: "5000",
        spend: "2600",
      }),
      signal({
        org_id: "org_n1",
        entity: { type: "user", id: "u3" },
        kind: "blocked",
        threshold: "1",
        spend: "101",
        status: "blocked",
        previous_status: "warning",
      }),
      signal({
        org_id: "org_n1",
        entity: { type: "user", id: "u3" },
        kind: "unblocked",
        threshold: "0.5",
        limit: "200",
        spend: "101",
        status: "warning",
        previous_status: "blocked",
        policy_version: 2,
      }),
      signal({ org_id: "org_n1", entity: { type: "user", id: "u1" }, kind: "threshold", period: lastPeriod }),
      signal({ org_id: "org_n2", entity: { type: "user", id: "v1" }, kind: "threshold", threshold: "0.75" }),
    ];
    const describeAlert = (a: { org_id: string; entity: { type: string; id: string }; period: string; kind: string }) =>
      `${a.org_id}/${a.entity.type}:${a.entity.id}/${a.period}/${a.kind}`;
    const expectedN1 = [
      `org_n1/user:u1/${period}/threshold`,
      `org_n1/user:u2/${period}/threshold`,
      `org_n1/org:org_n1/${period}/threshold`,
      `org_n1/user:u3/${period}/blocked`,
      `org_n1/user:u3/${period}/unblocked`,
      `org_n1/user:u1/${lastPeriod}/threshold`,
    ].sort();
    const producer = createProducer(kafka);
    await producer.connect();
    await producer.send({
      topic: TOPICS.signals,
      acks: -1,
      messages: [
        ...signals.map((s) => ({ key: s.org_id, value: JSON.stringify(s) })),
        { key: "org_n1", value: "not a signal" },
      ],
    });
    await producer.disconnect();

    const env = {
      KAFKA_BROKERS: testBrokers().join(","),
      LOG_LEVEL: "warn",
      USAGE_DATA_DIR: dataDir,
      ...(clickhouseUrl ? { CLICKHOUSE_URL: clickhouseUrl, CLICKHOUSE_DATABASE: database } : {}),
      // The webhook was registered through this test's own API, sealed with the tests' key.
      USAGE_SECRET_KEY: TEST_SECRET_KEY,
      USAGE_NOTIFIER_GROUP: `test-notifier-a-${now}`,
      USAGE_WEBHOOK_RETRY_BASE_MS: "200",
      USAGE_WEBHOOK_RETRY_MAX_MS: "2000",
      USAGE_WEBHOOK_MAX_ATTEMPTS: "100",
      USAGE_WEBHOOK_TIMEOUT_MS: "2000",
      USAGE_NOTIFIER_POLL_MS: "100",
      USAGE_NOTIFIER_METRICS_PORT: String(metricsPort),
    };

    // The receiver is down for 30 s from the notifier's start: connection refused, then 503.
    const t0 = Date.now();
    const first = spawnCli(["run", "notifier"], env);
    const comingBack = (async () => {
      await new Promise((r) => setTimeout(r, DOWN_CLOSED_MS));
      await receiver.listen(hookPort);
      await new Promise((r) => setTimeout(r, DOWN_503_MS));
      receiver.setMode("up");
    })();
    let alertsOnTopic: Awaited<ReturnType<typeof readTopic>> = [];
    try {
      // Alerts reach spend.alerts.v1 whatever the webhooks do.
      alertsOnTopic = await readTopic(kafka, TOPICS.alerts, { until: (m) => m.length >= 7, timeoutMs: 25_000 });
      expect(alertsOnTopic).toHaveLength(7);
      const published = alertsOnTopic.map((m) => JSON.parse(m.value!.toString()));
      expect(published.map(describeAlert).sort()).toEqual([...expectedN1, `org_n2/user:v1/${period}/threshold`].sort());
      expect(new Set(published.map((p) => p.alert_id)).size).toBe(7);
      expect(published.find((p) => p.entity.id === "u2")).toMatchObject({ threshold: "0.9", spend: "95" });
      expect(alertsOnTopic.every((m) => m.key?.toString() === JSON.parse(m.value!.toString()).org_id)).toBe(true);
      expect(receiver.accepted.size).toBe(0);

      await comingBack;
      await waitFor("every alert at the receiver", () => receiver.accepted.size >= expectedN1.length, 40_000);
      const outage = t0 + DOWN_CLOSED_MS + DOWN_503_MS;
      expect(receiver.deliveries.filter((d) => d.at < outage).every((d) => d.answered === 503)).toBe(true);
      expect(receiver.deliveries.filter((d) => d.answered === 503).length).toBeGreaterThan(0);
      await waitFor(
        "delivery states recorded",
        async () =>
          (await metric(metricsBase, "usage_alert_deliveries_total", 'outcome="delivered"')) >= expectedN1.length &&
          (await metric(metricsBase, "usage_alert_deliveries_total", 'outcome="no_webhook"')) >= 1,
        20_000,
      );
      expect(await metric(metricsBase, "usage_alerts_created_total")).toBe(7);
      expect(await metric(metricsBase, "usage_alert_signals_skipped_total", 'reason="duplicate"')).toBe(2);
      expect(await metric(metricsBase, "usage_alert_signals_skipped_total", 'reason="passed"')).toBe(1);
      expect(await metric(metricsBase, "usage_alert_signals_skipped_total", 'reason="invalid"')).toBe(1);
      expect(await metric(metricsBase, "usage_alert_deliveries_total", 'outcome="retry"')).toBeGreaterThan(0);
    } finally {
      first.child.kill("SIGKILL");
      await first.exited;
    }

    // Every signature verified; the header names the alert in the body; all of org_n1's alerts, none missing.
    expect(receiver.deliveries.every((d) => d.verified && d.alertId === d.payload.alert_id)).toBe(true);
    const acceptedPayloads = [...receiver.accepted].map(
      (id) => receiver.deliveries.find((d) => d.payload.alert_id === id)!.payload,
    );
    expect(acceptedPayloads.map(describeAlert).sort()).toEqual(expectedN1);
    expect(first.output()).not.toContain(SECRET);

    const tableCounts = async (c: ClickHouse) => {
      const rs = await c.client.query({
        query: "SELECT count() AS versions, uniqExact(alert_id) AS alerts FROM alerts",
        format: "JSONEachRow",
      });
      return (await rs.json<{ versions: string; alerts: string }>())[0]!;
    };
    ch = await openClickHouse();
    const before = await tableCounts(ch);
    expect(Number(before.alerts)).toBe(7);
    await ch.close();
    const requestsBefore = receiver.deliveries.length;
    const acceptedBefore = new Set(receiver.accepted);

    // Restart after the SIGKILL with a new consumer group: a full replay of spend.signals.v1 from offset 0.
    const replayGroup = `test-notifier-b-${now}`;
    const second = spawnCli(["run", "notifier"], { ...env, USAGE_NOTIFIER_GROUP: replayGroup });
    try {
      await waitFor("the restarted notifier", async () => (await fetch(`${metricsBase}/healthz`)).ok, 60_000);
      await waitFor(
        "the replay to be consumed",
        async () => (await groupLag(kafka, replayGroup, TOPICS.signals)) === 0,
        60_000,
      );
      await new Promise((r) => setTimeout(r, 2000)); // several delivery polls
      expect(await metric(metricsBase, "usage_alerts_created_total")).toBe(0);
      expect(await metric(metricsBase, "usage_alert_signals_skipped_total", 'reason="duplicate"')).toBe(9);
      expect(await metric(metricsBase, "usage_alert_signals_skipped_total", 'reason="passed"')).toBe(1);
      expect(await metric(metricsBase, "usage_alerts_published_total")).toBe(0);
      expect(await metric(metricsBase, "usage_alert_deliveries_total")).toBe(0);
    } finally {
      second.child.kill("SIGTERM");
    }
    expect(await second.exited).toBe(0);

    expect(receiver.deliveries.length).toBe(requestsBefore);
    expect(receiver.accepted).toEqual(acceptedBefore);
    const afterReplay = await readTopic(kafka, TOPICS.alerts);
    expect(afterReplay).toHaveLength(7);
    expect(second.output()).not.toContain(SECRET);

    ch = await openClickHouse();
    try {
      expect(await tableCounts(ch)).toEqual(before);
      api = alertApi(ch);
      const listed = (await api.inject({ method: "GET", url: "/v1/orgs/org_n1/alerts" })).json() as {
        alerts: (Delivery["payload"] & {
          created_at: string;
          threshold: string | null;
          delivery: { state: string; attempts: number; last_error: string | null; delivered_at: string | null };
        })[];
      };
      expect(listed.alerts.map(describeAlert).sort()).toEqual(expectedN1.filter((a) => a.includes(`/${period}/`)));
      const createdAt = listed.alerts.map((a) => a.created_at);
      expect(createdAt).toEqual([...createdAt].sort().reverse());
      for (const a of listed.alerts) {
        expect(a.delivery.state, a.alert_id).toBe("delivered");
        expect(a.delivery.attempts, a.alert_id).toBeGreaterThanOrEqual(2);
        expect(a.delivery.last_error, a.alert_id).toMatch(/^(refused|http_5xx)$/);
        expect(a.delivery.delivered_at, a.alert_id).not.toBeNull();
      }
      const last = (await api.inject({ method: "GET", url: `/v1/orgs/org_n1/alerts?period=${lastPeriod}` })).json() as {
        alerts: { delivery: { state: string } }[];
      };
      expect(last.alerts.map((a) => a.delivery.state)).toEqual(["delivered"]);
      const n2 = (await api.inject({ method: "GET", url: "/v1/orgs/org_n2/alerts" })).json() as {
        alerts: { threshold: string; delivery: { state: string; attempts: number } }[];
      };
      expect(n2.alerts).toHaveLength(1);
      expect(n2.alerts[0]).toMatchObject({ threshold: "0.75", delivery: { state: "no_webhook", attempts: 0 } });
      await api.close();
    } finally {
      await ch.close();
    }
  });
});
