export { alertId, newAlertRow, type SignalSource, toPayload } from "./alert.js";
export {
  type AttemptOutcome,
  afterAttempt,
  backoffCeilingMs,
  backoffMs,
  DEFAULT_RETRY_POLICY,
  type RetryPolicy,
} from "./backoff.js";
export { createDeliveryLoop, type DeliveryDeps, type DeliveryLoop } from "./delivery.js";
export { loadNotifierEnv, type NotifierEnv, notifierEnvSchema } from "./env.js";
export { runNotifier } from "./main.js";
export { createNotifierMetrics, type NotifierMetrics, notifierMetrics } from "./metrics.js";
export { createNotifier, type Notifier, type NotifierDeps } from "./notifier.js";
export { createOwnershipTracker, type Ownership, type OwnershipTracker } from "./ownership.js";
export { buildNotifier } from "./service.js";
