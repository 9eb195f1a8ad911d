import type { Command } from "commander";
import { InvalidArgumentError } from "commander";
import { callApi } from "../api-client.js";

const ROLES = ["owner", "analyst", "group_owner", "member", "surface"];

function role(value: string): string {
  if (!ROLES.includes(value)) throw new InvalidArgumentError(`expected one of ${ROLES.join(", ")}`);
  return value;
}

function time(value: string): string {
  if (!/^\d{4}-\d{2}-\d{2}T/.test(value) || Number.isNaN(Date.parse(value))) {
    throw new InvalidArgumentError("expected an RFC 3339 time, e.g. 2027-01-01T00:00:00Z");
  }
  return value;
}

const print = (value: unknown) => process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
const orgPath = (org: string) => `/v1/orgs/${encodeURIComponent(org)}/keys`;

export function registerKeys(program: Command): void {
  const keys = program
    .command("keys")
    .description("an org's API keys and their roles (SPEC §11); needs an operator or owner key in USAGE_API_KEY");
  keys
    .command("create")
    .description("create a key for one org with one role; the key is printed once and never stored in clear")
    .requiredOption("--org <org>", "the org the key belongs to")
    .option("--role <role>", `one of ${ROLES.join(", ")}`, role, "owner")
    .option("--group <group>", "the group of a group_owner key")
    .option("--user <user>", "the user of a member key")
    .option("--expires <time>", "when the key stops working (RFC 3339)", time)
    .action(async (opts: { org: string; role: string; group?: string; user?: string; expires?: string }) => {
      print(
        await callApi("POST", orgPath(opts.org), {
          role: opts.role,
          ...(opts.group ? { group: opts.group } : {}),
          ...(opts.user ? { user: opts.user } : {}),
          ...(opts.expires ? { expires_at: opts.expires } : {}),
        }),
      );
    });
  keys
    .command("list")
    .description("an org's keys: id, role, scope, created, expires, last used, status (never a secret)")
    .requiredOption("--org <org>", "the org")
    .action(async (opts: { org: string }) => {
      print(await callApi("GET", orgPath(opts.org)));
    });
  keys
    .command("revoke")
    .description("revoke a key: every API instance refuses it within a second")
    .requiredOption("--org <org>", "the org")
    .requiredOption("--key <key_id>", "the key's id (from keys list)")
    .action(async (opts: { org: string; key: string }) => {
      print(await callApi("DELETE", `${orgPath(opts.org)}/${encodeURIComponent(opts.key)}`));
    });
  keys
    .command("rotate")
    .description("a new key with the same role and scope; the old one keeps working for the overlap, then expires")
    .requiredOption("--org <org>", "the org")
    .requiredOption("--key <key_id>", "the key's id (from keys list)")
    .option("--overlap <seconds>", "how long the old key keeps working (default 86400)", (v) => {
      if (!/^\d+$/.test(v)) throw new InvalidArgumentError("expected whole seconds");
      return Number(v);
    })
    .action(async (opts: { org: string; key: string; overlap?: number }) => {
      print(
        await callApi(
          "POST",
          `${orgPath(opts.org)}/${encodeURIComponent(opts.key)}/rotate`,
          opts.overlap === undefined ? {} : { overlap_seconds: opts.overlap },
        ),
      );
    });
}
