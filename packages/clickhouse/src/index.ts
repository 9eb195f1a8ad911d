export { type CapSignalRow, capSignalsOfPeriod, insertCapSignals } from "./cap-signals.js";
export {
  type ClickHouse,
  type ClickHouseClient,
  type ClickHouseOptions,
  createClickHouse,
  DEFAULT_DATABASE,
} from "./client.js";
export { MIGRATIONS_DIR, type Migration, migrate, readMigrations } from "./migrations.js";
export { insertPolicyVersion, latestPolicies, type PolicyVersionRow } from "./policy-versions.js";
export {
  insertSpendDaily,
  orgSpend,
  rebuildRollup,
  SPEND_GROUPS,
  type SpendDailyRow,
  type SpendGroup,
  type SpendRow,
  type UserPeriodSpend,
  userSpendBetween,
} from "./spend-daily.js";
export {
  batchesMissingRollup,
  existingEventIds,
  insertUsageEvents,
  latestSeatTiers,
  type UsageEventRow,
} from "./usage-events.js";
