/**
 * Billing periods and windows (SPEC §6): UTC calendar months, quarters and years. A window "as of" a day covers
 * from the start of its month/quarter/year through the end of that day.
 */
export type Window = "mtd" | "qtd" | "ytd";
export const WINDOWS: readonly Window[] = ["mtd", "qtd", "ytd"];
const DAY = 86_400_000;

/** The month periodOf answered last, and its bounds: nearly every call falls in the same month as the one before. */
let lastMonth = { from: 0, to: 0, period: "" };

/** `YYYY-MM` of an instant, in UTC. */
export function periodOf(ms: number): string {
  // Compared as Date reads it: a fraction of a millisecond is dropped (toward zero).
  const t = Math.trunc(ms);
  if (t >= lastMonth.from && t < lastMonth.to) return lastMonth.period;
  const d = new Date(ms);
  const period = `${d.getUTCFullYear()}-${String(d.getUTCMonth() + 1).padStart(2, "0")}`;
  // (Date.UTC reads years 0 to 99 as 1900 to 1999: no bounds are kept for those.)
  if (d.getUTCFullYear() >= 100) {
    lastMonth = { from: Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1), to: nextMonthStart(ms), period };
  }
  return period;
}

export function monthStart(ms: number): number {
  const d = new Date(ms);
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1);
}

export function nextMonthStart(ms: number): number {
  const d = new Date(ms);
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1);
}

/** First and last instant (exclusive end) of a `YYYY-MM` period; undefined when it is not one. */
export function periodRange(period: string): { from: number; to: number } | undefined {
  const m = /^(\d{4})-(0[1-9]|1[0-2])$/.exec(period);
  if (!m) return undefined;
  const from = Date.UTC(Number(m[1]), Number(m[2]) - 1, 1);
  return { from, to: nextMonthStart(from) };
}

export function dayStart(ms: number): number {
  return Math.floor(ms / DAY) * DAY;
}

/** `YYYY-MM-DD` of an instant, in UTC. */
export function dayOf(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}

/** Parses `YYYY-MM-DD` as the start of that UTC day; undefined when it is not a real date. */
export function parseDay(day: string): number | undefined {
  if (!/^\d{4}-\d{2}-\d{2}$/.test(day)) return undefined;
  const ms = Date.parse(`${day}T00:00:00Z`);
  return Number.isNaN(ms) || dayOf(ms) !== day ? undefined : ms;
}

/** The window as of the day containing `at`: `from` is its first day, `to` the last day included (both YYYY-MM-DD). */
export function windowAsOf(
  window: Window,
  at: number,
): { from: string; to: string; fromMs: number; toExclusiveMs: number } {
  const d = new Date(at);
  const year = d.getUTCFullYear();
  const month = d.getUTCMonth();
  const startMonth = window === "mtd" ? month : window === "qtd" ? month - (month % 3) : 0;
  const fromMs = Date.UTC(year, startMonth, 1);
  const toExclusiveMs = dayStart(at) + DAY;
  return { from: dayOf(fromMs), to: dayOf(toExclusiveMs - DAY), fromMs, toExclusiveMs };
}

/** The period before `period` (`2026-01` → `2025-12`). */
export function previousPeriod(period: string): string {
  const range = periodRange(period);
  if (!range) throw new RangeError(`not a period: ${period}`);
  return periodOf(range.from - 1);
}
