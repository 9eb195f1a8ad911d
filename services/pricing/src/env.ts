import { hostname } from "node:os";
import { baseEnvSchema, parseEnv } from "@usage/runtime";
import { z } from "zod";

export const pricingEnvSchema = baseEnvSchema.extend({
  USAGE_RATE_CARD: z.string().optional(),
  USAGE_PRICING_GROUP: z.string().min(1).default("usage-pricing"),
  USAGE_INSTANCE_ID: z
    .string()
    .regex(/^[A-Za-z0-9._-]{1,100}$/, "expected letters, digits, '.', '_' or '-'")
    .default(
      hostname()
        .replace(/[^A-Za-z0-9._-]/g, "-")
        .slice(0, 100) || "local",
    ),
});
export type PricingEnv = z.infer<typeof pricingEnvSchema>;

export function loadPricingEnv(env: NodeJS.ProcessEnv = process.env): Readonly<PricingEnv> {
  return parseEnv(pricingEnvSchema, env);
}
