import { InvalidArgumentError } from "commander";

/** Parses a whole number option, or fails with a message commander prints as one line (exit 2). */
export function intOption(min: number, max = Number.MAX_SAFE_INTEGER) {
  return (value: string): number => {
    if (!/^-?\d+$/.test(value)) throw new InvalidArgumentError(`expected a whole number, got ${JSON.stringify(value)}`);
    const n = Number(value);
    if (n < min || n > max)
      throw new InvalidArgumentError(`expected a whole number from ${min} to ${max}, got ${value}`);
    return n;
  };
}

/** Parses a rate between 0 and 1. */
export function rateOption(value: string): number {
  const n = Number(value);
  if (!/^\d*\.?\d+$/.test(value) || n < 0 || n > 1) {
    throw new InvalidArgumentError(`expected a number from 0 to 1, got ${JSON.stringify(value)}`);
  }
  return n;
}

/** Parses an RFC 3339 instant. */
export function instantOption(value: string): number {
  const t = Date.parse(value);
  if (!/^\d{4}-\d{2}-\d{2}/.test(value) || Number.isNaN(t)) {
    throw new InvalidArgumentError(
      `expected an RFC 3339 timestamp such as 2026-11-20T12:00:00Z, got ${JSON.stringify(value)}`,
    );
  }
  return t;
}
