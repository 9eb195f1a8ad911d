import { ConfigError } from "@usage/runtime";
import { Command, CommanderError } from "commander";
import { ApiCallError } from "./api-client.js";
import { registerBilling } from "./commands/billing.js";
import { registerCredits } from "./commands/credits.js";
import { registerGenerate } from "./commands/generate.js";
import { registerKeys } from "./commands/keys.js";
import { registerPolicy } from "./commands/policy.js";
import { registerPrice } from "./commands/price.js";
import { registerProduce } from "./commands/produce.js";
import { registerReports } from "./commands/reports.js";
import { registerRun } from "./commands/run.js";
import { registerStart } from "./commands/start.js";

export function buildProgram(): Command {
  const program = new Command("usagectl")
    .description("token-usage metering and spend control")
    .showSuggestionAfterError(true)
    .exitOverride()
    .configureOutput({
      // Commander's own errors become one line; the exit code is set in main().
      writeErr: (text) => process.stderr.write(`${text.replace(/\n+$/, "").split("\n")[0]}\n`),
    });
  registerStart(program);
  registerRun(program);
  registerProduce(program);
  registerPrice(program);
  registerGenerate(program);
  registerKeys(program);
  registerCredits(program);
  registerBilling(program);
  registerPolicy(program);
  registerReports(program);
  for (const command of program.commands) command.exitOverride();
  return program;
}

/** Runs the CLI; returns the exit code: 0 ok, 1 some input rejected or a runtime failure, 2 bad usage. */
export async function main(argv: string[]): Promise<number> {
  try {
    await buildProgram().parseAsync(argv);
    return Number(process.exitCode ?? 0);
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and version exit 0; every usage error exits 2 (commander already printed its one line).
      return err.exitCode === 0 ? 0 : 2;
    }
    if (err instanceof ApiCallError) {
      process.stderr.write(`usagectl: ${err.message}\n`);
      return 1;
    }
    if (err instanceof ConfigError) {
      process.stderr.write(`usagectl: ${err.message}\n`);
      return 2;
    }
    process.stderr.write(`usagectl: ${(err as Error).stack ?? String(err)}\n`);
    return 1;
  }
}
