/**
 * Notifier members in one process, one consumer group, a 4-partition spend.signals.v1 on the real broker, one
 * embedded ClickHouse, and a webhook receiver that counts POSTs per alert (each member's POSTs are also recorded):
 *   - normal operation: each alert is POSTed once, by the member holding its org's partition;
 *   - a member stop()s while alerts are pending (the receiver refusing): the survivor delivers them, once each;
 *   - a member is cut off from the broker without leaving the group — its sockets blackholed, so no LeaveGroup and
 *     no heartbeat, as after a SIGKILL or a network partition — while its delivery loop keeps running (harder than a
 *     kill): it stops POSTing on its own, the coordinator gives its partitions to the survivor after the session
 *     timeout, and the survivor delivers each pending alert once.
 */

import { createServer as createHttpServer, type IncomingMessage } from "node:http";
import { connect, createServer, type Server, type Socket } from "node:net";
import { alertsOfPeriod, type ClickHouse, chDateTime, migrate, upsertWebhook } from "@usage/clickhouse";
import type { CapSignal } from "@usage/events";
import { createProducer, ensureTopics, type Kafka, partitionCount, partitionOf } from "@usage/kafka";
import { createLogger } from "@usage/runtime";
import { ALERT_ID_HEADER, verifySignature } from "@usage/webhooks";
import { type ISocketFactory, Kafka as KafkaClient, logLevel } from "kafkajs";
import { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TOPICS, testBrokers, testClickHouse, testKafka, testSecrets } from "../../../test/harness/index.js";
import { notifierMetrics } from "./metrics.js";
import { createNotifier, type Notifier } from "./notifier.js";

const SECRET = "members-test-secret-0123456789";
const PERIOD = "2026-11";
const run = Date.now();
const logger = createLogger({ level: process.env.TEST_LOG_LEVEL ?? "silent" });

let ch: ClickHouse;
const kafka = testKafka("notifier-members-test");
const running: Notifier[] = [];
const closers: (() => Promise<void> | void)[] = [];

beforeAll(async () => {
  ch = await testClickHouse("notifier_members");
  await migrate(ch.client);
  await ensureTopics(kafka, { partitions: 4 });
});
afterAll(async () => {
  for (const n of running) await n.stop().catch(() => undefined);
  for (const close of closers) await close();
  await ch.close();
});

async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** A webhook receiver: verifies signatures, counts arrivals and 2xx answers per alert; refuses (503) on demand. */
async function startHook() {
  const hook = {
    url: "",
    refuse: false,
    badSignatures: 0,
    arrivals: new Map<string, number>(),
    accepted: new Map<string, number>(),
    /** alert_id → "org/threshold" from the body. */
    what: new Map<string, string>(),
  };
  const server = createHttpServer((req: IncomingMessage, res) => {
    let body = "";
    req.setEncoding("utf8").on("data", (d: string) => {
      body += d;
    });
    req.on("end", () => {
      const check = verifySignature({
        header: String(req.headers["x-usage-signature"] ?? ""),
        rawBody: body,
        secret: SECRET,
      });
      if (!check.ok) {
        hook.badSignatures++;
        res.writeHead(401).end();
        return;
      }
      const alert = JSON.parse(body) as { alert_id: string; org_id: string; threshold: string };
      hook.arrivals.set(alert.alert_id, (hook.arrivals.get(alert.alert_id) ?? 0) + 1);
      hook.what.set(alert.alert_id, `${alert.org_id}/${alert.threshold}`);
      if (hook.refuse) {
        res.writeHead(503).end();
        return;
      }
      hook.accepted.set(alert.alert_id, (hook.accepted.get(alert.alert_id) ?? 0) + 1);
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  hook.url = `http://127.0.0.1:${(server.address() as { port: number }).port}/hook`;
  closers.push(
    () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  );
  return hook;
}

/**
 * Sockets for one kafkajs client that the test can cut: once cut, what is written goes nowhere and nothing is read
 * (a blackhole, not a refused connection, so the broker sees no goodbye); new connections go to a server that never
 * answers. `heal()` closes them all, so the client reconnects to the broker.
 */
async function cuttableNetwork() {
  const held: Socket[] = [];
  const blackhole: Server = createServer((s) => {
    held.push(s);
  });
  await new Promise<void>((r) => blackhole.listen(0, "127.0.0.1", r));
  const blackholePort = (blackhole.address() as { port: number }).port;
  const sockets = new Set<Socket>();
  let cut = false;
  const factory: ISocketFactory = ({ host, port, onConnect }) => {
    const socket = cut
      ? connect({ host: "127.0.0.1", port: blackholePort }, onConnect)
      : connect({ host, port }, onConnect);
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    return socket;
  };
  const net = {
    factory,
    cut() {
      cut = true;
      for (const s of sockets) {
        s.pause();
        s.write = (() => true) as typeof s.write;
      }
    },
    heal() {
      cut = false;
      for (const s of [...sockets, ...held]) s.destroy();
    },
  };
  closers.push(() => {
    net.heal();
    blackhole.close();
  });
  return net;
}

function signal(org: string, threshold: string): CapSignal {
  return {
    signal_id: `sig-${org}-${threshold}`,
    org_id: org,
    entity: { type: "user", id: "u1" },
    period: PERIOD,
    kind: "threshold",
    threshold,
    limit: "10",
    spend: "9.5",
    status: "warning",
    previous_status: "ok",
    policy_version: 1,
    cause_event_id: null,
    created_at: new Date(run).toISOString(),
  };
}

/** Publishes one signal per org, keyed by org_id; returns the partition the broker stored each on. */
async function publish(orgs: string[], threshold: string): Promise<Map<string, number>> {
  const producer = createProducer(kafka);
  await producer.connect();
  const partitions = new Map<string, number>();
  try {
    for (const org of orgs) {
      const [meta] = await producer.send({
        topic: TOPICS.signals,
        acks: -1,
        messages: [{ key: org, value: JSON.stringify(signal(org, threshold)) }],
      });
      partitions.set(org, meta!.partition);
    }
  } finally {
    await producer.disconnect();
  }
  return partitions;
}

const partsOf = (n: Notifier) => n.consumer.assignment().get(TOPICS.signals) ?? [];

describe("notifier members", () => {
  it("splits delivery by partition; a member that stops or is cut off hands its pending alerts to the survivor", async () => {
    const brokers = testBrokers();
    expect(await partitionCount(kafka, TOPICS.signals)).toBe(4);
    const hook = await startHook();
    const registry = new Registry();
    const group = `test-notifier-members-${run}`;
    /** member → [alert id, HTTP status or error] per POST, in order. */
    const posts = new Map<string, [string, number][]>();
    const member = (name: string, client: Kafka = kafka): Notifier => {
      posts.set(name, []);
      const n = createNotifier({
        secrets: testSecrets,
        kafka: client,
        clickhouse: ch.client,
        logger,
        metrics: notifierMetrics(registry),
        groupId: group,
        retry: { baseMs: 50, maxMs: 200, maxAttempts: 1000 },
        deliveryTimeoutMs: 2000,
        allowPrivateWebhooks: true,
        pollMs: 100,
        member: name,
        fetch: async (url, init) => {
          const id = ((init?.headers ?? {}) as Record<string, string>)[ALERT_ID_HEADER]!;
          const res = await fetch(url, init).catch((err: unknown) => {
            posts.get(name)!.push([id, 0]);
            throw err;
          });
          posts.get(name)!.push([id, res.status]);
          return res;
        },
      });
      running.push(n);
      return n;
    };
    const acceptedBy = (name: string, id: string) =>
      posts.get(name)!.filter(([a, status]) => a === id && status >= 200 && status < 300).length;

    // Two orgs per partition; the broker's own placement of their signals is checked below.
    const orgs: string[] = [];
    const perPartition = [0, 0, 0, 0];
    for (let i = 0; orgs.length < 8; i++) {
      const org = `org_m_${run}_${i}`;
      const p = partitionOf(org, 4);
      if (perPartition[p]! < 2) {
        perPartition[p]!++;
        orgs.push(org);
      }
    }
    for (const org of orgs) {
      await upsertWebhook(ch.client, { org_id: org, url: hook.url, secret: SECRET, updated_at: chDateTime(run) });
    }
    const alertOf = async (org: string, threshold: string) =>
      (await alertsOfPeriod(ch.client, org, PERIOD)).find(
        (a) => a.threshold !== null && Number(a.threshold) === Number(threshold),
      );
    const alertsAt = async (threshold: string) => {
      const found = await Promise.all(orgs.map((org) => alertOf(org, threshold)));
      return found.every((a) => a !== undefined) ? found.map((a) => a!) : undefined;
    };

    // 1. Normal operation: two members split the four partitions; each alert is POSTed once, by its org's owner.
    const a = member("0");
    const b = member("1");
    await a.start();
    await b.start();
    await until("the two members to split the partitions", () => {
      const [pa, pb] = [partsOf(a), partsOf(b)];
      return pa.length > 0 && pb.length > 0 && new Set([...pa, ...pb]).size === 4 && pa.length + pb.length === 4;
    });
    const ownerOf = (p: number) => (partsOf(a).includes(p) ? "0" : "1");
    const placed = await publish(orgs, "0.5");
    for (const org of orgs) expect(placed.get(org)).toBe(partitionOf(org, 4));
    await until(
      "the first alerts delivered",
      async () => (await alertsAt("0.5"))?.every((x) => x.state === "delivered") ?? false,
    );
    const first = (await alertsAt("0.5"))!;
    for (const alert of first) {
      expect(hook.arrivals.get(alert.alert_id)).toBe(1);
      const owner = ownerOf(placed.get(alert.org_id)!);
      const other = owner === "0" ? "1" : "0";
      expect(acceptedBy(owner, alert.alert_id)).toBe(1);
      expect(posts.get(other)!.filter(([id]) => id === alert.alert_id)).toHaveLength(0);
    }
    expect(posts.get("0")!.length).toBeGreaterThan(0);
    expect(posts.get("1")!.length).toBeGreaterThan(0);

    // 2. Member 0 stops while the receiver refuses: its alerts are retrying when it leaves; member 1 delivers them.
    hook.refuse = true;
    await publish(orgs, "0.8");
    await until(
      "the second alerts retrying",
      async () => ((await alertsAt("0.8")) ?? []).filter((x) => x.state === "retrying" && x.attempts >= 1).length === 8,
    );
    const leaving = orgs.filter((org) => partsOf(a).includes(placed.get(org)!));
    expect(leaving.length).toBe(4);
    await a.stop();
    const postsOfStopped = posts.get("0")!.length;
    await until("member 1 to hold every partition", () => partsOf(b).length === 4);
    hook.refuse = false;
    await until(
      "the second alerts delivered",
      async () => (await alertsAt("0.8"))?.every((x) => x.state === "delivered") ?? false,
    );
    for (const alert of (await alertsAt("0.8"))!) {
      expect(hook.accepted.get(alert.alert_id)).toBe(1);
      expect(acceptedBy("1", alert.alert_id)).toBe(1);
    }
    expect(posts.get("0")!.length).toBe(postsOfStopped);

    // 3. Member 2 joins on a network the test can cut, takes half the partitions, and is cut off with alerts pending.
    const net = await cuttableNetwork();
    const cutClient = new KafkaClient({
      brokers,
      clientId: "notifier-members-cut",
      socketFactory: net.factory,
      connectionTimeout: 3000,
      logLevel: logLevel.NOTHING,
    });
    const c = member("2", cutClient as unknown as Kafka);
    await c.start();
    await until(
      "members 1 and 2 to split the partitions",
      () => partsOf(c).length > 0 && partsOf(b).length + partsOf(c).length === 4,
    );
    hook.refuse = true;
    await publish(orgs, "0.95");
    await until(
      "the third alerts retrying",
      async () =>
        ((await alertsAt("0.95")) ?? []).filter((x) => x.state === "retrying" && x.attempts >= 1).length === 8,
    );
    const cutOff = orgs.filter((org) => partsOf(c).includes(placed.get(org)!));
    expect(cutOff.length).toBeGreaterThan(0);
    net.cut();
    await until("member 1 to hold every partition again", () => partsOf(b).length === 4, 120_000);
    const postsOfCutOff = posts.get("2")!.length;
    hook.refuse = false;
    await until(
      "the third alerts delivered",
      async () => (await alertsAt("0.95"))?.every((x) => x.state === "delivered") ?? false,
    );
    const third = (await alertsAt("0.95"))!;
    for (const alert of third) {
      expect(hook.accepted.get(alert.alert_id)).toBe(1);
      expect(acceptedBy("1", alert.alert_id)).toBe(1);
    }
    // Member 2 still runs its delivery loop but made no POST once its partitions were member 1's.
    expect(posts.get("2")!.length).toBe(postsOfCutOff);

    net.heal();
    await c.stop();
    await b.stop();
    // Every alert of the test was received exactly once with a 2xx, and the first ones arrived exactly once.
    for (const alert of [...first, ...(await alertsAt("0.8"))!, ...third]) {
      expect(hook.accepted.get(alert.alert_id)).toBe(1);
    }
    for (const alert of first) expect(hook.arrivals.get(alert.alert_id)).toBe(1);
    expect(hook.badSignatures).toBe(0);
    const text = await registry.metrics();
    for (const name of ["0", "1", "2"]) expect(text).toContain(`usage_alert_deliveries_due{member="${name}"}`);
    expect(text).toMatch(/usage_alert_deliveries_total\{outcome="delivered"\} 24\b/);
  });
});
