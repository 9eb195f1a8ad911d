export {
  ALERT_STATES,
  type AlertIdentity,
  type AlertRow,
  type AlertState,
  alertIdentities,
  alertIdentitiesSince,
  alertStateCounts,
  alertsByIds,
  alertsOfPeriod,
  chDateTime,
  dueAlertOrgs,
  dueAlerts,
  insertAlertPublications,
  insertAlerts,
  parseChDateTime,
  publishedAlertIds,
} from "./alerts.js";
export {
  type ActiveUserCounts,
  type ActiveUsers,
  activeUsers,
  dailyTrends,
  type ExportRow,
  exportRows,
  type LateEventRow,
  type ReconciliationData,
  type ReconciliationUserRow,
  reconciliation,
  type SourceTotals,
  TOP_USERS_BY,
  type TopUserRow,
  type TopUsersBy,
  TREND_GROUPS,
  type TrendGroup,
  type TrendRow,
  topUsers,
} from "./analytics.js";
export { type ApiKeyRow, findApiKeys, insertApiKey, insertApiKeyUsage, keysLastUsed } from "./api-keys.js";
export { type CapSignalRow, capSignalsOfPeriod, insertCapSignals, type SignalKind } from "./cap-signals.js";
export {
  type ClickHouse,
  type ClickHouseClient,
  type ClickHouseOptions,
  createClickHouse,
  DEFAULT_DATABASE,
} from "./client.js";
export { type ControlChangeRow, controlChangesOf, insertControlChanges } from "./control-changes.js";
export {
  type ControlRejectRow,
  controlRejects,
  deadLetteredVersions,
  insertControlRejects,
} from "./control-rejects.js";
export {
  type AutoReloadRow,
  type CreditLedgerRow,
  type CreditSummary,
  creditEntry,
  creditEntryCounts,
  creditEntryId,
  creditLedger,
  creditSummaries,
  insertAutoReload,
  insertAutoReloads,
  insertCreditEntries,
  latestAutoReloads,
  latestCreditStatuses,
  reloadedInPeriod,
} from "./credits.js";
export {
  type ClickHouseFault,
  clickHouseFaultsFromEnv,
  currentClickHouseFault,
  FAULT_CLICKHOUSE_FILE_ENV,
  INJECTED_READ_FAILURE,
  INJECTED_WRITE_FAILURE,
  withClickHouseFaults,
} from "./faults.js";
export { type DailyNetSpendRow, dailyNetSpend, type FirstUsageRow, firstUsageBetween } from "./forecast.js";
export { openClickHouse } from "./from-env.js";
export {
  type InvoiceDocumentLineRow,
  type InvoiceDocumentRow,
  type InvoicedUsageRow,
  insertInvoiceDocument,
  invoiceDocument,
  invoicedUsage,
  type MonthUsageRow,
  monthUsage,
  orgMonthsWithUsage,
} from "./invoices.js";
export { tuneMerges } from "./merge-tuning.js";
export { MIGRATIONS_DIR, type Migration, migrate, readMigrations } from "./migrations.js";
export { allOrgIds, insertOrgs } from "./orgs.js";
export {
  insertPolicyVersion,
  insertPolicyVersions,
  latestPolicies,
  type PolicyVersionRow,
} from "./policy-versions.js";
export {
  COST_REPORT_GROUPS,
  type CostReportGroup,
  type CostReportRow,
  costReport,
  USAGE_REPORT_GROUPS,
  type UsageReportGroup,
  type UsageReportRow,
  usageReport,
} from "./reports.js";
export {
  awaitRunningRollupInserts,
  insertSpendDaily,
  orgSpend,
  ROLLUP_QUERY_PREFIX,
  rebuildRollup,
  runningRollupInserts,
  SPEND_GROUPS,
  type SpendDailyRow,
  type SpendGroup,
  type SpendRow,
  type UserPeriodSpend,
  userSpendBetween,
} from "./spend-daily.js";
export {
  batchesMissingRollup,
  countEventsSince,
  existingEventIds,
  forEachEventIdSince,
  insertUsageEvents,
  latestSeatTiers,
  USAGE_EVENT_COLUMNS,
  type UsageEventRow,
} from "./usage-events.js";
export { upsertWebhook, type WebhookRow, webhooksOf } from "./webhooks.js";
