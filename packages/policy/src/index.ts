export { gatesProducts, productAllowed, productsOf } from "./access.js";
export {
  type Allowance,
  allowanceFor,
  type BlockedBy,
  type CapsReport,
  entityStatus,
  evaluateCaps,
  highestThresholdReached,
  type SpendSnapshot,
  type Status,
  type UserCap,
  userCap,
} from "./caps.js";
export {
  type AutoReload,
  applyPurchase,
  armedAfterLoad,
  balanceOf,
  type CreditAccount,
  type CreditAction,
  emptyAccount,
  type ParseResult,
  parseAutoReload,
  parsePurchase,
  stepCredits,
} from "./credits.js";
export { type EffectiveLimit, type EffectiveLimitSource, effectiveUserLimit, userSeatTier } from "./limits.js";
export {
  DEFAULT_THRESHOLDS,
  defaultPolicy,
  type LimitValue,
  type ParsePolicyResult,
  type Policy,
  type PolicyError,
  parsePolicy,
  policySchema,
} from "./policy.js";
export {
  type OrgSnapshot,
  type SeatInForce,
  seatsInForce,
  snapshotAllowance,
  snapshotCaps,
} from "./snapshot.js";
