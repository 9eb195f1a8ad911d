/**
 * The API's totals follower and the control follower (a topic follower each, a throwaway consumer group of its own)
 * through an outage that kafkajs gives up on. When the brokers go away, kafkajs retries a consumer's fetches, then
 * restarts the consumer; if its group coordinator cannot be found then ("Failed to find group coordinator", as in a
 * broker restart), kafkajs crashes it for good (a non-retriable error) and the follower would read nothing more.
 * Here the followers' client has its connections reset and every request but metadata refused until kafkajs has
 * given up on a consumer of each, then every connection refused until a replacement of each has failed to connect;
 * then the brokers answer again. Each follower must replace its consumer and go on
 * following: every record handed over once, in offset order, none skipped.
 */
import { connect, type Socket } from "node:net";
import { createControlFollower, createControlPublisher, type VersionedChange } from "@usage/control";
import { createKafka, createTopicFollower, type Kafka } from "@usage/kafka";
import { defaultPolicy } from "@usage/policy";
import type { ISocketFactory } from "kafkajs";
import { afterAll, describe, expect, it } from "vitest";
import { freePort, quietLogger, resetTopics, testBrokers, testKafka, waitFor } from "./harness/index.js";

const TOPIC = `usage-test-follow-outage-${process.pid}`;
const PARTITIONS = 2;
/** A bound on each wait, not a measurement. */
const WAIT_MS = 120_000;
/** The Kafka requests the brokers still answer in the outage: Metadata (3) and ApiVersions (18). */
const ANSWERED = new Set([3, 18]);

const reset = () => Object.assign(new Error("connection reset by the outage"), { code: "ECONNRESET" });

/**
 * Sockets that go dark: after `blackout()` any request but those ANSWERED resets its connection (fetches,
 * heartbeats, coordinator lookups); after `refuseAll()` every new connection is refused, as by a stopped broker.
 * Both reset every open connection; `end()` lets everything through again.
 */
function outage(refusedPort: number): {
  socketFactory: ISocketFactory;
  blackout(): void;
  refuseAll(): void;
  end(): void;
} {
  const open = new Set<Socket>();
  let dark = false;
  let refusing = false;
  return {
    socketFactory: ({ host, port, onConnect }) => {
      const socket = refusing
        ? connect({ host: "127.0.0.1", port: refusedPort }, onConnect)
        : connect({ host, port }, onConnect);
      const write = socket.write.bind(socket) as (...args: unknown[]) => boolean;
      socket.write = ((...args: unknown[]) => {
        const chunk = args[0];
        // A request is written whole: int32 size, then int16 API key.
        if (dark && Buffer.isBuffer(chunk) && chunk.length >= 6 && !ANSWERED.has(chunk.readInt16BE(4))) {
          socket.destroy(reset());
          return false;
        }
        return write(...args);
      }) as Socket["write"];
      open.add(socket);
      socket.once("close", () => open.delete(socket));
      return socket;
    },
    blackout() {
      dark = true;
      for (const s of open) s.destroy(reset());
    },
    refuseAll() {
      refusing = true;
      for (const s of open) s.destroy(reset());
    },
    end() {
      dark = false;
      refusing = false;
    },
  };
}

/**
 * A kafkajs client whose consumers report each crash (its group, whether kafkajs restarts the consumer itself) and
 * each connect that failed (its group).
 */
function watched(kafka: Kafka, crashes: { group: string; restart: boolean }[], failedConnects: string[]): Kafka {
  const spy = Object.create(kafka) as Kafka;
  spy.consumer = (config) => {
    const c = kafka.consumer(config);
    c.on(c.events.CRASH, (e) => crashes.push({ group: e.payload.groupId, restart: e.payload.restart }));
    const connectOnce = c.connect.bind(c);
    c.connect = () =>
      connectOnce().catch((err: unknown) => {
        failedConnects.push(config.groupId);
        throw err;
      });
    return c;
  };
  return spy;
}

/** partition → the values of records 0 .. to-1 (record i on partition i % PARTITIONS), in offset order. */
function expected(to: number): Record<number, string[]> {
  const out: Record<number, string[]> = {};
  for (let i = 0; i < to; i++) out[i % PARTITIONS] = [...(out[i % PARTITIONS] ?? []), `r${i}`];
  return out;
}

const stops: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const stop of stops.reverse()) await stop().catch(() => undefined);
});

describe("followers through an outage kafkajs gives up on", () => {
  it("replace their consumers and go on following: each record once, in order", async () => {
    const producerKafka = testKafka("follow-outage-producer");
    await resetTopics(producerKafka);
    const admin = producerKafka.admin();
    await admin.connect();
    await admin.createTopics({ topics: [{ topic: TOPIC, numPartitions: PARTITIONS }], waitForLeaders: true });
    await admin.disconnect();
    const producer = producerKafka.producer();
    await producer.connect();
    stops.push(() => producer.disconnect());
    const send = async (from: number, to: number) => {
      const messages = [];
      for (let i = from; i < to; i++) messages.push({ partition: i % PARTITIONS, value: `r${i}` });
      await producer.send({ topic: TOPIC, messages });
    };
    const publisher = createControlPublisher({ kafka: producerKafka });
    await publisher.connect();
    stops.push(() => publisher.close());
    const publish = (org: string) =>
      publisher.publish({ kind: "policy", org_id: org, actor: "test", policy: defaultPolicy(org) });
    await send(0, 6);
    await publish("org_before");

    const net = outage(await freePort());
    const crashes: { group: string; restart: boolean }[] = [];
    const failedConnects: string[] = [];
    const kafka = watched(
      createKafka({
        brokers: testBrokers(),
        clientId: "follow-outage",
        logger: quietLogger,
        socketFactory: net.socketFactory,
      }),
      crashes,
      failedConnects,
    );
    const seen = new Map<number, string[]>();
    const follower = createTopicFollower({
      kafka,
      topic: TOPIC,
      logger: quietLogger,
      name: "follow-outage-totals",
      onBatch: (partition, messages) => {
        const list = seen.get(partition) ?? [];
        for (const m of messages) list.push(String(m.value));
        seen.set(partition, list);
      },
    });
    stops.push(() => follower.stop());
    const control = createControlFollower({ kafka, logger: quietLogger, groupPrefix: "follow-outage-control" });
    stops.push(() => control.stop());
    const changes: VersionedChange[] = [];
    control.onChange((c) => {
      changes.push(c);
    });
    await follower.start();
    await control.start();
    expect(Object.fromEntries(seen)).toEqual(expected(6));
    expect(changes.map((c) => c.org_id)).toEqual(["org_before"]);

    net.blackout();
    const givenUp = (prefix: string) => crashes.some((c) => !c.restart && c.group.startsWith(prefix));
    await waitFor(
      "kafkajs to give up on a consumer of each follower",
      async () => givenUp("follow-outage-totals") && givenUp("follow-outage-control"),
      WAIT_MS,
    );
    // Then the brokers refuse every connection until a replacement consumer of each follower has failed to connect
    // (its connect retried out), as while a broker is down: the replacements must go on being replaced.
    net.refuseAll();
    // Published while the followers cannot read (their own client is cut off; the test's producer is not).
    await send(6, 10);
    await publish("org_during");
    const failed = (prefix: string) => failedConnects.some((group) => group.startsWith(prefix));
    await waitFor(
      "a replacement consumer of each follower to fail to connect",
      async () => failed("follow-outage-totals") && failed("follow-outage-control"),
      WAIT_MS,
    );
    net.end();
    await send(10, 14);
    await publish("org_after");

    await waitFor(
      "the totals follower to read what was published during and after the outage",
      async () => [...seen.values()].reduce((n, list) => n + list.length, 0) >= 14,
      WAIT_MS,
    );
    await waitFor(
      "the control follower to read the changes of and after the outage",
      async () => changes.length >= 3,
      WAIT_MS,
    );
    expect(Object.fromEntries(seen)).toEqual(expected(14));
    expect(changes.map((c) => c.org_id)).toEqual(["org_before", "org_during", "org_after"]);
    expect(changes.map((c) => c.version - changes[0]!.version)).toEqual([0, 1, 2]);
    expect(follower.isCaughtUp()).toBe(true);
    expect(control.isReady()).toBe(true);
  });
});
