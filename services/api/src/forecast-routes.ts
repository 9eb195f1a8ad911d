/**
 * Spend forecasts (@usage/forecast): the projected month-end net spend of the org and of each of its users, and
 * when each cap is projected to be reached.
 *
 *   GET /v1/orgs/:org/forecast → { org_id, period, as_of, method, org: Forecast, users: { [user_id]: Forecast } }
 *
 * For the current UTC month as of the server's clock. The daily series are read from the spend_daily rollup (the
 * org's is the sum of its users'), each user's first usage of the month from usage_events (the org's is the earliest
 * of its users'; the forecast observes from there, not from the 1st); the limits are the live caps (the read model's
 * caps report: the org limit, and each user's own effective limit). Users listed are those of the caps
 * report: everyone named in the policy or with spend this month. The days read run to the month's last day, so an
 * event stamped a few minutes ahead counts here as it does in the caps (the forecast takes it as today's spend).
 */
import { type ClickHouseClient, dailyNetSpend, firstUsageBetween } from "@usage/clickhouse";
import { type DailySpend, FORECAST_METHOD, type Forecast, forecast } from "@usage/forecast";
import { dayOf, monthStart, nextMonthStart, periodOf } from "@usage/periods";
import type {
  FastifyBaseLogger,
  FastifyInstance,
  FastifyRequest,
  RawReplyDefaultExpression,
  RawRequestDefaultExpression,
  RawServerDefault,
} from "fastify";
import type { SpendReader } from "./read-model.js";

export interface ForecastRouteDeps {
  clickhouse: ClickHouseClient;
  /** The live caps: where each entity's limit comes from. */
  reader: Pick<SpendReader, "caps">;
  /** Checks the bearer key against the `:org` route parameter; throws (as an API error) when it may not. */
  authorize: (request: FastifyRequest) => { orgId: string };
  now: () => number;
}

export interface OrgForecast {
  org_id: string;
  period: string;
  as_of: string;
  method: string;
  org: Forecast;
  users: Record<string, Forecast>;
}

/** Registers the route on any fastify instance, whatever its logger type (buildApi's uses pino's). */
export function registerForecastRoutes<L extends FastifyBaseLogger>(
  app: FastifyInstance<RawServerDefault, RawRequestDefaultExpression, RawReplyDefaultExpression, L>,
  deps: ForecastRouteDeps,
): void {
  app.get("/v1/orgs/:org/forecast", async (request): Promise<OrgForecast> => {
    const { orgId } = deps.authorize(request);
    const now = deps.now();
    const period = periodOf(now);
    const caps = deps.reader.caps(orgId);
    const rows = await dailyNetSpend(deps.clickhouse, {
      orgId,
      fromDay: dayOf(monthStart(now)),
      toDay: dayOf(nextMonthStart(now) - 1),
    });
    // After the series (see firstUsageBetween): every day with spend then has its first usage.
    const firsts = await firstUsageBetween(deps.clickhouse, { orgId, from: monthStart(now), to: nextMonthStart(now) });
    const userFirst = new Map(firsts.map((r) => [r.user_id, r.first_at]));
    const orgFirst = firsts.reduce<number | null>(
      (min, r) => (min === null || r.first_at < min ? r.first_at : min),
      null,
    );
    const orgDaily: DailySpend[] = [];
    const userDaily = new Map<string, DailySpend[]>();
    for (const r of rows) {
      const entry = { day: r.day, spend: r.net };
      // The forecast adds repeated days: the org's series is every user's rows.
      orgDaily.push(entry);
      const list = userDaily.get(r.user_id);
      if (list) list.push(entry);
      else userDaily.set(r.user_id, [entry]);
    }
    return {
      org_id: orgId,
      period,
      as_of: new Date(now).toISOString(),
      method: FORECAST_METHOD,
      org: forecast({ period, now, daily: orgDaily, firstUsage: orgFirst, limit: caps.org.limit }),
      // Object.fromEntries defines own properties, so any user id (even "__proto__") is a plain key.
      users: Object.fromEntries(
        Object.entries(caps.users).map(([userId, cap]) => [
          userId,
          forecast({
            period,
            now,
            daily: userDaily.get(userId) ?? [],
            firstUsage: userFirst.get(userId) ?? null,
            limit: cap.limit,
          }),
        ]),
      ),
    };
  });
}
