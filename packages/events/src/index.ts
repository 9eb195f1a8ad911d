export type { AlertPayload } from "./alerts.js";
export {
  AVRO_SCHEMA_DIR,
  type Decoded,
  decode,
  knownSchemas,
  pricedUsageEventV1,
  usageEventV1,
  type WireSchema,
} from "./codec.js";
export { crc64Avro } from "./fingerprint.js";
export * from "./model.js";
export {
  type CapSignal,
  capSignalSchema,
  type DecodedSignal,
  decodeSignal,
  SIGNAL_KINDS,
  type SignalKind,
  type SignalRejection,
} from "./signals.js";
export {
  type DecodedTotals,
  decodeTotals,
  type OrgTotals,
  orgTotalsSchema,
  type TotalsRecord,
  totalsKey,
  totalsRecordSchema,
  type UserTotals,
  userTotalsSchema,
} from "./totals.js";
export {
  DEFAULT_BACKFILL_DAYS,
  MAX_FUTURE_MS,
  MAX_ID_LENGTH,
  parseTimestamp,
  usageEventJsonSchema,
  type ValidationOptions,
  validateJsonLine,
  validateUsageEvent,
} from "./validate.js";
