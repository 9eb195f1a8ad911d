/**
 * What `patches/kafkajs+2.2.4.patch` changes in kafkajs's transaction manager (eosManager): a transaction asks for
 * its coordinators once, not before each of its requests, and a coordinator that moved or failed is asked for again;
 * a coordinator still completing the previous transaction (CONCURRENT_TRANSACTIONS) is asked again within
 * milliseconds instead of through the send's retrier, and only while the transaction the request was made for is
 * still open. The cluster here is a stand-in that records every lookup and every request, so each expectation
 * counts what a real broker would have received (`test/kafkajs-transactions.integration.test.ts` runs transactions
 * against a real one).
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
  abort(): Promise<void>;
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
type Api = "addPartitionsToTxn" | "addOffsetsToTxn" | "txnOffsetCommit" | "endTxn";

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
  /** Every request sent, answered or not. */
  const sent: string[] = [];
  /** How many more requests of each kind the coordinator refuses with CONCURRENT_TRANSACTIONS. */
  const busy: { refusals: Partial<Record<Api, number>>; refused: number } = { refusals: {}, refused: 0 };
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
        sent.push(`${api}@${nodeId}`);
        const refusals = busy.refusals[api] ?? 0;
        if (refusals > 0) {
          busy.refusals[api] = refusals - 1;
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
  return { cluster, coordinator, lookups, handled, sent, failNext, busy };
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

  it("sends a refused request once more only, and forgets a coordinator that refused it", async () => {
    const { eos, lookups, sent, coordinator, failNext } = await setup();
    await transaction(eos, 0);
    coordinator[TRANSACTION] = 0;
    failNext.set(0, notCoordinator());
    lookups.length = 0;
    sent.length = 0;
    eos.beginTransaction();
    await expect(eos.addPartitionsToTransaction([{ topic: "out", partitions: [{ partition: 2 }] }])).rejects.toThrow(
      "not it",
    );
    expect(sent).toEqual(["addPartitionsToTxn@1", "addPartitionsToTxn@0"]);
    await eos.addPartitionsToTransaction([{ topic: "out", partitions: [{ partition: 2 }] }]);
    expect(lookups).toEqual([TRANSACTION, TRANSACTION]);
    expect(sent.at(-1)).toBe("addPartitionsToTxn@0");
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
    const { eos, lookups, sent, failNext } = await setup();
    await transaction(eos, 0);
    failNext.set(1, new Error("connection closed"));
    eos.beginTransaction();
    await expect(eos.addPartitionsToTransaction([{ topic: "out", partitions: [{ partition: 1 }] }])).rejects.toThrow();
    lookups.length = 0;
    sent.length = 0;
    failNext.set(1, notCoordinator());
    await expect(eos.addPartitionsToTransaction([{ topic: "out", partitions: [{ partition: 1 }] }])).rejects.toThrow(
      "not it",
    );
    // One lookup (the remembered coordinator was forgotten after the failure), one request, no resend.
    expect(lookups).toEqual([TRANSACTION]);
    expect(sent).toEqual(["addPartitionsToTxn@1"]);
  });

  it("asks a coordinator still completing the previous transaction again, without a new lookup", async () => {
    const { eos, lookups, handled, busy } = await setup();
    await transaction(eos, 0);
    lookups.length = 0;
    handled.length = 0;
    busy.refusals = { addPartitionsToTxn: 3 };
    await transaction(eos, 1);
    expect(busy.refused).toBe(3);
    expect(lookups).toEqual([]);
    expect(handled).toEqual(["addPartitionsToTxn@1", "addOffsetsToTxn@1", "txnOffsetCommit@2", "endTxn@1"]);
  });

  it("does the same for AddOffsetsToTxn, the first request of a transaction that sends no records", async () => {
    const { eos, handled, busy } = await setup();
    await transaction(eos, 0);
    handled.length = 0;
    busy.refusals = { addOffsetsToTxn: 2 };
    eos.beginTransaction();
    await eos.sendOffsets({
      consumerGroupId: "g",
      topics: [{ topic: "in", partitions: [{ partition: 0, offset: "11" }] }],
    });
    await eos.commit();
    expect(busy.refused).toBe(2);
    expect(handled).toEqual(["addOffsetsToTxn@1", "txnOffsetCommit@2", "endTxn@1"]);
  });

  it("hands a coordinator that stays busy back to the caller after about a second of waiting", async () => {
    const { eos, busy } = await setup();
    busy.refusals = { addPartitionsToTxn: 1000 };
    eos.beginTransaction();
    await expect(eos.addPartitionsToTransaction([{ topic: "out", partitions: [{ partition: 0 }] }])).rejects.toThrow(
      "still completing",
    );
    // Waits of 5, 10, 20, 40, then 50 ms until 1,000 ms have passed: 75 + 19 × 50 = 1,025 ms after 23 waits, so the
    // 24th refusal goes back to the caller.
    expect(busy.refused).toBe(24);
  });

  it("drops a retried request whose transaction was aborted meanwhile, and does not count it in the next one", async () => {
    const { eos, sent, busy } = await setup();
    await transaction(eos, 0);
    busy.refusals = { addPartitionsToTxn: 1000 };
    eos.beginTransaction();
    const stale = eos.addPartitionsToTransaction([{ topic: "out", partitions: [{ partition: 5 }] }]);
    stale.catch(() => {});
    while (busy.refused < 2) await new Promise((r) => setTimeout(r, 1));
    // The caller gives up on the transaction (nothing was added to it: no EndTxn) and begins the next one.
    await eos.abort();
    eos.beginTransaction();
    busy.refusals = {};
    await expect(stale).rejects.toThrow("The transaction ended while one of its requests was being retried");
    // Partition 5 is not taken for part of the new transaction: adding it sends a request.
    sent.length = 0;
    await eos.addPartitionsToTransaction([{ topic: "out", partitions: [{ partition: 5 }] }]);
    expect(sent).toEqual(["addPartitionsToTxn@1"]);
  });
});
