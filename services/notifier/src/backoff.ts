/**
 * Webhook retry schedule: exponential backoff with full jitter (the AWS Architecture Blog's "full jitter"): after the
 * n-th failed attempt wait a uniformly random time in [0, min(max, base × 2^(n-1))]. Jitter spreads the retries of
 * many alerts to one receiver that has just come back. Pure: the random source is a parameter.
 */
export interface RetryPolicy {
  baseMs: number;
  maxMs: number;
  /** POSTs per alert before it is dead-lettered. */
  maxAttempts: number;
}

export const DEFAULT_RETRY_POLICY: RetryPolicy = { baseMs: 1_000, maxMs: 60_000, maxAttempts: 10 };

/** The upper bound of the wait after `failedAttempts` failures (1 = after the first). */
export function backoffCeilingMs(policy: RetryPolicy, failedAttempts: number): number {
  const exponent = Math.min(Math.max(failedAttempts - 1, 0), 52);
  return Math.min(policy.maxMs, policy.baseMs * 2 ** exponent);
}

/** The wait after `failedAttempts` failures; `random()` returns [0, 1) like Math.random. */
export function backoffMs(policy: RetryPolicy, failedAttempts: number, random: () => number = Math.random): number {
  return Math.floor(random() * (backoffCeilingMs(policy, failedAttempts) + 1));
}

export type AttemptOutcome = { state: "delivered" } | { state: "retrying"; delayMs: number } | { state: "dead" };

/** What follows an attempt: delivered on success, else a retry after a backoff, or dead once attempts run out. */
export function afterAttempt(
  policy: RetryPolicy,
  attempts: number,
  succeeded: boolean,
  random: () => number = Math.random,
): AttemptOutcome {
  if (succeeded) return { state: "delivered" };
  if (attempts >= policy.maxAttempts) return { state: "dead" };
  return { state: "retrying", delayMs: backoffMs(policy, attempts, random) };
}
