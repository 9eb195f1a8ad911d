import { CONSUMER_LAG_METRIC, consumerLagGauge, TOPICS } from "@usage/kafka";
import { Counter, Gauge, type Registry } from "prom-client";

const byRegistry = new WeakMap<Registry, NotifierMetrics>();

/**
 * The notifier's metrics in this registry, created at the first call: every member of a process shares them
 * (prom-client refuses a name registered twice). Counters add up over the members; the consumer lag is per
 * partition, which one member holds at a time; alerts due are per member. `group` (USAGE_NOTIFIER_GROUP) labels the
 * consumer lag; the first call's is kept.
 */
export function notifierMetrics(registry: Registry, options: { group?: string } = {}): NotifierMetrics {
  let metrics = byRegistry.get(registry);
  if (!metrics) {
    metrics = createNotifierMetrics(registry, options);
    byRegistry.set(registry, metrics);
  }
  return metrics;
}

/** The notifier's consumer group unless USAGE_NOTIFIER_GROUP says otherwise (env.ts). */
const DEFAULT_GROUP = "usage-notifier";

/** A delivery attempt's outcome, as the delivery loop counts it. */
export type DeliveryOutcome = "delivered" | "retry" | "dead" | "no_webhook";

/**
 * The failure categories an attempt's `last_error` holds (delivery.ts: `failureCategory`, the answer's status class,
 * an unreadable secret); a refused URL's message becomes `url_refused`, anything else `other`, so the label's values
 * stay a short fixed list.
 */
const CATEGORIES = new Set([
  "timeout",
  "refused",
  "dns",
  "tls",
  "connection_reset",
  "blocked_address",
  "network",
  "http_1xx",
  "http_3xx",
  "http_4xx",
  "http_5xx",
  "secret_unreadable",
]);

export function deliveryFailureCategory(lastError: string): string {
  if (CATEGORIES.has(lastError)) return lastError;
  if (lastError.startsWith("webhook url refused")) return "url_refused";
  return "other";
}

export function createNotifierMetrics(registry: Registry, options: { group?: string } = {}) {
  const group = options.group ?? DEFAULT_GROUP;
  const lag = consumerLagGauge(registry);
  const deliveries = new Counter({
    name: "usage_alert_deliveries_total",
    help:
      "Webhook delivery attempts by outcome (delivered, retry, dead = dead-lettered, no_webhook) and, for a failed" +
      " attempt (retry, dead), its category: timeout, refused, dns, tls, connection_reset, blocked_address, network," +
      " http_4xx, http_5xx, url_refused, secret_unreadable, other",
    labelNames: ["outcome", "category"],
    registers: [registry],
  });
  return {
    created: new Counter({
      name: "usage_alerts_created_total",
      help: "Alerts created from cap signals, by kind",
      labelNames: ["kind"],
      registers: [registry],
    }),
    skipped: new Counter({
      name: "usage_alert_signals_skipped_total",
      help: "Cap signals that created no alert: duplicate (alert exists), passed (a higher threshold was alerted), invalid",
      labelNames: ["reason"],
      registers: [registry],
    }),
    published: new Counter({
      name: "usage_alerts_published_total",
      help: "Alerts published on spend.alerts.v1 (republished after an interrupted batch included)",
      registers: [registry],
    }),
    deliveries,
    /**
     * Counts one delivery attempt: a failed one (retry, dead) by the category its `last_error` holds; delivered and
     * no_webhook without a category.
     */
    delivery(outcome: DeliveryOutcome, lastError = ""): void {
      if (outcome === "retry" || outcome === "dead") {
        deliveries.inc({ outcome, category: deliveryFailureCategory(lastError) });
      } else {
        deliveries.inc({ outcome });
      }
    },
    due: new Gauge({
      name: "usage_alert_deliveries_due",
      help: "Alerts due for a webhook attempt at the last delivery poll, of the orgs the member delivers for",
      labelNames: ["member"],
      registers: [registry],
    }),
    /** The consumer lag of a partition of spend.signals.v1 (usage_consumer_lag_messages, this group's series). */
    lag: {
      set(labels: { partition: string }, messages: number): void {
        lag.set({ group, topic: TOPICS.signals, partition: labels.partition }, messages);
      },
    },
  };
}
export type NotifierMetrics = ReturnType<typeof createNotifierMetrics>;

export { CONSUMER_LAG_METRIC };
