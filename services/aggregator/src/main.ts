/**
 * The aggregator service: config → wiring → run → stop. `startAggregatorService` wires the process's control
 * follower (usage.control.v1, read in full), the control recorder (history into ClickHouse) and USAGE_MEMBERS
 * members of the consumer group; `usagectl run aggregator` and `usagectl start` compose it.
 */
import type { ClickHouseClient } from "@usage/clickhouse";
import { type ControlFollower, createControlFollower, createControlRecorder } from "@usage/control";
import type { Kafka } from "@usage/kafka";
import type { Logger } from "@usage/runtime";
import type { Registry } from "prom-client";
import { type Aggregator, type ControlView, createAggregator } from "./aggregator.js";
import type { AggregatorEnv } from "./env.js";
import { createAggregatorMetrics } from "./metrics.js";

export interface AggregatorService {
  members: Aggregator[];
  follower: ControlFollower;
  /** Adds one more member to the group (a member joining); `kafka`: a client of its own (tests). */
  addMember(options?: { kafka?: Kafka }): Promise<Aggregator>;
  /** Stops one member (a member leaving); the others take its partitions at the rebalance. */
  removeMember(member: Aggregator): Promise<void>;
  isHealthy(): boolean;
  stop(): Promise<void>;
}

/** The control plane as the aggregator reads it. */
export function controlView(follower: ControlFollower): ControlView {
  return {
    policy: (orgId) => follower.policy(orgId),
    autoReload: (orgId) => follower.autoReload(orgId),
    orgIds: () => follower.orgIds(),
    contract: (orgId) => follower.contract(orgId),
    seats: (orgId) => follower.seats(orgId),
    limitRequests: (orgId) => follower.limitRequests(orgId),
  };
}

export async function startAggregatorService(deps: {
  env: Pick<
    AggregatorEnv,
    "USAGE_AGGREGATOR_GROUP" | "USAGE_BACKFILL_DAYS" | "USAGE_FORECAST_INTERVAL_MS" | "USAGE_MEMBERS"
  >;
  kafka: Kafka;
  clickhouse: ClickHouseClient;
  logger: Logger;
  registry: Registry;
  /** A follower the process already runs (the API's); else one of its own. */
  follower?: ControlFollower;
  now?: () => number;
  onFatal?: (err: Error) => void;
}): Promise<AggregatorService> {
  const { env } = deps;
  const ownFollower = deps.follower === undefined;
  const follower = deps.follower ?? createControlFollower({ kafka: deps.kafka, logger: deps.logger });
  const metrics = createAggregatorMetrics(deps.registry, { group: env.USAGE_AGGREGATOR_GROUP });
  const members: Aggregator[] = [];
  let next = 0;
  const build = (kafka: Kafka = deps.kafka) =>
    createAggregator({
      kafka,
      clickhouse: deps.clickhouse,
      logger: deps.logger,
      metrics,
      groupId: env.USAGE_AGGREGATOR_GROUP,
      backfillDays: env.USAGE_BACKFILL_DAYS,
      forecastMs: env.USAGE_FORECAST_INTERVAL_MS,
      control: controlView(follower),
      member: next++,
      now: deps.now,
      onFatal: deps.onFatal,
    });
  // Every change, in log order, to every member: the one owning the org's partition applies it.
  const unsubscribe = follower.onChange(async (change) => {
    for (const m of members) await m.onControlChange(change);
  });
  if (ownFollower) await follower.start();
  const recorder = createControlRecorder({
    kafka: deps.kafka,
    clickhouse: deps.clickhouse,
    logger: deps.logger,
    groupId: `${env.USAGE_AGGREGATOR_GROUP}-control-history`,
    onFatal: deps.onFatal,
  });
  await recorder.start();
  const started: Aggregator[] = [];
  try {
    for (let i = 0; i < env.USAGE_MEMBERS; i++) {
      const m = build();
      members.push(m);
      await m.start();
      started.push(m);
    }
  } catch (err) {
    for (const m of started) await m.stop().catch(() => undefined);
    await recorder.stop().catch(() => undefined);
    throw err;
  }
  return {
    members,
    follower,
    async addMember(options = {}) {
      const m = build(options.kafka);
      members.push(m);
      await m.start();
      return m;
    },
    async removeMember(member) {
      const i = members.indexOf(member);
      if (i >= 0) members.splice(i, 1);
      await member.stop();
    },
    isHealthy: () => members.length > 0 && members.every((m) => m.isHealthy()),
    async stop() {
      unsubscribe();
      await Promise.all(members.map((m) => m.stop()));
      await recorder.stop();
      if (ownFollower) await follower.stop();
    },
  };
}
