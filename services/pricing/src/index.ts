export { loadPricingEnv, type PricingEnv, pricingEnvSchema } from "./env.js";
export { runPricing } from "./main.js";
export { createPricingMetrics, type PricingMetrics } from "./metrics.js";
export { buildPricingWorker } from "./service.js";
export { createPriceStep, type PriceOutcome } from "./step.js";
export { createPricingWorker, type PricingWorker, type PricingWorkerDeps } from "./worker.js";
