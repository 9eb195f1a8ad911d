import { readFileSync } from "node:fs";
import { SEAT_TIERS, type SeatTier } from "@usage/events";
import { evaluateCaps, parsePolicy, type SpendSnapshot } from "@usage/policy";
import { ConfigError } from "@usage/runtime";
import type { Command } from "commander";
import { z } from "zod";

export function registerPolicy(program: Command): void {
  const policy = program.command("policy").description("spend policy (caps) tools");
  policy
    .command("evaluate")
    .description("offline: print the caps of a policy for a spend file, as the JSON of GET /v1/orgs/{org}/caps")
    .requiredOption("--policy <file>", "policy JSON file (SPEC §5)")
    .requiredOption("--spend <file>", 'spend JSON file: { "org_total": "…", "users": { "<user_id>": "…" } }')
    .option("--seat-tiers <file>", 'JSON file of each user\'s seat tier on their latest event: { "<user_id>": "chat" }')
    .action((opts: { policy: string; spend: string; seatTiers?: string }) => {
      const parsed = parsePolicy(readJson("--policy", opts.policy));
      if (!parsed.ok) throw new ConfigError(`--policy: ${describe(parsed.errors)}`);
      const spend = validate("--spend", spendFile, readJson("--spend", opts.spend));
      const seatTiers =
        opts.seatTiers === undefined
          ? undefined
          : validate("--seat-tiers", seatTiersFile, readJson("--seat-tiers", opts.seatTiers));
      process.stdout.write(`${JSON.stringify(evaluateCaps(parsed.policy, spend, seatTiers), null, 2)}\n`);
    });
}

const MONEY_MESSAGE = 'expected a decimal string >= 0 such as "12.5" (no exponent)';
const money = z.string({ invalid_type_error: MONEY_MESSAGE }).regex(/^\d+(?:\.\d+)?$/, MONEY_MESSAGE);

const userId = z
  .string()
  .min(1, "expected a non-empty user id")
  .max(128, "expected a user id of at most 128 characters")
  .refine((s) => s !== "__proto__", '"__proto__" is not allowed as a user id');

const spendFile: z.ZodType<SpendSnapshot, z.ZodTypeDef, unknown> = z
  .object({ org_total: money, users: z.record(userId, money).default({}) })
  .strict();

const seatTiersFile: z.ZodType<Record<string, SeatTier>, z.ZodTypeDef, unknown> = z.record(
  userId,
  z.enum(SEAT_TIERS, { errorMap: () => ({ message: `expected a seat tier: one of ${SEAT_TIERS.join(", ")}` }) }),
);

function readJson(option: string, file: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new ConfigError(`${option}: cannot read ${file}: ${(err as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`${option}: ${file} is not valid JSON: ${(err as Error).message}`);
  }
}

function validate<T>(option: string, schema: z.ZodType<T, z.ZodTypeDef, unknown>, json: unknown): T {
  const parsed = schema.safeParse(json);
  if (parsed.success) return parsed.data;
  const errors = parsed.error.issues.flatMap((issue) =>
    issue.code === z.ZodIssueCode.unrecognized_keys
      ? issue.keys.map((key) => ({ path: formatPath([...issue.path, key]), message: "unknown key" }))
      : [{ path: formatPath(issue.path), message: issue.message }],
  );
  throw new ConfigError(`${option}: ${describe(errors)}`);
}

/** All problems on one line: `path: message; path: message`. */
function describe(errors: readonly { path: string; message: string }[]): string {
  return errors.map((e) => `${e.path}: ${e.message}`).join("; ");
}

function formatPath(path: readonly (string | number)[]): string {
  if (path.length === 0) return "(root)";
  return path
    .map((part, i) =>
      typeof part === "number"
        ? `[${part}]`
        : /^[^.[\]\s"]+$/.test(part)
          ? `${i === 0 ? "" : "."}${part}`
          : `[${JSON.stringify(part)}]`,
    )
    .join("");
}
