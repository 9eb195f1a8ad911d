/**
 * `usagectl report`, `usagectl export`, `usagectl reconcile`: the HTTP API's spend, CSV and reconciliation for a
 * terminal (SPEC §9). They call the API at USAGE_API_URL (default http://127.0.0.1:$USAGE_API_PORT) with the key in
 * USAGE_API_KEY. Bad options or environment: one line, exit 2. An answer other than 2xx, or no answer: one line
 * with the API's error message, exit 1.
 */
import { writeFileSync } from "node:fs";
import { ConfigError, envVars, parseEnv } from "@usage/runtime";
import type { Command } from "commander";
import { z } from "zod";
import { createProgress, formatBytes, type Progress, waitingLine } from "../progress.js";

const apiEnvSchema = z.object({
  USAGE_API_URL: envVars.url().optional(),
  USAGE_API_PORT: envVars.port(8080),
  USAGE_API_KEY: z
    .string({ required_error: "required: the operator or org API key to call the API with" })
    .min(16, "expected at least 16 characters"),
});

const org = z.string().regex(/^[^\s/]{1,128}$/, "expected an org id of 1 to 128 characters without spaces or '/'");
const day = z
  .string()
  .regex(/^\d{4}-\d{2}-\d{2}$/, "expected a date YYYY-MM-DD")
  .refine(
    (d) => !Number.isNaN(Date.parse(`${d}T00:00:00Z`)) && new Date(`${d}T00:00:00Z`).toISOString().startsWith(d),
    {
      message: "expected a real date YYYY-MM-DD",
    },
  );
const oneOf = <T extends [string, ...string[]]>(values: T) =>
  z.enum(values, { errorMap: () => ({ message: `expected one of ${values.join(", ")}` }) });

const reportOptions = z.object({
  org,
  window: oneOf(["mtd", "qtd", "ytd"]).default("mtd"),
  groupBy: oneOf(["user", "model", "product", "seat_tier"]).optional(),
  at: day.optional(),
  json: z.boolean().default(false),
});

const exportOptions = z
  .object({
    org,
    range: oneOf(["mtd", "last_month", "last_90_days"]).optional(),
    from: day.optional(),
    to: day.optional(),
    out: z.string().min(1).optional(),
  })
  .superRefine((o, ctx) => {
    if (o.range !== undefined && (o.from !== undefined || o.to !== undefined)) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ["range"], message: "give either --range or --from/--to" });
    } else if (o.to !== undefined && o.from === undefined) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ["from"], message: "required with --to" });
    }
  });

const reconcileOptions = z.object({
  org,
  period: z.string().regex(/^\d{4}-(0[1-9]|1[0-2])$/, "expected a month YYYY-MM"),
  json: z.boolean().default(false),
});

export function registerReports(program: Command): void {
  program
    .command("report")
    .description("the org's spend for a window from the HTTP API, as a table (net = after discount, gross = list)")
    .requiredOption("--org <org>", "org id")
    .option("--window <window>", "mtd, qtd or ytd", "mtd")
    .option("--group-by <dimension>", "user, model, product or seat_tier (default: one total row)")
    .option("--at <day>", "the window as of this UTC day YYYY-MM-DD (default today)")
    .option("--json", "print the API's JSON as is")
    .action(async (raw: unknown) => {
      const opts = validate(reportOptions, raw);
      const api = apiFromEnv();
      const query = new URLSearchParams({ window: opts.window });
      if (opts.groupBy) query.set("group_by", opts.groupBy);
      if (opts.at) query.set("at", opts.at);
      const res = await call(api, `/v1/orgs/${encodeURIComponent(opts.org)}/spend?${query}`);
      if (!res) return;
      if (opts.json) return void process.stdout.write(`${res.text.trimEnd()}\n`);
      process.stdout.write(renderSpend(JSON.parse(res.text) as SpendReport, opts.groupBy));
    });

  program
    .command("export")
    .description("the spend report CSV from the HTTP API, as is (one row per user × product × model)")
    .requiredOption("--org <org>", "org id")
    .option("--range <range>", "mtd, last_month or last_90_days (default mtd)")
    .option("--from <day>", "custom range start, YYYY-MM-DD (UTC, at most 90 days back)")
    .option("--to <day>", "custom range end, YYYY-MM-DD (UTC, included; default today)")
    .option("--out <file>", "write the CSV to this file instead of stdout")
    .action(async (raw: unknown) => {
      const opts = validate(exportOptions, raw);
      const api = apiFromEnv();
      const query = new URLSearchParams();
      if (opts.range) query.set("range", opts.range);
      if (opts.from) query.set("from", opts.from);
      if (opts.to) query.set("to", opts.to);
      const started = performance.now();
      const res = await call(api, `/v1/orgs/${encodeURIComponent(opts.org)}/export.csv?${query}`, true);
      if (!res) return;
      const rows = () => Math.max(res.text.split("\r\n").filter((l) => l.length > 0).length - 1, 0);
      if (opts.out === undefined) {
        process.stdout.write(res.text);
        // On a terminal only, a closing line on stderr (piped, stderr stays empty).
        createProgress().done(`exported ${rows()} rows (${formatBytes(res.bytes)}) in ${elapsed(started)} s`);
        return;
      }
      try {
        writeFileSync(opts.out, res.text);
      } catch (err) {
        return fail(`cannot write ${opts.out}: ${(err as Error).message}`);
      }
      process.stderr.write(`wrote ${opts.out} (${rows()} rows)\n`);
    });

  program
    .command("reconcile")
    .description(
      "a month's raw vs rollup vs invoice totals, differences and late events from the HTTP API; exit 1 when they do not balance",
    )
    .requiredOption("--org <org>", "org id")
    .requiredOption("--period <YYYY-MM>", "the UTC calendar month")
    .option("--json", "print the API's JSON as is")
    .action(async (raw: unknown) => {
      const opts = validate(reconcileOptions, raw);
      const api = apiFromEnv();
      const res = await call(
        api,
        `/v1/orgs/${encodeURIComponent(opts.org)}/reconciliation?${new URLSearchParams({ period: opts.period })}`,
      );
      if (!res) return;
      const report = JSON.parse(res.text) as Reconciliation;
      process.stdout.write(opts.json ? `${res.text.trimEnd()}\n` : renderReconciliation(report));
      if (!report.balanced) {
        fail(`${report.org_id} ${report.period} does not balance: ${report.differences.length} user(s) differ`);
      }
    });
}

// ---------------------------------------------------------------------------------------------------------
// Calling the API

interface Api {
  base: string;
  key: string;
}

function apiFromEnv(): Api {
  const env = parseEnv(apiEnvSchema);
  const base = (env.USAGE_API_URL ?? `http://127.0.0.1:${env.USAGE_API_PORT}`).replace(/\/+$/, "");
  return { base, key: env.USAGE_API_KEY };
}

/**
 * GETs a path; on failure prints one line, sets exit code 1 and answers undefined. On a terminal, stderr shows a
 * "waiting for the API… N s" line while the request runs and, with `streamed`, the bytes and rows of the body
 * received so far; the line is erased before anything else is printed.
 */
async function call(api: Api, path: string, streamed = false): Promise<{ text: string; bytes: number } | undefined> {
  const progress = createProgress();
  let answer: { res: Response; text: string; bytes: number } | { error: unknown };
  try {
    answer = await receive(`${api.base}${path}`, api.key, progress, streamed);
  } finally {
    progress.done();
  }
  if ("error" in answer) {
    const err = answer.error;
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    fail(`cannot reach the API at ${api.base}: ${cause?.code ?? cause?.message ?? (err as Error).message}`);
    return undefined;
  }
  const { res, text, bytes } = answer;
  if (res.ok) return { text, bytes };
  let message = text.trim().split("\n")[0] || res.statusText;
  let code = "";
  try {
    const body = JSON.parse(text) as { error?: { code?: string; message?: string } };
    if (body.error?.message) message = body.error.message;
    code = body.error?.code ?? "";
  } catch {
    // not JSON: the first line of the body stands
  }
  fail(`${message} (${code ? `${code}, ` : ""}HTTP ${res.status})`);
  return undefined;
}

/**
 * The answer and its whole body as text, or the error of a request that got no answer. `streamed` reads a 2xx body
 * chunk by chunk, counting it on the progress line, and decodes it exactly as `res.text()` does (UTF-8, a leading
 * BOM dropped, bad bytes replaced), so the text is the same either way.
 */
async function receive(
  url: string,
  key: string,
  progress: Progress,
  streamed: boolean,
): Promise<{ res: Response; text: string; bytes: number } | { error: unknown }> {
  const started = performance.now();
  const seconds = () => Math.floor((performance.now() - started) / 1000);
  progress.track(() => waitingLine(performance.now() - started), 250);
  let res: Response;
  try {
    res = await fetch(url, {
      headers: { authorization: `Bearer ${key}` },
      signal: AbortSignal.timeout(120_000),
    });
  } catch (error) {
    return { error };
  }
  if (!streamed || !res.ok || !res.body) {
    const text = await res.text();
    return { res, text, bytes: Buffer.byteLength(text) };
  }
  // The size is known only when the body arrives as sent (fetch decodes a content-encoded one).
  const length = res.headers.get("content-encoding") ? null : res.headers.get("content-length");
  const of = length ? ` of ${formatBytes(Number(length))}` : "";
  const answered = performance.now();
  const decoder = new TextDecoder();
  const parts: string[] = [];
  let bytes = 0;
  let newlines = 0;
  progress.track(() => {
    const rate = (bytes * 1000) / Math.max(performance.now() - answered, 1);
    return `received ${formatBytes(bytes)}${of}, ${Math.max(newlines - 1, 0)} rows · ${formatBytes(Math.round(rate))}/s · ${seconds()} s`;
  });
  for await (const chunk of res.body) {
    bytes += chunk.byteLength;
    const part = decoder.decode(chunk, { stream: true });
    if (progress.active) for (let i = part.indexOf("\n"); i >= 0; i = part.indexOf("\n", i + 1)) newlines++;
    parts.push(part);
  }
  parts.push(decoder.decode());
  return { res, text: parts.join(""), bytes };
}

const elapsed = (since: number) => ((performance.now() - since) / 1000).toFixed(1);

function fail(line: string): void {
  process.stderr.write(`usagectl: ${line.replace(/\s*\n\s*/g, " ")}\n`);
  process.exitCode = 1;
}

/** Validates commander's parsed options; every problem on one line, as a ConfigError (exit 2). */
function validate<T>(schema: z.ZodType<T, z.ZodTypeDef, unknown>, raw: unknown): T {
  const parsed = schema.safeParse(raw);
  if (parsed.success) return parsed.data;
  const problems = parsed.error.issues.map((issue) => {
    const name = String(issue.path[0] ?? "options").replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
    return `--${name}: ${issue.message}`;
  });
  throw new ConfigError(problems.join("; "));
}

// ---------------------------------------------------------------------------------------------------------
// Tables

interface SpendReport {
  org_id: string;
  window: string;
  from: string;
  to: string;
  total: string;
  rows: {
    key: string;
    spend: string;
    gross_spend: string;
    requests: number;
    input_tokens: number;
    output_tokens: number;
    cache_write_tokens: number;
    cache_read_tokens: number;
  }[];
}

interface Figures {
  requests: number;
  gross: string;
  net: string;
}

interface InvoiceSide {
  status: "draft" | "final";
  number: string | null;
  total: string;
  total_matches_lines: boolean;
  requests: number;
  net: string;
  usage_lines: { requests: number; net: string };
  adjustments: { invoice_period: string; status: string; requests: number; net: string }[];
}

interface Reconciliation {
  org_id: string;
  period: string;
  raw: Figures;
  rollup: Figures;
  invoice: InvoiceSide;
  differences: { user_id: string; raw: Figures; rollup: Figures; invoice: { requests: number; net: string } }[];
  balanced: boolean;
  late_totals?: Figures;
  late_events: {
    event_id: string;
    occurred_at: string;
    arrived_at: string;
    user_id: string;
    gross: string;
    net: string;
  }[];
  late_events_truncated?: boolean;
}

type Align = "left" | "right" | "decimal";

function renderSpend(report: SpendReport, groupBy: string | undefined): string {
  const head = `${report.org_id} spend, ${report.window} ${report.from} to ${report.to}${groupBy ? `, by ${groupBy}` : ""}`;
  const rows = report.rows.map((r) => [
    r.key,
    r.spend,
    r.gross_spend,
    String(r.requests),
    String(r.input_tokens),
    String(r.output_tokens),
    String(r.cache_write_tokens),
    String(r.cache_read_tokens),
  ]);
  const table = renderTable(
    [groupBy ?? "", "net spend", "gross spend", "requests", "input", "output", "cache write", "cache read"],
    rows,
    ["left", "decimal", "decimal", "right", "right", "right", "right", "right"],
  );
  return `${head}\n\n${table}\ntotal net spend: ${report.total} USD (net = after the org's discount; gross = list price)\n`;
}

function renderReconciliation(r: Reconciliation): string {
  // Sections separated by one blank line.
  const sections: string[] = [`${r.org_id} ${r.period}: ${r.balanced ? "balanced" : "NOT BALANCED"}`];
  const figureRow = (label: string, f: { requests: number; gross?: string; net: string }) => [
    label,
    String(f.requests),
    f.gross ?? "",
    f.net,
  ];
  const inv = r.invoice;
  sections.push(
    renderTable(
      ["source", "requests", "gross", "net"],
      [
        figureRow("raw (usage_events)", r.raw),
        figureRow("rollup (spend_daily)", r.rollup),
        figureRow(`invoice ${inv.number ?? "(draft)"} usage lines`, inv.usage_lines),
        ...inv.adjustments.map((a) => figureRow(`adjustments on ${a.invoice_period} (${a.status})`, a)),
        figureRow("invoice side, total", inv),
      ],
      ["left", "right", "decimal", "decimal"],
    ),
    `invoice ${r.period}: ${inv.status}, total ${inv.total} USD${inv.total_matches_lines ? "" : " (NOT the sum of its lines)"}`,
  );
  if (r.differences.length === 0) sections.push("differences: none");
  else {
    sections.push(
      `differences: ${r.differences.length} user(s)`,
      renderTable(
        ["user", "source", "requests", "gross", "net"],
        r.differences.flatMap((d) => [
          [d.user_id, ...figureRow("raw", d.raw)],
          ["", ...figureRow("rollup", d.rollup)],
          ["", ...figureRow("invoice", d.invoice)],
        ]),
        ["left", "left", "right", "decimal", "decimal"],
      ),
    );
  }
  const late = r.late_totals ?? { requests: r.late_events.length, gross: "", net: "" };
  sections.push(
    `late events (arrived after ${r.period} had closed; counted in ${r.period}): ${late.requests}${
      late.gross ? `, gross ${late.gross}, net ${late.net}` : ""
    }${r.late_events_truncated ? ` (first ${r.late_events.length} listed)` : ""}`,
  );
  if (r.late_events.length > 0) {
    sections.push(
      renderTable(
        ["event_id", "occurred_at", "arrived_at", "user", "gross", "net"],
        r.late_events.map((e) => [e.event_id, e.occurred_at, e.arrived_at, e.user_id, e.gross, e.net]),
        ["left", "left", "left", "left", "decimal", "decimal"],
      ),
    );
  }
  return `${sections.map((s) => s.trimEnd()).join("\n\n")}\n`;
}

/** An aligned text table: decimal columns line up on the point, counts right-aligned, text left-aligned. */
export function renderTable(headers: string[], rows: string[][], align: Align[]): string {
  const columns = headers.map((header, c) => {
    const cells = rows.map((r) => r[c] ?? "");
    if (align[c] === "decimal") {
      const parts = cells.map((v) => {
        const dot = v.indexOf(".");
        return dot < 0 ? [v, ""] : [v.slice(0, dot), v.slice(dot)];
      });
      const whole = Math.max(0, ...parts.map(([w]) => w!.length));
      const fraction = Math.max(0, ...parts.map(([, f]) => f!.length));
      const formatted = parts.map(([w, f]) => w!.padStart(whole) + f!.padEnd(fraction));
      const width = Math.max(header.length, whole + fraction);
      return { header: header.padStart(width), cells: formatted.map((v) => v.padStart(width)) };
    }
    const width = Math.max(header.length, ...cells.map((v) => v.length));
    const pad = (v: string) => (align[c] === "right" ? v.padStart(width) : v.padEnd(width));
    return { header: pad(header), cells: cells.map(pad) };
  });
  const line = (cells: string[]) => cells.join("  ").trimEnd();
  return `${[line(columns.map((c) => c.header)), ...rows.map((_, i) => line(columns.map((c) => c.cells[i]!)))].join("\n")}\n`;
}
