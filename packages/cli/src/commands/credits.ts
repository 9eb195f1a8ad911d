/**
 * `usagectl credits`: prepaid credits through the HTTP API (USAGE_API_URL, key in USAGE_API_KEY) — the balance,
 * the ledger, purchases and auto-reload settings. Bad options: one line, exit 2; an API error: one line, exit 1.
 */
import type { Command } from "commander";
import { InvalidArgumentError } from "commander";
import { callApi } from "../api-client.js";

/** A USD amount as the API takes it: a plain decimal string with at most 6 decimal places. */
function usd(value: string): string {
  if (!/^\d{1,12}(\.\d{1,6})?$/.test(value)) {
    throw new InvalidArgumentError(`expected an amount in USD like 100 or 12.50, got ${JSON.stringify(value)}`);
  }
  return value;
}

function org(value: string): string {
  if (!/^[^\s/]{1,128}$/.test(value)) {
    throw new InvalidArgumentError("expected an org id of 1 to 128 characters without spaces or '/'");
  }
  return value;
}

const print = (value: unknown): void => {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
};
const orgPath = (o: string) => `/v1/orgs/${encodeURIComponent(o)}/credits`;

export function registerCredits(program: Command): void {
  const credits = program.command("credits").description("prepaid credits: balance, ledger, purchases, auto-reload");
  credits
    .command("balance")
    .description("the org's balance, purchases, reloads and net spend drawn, and its auto-reload settings")
    .requiredOption("--org <org>", "the org", org)
    .action(async (opts: { org: string }) => print(await callApi("GET", orgPath(opts.org))));
  credits
    .command("ledger")
    .description("every purchase and reload of the org, oldest first")
    .requiredOption("--org <org>", "the org", org)
    .action(async (opts: { org: string }) => print(await callApi("GET", `${orgPath(opts.org)}/ledger`)));
  credits
    .command("purchase")
    .description("record a purchase of credits (a reference makes a retry the same purchase)")
    .requiredOption("--org <org>", "the org", org)
    .requiredOption("--amount <usd>", "USD to add", usd)
    .option("--reference <ref>", "order or invoice number: the same reference is never counted twice")
    .action(async (opts: { org: string; amount: string; reference?: string }) =>
      print(
        await callApi("POST", `${orgPath(opts.org)}/purchases`, {
          amount: opts.amount,
          ...(opts.reference === undefined ? {} : { reference: opts.reference }),
        }),
      ),
    );
  credits
    .command("auto-reload")
    .description(
      "set auto-reload: when the balance falls below --when-below, add --amount, at most --monthly-max a month",
    )
    .requiredOption("--org <org>", "the org", org)
    .requiredOption("--when-below <usd>", "reload when the balance falls below this", usd)
    .requiredOption("--amount <usd>", "USD added per reload", usd)
    .requiredOption("--monthly-max <usd>", "the most reloads may add in one calendar month (UTC)", usd)
    .option("--disable", "keep the settings but stop reloading")
    .action(async (opts: { org: string; whenBelow: string; amount: string; monthlyMax: string; disable?: boolean }) =>
      print(
        await callApi("PUT", `${orgPath(opts.org)}/auto-reload`, {
          enabled: !opts.disable,
          when_below: opts.whenBelow,
          amount: opts.amount,
          monthly_max: opts.monthlyMax,
        }),
      ),
    );
}
