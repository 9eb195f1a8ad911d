/**
 * Month-end spend forecasts (pure, no I/O): from the month's daily net spend so far, a daily rate going forward, the
 * projected month-end spend, and the day a cap is projected to be reached.
 *
 * Method ("weighted-recent-days"): the daily rate is a weighted mean of the days observed this month, recent days
 * weighing more. Observation starts at the entity's first usage in the month (`firstUsage`, its earliest event): the
 * days before it are not evidence of a zero rate (an org whose first event is on the 15th, a new customer, did not
 * spend nothing on the 1st–14th; nothing was observed), so they are left out, not counted as zero-spend days.
 *   - Every complete day from the day after the first usage up to yesterday is one observation of a day's spend,
 *     weighted DECAY^age with DECAY = 0.8 and age in days (yesterday 0.8, the day before 0.64, …): a half-life of
 *     about 3.1 days (ln 2 / ln 1.25). 0.8 rather than 2^(−1/3) keeps every weight an exact decimal.
 *   - The first usage's day, when before today, is a partial observation, from the first usage to that day's end:
 *     like today's, it adds its spend to the numerator and the fraction of it observed to the denominator, both
 *     times its weight 0.8^age. A first usage at the month's first instant makes it a complete day.
 *   - Today's partial day is an observation too, of age 0, but only worth the fraction of the day observed (from
 *     midnight, or from the first usage when that was today): it adds today's spend to the numerator and that
 *     fraction to the denominator, i.e. today's spend scaled to a full day, weighted by how much of the day it has
 *     seen. So on the 1st (no complete day yet), or on an org's first day, the rate is today's pace scaled to a
 *     full day, and as complete days accumulate today's noisy partial figure fades.
 *   - The minimum: today's observed part counts as at least one hour (MIN_TODAY_MS), whether the observation began
 *     at midnight or at a first usage minutes ago. So a few minutes into a month, or into an org's first usage, the
 *     rate stays finite and a burst of a few minutes is taken as an hour's spend: $9,600 in the first ten minutes
 *     projects 9,600 × 24 = 230,400 a day, not its ten-minute pace (× 144 = 1,382,400 a day), nor near zero. The
 *     same hour as at a month's start, because the evidence is the same: minutes of data.
 *   - rate = Σ 0.8^age · spend(d) / Σ 0.8^age · observed(d), over the observed days d (observed(d): the fraction
 *     of d observed, 1 for a complete day), rounded half up to 6 decimal places, once. The sums are kept in
 *     milliseconds so the only division is the last one, and it is exact (never rounded to a precision first, which
 *     could round twice). An extra amount x on one day raises the rate by x × its weight / Σ weights, and its
 *     weight shrinks by 0.8 with every day that passes: a spike lifts the projection, then decays.
 *   - An entity observed from the month's first instant (`firstUsage` = the 1st at 00:00) gets exactly the
 *     all-days mean the method had before observation started at the first usage.
 * projected = spend_to_date + rate × the days left from `now` to the end of the month (fractional days).
 *
 * The rounded `daily_rate` is the rate: `projected` and the reach date are derived from it (so they can be checked
 * from the answer itself), and the decisions (reached, will reach, which day) are exact comparisons of decimals
 * multiplied out, never of rounded or divided figures. Spend reaching the limit exactly at a midnight counts for
 * the day that midnight ends, as "spend by the end of day D ≥ limit" does for a limit already reached; so a
 * projection equal to the limit reaches it on the month's last day, one a millionth below does not.
 *
 * Edge cases, decided:
 *   - `now` and `firstUsage` (unless null) must fall within `period`; a day outside the period, a malformed day, a
 *     negative or malformed amount, or a malformed limit is a caller's mistake: RangeError naming it.
 *   - Days may be missing (no spend that day: 0) or repeated (their amounts are added), in any order.
 *   - Spend is always observed: a day with spend before the first usage's day (the callers read the series first
 *     and the first usage after, from the table written first, so only a caller's slip makes one) moves the start
 *     back to that day's midnight, and a null `firstUsage` with spend starts at the first day with spend's midnight.
 *     A first usage after `now` (an event stamped ahead) starts observation at `now`: today counts its minimum hour.
 *   - A day after today but within the period (an event stamped a few minutes ahead, which pricing allows) counts in
 *     spend_to_date and, for the rate, as today's spend.
 *   - No spend at all (or an empty series): rate 0, projection 0; a cap of 0 is nonetheless reached (SPEC §5: a
 *     limit of 0 blocks at once), on the period's first day.
 *   - A limit already reached has `reaches_limit_on` = the first day by whose end the spend reached it, and
 *     `will_reach_limit` false (the forecast alert is for caps not yet reached; blocked signals cover the rest).
 *   - No limit (`null`) or `"unlimited"`: nothing is reached, `reaches_limit_on` null.
 * Amounts out are canonical decimal strings (no exponent, no trailing zeros, "0" for zero), as everywhere else.
 */
import { divide, formatMoney, Money, sumMoney } from "@usage/money";
import { dayOf, dayStart, parseDay, periodRange } from "@usage/periods";

export interface DailySpend {
  /** YYYY-MM-DD, UTC. */
  day: string;
  /** A non-negative decimal string. */
  spend: string;
}

export interface ForecastInput {
  /** YYYY-MM: the UTC month being forecast. */
  period: string;
  /** Milliseconds since the epoch; must fall within `period`. */
  now: number;
  /** The month's daily net spend so far: missing days are 0, today's partial day included. */
  daily: DailySpend[];
  /**
   * Milliseconds since the epoch of the entity's first usage in `period` (its earliest event), or null when it has
   * none (or it is not known): where observation starts (see the header).
   */
  firstUsage: number | null;
  /** The entity's cap (SPEC §5 shapes): a decimal string, "unlimited", or null for none. */
  limit: string | "unlimited" | null;
}

export interface Forecast {
  period: string;
  /** ISO instant (`now`). */
  as_of: string;
  /** Short name of the method. */
  method: string;
  /** The exact sum of `daily`. */
  spend_to_date: string;
  /** The projected spend per day going forward, rounded to 6 decimal places. */
  daily_rate: string;
  /** spend_to_date + daily_rate × days left in the month, rounded to 6 decimal places. */
  projected: string;
  limit: string | "unlimited" | null;
  /** spend_to_date ≥ limit already (a limit of 0 counts as reached). */
  limit_reached: boolean;
  /** The day the cap is projected to be reached, or was reached; null when not within the month or no finite limit. */
  reaches_limit_on: string | null;
  /** Not yet reached, and projected to be reached on or before the month's last day: the forecast alert's trigger. */
  will_reach_limit: boolean;
  /** Days observed: from the day observation started (the first usage's) to today, both included; 0 without usage. */
  days_of_data: number;
}

export const FORECAST_METHOD = "weighted-recent-days";
/** Weight of a complete day relative to the day after it. */
export const DECAY = "0.8";
/**
 * Today's observed part counts as at least this much of a day, so the rate stays finite just after midnight or just
 * after a first usage.
 */
export const MIN_TODAY_MS = 3_600_000;
/** Decimal places of `daily_rate` and `projected`. */
export const RATE_PLACES = 6;

const DAY_MS = 86_400_000;
const PLAIN_DECIMAL = /^\d+(?:\.\d+)?$/;

export function forecast(input: ForecastInput): Forecast {
  const range = periodRange(input.period);
  if (range === undefined) throw new RangeError(`period must be a month YYYY-MM, got ${JSON.stringify(input.period)}`);
  const { now } = input;
  if (!Number.isSafeInteger(now) || now < range.from || now >= range.to) {
    throw new RangeError(`now (${JSON.stringify(now)}) must be an instant in ${input.period} (ms since the epoch)`);
  }
  const { firstUsage } = input;
  if (firstUsage !== null && (!Number.isSafeInteger(firstUsage) || firstUsage < range.from || firstUsage >= range.to)) {
    throw new RangeError(
      `firstUsage (${JSON.stringify(firstUsage)}) must be null or an instant in ${input.period} (ms since the epoch)`,
    );
  }
  const limit = parseLimit(input.limit);
  const days = Math.round((range.to - range.from) / DAY_MS);
  const today = Math.floor((now - range.from) / DAY_MS);

  // The month's spend per day (index 0 = the 1st).
  const perDay: Money[] = Array.from({ length: days }, () => new Money(0));
  for (const entry of input.daily) {
    const at = typeof entry?.day === "string" ? parseDay(entry.day) : undefined;
    if (at === undefined) throw new RangeError(`day must be a date YYYY-MM-DD, got ${JSON.stringify(entry?.day)}`);
    if (at < range.from || at >= range.to) throw new RangeError(`day ${entry.day} is outside ${input.period}`);
    if (typeof entry.spend !== "string" || !PLAIN_DECIMAL.test(entry.spend)) {
      throw new RangeError(
        `spend of ${entry.day} must be a non-negative decimal string, got ${JSON.stringify(entry.spend)}`,
      );
    }
    const i = (at - range.from) / DAY_MS;
    perDay[i] = perDay[i]!.plus(entry.spend);
  }
  const spendToDate = sumMoney(perDay);
  const start = observationStart(firstUsage, perDay, range.from, now);
  const firstDay = start === undefined ? undefined : Math.floor((start - range.from) / DAY_MS);

  // The weighted mean (see the header), its denominator in weighted milliseconds observed: today (and any day after
  // it) at weight 1 for its observed part, then each day back from yesterday at 0.8, 0.64, … down to the start's day,
  // of which only the part from the start counts. Nothing observed yet: rate 0. Weights are exact decimals, so only
  // the division rounds, once.
  let rate = new Money(0);
  if (start !== undefined && firstDay !== undefined) {
    const todayStart = range.from + today * DAY_MS;
    let numerator = sumMoney(perDay.slice(today));
    let denominatorMs = new Money(Math.max(now - Math.max(todayStart, start), MIN_TODAY_MS));
    let weight = new Money(1);
    for (let i = today - 1; i >= firstDay; i--) {
      weight = weight.times(DECAY);
      numerator = numerator.plus(weight.times(perDay[i]!));
      denominatorMs = denominatorMs.plus(
        weight.times(range.from + (i + 1) * DAY_MS - Math.max(start, range.from + i * DAY_MS)),
      );
    }
    rate = divide(numerator.times(DAY_MS), denominatorMs, RATE_PLACES, Money.ROUND_HALF_UP);
  }
  const projected = divide(
    spendToDate.times(DAY_MS).plus(rate.times(range.to - now)),
    String(DAY_MS),
    RATE_PLACES,
    Money.ROUND_HALF_UP,
  );

  let reached = false;
  let reachDay: number | undefined;
  if (limit !== undefined) {
    reached = spendToDate.gte(limit);
    if (reached) {
      // The first day by whose end the month's spend reached the limit.
      let cumulative = new Money(0);
      for (let i = 0; i < days && reachDay === undefined; i++) {
        cumulative = cumulative.plus(perDay[i]!);
        if (cumulative.gte(limit)) reachDay = i;
      }
    } else if (rate.gt(0)) {
      // The first day D with spend_to_date + rate × (end of D − now) ≥ limit, multiplied out to stay exact:
      // (limit − spend_to_date) × 1 day ≤ rate × (end of D − now).
      const needed = limit.minus(spendToDate).times(DAY_MS);
      for (let i = today; i < days && reachDay === undefined; i++) {
        if (needed.lte(rate.times(range.from + (i + 1) * DAY_MS - now))) reachDay = i;
      }
    }
  }

  return {
    period: input.period,
    as_of: new Date(now).toISOString(),
    method: FORECAST_METHOD,
    spend_to_date: formatMoney(spendToDate),
    daily_rate: formatMoney(rate),
    projected: formatMoney(projected),
    limit: limit === undefined ? input.limit : formatMoney(limit),
    limit_reached: reached,
    reaches_limit_on: reachDay === undefined ? null : dayOf(range.from + reachDay * DAY_MS),
    will_reach_limit: !reached && reachDay !== undefined,
    days_of_data: firstDay === undefined ? 0 : today - firstDay + 1,
  };
}

/**
 * Where observation starts (see the header): the first usage, moved back to the midnight of an earlier day with spend,
 * and no later than `now`; undefined when there is neither a first usage nor spend.
 */
function observationStart(firstUsage: number | null, perDay: readonly Money[], from: number, now: number) {
  const firstSpendDay = perDay.findIndex((d) => !d.isZero());
  let start = firstUsage ?? undefined;
  if (firstSpendDay >= 0) {
    const midnight = from + firstSpendDay * DAY_MS;
    if (start === undefined || midnight < dayStart(start)) start = midnight;
  }
  return start === undefined ? undefined : Math.min(start, now);
}

/** A finite limit as a decimal; undefined for none or "unlimited". */
function parseLimit(limit: string | "unlimited" | null): Money | undefined {
  if (limit === null || limit === "unlimited") return undefined;
  if (typeof limit !== "string" || !PLAIN_DECIMAL.test(limit)) {
    throw new RangeError(
      `limit must be a non-negative decimal string, "unlimited" or null, got ${JSON.stringify(limit)}`,
    );
  }
  return new Money(limit);
}
