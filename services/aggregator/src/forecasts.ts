/**
 * Forecast signals: every few seconds (USAGE_FORECAST_INTERVAL_MS) the aggregator projects each org's and each
 * limited user's month-end spend from the month's daily net spend, observed from each one's first usage of the month
 * (@usage/forecast explains the method), and emits a `forecast` signal for every entity whose cap is projected to be
 * reached before the month ends — once per entity and period: the signal id is derived from (org, entity, period),
 * the mark is kept in memory and rebuilt from cap_signals at start, and the notifier makes one alert of it whatever
 * is replayed.
 */
import type { DailyNetSpendRow, FirstUsageRow } from "@usage/clickhouse";
import { type DailySpend, forecast } from "@usage/forecast";
import { formatMoney, Money } from "@usage/money";
import type { CapsReport } from "@usage/policy";
import { type CapSignal, signalId } from "./signals.js";
import type { SpendState } from "./state.js";

/** Daily series per org (`org`) and per user (`user:<id>`), from dailyNetSpend rows. */
export function seriesByEntity(rows: DailyNetSpendRow[]): Map<string, Map<string, DailySpend[]>> {
  const days = new Map<string, Map<string, Map<string, Money>>>();
  const add = (orgId: string, key: string, day: string, net: string) => {
    let org = days.get(orgId);
    if (!org) {
      org = new Map();
      days.set(orgId, org);
    }
    let entity = org.get(key);
    if (!entity) {
      entity = new Map();
      org.set(key, entity);
    }
    entity.set(day, (entity.get(day) ?? new Money(0)).plus(net));
  };
  for (const r of rows) {
    add(r.org_id, `user:${r.user_id}`, r.day, r.net);
    add(r.org_id, "org", r.day, r.net);
  }
  const out = new Map<string, Map<string, DailySpend[]>>();
  for (const [orgId, entities] of days) {
    const series = new Map<string, DailySpend[]>();
    for (const [key, byDay] of entities) {
      series.set(
        key,
        [...byDay].sort(([a], [b]) => a.localeCompare(b)).map(([day, spend]) => ({ day, spend: formatMoney(spend) })),
      );
    }
    out.set(orgId, series);
  }
  return out;
}

/** First usage per org (`org`: the earliest of its users') and per user (`user:<id>`), from firstUsageBetween rows. */
export function firstUsageByEntity(rows: FirstUsageRow[]): Map<string, Map<string, number>> {
  const out = new Map<string, Map<string, number>>();
  for (const r of rows) {
    let org = out.get(r.org_id);
    if (!org) {
      org = new Map();
      out.set(r.org_id, org);
    }
    org.set(`user:${r.user_id}`, r.first_at);
    const earliest = org.get("org");
    if (earliest === undefined || r.first_at < earliest) org.set("org", r.first_at);
  }
  return out;
}

const finite = (limit: string | "unlimited" | null): limit is string => limit !== null && limit !== "unlimited";

/**
 * The forecast signals due now: entities with a finite limit, not yet at it, projected to reach it by the month's
 * end, and not signalled before in the period. Marks them as signalled (the caller emits before anything else).
 */
export function forecastSignals(
  state: SpendState,
  rows: DailyNetSpendRow[],
  firsts: FirstUsageRow[],
  at: number,
  caps: (orgId: string) => CapsReport,
): CapSignal[] {
  const period = state.currentPeriod();
  const series = seriesByEntity(rows);
  const firstUsage = firstUsageByEntity(firsts);
  const out: CapSignal[] = [];
  for (const orgId of state.orgIds()) {
    const report = caps(orgId);
    const daily = series.get(orgId);
    const first = firstUsage.get(orgId);
    const entities: { key: string; entity: { type: "org" | "user"; id: string }; limit: string; status: string }[] = [];
    if (finite(report.org.limit)) {
      entities.push({
        key: "org",
        entity: { type: "org", id: orgId },
        limit: report.org.limit,
        status: report.org.status,
      });
    }
    for (const [userId, cap] of Object.entries(report.users)) {
      if (finite(cap.limit)) {
        entities.push({
          key: `user:${userId}`,
          entity: { type: "user", id: userId },
          limit: cap.limit,
          status: cap.status,
        });
      }
    }
    for (const e of entities) {
      const f = forecast({
        period,
        now: at,
        daily: daily?.get(e.key) ?? [],
        firstUsage: first?.get(e.key) ?? null,
        limit: e.limit,
      });
      if (!f.will_reach_limit || !state.markForecast(orgId, period, e.key)) continue;
      const org = state.org(orgId);
      const status = e.status as CapSignal["status"];
      out.push({
        signal_id: signalId({
          orgId,
          entity: e.entity,
          period,
          kind: "forecast",
          threshold: null,
          policyVersion: org.policyVersion,
        }),
        org_id: orgId,
        entity: e.entity,
        period,
        kind: "forecast",
        threshold: null,
        limit: e.limit,
        spend: f.spend_to_date,
        status,
        previous_status: status,
        policy_version: org.policyVersion,
        cause_event_id: null,
        created_at: new Date(at).toISOString(),
        forecast: {
          projected: f.projected,
          daily_rate: f.daily_rate,
          reaches_limit_on: f.reaches_limit_on,
          method: f.method,
        },
      });
    }
  }
  return out;
}
