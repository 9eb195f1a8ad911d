/**
 * What `patches/kafkajs+2.2.4.patch` changes in kafkajs's transaction manager (eosManager): a transaction asks for
 * its coordinators once, not before each of its requests, and a coordinator that moved or failed is asked for again;
 * a coordinator still completing the previous transaction (CONCURRENT_TRANSACTIONS) is asked again within
 * milliseconds instead of through the send's retrier. The cluster here is a stand-in that records every lookup and every request, so each
 * expectation counts what a real broker would have received (`test/produce-consume.integration.test.ts` runs the
 * same transactions against a real one).
 */
import { createRequire } from "node:module";
import { describe, expect, it } from "vitest";

const require = createRequire(import.meta.url);

type Request = (args: Record<string, unknown>) => Promise<unknown>;
interface FakeBroker {
  nodeId: number;
  initProducerId: Request;
  addPartitionsToTxn: Request;
  addOffsetsToTxn: Request;
  txnOffsetCommit: Request;
  endTxn: Request;
}
interface EosManager {
  initProducerId(): Promise<void>;
  beginTransaction(): void;
  addPartitionsToTransaction(topicData: { topic: string; partitions: { partition: number }[] }[]): Promise<void>;
  sendOffsets(args: {
    consumerGroupId: string;
    topics: { topic: string; partitions: { partition: number; offset: string }[] }[];
  }): Promise<void>;
  commit(): Promise<void>;
}
const createEosManager = require("kafkajs/src/producer/eosManager/index.js") as (args: {
  logger: Record<string, () => void>;
  cluster: unknown;
  transactional: boolean;
  transactionalId: string;
}) => EosManager;
const { KafkaJSProtocolError } = require("kafkajs/src/errors.js") as {
  KafkaJSProtocolError: new (e: { type: string; code: number; retriable: boolean; message: string }) => Error;
};

const TRANSACTION = 1;
const GROUP = 0;
const notCoordinator = () =>
  new KafkaJSProtocolError({ type: "NOT_COORDINATOR_FOR_GROUP", code: 16, retriable: true, message: "not it" });
const concurrent = () =>
  new KafkaJSProtocolError({ type: "CONCURRENT_TRANSACTIONS", code: 51, retriable: true, message: "still completing" });

/**
 * Brokers 0..2; `coordinator[type]` says which is the coordinator now. A broker that is not answers
 * NOT_COORDINATOR_FOR_GROUP, as Kafka does; `failNext` makes a broker's next request fail with the given error.
 */
function fakeCluster() {
  const coordinator: Record<number, number> = { [TRANSACTION]: 1, [GROUP]: 2 };
  const lookups: number[] = [];
  const handled: string[] = [];
  const failNext = new Map<number, Error>();
  /** How many more AddPartitionsToTxn requests the coordinator refuses with CONCURRENT_TRANSACTIONS. */
  const busy = { refusals: 0, refused: 0 };
  const broker = (nodeId: number, type: number | undefined): Request => {
    return async () => {
      const planned = failNext.get(nodeId);
      if (planned) {
        failNext.delete(nodeId);
        throw planned;
      }
      if (type !== undefined && coordinator[type] !== nodeId) throw notCoordinator();
      return { producerId: 7, producerEpoch: 0 };
    };
  };
  const brokers: FakeBroker[] = [0, 1, 2].map((nodeId) => {
    const b: FakeBroker = {
      nodeId,
      initProducerId: broker(nodeId, TRANSACTION),
      addPartitionsToTxn: broker(nodeId, TRANSACTION),
      addOffsetsToTxn: broker(nodeId, TRANSACTION),
      txnOffsetCommit: broker(nodeId, GROUP),
      endTxn: broker(nodeId, TRANSACTION),
    };
    for (const api of ["addPartitionsToTxn", "addOffsetsToTxn", "txnOffsetCommit", "endTxn"] as const) {
      const send = b[api];
      b[api] = async (args) => {
        if (api === "addPartitionsToTxn" && busy.refusals > 0) {
          busy.refusals--;
          busy.refused++;
          throw concurrent();
        }
        const answer = await send(args);
        handled.push(`${api}@${nodeId}`);
        return answer;
      };
    }
    return b;
  });
  const cluster = {
    retry: { retries: 3, initialRetryTime: 1, maxRetryTime: 5 },
    refreshMetadataIfNecessary: async () => {},
    refreshMetadata: async () => {},
    findBroker: async ({ nodeId }: { nodeId: number }) => brokers[nodeId],
    findGroupCoordinator: async ({ coordinatorType }: { coordinatorType: number }) => {
      lookups.push(coordinatorType);
      return brokers[coordinator[coordinatorType]!];
    },
  };
  return { cluster, coordinator, lookups, handled, failNext, busy };
}

const quiet = { debug: () => {}, info: () => {}, warn: () => {}, error: () => {} };

async function setup() {
  const fake = fakeCluster();
  const eos = createEosManager({ logger: quiet, cluster: fake.cluster, transactional: true, transactionalId: "tx" });
  await eos.initProducerId();
  return { ...fake, eos };
}

/** One transaction as the pricing worker makes it: a partition added, the offsets sent, the commit. */
async function transaction(eos: EosManager, partition: number) {
  eos.beginTransaction();
  await eos.addPartitionsToTransaction([{ topic: "out", partitions: [{ partition }] }]);
  await eos.sendOffsets({
    consumerGroupId: "g",
    topics: [{ topic: "in", partitions: [{ partition, offset: "10" }] }],
  });
  await eos.commit();
}

describe("kafkajs transaction coordinators (patched eosManager)", () => {
  it("asks for each coordinator once over many transactions, and every request reaches the coordinator", async () => {
    const { eos, lookups, handled } = await setup();
    for (let i = 0; i < 5; i++) await transaction(eos, i);
    // The original: one lookup at init, then four in each transaction (21 in all).
    expect(lookups).toEqual([TRANSACTION, GROUP]);
    const perTransaction = ["addPartitionsToTxn@1", "addOffsetsToTxn@1", "txnOffsetCommit@2", "endTxn@1"];
    expect(handled).toEqual(Array.from({ length: 5 }, () => perTransaction).flat());
  });

  it("sends a request refused by a coordinator that moved once more, to the coordinator found afresh", async () => {
    const { eos, lookups, handled, coordinator } = await setup();
    await transaction(eos, 0);
    coordinator[TRANSACTION] = 0;
    coordinator[GROUP] = 1;
    handled.length = 0;
    lookups.length = 0;
    await transaction(eos, 1);
    expect(handled).toEqual(["addPartitionsToTxn@0", "addOffsetsToTxn@0", "txnOffsetCommit@1", "endTxn@0"]);
    expect(lookups).toEqual([TRANSACTION, GROUP]);
  });

  it("throws any other error, and asks for the coordinator again at the next request", async () => {
    const { eos, lookups, handled, failNext } = await setup();
    await transaction(eos, 0);
    lookups.length = 0;
    handled.length = 0;
    failNext.set(1, new Error("connection closed"));
    eos.beginTransaction();
    await expect(eos.addPartitionsToTransaction([{ topic: "out", partitions: [{ partition: 3 }] }])).rejects.toThrow(
      "connection closed",
    );
    expect(handled).toEqual([]);
    expect(lookups).toEqual([]);
    await eos.addPartitionsToTransaction([{ topic: "out", partitions: [{ partition: 3 }] }]);
    expect(lookups).toEqual([TRANSACTION]);
    expect(handled).toEqual(["addPartitionsToTxn@1"]);
  });

  it("does not resend a refusal from a coordinator it has just looked up", async () => {
    const { eos, lookups, handled, failNext } = await setup();
    await transaction(eos, 0);
    failNext.set(1, new Error("connection closed"));
    eos.beginTransaction();
    await expect(eos.addPartitionsToTransaction([{ topic: "out", partitions: [{ partition: 1 }] }])).rejects.toThrow();
    lookups.length = 0;
    failNext.set(1, notCoordinator());
    await expect(eos.addPartitionsToTransaction([{ topic: "out", partitions: [{ partition: 1 }] }])).rejects.toThrow(
      "not it",
    );
    // One lookup (the remembered coordinator was forgotten after the failure), one request, no resend.
    expect(lookups).toEqual([TRANSACTION]);
    expect(handled.filter((h) => h.startsWith("addPartitionsToTxn")).length).toBe(1);
  });

  it("asks a coordinator still completing the previous transaction again, without a new lookup", async () => {
    const { eos, lookups, handled, busy } = await setup();
    await transaction(eos, 0);
    lookups.length = 0;
    handled.length = 0;
    busy.refusals = 3;
    await transaction(eos, 1);
    expect(busy.refused).toBe(3);
    expect(lookups).toEqual([]);
    expect(handled).toEqual(["addPartitionsToTxn@1", "addOffsetsToTxn@1", "txnOffsetCommit@2", "endTxn@1"]);
  });

  it("hands a coordinator that stays busy back to the send's retrier (101 refusals in a row)", async () => {
    const { eos, busy } = await setup();
    busy.refusals = 1000;
    eos.beginTransaction();
    await expect(eos.addPartitionsToTransaction([{ topic: "out", partitions: [{ partition: 0 }] }])).rejects.toThrow(
      "still completing",
    );
    expect(busy.refused).toBe(101);
  });
});
