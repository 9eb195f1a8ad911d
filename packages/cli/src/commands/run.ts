import { runNotifier } from "@usage/notifier";
import { runPricing } from "@usage/pricing-service";
import { type Command, InvalidArgumentError } from "commander";
import { runAggregator, runApi } from "../aggregator-process.js";

const SERVICES = { pricing: runPricing, aggregator: runAggregator, notifier: runNotifier, api: runApi } as const;

export function registerRun(program: Command): void {
  program
    .command("run")
    .description(
      "run one service, for production deployments (aggregator also serves the HTTP API from its state; api serves it alone, from ClickHouse)",
    )
    .argument("<service>", `one of: ${Object.keys(SERVICES).join(", ")}`, (value: string) => {
      if (!(value in SERVICES)) {
        throw new InvalidArgumentError(
          `expected one of ${Object.keys(SERVICES).join(", ")}, got ${JSON.stringify(value)}`,
        );
      }
      return value as keyof typeof SERVICES;
    })
    .action(async (service: keyof typeof SERVICES) => {
      await SERVICES[service]();
      // The service runs until SIGINT/SIGTERM.
      await new Promise<never>(() => undefined);
    });
}
