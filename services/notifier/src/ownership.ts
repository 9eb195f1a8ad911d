/**
 * Which alerts a notifier member delivers (SPEC §12: each alert POSTed by one instance).
 *
 * Owned means: the org's spend.signals.v1 partition — the one Kafka's default partitioner (murmur2 of the org id,
 * over the topic's partition count as the brokers report it at this assignment) sends the org's signals to — is
 * assigned to this member's consumer right now. Every org has exactly one such partition and every partition one
 * member, so every due alert has one deliverer, including alerts whose `source_partition` says otherwise: one created
 * from a signal of an older topic layout (more or fewer partitions then), or by another consumer group replaying the
 * topic. Ownership by `source_partition` would leave an alert undelivered for good when its partition number no longer
 * exists, and split one org's alerts between members after a repartition. The org's own partition also keeps
 * delivery with the member that creates the org's alerts, so its kick delivers them (250 ms later, delivery.ts).
 *
 * Held means, on top of that: no rebalance, stop or crash was seen since the assignment, and the group coordinator
 * answered this member (a join or a heartbeat) less than half a session timeout ago. The coordinator evicts a member
 * one session timeout after the last heartbeat it received, and this member's clock starts later (at the answer), so
 * a member stalled or cut off from the broker stops delivering on its own before its partitions can be given to
 * another member — it does not need to hear of the rebalance first.
 *
 * The partition count is read once per assignment: kafkajs rejoins the group when a subscribed topic's partitions
 * change, so a new count comes with a new assignment. Members that read the count on either side of a change may
 * disagree about an org until that rejoin: a repeated POST at most, which receivers drop on alert_id.
 */
import { partitionOf } from "@usage/kafka";

export interface Ownership {
  /** This member delivers the alerts of this org. */
  owns(orgId: string): boolean;
  /** False once the assignment this was computed from is gone or no longer confirmed by the coordinator. */
  held(): boolean;
  /**
   * Whether the outcomes of POSTs made while `held()` may still be stored: no rebalance, stop or crash seen since the
   * assignment, and the coordinator answered less than `writeWindowMs` ago. Past the lease but inside that window the
   * coordinator cannot yet have evicted this member and given its partitions to another (it evicts one session
   * timeout after the last heartbeat it received, and a new owner needs a join round after that), so storing what
   * really happened does not race a new owner; dropping it would only make the new owner POST the same alerts again.
   */
  writable(): boolean;
  readonly partitions: readonly number[];
  readonly partitionCount: number;
}

export interface OwnershipTracker {
  /** The consumer's assignment changed (`onAssignment`). */
  assigned(assignment: Map<string, number[]>): void;
  /** What this member owns now; undefined while it holds no partition of the topic or its lease has lapsed. */
  current(): Promise<Ownership | undefined>;
}

export interface OwnershipDeps {
  topic: string;
  /** Milliseconds since the coordinator last answered this member (BatchConsumer.heartbeatAgeMs). */
  heartbeatAgeMs: () => number;
  /** How long an answer from the coordinator vouches for the assignment: less than the session timeout. */
  leaseMs: number;
  /**
   * How long after the coordinator's last answer the outcomes of POSTs already made may still be stored (see
   * `Ownership.writable`): at least leaseMs, and short of the session timeout by the time an insert takes. Default
   * leaseMs.
   */
  writeWindowMs?: number;
  /** The topic's partition count, from the brokers. */
  partitionCount: () => Promise<number>;
}

export function createOwnershipTracker(deps: OwnershipDeps): OwnershipTracker {
  let generation = 0;
  let partitions: number[] = [];
  let counted: { generation: number; count: number } | undefined;
  const fresh = () => deps.heartbeatAgeMs() < deps.leaseMs;

  return {
    assigned(assignment) {
      generation++;
      partitions = [...(assignment.get(deps.topic) ?? [])];
    },
    async current() {
      const at = generation;
      if (partitions.length === 0 || !fresh()) return undefined;
      if (counted?.generation !== at) {
        const count = await deps.partitionCount();
        if (at !== generation) return undefined;
        counted = { generation: at, count };
      }
      const count = counted.count;
      const mine = new Set(partitions);
      const orgs = new Map<string, boolean>();
      return {
        partitions: [...partitions],
        partitionCount: count,
        owns(orgId) {
          let owned = orgs.get(orgId);
          if (owned === undefined) {
            owned = mine.has(partitionOf(orgId, count));
            orgs.set(orgId, owned);
          }
          return owned;
        },
        held: () => at === generation && fresh(),
        writable: () => at === generation && deps.heartbeatAgeMs() < (deps.writeWindowMs ?? deps.leaseMs),
      };
    },
  };
}

/** Every org, always: one delivery loop over a whole database (tests, tools). */
export const OWNS_ALL: Ownership = {
  owns: () => true,
  held: () => true,
  writable: () => true,
  partitions: [],
  partitionCount: 0,
};
