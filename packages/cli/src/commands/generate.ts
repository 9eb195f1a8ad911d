import { generateEvents } from "@usage/workload";
import type { Command } from "commander";
import { instantOption, intOption, rateOption } from "../errors.js";
import { createLineWriter } from "../lines.js";

export function registerGenerate(program: Command): void {
  program
    .command("generate")
    .description("print a deterministic synthetic workload of usage events as JSON lines")
    .requiredOption(
      "--seed <n>",
      "PRNG seed: the same seed and options give the same events",
      intOption(0, 2 ** 32 - 1),
    )
    .requiredOption("--count <n>", "events to print, duplicates included", intOption(0, 100_000_000))
    .option("--orgs <n>", "organisations", intOption(1, 100_000), 3)
    .option("--users-per-org <n>", "users in each organisation", intOption(1, 1_000_000), 25)
    .option("--duplicate-rate <r>", "fraction of lines that re-send an earlier event", rateOption, 0)
    .option("--late-rate <r>", "fraction of events from the previous month", rateOption, 0)
    .option("--long-context-rate <r>", "fraction of requests with a prompt over 200,000 tokens", rateOption, 0.05)
    .option("--now <instant>", "the instant the workload is generated relative to (default: now)", instantOption)
    .action(async (opts) => {
      const out = createLineWriter(process.stdout);
      for (const event of generateEvents({
        seed: opts.seed,
        count: opts.count,
        now: opts.now ?? Date.now(),
        orgs: opts.orgs,
        usersPerOrg: opts.usersPerOrg,
        duplicateRate: opts.duplicateRate,
        lateRate: opts.lateRate,
        longContextRate: opts.longContextRate,
      })) {
        await out.write(JSON.stringify(event));
      }
      await out.flush();
    });
}
