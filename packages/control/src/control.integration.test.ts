import { type ClickHouse, controlChangesOf, latestPolicies, migrate } from "@usage/clickhouse";
import { createProducer, groupLag, type Kafka, readDeadLetter, TOPICS } from "@usage/kafka";
import { defaultPolicy } from "@usage/policy";
import { ConfigResourceTypes } from "kafkajs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  quietLogger,
  readTopic,
  resetTopics,
  testClickHouse,
  testKafka,
  waitFor,
} from "../../../test/harness/index.js";
import { CONTROL_TOPIC, type VersionedChange } from "./changes.js";
import { type ControlFollower, createControlFollower } from "./follower.js";
import { type ControlPublisher, createControlPublisher } from "./publisher.js";
import { createControlRecorder } from "./recorder.js";

const ORG = "org_cp";
const WRITES = 50;
// A bound on each wait, not a measurement: a change is expected everywhere well within it.
const WAIT_MS = 30_000;

let kafka: Kafka;
let ch: ClickHouse;
let publisher: ControlPublisher;
const followers: ControlFollower[] = [];
/** What each publish of the 50 got: version → the org limit it carried and its actor. */
const published = new Map<number, { limit: string; actor: string }>();

beforeAll(async () => {
  kafka = testKafka("control-test");
  await resetTopics(kafka);
  ch = await testClickHouse("control");
  await migrate(ch.client);
  publisher = createControlPublisher({ kafka });
  await publisher.connect();
});

afterAll(async () => {
  for (const f of followers) await f.stop();
  await publisher?.close();
  await ch?.close();
});

function follow(): { follower: ControlFollower; seen: VersionedChange[] } {
  const follower = createControlFollower({ kafka, logger: quietLogger, groupPrefix: "control-test" });
  followers.push(follower);
  const seen: VersionedChange[] = [];
  follower.onChange(async (c) => {
    // Listeners that take different times: the next change must still wait for this one.
    await new Promise((r) => setTimeout(r, c.version % 3));
    seen.push(c);
  });
  return { follower, seen };
}

async function count(query: string): Promise<number> {
  const rs = await ch.client.query({ query, query_params: { org: ORG }, format: "JSONEachRow" });
  return Number((await rs.json<{ n: string }>())[0]!.n);
}

async function controlDeadLetters() {
  const messages = await readTopic(kafka, TOPICS.dlq, { idleMs: 2000 });
  return messages
    .map((m) => ({ ...readDeadLetter(m.headers), offset: m.headers?.["dlq.source.offset"]?.toString() }))
    .filter((d) => d.sourceTopic === CONTROL_TOPIC);
}

describe("control plane on Kafka", () => {
  let a: ReturnType<typeof follow>;
  let b: ReturnType<typeof follow>;

  it("ensureTopics creates the control log as one compacted partition", async () => {
    const admin = kafka.admin();
    await admin.connect();
    try {
      const { topics } = await admin.fetchTopicMetadata({ topics: [CONTROL_TOPIC] });
      expect(topics[0]?.partitions).toHaveLength(1);
      const { resources } = await admin.describeConfigs({
        includeSynonyms: false,
        resources: [{ type: ConfigResourceTypes.TOPIC, name: CONTROL_TOPIC, configNames: ["cleanup.policy"] }],
      });
      expect(resources[0]?.configEntries.map((e) => [e.configName, e.configValue])).toEqual([
        ["cleanup.policy", "compact"],
      ]);
    } finally {
      await admin.disconnect();
    }
  });

  it("gives 50 concurrent policy writes 50 versions, and two followers apply them all in log order", async () => {
    a = follow();
    b = follow();
    await Promise.all([a.follower.start(), b.follower.start()]);
    expect(a.follower.position()).toBe(0);

    const versions = await Promise.all(
      Array.from({ length: WRITES }, async (_, i) => {
        const limit = String(1000 + i);
        const actor = `key:k${i}`;
        const version = await publisher.publish({
          kind: "policy",
          org_id: ORG,
          actor,
          policy: { ...defaultPolicy(ORG), org_limit: limit },
        });
        published.set(version, { limit, actor });
        return version;
      }),
    );
    // A fresh single-partition log: offsets 0..49, so versions 1..50, each once.
    expect(new Set(versions).size).toBe(WRITES);
    expect([...versions].sort((x, y) => x - y)).toEqual(Array.from({ length: WRITES }, (_, i) => i + 1));

    await Promise.all([a.follower.waitFor(WRITES, WAIT_MS), b.follower.waitFor(WRITES, WAIT_MS)]);
    for (const { follower, seen } of [a, b]) {
      expect(follower.position()).toBe(WRITES);
      // Every version once, in log order, each with the content its publish sent.
      expect(seen.map((c) => c.version)).toEqual(Array.from({ length: WRITES }, (_, i) => i + 1));
      for (const c of seen) {
        expect(c.kind === "policy" && c.policy.org_limit).toBe(published.get(c.version)!.limit);
        expect(c.key).toBe(`${ORG}/policy`);
      }
      // The later in log order is in force.
      expect(follower.policy(ORG)).toEqual({
        version: WRITES,
        policy: expect.objectContaining({ org_id: ORG, org_limit: published.get(WRITES)!.limit }),
      });
      expect(follower.orgIds()).toEqual([ORG]);
    }
  });

  it("followers skip and count records that do not validate, and do not dead-letter them", async () => {
    const raw = createProducer(kafka);
    await raw.connect();
    try {
      await raw.send({
        topic: CONTROL_TOPIC,
        messages: [
          { key: "org_bad/webhook", value: "{not json", partition: 0 }, // version 51
          {
            key: "org_bad/policy", // version 52: JSON, but a negative limit
            value: JSON.stringify({
              kind: "policy",
              org_id: "org_bad",
              actor: "operator",
              at: "2026-03-01T00:00:00.000Z",
              policy: { org_limit: "-5" },
            }),
            partition: 0,
          },
        ],
      });
    } finally {
      await raw.disconnect();
    }
    const settings = { enabled: true, when_below: "10", amount: "50", monthly_max: "200" };
    const version = await publisher.publish({ kind: "auto_reload", org_id: "org_ar", actor: "operator", settings });
    expect(version).toBe(WRITES + 3);

    await Promise.all([a.follower.waitFor(version, WAIT_MS), b.follower.waitFor(version, WAIT_MS)]);
    for (const { follower, seen } of [a, b]) {
      expect(follower.invalidCount()).toBe(2);
      expect(seen.map((c) => c.version).slice(-2)).toEqual([WRITES, WRITES + 3]);
      expect(follower.autoReload("org_ar")).toEqual({ settings, version: WRITES + 3 });
      expect(follower.orgIds()).toEqual(["org_ar", ORG]);
    }
    expect(await controlDeadLetters()).toEqual([]);
  });

  it("a follower started after the writes reads the whole history before start resolves", async () => {
    const late = follow();
    await late.follower.start();
    expect(late.follower.isReady()).toBe(true);
    expect(late.follower.position()).toBe(WRITES + 3);
    expect(late.seen.map((c) => c.version)).toEqual([...Array.from({ length: WRITES }, (_, i) => i + 1), WRITES + 3]);
    expect(late.follower.invalidCount()).toBe(2);
    expect(late.follower.policy(ORG)?.version).toBe(WRITES);
    expect(late.follower.autoReload("org_ar")?.version).toBe(WRITES + 3);

    // And it follows what comes next.
    const next = await publisher.publish({ kind: "webhook", org_id: ORG, actor: "operator" });
    await late.follower.waitFor(next, WAIT_MS);
    expect(late.seen.at(-1)).toMatchObject({ kind: "webhook", version: next, key: `${ORG}/webhook` });
    await expect(late.follower.waitFor(next + 1, 200)).rejects.toThrow(/not applied/);
  });

  it("the recorder writes the history once; a second run in a new group adds nothing and dead-letters nothing again", async () => {
    const end = WRITES + 4; // 50 policies, 2 invalid records, one auto-reload, one webhook notice
    const run = async (groupId: string) => {
      const recorder = createControlRecorder({ kafka, clickhouse: ch.client, logger: quietLogger, groupId });
      await recorder.start();
      try {
        await waitFor(
          `${groupId} to commit the whole log`,
          async () => (await groupLag(kafka, groupId, CONTROL_TOPIC)) === 0,
          WAIT_MS * 2,
        );
        return recorder.invalidCount();
      } finally {
        await recorder.stop();
      }
    };
    const snapshot = async () => ({
      policyVersions: await count("SELECT count() AS n FROM policy_versions FINAL WHERE org_id = {org:String}"),
      changes: await count("SELECT count() AS n FROM control_changes FINAL"),
      autoReloads: await count("SELECT count() AS n FROM credit_auto_reload FINAL"),
      rejects: await count("SELECT count() AS n FROM control_rejects FINAL"),
    });
    const expected = { policyVersions: WRITES, changes: end - 2, autoReloads: 1, rejects: 2 };

    expect(await run("control-test-recorder-1")).toBe(2);
    expect(await snapshot()).toEqual(expected);

    // Each policy version is the row its publish wrote: the same version, content and actor.
    const rs = await ch.client.query({
      query:
        "SELECT version, policy, created_by FROM policy_versions FINAL WHERE org_id = {org:String} ORDER BY version",
      query_params: { org: ORG },
      format: "JSONEachRow",
    });
    const rows = await rs.json<{ version: string; policy: string; created_by: string }>();
    expect(rows.map((r) => Number(r.version))).toEqual(Array.from({ length: WRITES }, (_, i) => i + 1));
    for (const r of rows) {
      const sent = published.get(Number(r.version))!;
      expect({ limit: (JSON.parse(r.policy) as { org_limit: string }).org_limit, actor: r.created_by }).toEqual(sent);
    }
    // The readers of these tables agree with the followers: the latest policy is version 50's.
    const [latest] = await latestPolicies(ch.client, ORG);
    expect({
      version: latest?.version,
      limit: (JSON.parse(latest!.policy) as { org_limit: string }).org_limit,
    }).toEqual({
      version: WRITES,
      limit: published.get(WRITES)!.limit,
    });
    const history = await controlChangesOf(ch.client, ORG);
    expect(history.map((h) => [h.version, h.kind])).toEqual([
      ...Array.from({ length: WRITES }, (_, i) => [i + 1, "policy"]),
      [end, "webhook"],
    ]);
    expect(history[0]).toMatchObject({ key: `${ORG}/policy`, actor: published.get(1)!.actor });
    const kinds = await ch.client.query({
      query: "SELECT kind, count() AS n FROM control_changes FINAL GROUP BY kind ORDER BY kind",
      format: "JSONEachRow",
    });
    expect(await kinds.json()).toEqual([
      { kind: "auto_reload", n: "1" },
      { kind: "policy", n: String(WRITES) },
      { kind: "webhook", n: "1" },
    ]);

    // usage.dlq.v1 has several partitions: order by source offset.
    const dead = (await controlDeadLetters()).sort((x, y) => Number(x.offset) - Number(y.offset));
    expect(dead.map((d) => ({ offset: d.offset, reason: d.reason, field: d.field }))).toEqual([
      { offset: String(WRITES), reason: "invalid_encoding", field: undefined },
      { offset: String(WRITES + 1), reason: "invalid_field", field: "policy.org_limit" },
    ]);

    // A replay from offset 0: it reads the invalid records again but sends neither again, and every table holds
    // exactly what it held.
    expect(await run("control-test-recorder-2")).toBe(2);
    expect(await snapshot()).toEqual(expected);
    expect(await controlDeadLetters()).toHaveLength(2);
  });
});
