import { baseEnvSchema, parseEnv } from "@usage/runtime";
import { z } from "zod";

export const aggregatorEnvSchema = baseEnvSchema.extend({
  USAGE_AGGREGATOR_GROUP: z.string().min(1).default("usage-aggregator"),
  /** How often month-end forecasts are computed and forecast signals emitted; 0 turns forecasts off. */
  USAGE_FORECAST_INTERVAL_MS: z.coerce
    .number({ invalid_type_error: "expected a whole number of milliseconds" })
    .int("expected a whole number of milliseconds")
    .min(0, "expected 0 (off) or more")
    .default(60_000),
});
export type AggregatorEnv = z.infer<typeof aggregatorEnvSchema>;

export function loadAggregatorEnv(env: NodeJS.ProcessEnv = process.env): Readonly<AggregatorEnv> {
  return parseEnv(aggregatorEnvSchema, env);
}
