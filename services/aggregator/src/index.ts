export {
  type Aggregator,
  type AggregatorDeps,
  type ControlChange,
  type ControlView,
  createAggregator,
  type StallPhase,
} from "./aggregator.js";
export { type AggregatorEnv, aggregatorEnvSchema, loadAggregatorEnv } from "./env.js";
export { type AggregatorService, controlView, startAggregatorService } from "./main.js";
export { type AggregatorMetrics, createAggregatorMetrics } from "./metrics.js";
export { loadPartition, type PartitionState, SeenIds } from "./partition.js";
export { type CapSignal, signalId } from "./signals.js";
export { type EntityTransition, SpendState } from "./state.js";
export {
  accountStep,
  batchIdentity,
  decodeStep,
  dedupStep,
  pricedEventProblem,
  recordRows,
  writeEvents,
  writeRollups,
} from "./steps.js";
export { type Mark, NO_MARK, quietMark, type Transition, transition } from "./transitions.js";
