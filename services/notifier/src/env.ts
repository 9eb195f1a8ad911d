import { baseEnvSchema, ConfigError, parseEnv } from "@usage/runtime";
import { z } from "zod";

const millis = (what: string, min: number, max: number, fallback: number) =>
  z.coerce
    .number({ invalid_type_error: `expected ${what} in milliseconds (${min}-${max})` })
    .int(`expected ${what} in milliseconds (${min}-${max})`)
    .min(min, `expected ${what} in milliseconds (${min}-${max})`)
    .max(max, `expected ${what} in milliseconds (${min}-${max})`)
    .default(fallback);

export const notifierEnvSchema = baseEnvSchema.extend({
  USAGE_NOTIFIER_GROUP: z.string().min(1).default("usage-notifier"),
  /** First retry waits up to this long (full jitter), doubling per attempt up to the maximum. */
  USAGE_WEBHOOK_RETRY_BASE_MS: millis("a delay", 1, 3_600_000, 1_000),
  USAGE_WEBHOOK_RETRY_MAX_MS: millis("a delay", 1, 86_400_000, 60_000),
  /** POSTs per alert before it is dead-lettered (state dead). */
  USAGE_WEBHOOK_MAX_ATTEMPTS: z.coerce
    .number({ invalid_type_error: "expected a number of attempts (1-1000)" })
    .int("expected a number of attempts (1-1000)")
    .min(1, "expected a number of attempts (1-1000)")
    .max(1000, "expected a number of attempts (1-1000)")
    .default(10),
  USAGE_WEBHOOK_TIMEOUT_MS: millis("a timeout", 100, 120_000, 10_000),
  /** How often the delivery loop looks for alerts due for an attempt. */
  USAGE_NOTIFIER_POLL_MS: millis("an interval", 10, 60_000, 1_000),
  /** When set, `usagectl run notifier` serves /healthz and /metrics on this port (host USAGE_API_HOST). */
  USAGE_NOTIFIER_METRICS_PORT: z.coerce
    .number({ invalid_type_error: "expected a port number (1-65535)" })
    .int("expected a port number (1-65535)")
    .min(1, "expected a port number (1-65535)")
    .max(65535, "expected a port number (1-65535)")
    .optional(),
});
export type NotifierEnv = z.infer<typeof notifierEnvSchema>;

export function loadNotifierEnv(env: NodeJS.ProcessEnv = process.env): Readonly<NotifierEnv> {
  const parsed = parseEnv(notifierEnvSchema, env);
  if (parsed.USAGE_WEBHOOK_RETRY_MAX_MS < parsed.USAGE_WEBHOOK_RETRY_BASE_MS) {
    throw new ConfigError(
      `invalid environment: USAGE_WEBHOOK_RETRY_MAX_MS: expected at least USAGE_WEBHOOK_RETRY_BASE_MS (${parsed.USAGE_WEBHOOK_RETRY_BASE_MS}) (got "${parsed.USAGE_WEBHOOK_RETRY_MAX_MS}")`,
    );
  }
  return parsed;
}
