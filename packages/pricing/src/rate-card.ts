/**
 * Rate cards (SPEC §4) are data files: versions, each effective from a UTC instant, each mapping base model
 * ids to list rates in USD per million tokens (MTok). Rates stay decimal strings here; the pricer scales them
 * to integers once, so nothing in this module touches floating point.
 */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { z } from "zod";

/** Decimal places a rate may have: rates become integers in micro-USD per MTok. */
export const RATE_SCALE = 6;

/** The rate card shipped with the package (`rate-cards/default.json`); resolves the same from src/ and dist/. */
export const DEFAULT_RATE_CARD_URL: URL = new URL("../rate-cards/default.json", import.meta.url);

/** Rates of one model for the four token kinds, USD per MTok as decimal strings. */
export interface TokenRates {
  readonly input: string;
  readonly output: string;
  readonly cache_write: string;
  readonly cache_read: string;
}

/** A model's rates; `long_context` is present only for models priced differently above 200,000 prompt tokens. */
export interface ModelRates extends TokenRates {
  readonly long_context?: TokenRates;
}

export interface RateCardVersion {
  readonly version: string;
  /** As written in the file (RFC 3339, UTC). */
  readonly effective_from: string;
  /** `effective_from` in epoch milliseconds. */
  readonly effective_from_ms: number;
  /** Keyed by base model id (no `-YYYYMMDD` suffix). Has no prototype, so any string is safe to look up. */
  readonly models: Readonly<Record<string, ModelRates>>;
}

/** A validated rate card; `versions` are sorted by `effective_from`, oldest first. */
export interface RateCard {
  readonly versions: readonly RateCardVersion[];
}

export class RateCardError extends Error {
  override readonly name = "RateCardError";
  /** One line per problem, each `path: message`. */
  readonly issues: readonly string[];

  constructor(issues: readonly string[], source?: string, options?: ErrorOptions) {
    super(`invalid rate card${source === undefined ? "" : ` ${source}`}: ${issues.join("; ")}`, options);
    this.issues = issues;
  }
}

const PLAIN_DECIMAL = /^\d+(?:\.(\d+))?$/;
const DATED_SUFFIX = /-\d{8}$/;
// Starts with a letter or digit so a key can never be `__proto__` or similar.
const MODEL_ID = /^[a-z0-9][a-z0-9._-]*$/;

const UTC_TIMESTAMP = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,3})?Z$/;
const UTC_TIMESTAMP_MESSAGE = "expected an RFC 3339 UTC timestamp such as 2025-11-01T00:00:00Z";

function isUtcTimestamp(s: string): boolean {
  if (!UTC_TIMESTAMP.test(s)) return false;
  const ms = Date.parse(s);
  // Date.parse rolls 2025-02-30 over to March; a real date survives the round trip unchanged.
  return !Number.isNaN(ms) && new Date(ms).toISOString().slice(0, 19) === s.slice(0, 19);
}

const rate = z.string({ invalid_type_error: "expected a non-negative decimal string" }).superRefine((s, ctx) => {
  const match = PLAIN_DECIMAL.exec(s);
  if (!match) {
    ctx.addIssue({ code: z.ZodIssueCode.custom, message: "expected a non-negative decimal string" });
  } else if ((match[1]?.length ?? 0) > RATE_SCALE) {
    ctx.addIssue({ code: z.ZodIssueCode.custom, message: `expected at most ${RATE_SCALE} decimal places` });
  }
});

// Strict objects: a misspelt key ("cache_wirte") in a data file must fail loudly, not price at a missing rate.
const tokenRates = z.object({ input: rate, output: rate, cache_write: rate, cache_read: rate }).strict();

const modelRates = tokenRates.extend({ long_context: tokenRates.optional() }).strict();

const modelId = z
  .string()
  .regex(MODEL_ID, "expected a model id of lowercase letters, digits, '.', '_' and '-'")
  .refine((id) => !DATED_SUFFIX.test(id), "expected a base model id without a -YYYYMMDD suffix");

const rateCardVersion = z
  .object({
    version: z.string({ invalid_type_error: "expected a string" }).min(1, "expected a non-empty string"),
    effective_from: z
      .string({ invalid_type_error: UTC_TIMESTAMP_MESSAGE })
      .refine(isUtcTimestamp, UTC_TIMESTAMP_MESSAGE),
    models: z.record(modelId, modelRates),
  })
  .strict();

const rateCardFile = z.object({ versions: z.array(rateCardVersion).min(1, "expected at least one version") }).strict();

/** `versions[1].models.claude-x.input`, the way a person would point into the file. */
function formatPath(path: readonly (string | number)[]): string {
  if (path.length === 0) return "(root)";
  let out = "";
  for (const part of path) out += typeof part === "number" ? `[${part}]` : out === "" ? part : `.${part}`;
  return out;
}

/**
 * Validates a parsed rate-card file and returns it with versions sorted by `effective_from`. Throws
 * `RateCardError` naming every bad path; two versions with the same name or the same `effective_from` are an
 * error because either would make the version in force ambiguous.
 */
export function parseRateCard(json: unknown, source?: string): RateCard {
  const parsed = rateCardFile.safeParse(json);
  if (!parsed.success) {
    throw new RateCardError(
      parsed.error.issues.map((issue) => `${formatPath(issue.path)}: ${issue.message}`),
      source,
    );
  }

  const issues: string[] = [];
  const byName = new Map<string, number>();
  const byInstant = new Map<number, number>();
  const versions = parsed.data.versions.map((v, index): RateCardVersion => {
    const effectiveFromMs = Date.parse(v.effective_from);
    const sameName = byName.get(v.version);
    if (sameName !== undefined) {
      issues.push(`versions[${index}].version: duplicate version "${v.version}" (also versions[${sameName}])`);
    } else {
      byName.set(v.version, index);
    }
    // Compared as instants, so "…T00:00:00Z" and "…T00:00:00.000Z" are the same effective_from.
    const sameInstant = byInstant.get(effectiveFromMs);
    if (sameInstant !== undefined) {
      issues.push(
        `versions[${index}].effective_from: duplicate effective_from ${v.effective_from} (also versions[${sameInstant}])`,
      );
    } else {
      byInstant.set(effectiveFromMs, index);
    }
    const models: Record<string, ModelRates> = Object.create(null);
    for (const [id, rates] of Object.entries(v.models)) models[id] = rates;
    return { version: v.version, effective_from: v.effective_from, effective_from_ms: effectiveFromMs, models };
  });
  if (issues.length > 0) throw new RateCardError(issues, source);

  versions.sort((a, b) => a.effective_from_ms - b.effective_from_ms);
  return { versions };
}

/** Reads and validates a rate-card file; by default the packaged `rate-cards/default.json`. */
export function loadRateCard(path: string | URL = DEFAULT_RATE_CARD_URL): RateCard {
  const source = path instanceof URL && path.protocol === "file:" ? fileURLToPath(path) : String(path);
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    throw new RateCardError([`cannot read file: ${(error as Error).message}`], source, { cause: error });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new RateCardError([`not valid JSON: ${(error as Error).message}`], source, { cause: error });
  }
  return parseRateCard(json, source);
}

/** The newest version whose `effective_from` ≤ `occurredAtMs`; undefined when none is in force yet. */
export function versionAt(card: RateCard, occurredAtMs: number): RateCardVersion | undefined {
  const { versions } = card;
  // Newest first: almost every event falls in the latest version, so this usually stops at once.
  for (let i = versions.length - 1; i >= 0; i--) {
    const version = versions[i]!;
    if (version.effective_from_ms <= occurredAtMs) return version;
  }
  return undefined;
}
