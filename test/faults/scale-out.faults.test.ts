/**
 * Scale-out (SPEC §12), on a 3-broker KRaft cluster (replication factor 3, min ISR 2): 100,000 generated events
 * (10% duplicates, 1% late) flow while 3 aggregator members, 2 notifier members and 2 API instances run in this
 * process over one embedded ClickHouse, and 2 pricing processes run beside it. Mid-stream: an aggregator member
 * joins, one stalls past its session timeout and then resumes (a zombie that must change nothing: once before its
 * events are stored, once after, before its rollup), a pricing process is SIGKILLed and restarted, one broker is
 * killed, and a member leaves. Then totals, rollups and every user's caps
 * equal an independent recomputation to the last digit, both API instances answer the same caps and allowance, and
 * each alert exists once and was POSTed once.
 */
import { type AggregatorService, type StallPhase, startAggregatorService } from "@usage/aggregator";
import { type ApiService, startApiService } from "@usage/api";
import { type ClickHouse, migrate } from "@usage/clickhouse";
import { createKafka, ensureTopics, groupLag, type Kafka, partitionOf, TOPICS } from "@usage/kafka";
import { buildNotifier, type Notifier } from "@usage/notifier";
import { Registry } from "prom-client";
import { afterAll, describe, expect, it } from "vitest";
import { Exact } from "../harness/exact.js";
import { freePort, metricSum, quietLogger, runCli, spawnCli, testClickHouse, testSecrets } from "../harness/index.js";
import { type Receiver, startReceiver } from "../harness/receiver.js";
import { type Cluster, startCluster } from "./harness/cluster.js";
import { createFreezer } from "./harness/freeze.js";
import { sleep, waitFor } from "./harness/pipeline.js";
import { currentSpend, makeWorkload, type Workload, windowSum } from "./harness/workload.js";

const KEY = "scale-out-operator-key-0123456789";
const SECRET = "scale-out-webhook-secret-0123456789";
const PARTITIONS = 4;

interface Caps {
  org: { limit: string | null; spend: string; status: string };
  users: Record<string, { limit: string | null; spend: string; status: string; blocked_by: string | null }>;
}

describe("scale-out", () => {
  const stops: (() => Promise<void>)[] = [];
  afterAll(async () => {
    for (const stop of stops.reverse()) await stop().catch(() => undefined);
  });

  it("keeps every figure exact and every alert single while members join, leave, stall and die", async () => {
    const cluster: Cluster = await startCluster("scale-out");
    stops.push(() => cluster.close());
    const brokers = cluster.brokers;
    const kafka: Kafka = createKafka({ brokers, clientId: "scale-out", logger: quietLogger });
    await ensureTopics(kafka, { partitions: PARTITIONS, replicationFactor: 3, minInsyncReplicas: 2 });

    const wl: Workload = makeWorkload({ seed: 1512, count: 100_000, badCount: 0, duplicateRate: 0.1, lateRate: 0.01 });
    const ch: ClickHouse = await testClickHouse("scale-out");
    stops.push(() => ch.close());
    await migrate(ch.client);
    const run = Date.now();
    const groups = { pricing: `so-pricing-${run}`, aggregator: `so-aggregator-${run}`, notifier: `so-notifier-${run}` };
    const registry = new Registry();
    const receiver: Receiver = await startReceiver({ secret: SECRET });
    stops.push(() => receiver.close());

    // Two API instances, each with its own control follower and read model: nothing shared but the topics.
    const apis: ApiService[] = [];
    for (let i = 0; i < 2; i++) {
      const api = await startApiService({
        secrets: testSecrets,
        kafka,
        clickhouse: ch.client,
        logger: quietLogger,
        registry: i === 0 ? registry : new Registry(),
        operatorKey: KEY,
        allowPrivateWebhooks: true,
        host: "127.0.0.1",
        port: await freePort(),
        name: `so-api-${i}`,
      });
      apis.push(api);
      stops.push(() => api.stop());
    }
    const call = async <T>(i: number, path: string, init: RequestInit = {}): Promise<T> => {
      const res = await fetch(`${apis[i]!.url}${path}`, {
        ...init,
        headers: { authorization: `Bearer ${KEY}`, "content-type": "application/json" },
      });
      const body = await res.json();
      if (!res.ok) throw new Error(`${path}: ${res.status} ${JSON.stringify(body)}`);
      return body as T;
    };
    for (const org of wl.orgs) {
      await call(0, `/v1/orgs/${org}/policy`, { method: "PUT", body: JSON.stringify(wl.policies[org]) });
      await call(1, `/v1/orgs/${org}/webhook`, {
        method: "PUT",
        body: JSON.stringify({ url: receiver.url, secret: SECRET }),
      });
    }

    const aggregator: AggregatorService = await startAggregatorService({
      env: {
        USAGE_AGGREGATOR_GROUP: groups.aggregator,
        USAGE_BACKFILL_DAYS: 35,
        USAGE_FORECAST_INTERVAL_MS: 0,
        USAGE_MEMBERS: 3,
      },
      kafka,
      clickhouse: ch.client,
      logger: quietLogger,
      registry,
    });
    stops.push(() => aggregator.stop());
    const notifierEnv = {
      USAGE_NOTIFIER_GROUP: groups.notifier,
      USAGE_WEBHOOK_RETRY_BASE_MS: 200,
      USAGE_WEBHOOK_RETRY_MAX_MS: 2000,
      USAGE_WEBHOOK_MAX_ATTEMPTS: 1000,
      USAGE_WEBHOOK_TIMEOUT_MS: 3000,
      USAGE_NOTIFIER_POLL_MS: 250,
      USAGE_WEBHOOK_ALLOW_PRIVATE: true,
    };
    const notifiers: Notifier[] = [];
    for (let i = 0; i < 2; i++) {
      const n = buildNotifier({
        secrets: testSecrets,
        env: notifierEnv,
        kafka,
        clickhouse: ch.client,
        logger: quietLogger,
        registry,
        member: i,
      });
      await n.start();
      notifiers.push(n);
      stops.push(() => n.stop());
    }

    const pricingEnv = (instance: string) => ({
      KAFKA_BROKERS: brokers.join(","),
      KAFKA_PARTITIONS: String(PARTITIONS),
      KAFKA_REPLICATION_FACTOR: "3",
      KAFKA_MIN_INSYNC_REPLICAS: "2",
      LOG_LEVEL: "warn",
      USAGE_PRICING_GROUP: groups.pricing,
      USAGE_INSTANCE_ID: instance,
    });
    // The pricing processes run under a supervisor, as in production: one that exits on its own (a fatal error after
    // a broker is lost, say) is started again, and the restart is reported with the tail of its output.
    const instances = ["so-a", "so-b"];
    const unplannedExits: { instance: string; code: number | null; output: string }[] = [];
    let stopping = false;
    const planned = new Set<ReturnType<typeof spawnCli>>();
    const supervise = (i: number): ReturnType<typeof spawnCli> => {
      const p = spawnCli(["run", "pricing"], pricingEnv(instances[i]!));
      void p.exited.then((code) => {
        if (stopping || planned.has(p)) return;
        unplannedExits.push({ instance: instances[i]!, code, output: p.output().slice(-2000) });
        console.error(
          `[faults scale-out] pricing ${instances[i]} exited ${code}; restarting:\n${p.output().slice(-2000)}`,
        );
        pricing[i] = supervise(i);
      });
      return p;
    };
    const pricing = [supervise(0), supervise(1)];
    stops.push(async () => {
      stopping = true;
      for (const p of pricing) {
        p.child.kill("SIGTERM");
        await p.exited;
      }
    });

    const base = apis[0]!.url;
    const recorded = async () =>
      (await metricSum(base, "usage_aggregator_events_recorded_total")) +
      (await metricSum(base, "usage_aggregator_duplicates_total"));
    const distinct = wl.distinct.size;
    const facts: Record<string, unknown> = {};

    // Publish in eleven slices; the disruptions land between them, each while events are flowing.
    const slices = 11;
    const size = Math.ceil(wl.lines.length / slices);
    const publishFailures: string[] = [];
    const publish = async (i: number) => {
      // A surface whose publish failed (a broker lost mid-call) publishes again; event ids make it harmless.
      for (let attempt = 1; ; attempt++) {
        const out = await runCli(["produce"], {
          env: { KAFKA_BROKERS: brokers.join(","), LOG_LEVEL: "error" },
          input: wl.lines.slice(i * size, (i + 1) * size).join("\n"),
        });
        if (out.code === 0) return;
        publishFailures.push(`slice ${i} attempt ${attempt}: exit ${out.code}`);
        expect(attempt, out.stderr.slice(-1000)).toBeLessThan(8);
      }
    };
    // Where the pipeline stands, printed when a wait times out: which stage stopped moving.
    const diagnose = async () => {
      const lag = async (group: string, topic: string) =>
        await groupLag(kafka, group, topic).catch((err: unknown) => `? ${String(err)}`);
      return {
        recorded: await recorded().catch(() => "?"),
        pricing_lag: await lag(groups.pricing, TOPICS.events),
        aggregator_lag: await lag(groups.aggregator, TOPICS.priced),
        members: aggregator.members.map((m) => ({
          loaded: m.ownedPartitions(),
          assigned: Object.fromEntries(m.consumer.assignment()),
          healthy: m.isHealthy(),
          coordinator_answered_ms_ago: Math.round(m.consumer.heartbeatAgeMs()),
        })),
        pricing_output: pricing.map((p) => p.output().slice(-1500)),
      };
    };
    const reach = async (fraction: number) => {
      try {
        await waitFor(
          `${Math.round(fraction * 100)}% recorded`,
          async () => (await recorded()) >= fraction * distinct,
          180_000,
        );
      } catch (err) {
        console.error(`[faults scale-out] stalled: ${JSON.stringify(await diagnose(), null, 1)}`);
        throw err;
      }
    };

    await publish(0);
    await publish(1);
    await reach(0.1);
    // A member joins, on a Kafka client of its own whose connections the test can freeze (the zombie below).
    const join = async () => {
      const freezer = createFreezer();
      const member = await aggregator.addMember({
        kafka: createKafka({
          brokers,
          clientId: "scale-out-joiner",
          logger: quietLogger,
          socketFactory: freezer.socketFactory,
        }),
      });
      return { freezer, member };
    };
    let joiner = await join();
    facts.joined_at = await recorded();
    await publish(2);
    await publish(3);
    await reach(0.3);
    // A member is frozen past its session timeout (10 s) in the middle of a batch — no heartbeat, nothing sent or
    // read, as a process paused by the OS — and then resumes: a zombie. Twice: frozen right before the ownership
    // check of its usage_events insert (step 3), then right before the one of its rollup (step 7), once its events
    // are stored and its signals out. The zombie must own a partition the workload's orgs use (3 orgs over 4
    // partitions leave one empty): a joiner that holds only the empty one leaves and another joins.
    const used = new Set(wl.orgs.map((org) => partitionOf(org, PARTITIONS)));
    const rejoins: number[][] = [];
    const zombies: Record<string, unknown>[] = [];
    const freezeZombie = async (before: "events" | "rollup", slice: number) => {
      for (;;) {
        const current = joiner;
        await waitFor("the joiner holds a partition", () => current.member.ownedPartitions().length > 0, 60_000);
        if (current.member.ownedPartitions().some((p) => used.has(p))) break;
        rejoins.push(current.member.ownedPartitions());
        expect(rejoins.length, "joiners that got only the unused partition").toBeLessThan(8);
        await aggregator.removeMember(current.member);
        joiner = await join();
      }
      const { member: zombie, freezer } = joiner;
      const rebuiltBefore = await metricSum(base, "usage_aggregator_rollups_rebuilt_total");
      const stalledBatch: StallPhase[] = [];
      const fact: Record<string, unknown> = { before, partitions: zombie.ownedPartitions(), stalled: stalledBatch };
      zombies.push(fact);
      zombie.stallNextBatch(
        16_000,
        (phase) => {
          stalledBatch.push(phase);
          if (phase === "start") freezer.freeze();
          if (phase === "end") freezer.thaw();
        },
        before,
      );
      await publish(slice);
      await sleep(17_000);
      fact.owns_after = zombie.ownedPartitions();
      // The zombie found out at its ownership check and wrote nothing more of that batch, even when a heartbeat it
      // sent just before the freeze was answered then and that answer is read only now.
      await waitFor(`the ${before} zombie's stalled batch ended`, () => stalledBatch.length >= 3, 30_000);
      expect(stalledBatch, `${before} zombie`).toEqual(["start", "end", "abandoned"]);
      if (before === "rollup") {
        // Its events were stored and its rollup not: the partition's next owner rebuilt it at its load.
        await waitFor(
          "the rollup the zombie left behind rebuilt",
          async () => (await metricSum(base, "usage_aggregator_rollups_rebuilt_total")) > rebuiltBefore,
          60_000,
        );
      }
      fact.rollups_rebuilt = (await metricSum(base, "usage_aggregator_rollups_rebuilt_total")) - rebuiltBefore;
    };
    await freezeZombie("events", 4);
    await freezeZombie("rollup", 5);
    facts.rejoins = rejoins;
    facts.zombies = zombies;
    facts.abandoned = await metricSum(base, "usage_aggregator_batches_abandoned_total");
    expect(facts.abandoned).toBeGreaterThanOrEqual(2);
    // A pricing process is SIGKILLed mid-stream and restarted.
    const publishing = publish(6);
    await sleep(500);
    planned.add(pricing[0]!);
    pricing[0]!.child.kill("SIGKILL");
    await pricing[0]!.exited;
    pricing[0] = supervise(0);
    await publishing;
    await reach(0.5);
    // One broker is killed mid-stream: the one leading the most partitions of usage.events.v1 (node ids are 1-3).
    const admin = kafka.admin();
    await admin.connect();
    const { topics } = await admin.fetchTopicMetadata({ topics: [TOPICS.events, TOPICS.priced] });
    await admin.disconnect();
    const leads = new Map<number, number>();
    for (const t of topics) for (const p of t.partitions) leads.set(p.leader, (leads.get(p.leader) ?? 0) + 1);
    const victim = ([...leads].sort((a, b) => b[1] - a[1])[0]?.[0] ?? 2) as 1 | 2 | 3;
    facts.broker_killed = { node: victim, leading: leads.get(victim) };
    const publishing2 = publish(7);
    await sleep(300);
    await cluster.stopBroker(victim, "SIGKILL");
    await publishing2;
    await publish(8);
    await reach(0.7);
    // A member leaves.
    await aggregator.removeMember(aggregator.members[0]!);
    await publish(9);
    await publish(10);
    await cluster.startBroker(victim);

    // Settle: every distinct event in the YTD totals, exactly; pricing and the notifier caught up (usage.priced.v1 is
    // transactional: its high watermark counts commit markers, so the aggregator's lag is judged by the totals).
    await waitFor(
      "every distinct event in the YTD totals, exactly",
      async () => {
        for (const org of wl.orgs) {
          const body = await call<{ total: string }>(0, `/v1/orgs/${org}/spend?window=ytd`);
          if (!Exact.of(body.total).eq(windowSum(wl, org, "ytd").spend)) return false;
        }
        return true;
      },
      300_000,
    );
    await waitFor(
      "pricing and the notifier caught up",
      async () =>
        (await groupLag(kafka, groups.pricing, TOPICS.events)) === 0 &&
        (await groupLag(kafka, groups.notifier, TOPICS.signals)) === 0,
      120_000,
    );

    // 1. Totals: MTD/QTD/YTD per org and per user, from ClickHouse through the API, equal the recomputation.
    for (const org of wl.orgs) {
      for (const window of ["mtd", "qtd", "ytd"] as const) {
        const body = await call<{ total: string; rows: { key: string; spend: string; requests: number }[] }>(
          0,
          `/v1/orgs/${org}/spend?window=${window}&group_by=user`,
        );
        expect(Exact.of(body.total).eq(windowSum(wl, org, window).spend), `${org} ${window}`).toBe(true);
        for (const row of body.rows) {
          const want = windowSum(wl, org, window, row.key);
          expect(Exact.of(row.spend).eq(want.spend), `${org} ${window} ${row.key}`).toBe(true);
          expect(row.requests, `${org} ${window} ${row.key} requests`).toBe(want.requests);
        }
      }
    }
    // 2. Rollups: spend_daily and usage_events agree per org and user, and usage_events holds each event once.
    const rows = async (query: string) =>
      (await (await ch.client.query({ query, format: "JSONEachRow" })).json()) as {
        org_id: string;
        user_id: string;
        net: string;
        n: string;
      }[];
    const raw = await rows(
      "SELECT org_id, user_id, toString(sum(net_cost)) AS net, toString(count()) AS n FROM usage_events GROUP BY org_id, user_id ORDER BY org_id, user_id",
    );
    const rollup = await rows(
      "SELECT org_id, user_id, toString(sum(net_cost)) AS net, toString(sum(requests)) AS n FROM spend_daily GROUP BY org_id, user_id ORDER BY org_id, user_id",
    );
    expect(rollup).toEqual(raw);
    expect(
      raw.reduce((t, r) => t + Number(r.n), 0),
      "usage_events rows",
    ).toBe(distinct);

    // 3. Caps and allowance: both API instances answer the same, and equal the recomputation.
    const current = currentSpend(wl.priced, wl.period);
    for (const org of wl.orgs) {
      let capsA: Caps | undefined;
      await waitFor(
        `${org} caps the same on both API instances`,
        async () => {
          const [a, b] = await Promise.all([
            call<Caps>(0, `/v1/orgs/${org}/caps`),
            call<Caps>(1, `/v1/orgs/${org}/caps`),
          ]);
          capsA = a;
          return JSON.stringify(a) === JSON.stringify(b);
        },
        10_000,
      );
      const want = current.get(org);
      expect(Exact.of(capsA!.org.spend).eq(want?.total ?? 0), `${org} org spend`).toBe(true);
      for (const [user, spend] of want?.users ?? []) {
        expect(Exact.of(capsA!.users[user]!.spend).eq(spend), `${org} ${user} spend`).toBe(true);
        const [a, b] = await Promise.all([
          call(0, `/v1/orgs/${org}/users/${user}/allowance`),
          call(1, `/v1/orgs/${org}/users/${user}/allowance`),
        ]);
        expect(a, `${org} ${user} allowance`).toEqual(b);
      }
      const orgBlocked = wl.entities.some((e) => e.org === org && e.type === "org" && e.blocked);
      for (const e of wl.entities.filter((x) => x.org === org)) {
        const own = e.blocked ? "blocked" : e.threshold !== null ? "warning" : "ok";
        const status = e.type === "user" && orgBlocked ? "blocked" : own;
        const got = e.type === "org" ? capsA!.org.status : capsA!.users[e.id]?.status;
        expect(got, `${org} ${e.type}:${e.id} status`).toBe(status);
      }
    }

    // 4. Alerts: each created once and POSTed once, every one delivered.
    await waitFor(
      "every alert delivered",
      async () => {
        const states = await rows(
          "SELECT org_id, alert_id AS user_id, state AS net, '1' AS n FROM alerts FINAL WHERE state != 'delivered'",
        );
        return states.length === 0 && Date.now() - receiver.lastPostAt > 2000;
      },
      120_000,
    );
    const alerts = await rows(
      "SELECT org_id, alert_id AS user_id, '' AS net, toString(count()) AS n FROM alerts FINAL GROUP BY org_id, alert_id",
    );
    expect(alerts.length).toBeGreaterThan(0);
    expect([...receiver.received.keys()].sort()).toEqual(alerts.map((a) => a.user_id).sort());
    const repeated = [...receiver.received].filter(([, n]) => n !== 1);
    expect(repeated, "alerts POSTed more than once").toEqual([]);
    expect(receiver.badSignatures).toBe(0);
    for (const e of wl.entities) {
      if (!e.blocked) continue;
      const key = e.type === "org" ? "org" : e.id;
      expect(
        [...receiver.payloads.values()].some(
          (a) => a.org_id === e.org && a.entity.id === (key === "org" ? e.org : key) && a.kind === "blocked",
        ),
        `${e.org} ${e.type}:${e.id} blocked alert`,
      ).toBe(true);
    }
    facts.publish_failures = publishFailures;
    facts.pricing_unplanned_exits = unplannedExits.map((e) => ({ instance: e.instance, code: e.code }));
    facts.alerts = alerts.length;
    facts.posts = receiver.posts;
    facts.members_at_end = aggregator.members.map((m) => m.ownedPartitions());
    process.stderr.write(`[faults scale-out] ${JSON.stringify(facts)}\n`);
  });
});
