export {
  BOUNDARY_PROMPT_RATE,
  DATED_MODEL_IDS,
  DUPLICATE_LOOKBACK,
  generateEventArray,
  generateEvents,
  LATE_WINDOW_DAYS,
  LONG_CONTEXT_THRESHOLD,
  MODEL_IDS,
  REGIONS,
  type WorkloadOptions,
  ZERO_TOKEN_RATE,
} from "./generate.js";
