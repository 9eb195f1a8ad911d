export {
  type Aggregator,
  type AggregatorDeps,
  createAggregator,
  loadSpendState,
  type SpendControl,
} from "./aggregator.js";
export { type AggregatorEnv, aggregatorEnvSchema, loadAggregatorEnv } from "./env.js";
export { type AggregatorMetrics, createAggregatorMetrics } from "./metrics.js";
export { type CapSignal, signalId } from "./signals.js";
export { createSpendView, type SpendView } from "./spend-view.js";
export { type EntityTransition, SpendState } from "./state.js";
export { type Mark, NO_MARK, quietMark, type Transition, transition } from "./transitions.js";
