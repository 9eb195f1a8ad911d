/**
 * The control plane (SPEC §12): every control change — policy, auto-reload settings, credit purchase notices,
 * webhook and API key notices, the contract, seat assignments, limit requests and invoice finalizations — is a record on usage.control.v1, a compacted topic of ONE partition that every
 * instance reads in full (a global table, as Kafka Streams' GlobalKTable). Publishers append; every process runs a
 * follower that applies the changes in log order; one recorder group writes the history into ClickHouse.
 *
 * VERSION = the record's offset in usage.control.v1 + 1. Why that is a version:
 *  - unique: the partition's leader gives every appended record its own offset, so two concurrent writes are two
 *    records with two versions, never one lost (the idempotent producer writes a retried send once, so one publish
 *    is one version);
 *  - ordered: with one partition the offsets are one total order over every org and kind, the order in which every
 *    follower applies the changes; of two changes to one key, the later in log order has the higher version and is
 *    the one in force everywhere;
 *  - survives compaction: the cleaner removes superseded records but never renumbers the ones it keeps, and the
 *    latest record of every key is kept, so the version in force is still the offset of a record in the log; new
 *    records continue from the end offset, which compaction never lowers, so a version is never reused;
 *  - + 1 so that 0 means "no change yet" (versions start at 1, as they did when they were max + 1 in ClickHouse).
 * It holds for the life of the topic: deleting and recreating usage.control.v1 restarts offsets at 0, so the topic
 * is never recreated (and stays at one partition; the follower refuses any other count).
 */
export {
  type ApiKeyChange,
  type AutoReloadChange,
  apiKeyChangeSchema,
  autoReloadChangeSchema,
  CHANGE_KINDS,
  type Change,
  type ChangeInput,
  type ChangeKind,
  CONTROL_TOPIC,
  type Contract,
  type ContractChange,
  type CreditPurchaseChange,
  changeSchema,
  contractSchema,
  controlKey,
  creditPurchaseChangeSchema,
  decodeRecord,
  encodeChange,
  type InvoiceFinalChange,
  KEY_ROLES,
  type KeyRole,
  type LimitRequestChange,
  offsetOfVersion,
  type ParseChangeResult,
  type PolicyChange,
  parseChange,
  policyChangeSchema,
  type SeatChange,
  type VersionedChange,
  versionOfOffset,
  type WebhookChange,
  webhookChangeSchema,
} from "./changes.js";
export {
  type ApiKeyState,
  type ChangeListener,
  type ContractState,
  type ControlFollower,
  type ControlFollowerDeps,
  ControlLagging,
  createControlFollower,
  type InvoiceFinalState,
  type LimitRequestState,
  type SeatState,
} from "./follower.js";
export { type ControlPublisher, createControlPublisher, InvalidChangeError } from "./publisher.js";
export { type ControlRecorder, type ControlRecorderDeps, createControlRecorder } from "./recorder.js";
