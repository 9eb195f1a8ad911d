/**
 * The ownership check of a batch (ConsumedBatch.ensureOwned) against what kafkajs reports, driven by hand: a stand-in
 * for kafkajs's consumer emits the joins, answered requests and heartbeats a real group coordinator would cause, so
 * each case can put the consumer exactly where the fault suite's zombie found itself (paused past its session
 * timeout with a heartbeat's answer unread, then resumed).
 */
import { createLogger } from "@usage/runtime";
import type { EachBatchPayload, Kafka } from "kafkajs";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { CONSUMER_HEARTBEAT_INTERVAL_MS, type ConsumedBatch, createBatchConsumer, OwnershipLost } from "./consumer.js";

const EVENTS = {
  GROUP_JOIN: "join",
  HEARTBEAT: "heartbeat",
  REQUEST: "request",
  REBALANCING: "rebalancing",
  CRASH: "crash",
  STOP: "stop",
};
const TOPIC = "usage.priced.v1";

/** A kafkajs consumer reduced to what the wrapper uses, with the coordinator's side played by the test. */
function standIn() {
  const listeners = new Map<string, (e: { payload: Record<string, unknown> }) => void>();
  let eachBatch: ((payload: EachBatchPayload) => Promise<void>) | undefined;
  const consumer = {
    events: EVENTS,
    on(event: string, listener: (e: { payload: Record<string, unknown> }) => void) {
      listeners.set(event, listener);
      return () => listeners.delete(event);
    },
    connect: async () => undefined,
    subscribe: async () => undefined,
    run: async (config: { eachBatch: (payload: EachBatchPayload) => Promise<void> }) => {
      eachBatch = config.eachBatch;
    },
    disconnect: async () => undefined,
  };
  const emit = (event: string, payload: Record<string, unknown>) => listeners.get(event)?.({ payload });
  return {
    kafka: { consumer: () => consumer } as unknown as Kafka,
    join: (memberId: string, partitions: number[]) => {
      emit(EVENTS.REQUEST, { apiName: "SyncGroup", sentAt: Date.now() });
      emit(EVENTS.GROUP_JOIN, { memberId, memberAssignment: { [TOPIC]: partitions } });
    },
    /** A heartbeat the coordinator answered for this member id, its request sent at `sentAt` (default: now). */
    answered: (memberId: string, sentAt = Date.now()) => {
      emit(EVENTS.REQUEST, { apiName: "Heartbeat", sentAt });
      emit(EVENTS.HEARTBEAT, { memberId, groupGenerationId: 1 });
    },
    /**
     * Delivers one batch of `partition`; `heartbeat` is what kafkajs does when the handler asks for one. Answers the
     * offsets the wrapper resolved (none for an abandoned batch).
     */
    async deliver(partition: number, heartbeat: () => Promise<void>) {
      const resolved: string[] = [];
      const payload = {
        batch: { topic: TOPIC, partition, messages: [{ offset: "41" }], highWatermark: "42" },
        heartbeat,
        isRunning: () => true,
        isStale: () => false,
        resolveOffset: (offset: string) => resolved.push(offset),
        commitOffsetsIfNecessary: async () => undefined,
      } as unknown as EachBatchPayload;
      // The check waits (on the faked clock) before it asks the coordinator again: let that time pass.
      const run = eachBatch!(payload).then(
        () => undefined,
        (err: unknown) => err,
      );
      await vi.runAllTimersAsync();
      const failed = await run;
      if (failed !== undefined) throw failed;
      return { resolved };
    },
  };
}

describe("ensureOwned", () => {
  let fake: ReturnType<typeof standIn>;
  let outcome: "owned" | OwnershipLost | undefined;
  const consume = async () => {
    const consumer = createBatchConsumer({
      kafka: fake.kafka,
      groupId: "g",
      topics: [TOPIC],
      logger: createLogger({ level: "silent" }),
      commit: "after-batch",
    });
    await consumer.start(async (batch: ConsumedBatch) => {
      try {
        await batch.ensureOwned();
        outcome = "owned";
      } catch (err) {
        if (err instanceof OwnershipLost) outcome = err;
        throw err;
      }
    });
    return consumer;
  };
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ["performance", "Date", "setTimeout", "clearTimeout"] });
    fake = standIn();
    outcome = undefined;
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it("passes on a heartbeat the coordinator answered for the member that joined", async () => {
    const consumer = await consume();
    fake.join("member-1", [0, 1]);
    vi.advanceTimersByTime(5_000);
    const delivered = await fake.deliver(0, async () => fake.answered("member-1"));
    expect(outcome).toBe("owned");
    expect(delivered.resolved).toEqual(["41"]);
    await consumer.stop();
  });

  it("passes when kafkajs skips the heartbeat because one was answered within the interval", async () => {
    const consumer = await consume();
    fake.join("member-1", [0]);
    vi.advanceTimersByTime(5_000);
    fake.answered("member-1");
    vi.advanceTimersByTime(CONSUMER_HEARTBEAT_INTERVAL_MS - 1);
    await fake.deliver(0, async () => undefined);
    expect(outcome).toBe("owned");
    await consumer.stop();
  });

  it("passes right after the join, which is itself the coordinator's answer", async () => {
    const consumer = await consume();
    fake.join("member-1", [0]);
    await fake.deliver(0, async () => undefined);
    expect(outcome).toBe("owned");
    await consumer.stop();
  });

  it("asks again after a shared heartbeat sent before a pause, and fails on the coordinator's answer", async () => {
    const consumer = await consume();
    fake.join("member-1", [0, 1]);
    // A heartbeat goes out and the coordinator answers at once; the process is paused 16 s (past the session
    // timeout) before it reads the answer, and the stalled batch's check shares that heartbeat. Asked again, the
    // coordinator, which evicted the member meanwhile, says so.
    const sent = Date.now();
    vi.advanceTimersByTime(16_000);
    const unknown = Object.assign(new Error("The coordinator is not aware of this member"), {
      type: "UNKNOWN_MEMBER_ID",
    });
    const answers = [async () => fake.answered("member-1", sent), async () => Promise.reject(unknown)];
    let asked = 0;
    await expect(fake.deliver(0, () => answers[asked++]!())).rejects.toBe(unknown); // kafkajs rejoins on it
    expect(asked).toBe(2);
    expect(outcome).toBeInstanceOf(OwnershipLost);
    expect(consumer.assignment().size).toBe(0);
    await consumer.stop();
  });

  it("confirms afresh a live member whose heartbeat's answer was read late", async () => {
    const consumer = await consume();
    fake.join("member-1", [0]);
    // The answer to a heartbeat sent 3 s ago is read only now (an event loop busy meanwhile): too old to stand on.
    const sent = Date.now();
    vi.advanceTimersByTime(3_000);
    const sentTimes: number[] = [];
    let asked = 0;
    const delivered = await fake.deliver(0, async () => {
      if (outcome !== undefined) return; // the heartbeat after the batch, not the check's
      asked++;
      // kafkajs sends no heartbeat within an interval of reading the last answer: the second ask is a fresh one.
      const at = asked === 1 ? sent : Date.now();
      sentTimes.push(at);
      fake.answered("member-1", at);
    });
    expect(outcome).toBe("owned");
    expect(delivered.resolved).toEqual(["41"]);
    expect(asked).toBe(2);
    expect(sentTimes[1]! - sentTimes[0]!).toBeGreaterThanOrEqual(3_000 + CONSUMER_HEARTBEAT_INTERVAL_MS);
    await consumer.stop();
  });

  it("fails when kafkajs resolves every heartbeat without a request and the last confirmation is old", async () => {
    const consumer = await consume();
    fake.join("member-1", [0]);
    fake.answered("member-1");
    vi.advanceTimersByTime(16_000);
    let asked = 0;
    const delivered = await fake.deliver(0, async () => {
      asked++;
    });
    expect(outcome).toBeInstanceOf(OwnershipLost);
    expect(asked).toBe(3);
    expect(delivered.resolved).toEqual([]);
    await consumer.stop();
  });

  it("abandons only the batch on a heartbeat timeout, and every partition on an answer that ends the membership", async () => {
    const consumer = await consume();
    fake.join("member-1", [0, 1]);
    const timeout = Object.assign(new Error("Request Heartbeat(key: 12, version: 3) timed out"), {
      name: "KafkaJSRequestTimeoutError",
    });
    await expect(
      fake.deliver(0, async () => {
        throw timeout;
      }),
    ).rejects.toBe(timeout); // back to kafkajs, which fetches again with the same membership
    expect(outcome).toBeInstanceOf(OwnershipLost);
    expect(consumer.assignment().get(TOPIC)).toEqual([0, 1]);
    vi.advanceTimersByTime(2_000);
    await fake.deliver(1, async () => fake.answered("member-1"));
    expect(outcome).toBe("owned");

    const unknown = Object.assign(new Error("The coordinator is not aware of this member"), {
      type: "UNKNOWN_MEMBER_ID",
    });
    await expect(
      fake.deliver(1, async () => {
        throw unknown;
      }),
    ).rejects.toBe(unknown); // kafkajs rejoins on it
    expect(consumer.assignment().size).toBe(0);
    // Until the next join, nothing passes, whatever kafkajs answers.
    await fake.deliver(0, async () => undefined);
    expect(outcome).toBeInstanceOf(OwnershipLost);
    fake.join("member-2", [0]);
    await fake.deliver(0, async () => undefined);
    expect(outcome).toBe("owned");
    await consumer.stop();
  });

  it("fails when the answered heartbeat is the rejoining member's, under its new member id", async () => {
    const consumer = await consume();
    fake.join("member-1", [0]);
    vi.advanceTimersByTime(16_000);
    const delivered = await fake.deliver(0, async () => fake.answered("member-2"));
    expect(outcome).toBeInstanceOf(OwnershipLost);
    expect(delivered.resolved).toEqual([]);
    // Once the rejoin completes, the new member's answers count.
    fake.join("member-2", [0]);
    vi.advanceTimersByTime(3_000);
    await fake.deliver(0, async () => fake.answered("member-2"));
    expect(outcome).toBe("owned");
    await consumer.stop();
  });

  it("fails just past one interval and the slack without a confirmation, and reports that age as the coordinator's", async () => {
    const consumer = await consume();
    fake.join("member-1", [0]);
    fake.answered("member-1");
    vi.advanceTimersByTime(CONSUMER_HEARTBEAT_INTERVAL_MS + 1001);
    expect(consumer.heartbeatAgeMs()).toBe(CONSUMER_HEARTBEAT_INTERVAL_MS + 1001);
    await fake.deliver(0, async () => undefined);
    expect(outcome).toBeInstanceOf(OwnershipLost);
    expect((outcome as OwnershipLost).message).toMatch(/confirmation of this member was asked \d+ ms ago/);
    await consumer.stop();
  });
});
