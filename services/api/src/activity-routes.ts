/**
 * Activity (SPEC §8, turn 2): active users and seat utilization of an org as of one UTC day.
 *
 *   GET /v1/orgs/:org/activity?at=YYYY-MM-DD   (at defaults to today, UTC)
 *   → { org_id, at, windows, dau, wau, mau, seats_assigned, seats_active_30d, utilization, by_product }
 *
 * A user is active on a day when they made at least one request that occurred (occurred_at, UTC) on that day, read
 * from the spend_daily rollup (distinct user_id over the days of a window). The windows, both ends included:
 *
 *   dau               the day `at` itself
 *   wau               the 7 days ending on `at`: at − 6 days … at
 *   mau               the 30 days ending on `at`: at − 29 days … at
 *   seats_assigned    users holding a seat at the end of day `at`: every user with a seat assignment (control plane,
 *                     SPEC §13) whose effective_at is before the next day's 00:00 UTC; seats are never removed, a
 *                     change of tier is the same seat
 *   seats_active_30d  of those users, the ones active in the mau window
 *   utilization       seats_active_30d / seats_assigned as a decimal string: exact when the quotient is a finite
 *                     decimal ("0.75", "1", "0"), else rounded half-up to 4 decimal places ("0.6667"); null when no
 *                     seat is assigned
 *   by_product        { chat|claude_code|cowork|…: { dau, wau, mau } }, the same windows counting only that product's
 *                     requests; every known product is listed (zeros when unused)
 *
 * Events after the end of day `at` never count. `windows` echoes each window's first and last day. Counts are JSON
 * integers. Errors: 400 invalid_at for a date that is not a real YYYY-MM-DD day within 2000-01-01 … 2149-06-06 (the
 * range of ClickHouse's Date).
 */
import { activeUsers, type ClickHouseClient } from "@usage/clickhouse";
import { PRODUCTS } from "@usage/events";
import { dayOf, dayStart, parseDay } from "@usage/periods";
import type {
  FastifyBaseLogger,
  FastifyInstance,
  FastifyRequest,
  RawReplyDefaultExpression,
  RawRequestDefaultExpression,
  RawServerDefault,
} from "fastify";

export interface ActivityRouteDeps {
  clickhouse: ClickHouseClient;
  /** The org's seat assignments in effect order (the control follower's `seats`). */
  seats: (orgId: string) => readonly { user_id: string; effective_at: string }[];
  /** Checks the bearer key against the `:org` route parameter; throws (as an API error) when it may not. */
  authorize: (request: FastifyRequest) => { orgId: string };
  now: () => number;
}

const DAY = 86_400_000;
/** The wau window: this many days ending on `at`. */
export const WAU_DAYS = 7;
/** The mau window (and seats_active_30d's): this many days ending on `at`. */
export const MAU_DAYS = 30;
/** Utilization that is not a finite decimal is rounded half-up to this many places. */
export const UTILIZATION_PLACES = 4;
const EARLIEST_AT = Date.UTC(2000, 0, 1);
const LATEST_AT = Date.UTC(2149, 5, 6);

export interface ActivityCounts {
  dau: number;
  wau: number;
  mau: number;
}

export interface Activity extends ActivityCounts {
  org_id: string;
  at: string;
  windows: Record<"dau" | "wau" | "mau", { from: string; to: string }>;
  seats_assigned: number;
  seats_active_30d: number;
  utilization: string | null;
  by_product: Record<string, ActivityCounts>;
}

/** Registers the route on any fastify instance, whatever its logger type (buildApi's uses pino's). */
export function registerActivityRoutes<L extends FastifyBaseLogger>(
  app: FastifyInstance<RawServerDefault, RawRequestDefaultExpression, RawReplyDefaultExpression, L>,
  deps: ActivityRouteDeps,
): void {
  app.get("/v1/orgs/:org/activity", async (request, reply) => {
    const { orgId } = deps.authorize(request);
    const raw = (request.query as Record<string, unknown> | undefined)?.at;
    const at = raw === undefined ? dayStart(deps.now()) : typeof raw === "string" ? parseDay(raw) : undefined;
    if (at === undefined || at < EARLIEST_AT || at > LATEST_AT) {
      return reply.code(400).send({
        error: { code: "invalid_at", message: "at must be a real date YYYY-MM-DD from 2000-01-01 to 2149-06-06" },
      });
    }
    const day = dayOf(at);
    const weekFrom = dayOf(at - (WAU_DAYS - 1) * DAY);
    const monthFrom = dayOf(at - (MAU_DAYS - 1) * DAY);
    const holders = seatHoldersAt(deps.seats(orgId), at + DAY);
    const counts = await activeUsers(deps.clickhouse, {
      orgId,
      at: day,
      weekFrom,
      monthFrom,
      seatHolders: holders,
    });
    const byProduct: Record<string, ActivityCounts> = {};
    for (const p of PRODUCTS) byProduct[p] = counts.byProduct[p] ?? { dau: 0, wau: 0, mau: 0 };
    for (const [p, c] of Object.entries(counts.byProduct)) byProduct[p] ??= c;
    const body: Activity = {
      org_id: orgId,
      at: day,
      windows: {
        dau: { from: day, to: day },
        wau: { from: weekFrom, to: day },
        mau: { from: monthFrom, to: day },
      },
      dau: counts.total.dau,
      wau: counts.total.wau,
      mau: counts.total.mau,
      seats_assigned: holders.length,
      seats_active_30d: counts.total.seatsActive,
      utilization: holders.length === 0 ? null : ratioText(counts.total.seatsActive, holders.length),
      by_product: byProduct,
    };
    return reply.send(body);
  });
}

/** The users holding a seat before `endMs` (exclusive): any assignment effective before it, each user once, sorted. */
export function seatHoldersAt(seats: readonly { user_id: string; effective_at: string }[], endMs: number): string[] {
  const users = new Set<string>();
  for (const s of seats) if (Date.parse(s.effective_at) < endMs) users.add(s.user_id);
  return [...users].sort();
}

/**
 * `numerator / denominator` (non-negative integers, denominator > 0) as a canonical decimal string: exact when the
 * quotient has a finite decimal expansion, else rounded half-up to UTILIZATION_PLACES places (trailing zeros dropped).
 */
export function ratioText(numerator: number, denominator: number, places = UTILIZATION_PLACES): string {
  let n = BigInt(numerator);
  let d = BigInt(denominator);
  if (d <= 0n || n < 0n) throw new RangeError(`ratio of ${numerator} / ${denominator}`);
  const g = gcd(n, d);
  n /= g;
  d /= g;
  // Finite in base 10 exactly when the reduced denominator is 2^a · 5^b: then 10^max(a, b) is a multiple of it.
  let rest = d;
  let twos = 0;
  let fives = 0;
  while (rest % 2n === 0n) {
    rest /= 2n;
    twos++;
  }
  while (rest % 5n === 0n) {
    rest /= 5n;
    fives++;
  }
  let scale: number;
  let scaled: bigint;
  if (rest === 1n) {
    scale = Math.max(twos, fives);
    scaled = (n * 10n ** BigInt(scale)) / d;
  } else {
    scale = places;
    const p = 10n ** BigInt(places);
    // Half-up: floor((n · 10^places) / d + 1/2) = floor((2 · n · 10^places + d) / (2 · d)).
    scaled = (2n * n * p + d) / (2n * d);
  }
  const digits = scaled.toString().padStart(scale + 1, "0");
  const whole = digits.slice(0, digits.length - scale);
  const fraction = digits.slice(digits.length - scale).replace(/0+$/, "");
  return fraction ? `${whole}.${fraction}` : whole;
}

function gcd(a: bigint, b: bigint): bigint {
  let x = a;
  let y = b;
  while (y !== 0n) [x, y] = [y, x % y];
  return x === 0n ? 1n : x;
}
