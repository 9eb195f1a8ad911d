import { validateJsonLine } from "@usage/events";
import { createPricer, loadRateCard } from "@usage/pricing";
import { baseEnvSchema, ConfigError, parseEnv } from "@usage/runtime";
import type { Command } from "commander";
import { createLineWriter, readLines } from "../lines.js";

export function registerPrice(program: Command): void {
  program
    .command("price")
    .description(
      "offline: price JSON-lines usage events from stdin; priced events on stdout, rejects as JSON lines on stderr (exit 1 if any)",
    )
    .option("--rate-card <file>", "rate card file (default: the packaged rate card)")
    .action(async (opts: { rateCard?: string }) => {
      const env = parseEnv(baseEnvSchema.pick({ USAGE_BACKFILL_DAYS: true }));
      const price = createPricer(rateCardOption(opts.rateCard));
      const out = createLineWriter(process.stdout);
      const err = createLineWriter(process.stderr, 1);
      let rejected = 0;
      for await (const { line } of readLines(process.stdin)) {
        const valid = validateJsonLine(line, { now: Date.now(), backfillDays: env.USAGE_BACKFILL_DAYS });
        const priced = valid.ok ? price(valid.value) : valid;
        if (priced.ok) {
          await out.write(JSON.stringify(priced.value));
        } else {
          rejected++;
          const r = priced.rejection;
          await err.write(JSON.stringify({ event_id: r.event_id ?? null, code: r.code, message: r.message }));
        }
      }
      await out.flush();
      await err.flush();
      if (rejected > 0) process.exitCode = 1;
    });
}

function rateCardOption(file: string | undefined) {
  try {
    return loadRateCard(file);
  } catch (err) {
    throw new ConfigError(`--rate-card: ${(err as Error).message}`);
  }
}
