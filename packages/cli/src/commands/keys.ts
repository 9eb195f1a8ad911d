import type { Command } from "commander";
import { callApi } from "../api-client.js";

export function registerKeys(program: Command): void {
  const keys = program.command("keys").description("per-org API keys (needs the operator key in USAGE_API_KEY)");
  keys
    .command("create")
    .description("create an API key that reaches one org only; it is printed once and stored hashed")
    .requiredOption("--org <org>", "the org the key belongs to")
    .action(async (opts: { org: string }) => {
      const created = await callApi<{ key: string; key_id: string; org_id: string }>("POST", "/v1/keys", {
        org_id: opts.org,
      });
      process.stdout.write(`${JSON.stringify(created, null, 2)}\n`);
    });
}
