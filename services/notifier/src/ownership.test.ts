import { describe, expect, it } from "vitest";
import { createOwnershipTracker } from "./ownership.js";

const TOPIC = "spend.signals.v1";
// Keys whose partition on a 4-partition topic is known from Kafka's reference murmur2 values (Java client's
// Utils.murmur2 test vectors): (hash & 0x7fffffff) % 4.
const ON = { p0: "21", p1: "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", p2: "foobar", p3: "abc" };

function tracker(options: { count?: () => Promise<number> } = {}) {
  let age = 0;
  let counts = 0;
  const t = createOwnershipTracker({
    topic: TOPIC,
    heartbeatAgeMs: () => age,
    leaseMs: 5000,
    writeWindowMs: 7500,
    partitionCount:
      options.count ??
      (async () => {
        counts++;
        return 4;
      }),
  });
  return {
    t,
    setAge: (ms: number) => {
      age = ms;
    },
    counts: () => counts,
  };
}

describe("ownership tracker", () => {
  it("owns nothing before an assignment, or with no partition of the topic", async () => {
    const { t } = tracker();
    expect(await t.current()).toBeUndefined();
    t.assigned(new Map([["other.topic", [0, 1]]]));
    expect(await t.current()).toBeUndefined();
  });

  it("owns the orgs whose signals land on the assigned partitions", async () => {
    const { t } = tracker();
    t.assigned(new Map([[TOPIC, [1, 3]]]));
    const own = (await t.current())!;
    expect(own.partitions).toEqual([1, 3]);
    expect(own.partitionCount).toBe(4);
    expect([ON.p0, ON.p1, ON.p2, ON.p3].map((org) => own.owns(org))).toEqual([false, true, false, true]);
    expect(own.held()).toBe(true);
  });

  it("two members with complementary assignments own every org exactly once", async () => {
    const a = tracker().t;
    const b = tracker().t;
    a.assigned(new Map([[TOPIC, [0, 2]]]));
    b.assigned(new Map([[TOPIC, [1, 3]]]));
    const [ownA, ownB] = [(await a.current())!, (await b.current())!];
    for (let i = 0; i < 500; i++) {
      const org = `org_${i}`;
      expect(Number(ownA.owns(org)) + Number(ownB.owns(org))).toBe(1);
    }
  });

  it("stops holding when the assignment changes, and reads the partition count once per assignment", async () => {
    const { t, counts } = tracker();
    t.assigned(new Map([[TOPIC, [0, 1, 2, 3]]]));
    const first = (await t.current())!;
    await t.current();
    expect(counts()).toBe(1);
    t.assigned(new Map());
    expect(first.held()).toBe(false);
    expect(await t.current()).toBeUndefined();
    t.assigned(new Map([[TOPIC, [2]]]));
    expect(first.held()).toBe(false); // a new generation, even though partition 2 is in both
    const second = (await t.current())!;
    expect(second.owns(ON.p2)).toBe(true);
    expect(second.owns(ON.p0)).toBe(false);
    expect(counts()).toBe(2);
  });

  it("lets the lease lapse when the coordinator has not answered for half a session", async () => {
    const { t, setAge } = tracker();
    t.assigned(new Map([[TOPIC, [0]]]));
    const own = (await t.current())!;
    setAge(4999);
    expect(own.held()).toBe(true);
    setAge(5000);
    expect(own.held()).toBe(false);
    expect(await t.current()).toBeUndefined();
    setAge(10); // a heartbeat answered again: the same assignment holds again
    expect(own.held()).toBe(true);
  });

  it("lets outcomes of POSTs made under the lease be stored a while past it, never past a rebalance", async () => {
    const { t, setAge } = tracker();
    t.assigned(new Map([[TOPIC, [0]]]));
    const own = (await t.current())!;
    setAge(6000);
    expect(own.held()).toBe(false);
    expect(own.writable()).toBe(true);
    setAge(7500);
    expect(own.writable()).toBe(false);
    setAge(10);
    expect(own.writable()).toBe(true);
    t.assigned(new Map([[TOPIC, [0]]])); // a rebalance, even one that gives back the same partition
    expect(own.held()).toBe(false);
    expect(own.writable()).toBe(false);
  });

  it("owns nothing when the assignment changes while the partition count is being read", async () => {
    let release: (n: number) => void = () => undefined;
    const { t } = tracker({ count: () => new Promise<number>((r) => (release = r)) });
    t.assigned(new Map([[TOPIC, [0]]]));
    const pending = t.current();
    t.assigned(new Map([[TOPIC, [1]]]));
    release(4);
    expect(await pending).toBeUndefined();
  });

  it("uses the partition count of the topic as it is now", async () => {
    const { t } = tracker({ count: async () => 12 });
    t.assigned(new Map([[TOPIC, [0]]]));
    const own = (await t.current())!;
    // (hash & 0x7fffffff) % 12 of the reference keys: 0, 5, 6, 3 — only "21" lands on partition 0.
    expect([ON.p0, ON.p1, ON.p2, ON.p3].map((org) => own.owns(org))).toEqual([true, false, false, false]);
  });
});
