export {
  type Allowance,
  allowanceFor,
  type CapsReport,
  entityStatus,
  evaluateCaps,
  highestThresholdReached,
  type SpendSnapshot,
  type Status,
  type UserCap,
  userCap,
} from "./caps.js";
export { canonicalDecimal, canonicalLimit } from "./decimal.js";
export { type EffectiveLimit, type EffectiveLimitSource, effectiveUserLimit, userSeatTier } from "./limits.js";
export {
  DEFAULT_THRESHOLDS,
  defaultPolicy,
  type LimitValue,
  type ParsePolicyResult,
  type Policy,
  type PolicyError,
  parsePolicy,
} from "./policy.js";
