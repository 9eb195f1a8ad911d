/**
 * `usagectl contract`, `usagectl seats`, `usagectl invoice`, `usagectl requests`: commercial terms, seats, month-end
 * invoices and limit-increase requests through the HTTP API (SPEC §8, §13), with the key in USAGE_API_KEY (the
 * operator's for the contract and finalization, an owner's for seats and decisions).
 */
import type { Command } from "commander";
import { InvalidArgumentError } from "commander";
import { callApi } from "../api-client.js";
import { whileWaiting } from "../progress.js";

const print = (value: unknown): void => {
  process.stdout.write(typeof value === "string" ? value : `${JSON.stringify(value, null, 2)}\n`);
};
const org = (id: string) => `/v1/orgs/${encodeURIComponent(id)}`;

function period(value: string): string {
  if (!/^\d{4}-(0[1-9]|1[0-2])$/.test(value)) throw new InvalidArgumentError("expected a month YYYY-MM");
  return value;
}

function decimal(value: string): string {
  if (!/^\d+(\.\d+)?$/.test(value)) throw new InvalidArgumentError('expected a decimal such as "30" or "12.5"');
  return value;
}

/** `tier=price,tier=price`. */
function prices(value: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of value.split(",")) {
    const m = /^([a-z_]+)=(\d+(?:\.\d+)?)$/.exec(part.trim());
    if (!m) throw new InvalidArgumentError('expected tier=price pairs, e.g. "chat=30,premium=150"');
    out[m[1]!] = m[2]!;
  }
  return out;
}

interface InvoiceLine {
  kind: string;
  description: string;
  quantity: number;
  amount: string;
}

function renderInvoice(doc: {
  org_id: string;
  period: string;
  status: string;
  number: string | null;
  total: string;
  lines: InvoiceLine[];
}): string {
  const head = `${doc.org_id} invoice ${doc.period}: ${doc.status}${doc.number ? ` ${doc.number}` : ""}`;
  const width = Math.max(10, ...doc.lines.map((l) => l.amount.length), doc.total.length);
  const rows = doc.lines.map((l) => `${l.amount.padStart(width)}  ${l.kind.padEnd(15)} ${l.description}`);
  return `${head}\n\n${rows.join("\n")}${rows.length ? "\n" : ""}${"".padStart(width, "-")}\n${doc.total.padStart(width)}  total USD\n`;
}

export function registerBilling(program: Command): void {
  const contract = program
    .command("contract")
    .description("an org's contract: plan, term start, seat prices, discount");
  contract
    .command("set")
    .description("set the contract (operator key)")
    .requiredOption("--org <org>", "the org")
    .requiredOption("--plan <plan>", "sales_assisted or self_serve")
    .requiredOption("--term-start <YYYY-MM-DD>", "the first day of the first term")
    .option("--seat-prices <pairs>", 'USD per seat per month, e.g. "chat=30,premium=150"', prices)
    .option("--discount <pct>", "discount on usage, percent", decimal)
    .action(
      async (o: {
        org: string;
        plan: string;
        termStart: string;
        seatPrices?: Record<string, string>;
        discount?: string;
      }) => {
        print(
          await callApi("PUT", `${org(o.org)}/contract`, {
            plan: o.plan,
            term_start: o.termStart,
            ...(o.seatPrices ? { seat_prices: o.seatPrices } : {}),
            ...(o.discount ? { discount_pct: o.discount } : {}),
          }),
        );
      },
    );
  contract
    .command("show")
    .requiredOption("--org <org>", "the org")
    .action(async (o: { org: string }) => print(await callApi("GET", `${org(o.org)}/contract`)));

  const seats = program.command("seats").description("seat assignments and their history");
  seats
    .command("assign")
    .description("assign a user a seat of a tier (now, or from --at)")
    .requiredOption("--org <org>", "the org")
    .requiredOption("--user <user>", "the user")
    .requiredOption("--tier <tier>", "the seat tier")
    .option("--at <time>", "when the assignment takes effect (RFC 3339, …Z)")
    .action(async (o: { org: string; user: string; tier: string; at?: string }) => {
      print(
        await callApi("PUT", `${org(o.org)}/seats/${encodeURIComponent(o.user)}`, {
          tier: o.tier,
          ...(o.at ? { effective_at: o.at } : {}),
        }),
      );
    });
  seats
    .command("list")
    .requiredOption("--org <org>", "the org")
    .action(async (o: { org: string }) => print(await callApi("GET", `${org(o.org)}/seats`)));

  program
    .command("invoice")
    .description("an org's invoice of a month: draft until finalized (--finalize: operator key; --csv: its lines)")
    .requiredOption("--org <org>", "the org")
    .requiredOption("--period <YYYY-MM>", "the UTC calendar month", period)
    .option("--finalize", "freeze it (a month that has ended)")
    .option("--csv", "print its lines as CSV")
    .option("--json", "print the API's JSON as is")
    .action(async (o: { org: string; period: string; finalize?: boolean; csv?: boolean; json?: boolean }) => {
      // A big month takes a while: on a terminal, "waiting for the API… N s" on stderr until each answer arrives.
      if (o.finalize) await whileWaiting(() => callApi("POST", `${org(o.org)}/invoices/${o.period}/finalize`));
      if (o.csv) {
        return print(await whileWaiting(() => callApi<string>("GET", `${org(o.org)}/invoices/${o.period}/lines.csv`)));
      }
      const doc = await whileWaiting(() =>
        callApi<Parameters<typeof renderInvoice>[0]>("GET", `${org(o.org)}/invoices?period=${o.period}`),
      );
      print(o.json ? doc : renderInvoice(doc));
    });

  const requests = program.command("requests").description("limit-increase requests (an owner's key decides)");
  requests
    .command("list")
    .requiredOption("--org <org>", "the org")
    .option("--status <status>", "pending, approved or denied")
    .action(async (o: { org: string; status?: string }) =>
      print(await callApi("GET", `${org(o.org)}/limit-requests${o.status ? `?status=${o.status}` : ""}`)),
    );
  requests
    .command("file")
    .description("ask for more for a user (a member's own key, or an owner's)")
    .requiredOption("--org <org>", "the org")
    .requiredOption("--user <user>", "the user")
    .option("--note <text>", "why")
    .action(async (o: { org: string; user: string; note?: string }) =>
      print(
        await callApi("POST", `${org(o.org)}/users/${encodeURIComponent(o.user)}/limit-requests`, {
          ...(o.note ? { note: o.note } : {}),
        }),
      ),
    );
  requests
    .command("approve")
    .requiredOption("--org <org>", "the org")
    .requiredOption("--id <request_id>", "the request")
    .requiredOption("--limit <usd>", 'the user\'s new monthly limit, or "unlimited"')
    .action(async (o: { org: string; id: string; limit: string }) =>
      print(
        await callApi("POST", `${org(o.org)}/limit-requests/${encodeURIComponent(o.id)}/approve`, { limit: o.limit }),
      ),
    );
  requests
    .command("deny")
    .requiredOption("--org <org>", "the org")
    .requiredOption("--id <request_id>", "the request")
    .option("--note <text>", "why")
    .action(async (o: { org: string; id: string; note?: string }) =>
      print(
        await callApi("POST", `${org(o.org)}/limit-requests/${encodeURIComponent(o.id)}/deny`, {
          ...(o.note ? { note: o.note } : {}),
        }),
      ),
    );
}
