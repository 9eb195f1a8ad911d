import { baseEnvSchema, parseEnv } from "@usage/runtime";
import { z } from "zod";

export const aggregatorEnvSchema = baseEnvSchema.extend({
  USAGE_AGGREGATOR_GROUP: z.string().min(1).default("usage-aggregator"),
});
export type AggregatorEnv = z.infer<typeof aggregatorEnvSchema>;

export function loadAggregatorEnv(env: NodeJS.ProcessEnv = process.env): Readonly<AggregatorEnv> {
  return parseEnv(aggregatorEnvSchema, env);
}
