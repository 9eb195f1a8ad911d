import { Counter, Gauge, type Registry } from "prom-client";

const byRegistry = new WeakMap<Registry, NotifierMetrics>();

/**
 * The notifier's metrics in this registry, created at the first call: every member of a process shares them
 * (prom-client refuses a name registered twice). Counters add up over the members; the consumer lag is per
 * partition, which one member holds at a time; alerts due are per member.
 */
export function notifierMetrics(registry: Registry): NotifierMetrics {
  let metrics = byRegistry.get(registry);
  if (!metrics) {
    metrics = createNotifierMetrics(registry);
    byRegistry.set(registry, metrics);
  }
  return metrics;
}

export function createNotifierMetrics(registry: Registry) {
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
    deliveries: new Counter({
      name: "usage_alert_deliveries_total",
      help: "Webhook delivery attempts and their outcome: delivered, retry, dead, no_webhook",
      labelNames: ["outcome"],
      registers: [registry],
    }),
    due: new Gauge({
      name: "usage_alert_deliveries_due",
      help: "Alerts due for a webhook attempt at the last delivery poll, of the orgs the member delivers for",
      labelNames: ["member"],
      registers: [registry],
    }),
    lag: new Gauge({
      name: "usage_notifier_consumer_lag",
      help: "Messages between the notifier's position and the high watermark of spend.signals.v1",
      labelNames: ["partition"],
      registers: [registry],
    }),
  };
}
export type NotifierMetrics = ReturnType<typeof createNotifierMetrics>;
