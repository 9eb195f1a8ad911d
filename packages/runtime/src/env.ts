import { z } from "zod";

/** Raised for a bad environment variable or CLI argument; entry points print `message` and exit 2. */
export class ConfigError extends Error {
  override readonly name = "ConfigError";
  readonly exitCode = 2;
}

/**
 * Parses the environment against a zod object schema. Every bad variable is named in one line:
 * `invalid environment: USAGE_API_PORT: expected a port number (1-65535), got "abc"`.
 * The result is frozen: configuration is read once, at start.
 */
export function parseEnv<S extends z.ZodObject<z.ZodRawShape>>(
  schema: S,
  env: NodeJS.ProcessEnv = process.env,
): Readonly<z.infer<S>> {
  const input: Record<string, string | undefined> = {};
  for (const key of Object.keys(schema.shape)) {
    const value = env[key];
    // An empty variable is treated as unset, as shells and compose files commonly export VAR= for "no value".
    input[key] = value === "" ? undefined : value;
  }
  const parsed = schema.safeParse(input);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => {
      const key = String(issue.path[0] ?? "?");
      const raw = input[key];
      const shown = raw === undefined ? "unset" : isSecretName(key) ? "got a value" : `got ${JSON.stringify(raw)}`;
      return `${key}: ${issue.message} (${shown})`;
    });
    throw new ConfigError(`invalid environment: ${problems.join("; ")}`);
  }
  return Object.freeze(parsed.data);
}

function isSecretName(key: string): boolean {
  return /PASSWORD|SECRET|KEY|TOKEN/.test(key);
}

/** Common variable shapes. */
export const envVars = {
  port: (fallback: number) =>
    z.coerce
      .number({ invalid_type_error: "expected a port number (1-65535)" })
      .int("expected a port number (1-65535)")
      .min(1, "expected a port number (1-65535)")
      .max(65535, "expected a port number (1-65535)")
      .default(fallback),
  brokers: () =>
    z
      .string()
      .regex(/^[^\s,:]+:\d{1,5}(,[^\s,:]+:\d{1,5})*$/, "expected host:port[,host:port...]")
      .transform((v) => v.split(",")),
  url: () => z.string().url("expected a URL such as http://127.0.0.1:8123"),
  logLevel: () =>
    z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"], {
      errorMap: () => ({ message: "expected one of fatal, error, warn, info, debug, trace, silent" }),
    }),
};

/** The variables of SPEC §10, shared by every entry point. */
export const baseEnvSchema = z.object({
  KAFKA_BROKERS: envVars.brokers().optional(),
  CLICKHOUSE_URL: envVars.url().optional(),
  CLICKHOUSE_USER: z.string().optional(),
  CLICKHOUSE_PASSWORD: z.string().optional(),
  CLICKHOUSE_DATABASE: z
    .string()
    .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, "expected a database name (letters, digits, _)")
    .optional(),
  USAGE_DATA_DIR: z.string().default("./.data"),
  USAGE_API_PORT: envVars.port(8080),
  USAGE_API_HOST: z.string().min(1).default("127.0.0.1"),
  USAGE_API_KEY: z.string().min(16, "expected at least 16 characters").optional(),
  // Seals stored secrets (@usage/webhooks secrets.ts): 32 bytes as 64 hex characters or base64; checked when loaded.
  USAGE_SECRET_KEY: z.string().min(1, "expected 32 bytes as 64 hex characters or base64").optional(),
  LOG_LEVEL: envVars.logLevel().default("info"),
  KAFKA_PARTITIONS: z.coerce
    .number({ invalid_type_error: "expected a partition count (1-1024)" })
    .int()
    .min(1, "expected a partition count (1-1024)")
    .max(1024, "expected a partition count (1-1024)")
    .default(4),
  KAFKA_REPLICATION_FACTOR: z.coerce
    .number({ invalid_type_error: "expected a replication factor (1-16)" })
    .int("expected a replication factor (1-16)")
    .min(1, "expected a replication factor (1-16)")
    .max(16, "expected a replication factor (1-16)")
    .default(1),
  KAFKA_MIN_INSYNC_REPLICAS: z.coerce
    .number({ invalid_type_error: "expected a replica count (1-16)" })
    .int("expected a replica count (1-16)")
    .min(1, "expected a replica count (1-16)")
    .max(16, "expected a replica count (1-16)")
    .default(1),
  /** How many members of each consumer-group service one process runs (`usagectl start`, `usagectl run`). */
  USAGE_MEMBERS: z.coerce
    .number({ invalid_type_error: "expected a member count (1-32)" })
    .int("expected a member count (1-32)")
    .min(1, "expected a member count (1-32)")
    .max(32, "expected a member count (1-32)")
    .default(1),
  // The port `usagectl start` runs its local broker on when KAFKA_BROKERS is unset (its KRaft controller takes the
  // next one), so two data dirs can each run their own broker side by side.
  USAGE_LOCAL_KAFKA_PORT: envVars.port(9092).refine((p) => p < 65535, "expected a port number (1-65534)"),
  USAGE_BACKFILL_DAYS: z.coerce
    .number({ invalid_type_error: "expected a whole number of days (1-366)" })
    .int("expected a whole number of days (1-366)")
    .min(1, "expected a whole number of days (1-366)")
    .max(366, "expected a whole number of days (1-366)")
    .default(35),
  // Requests per minute an API key may make (per API instance): admin and analytics routes, and the allowance
  // route on its own budget.
  USAGE_RATE_LIMIT_PER_MIN: z.coerce
    .number({ invalid_type_error: "expected requests per minute (1-10000000)" })
    .int("expected requests per minute (1-10000000)")
    .min(1, "expected requests per minute (1-10000000)")
    .max(10_000_000, "expected requests per minute (1-10000000)")
    .default(6000),
  USAGE_ALLOWANCE_RATE_LIMIT_PER_MIN: z.coerce
    .number({ invalid_type_error: "expected requests per minute (1-10000000)" })
    .int("expected requests per minute (1-10000000)")
    .min(1, "expected requests per minute (1-10000000)")
    .max(10_000_000, "expected requests per minute (1-10000000)")
    .default(120_000),
  // Days after a month ends before its invoices finalize on their own (SPEC §13); 0 finalizes as soon as it ends.
  USAGE_INVOICE_GRACE_DAYS: z.coerce
    .number({ invalid_type_error: "expected a whole number of days (0-60)" })
    .int("expected a whole number of days (0-60)")
    .min(0, "expected a whole number of days (0-60)")
    .max(60, "expected a whole number of days (0-60)")
    .default(3),
  // SSRF guard (@usage/webhooks address.ts): false refuses webhook hosts that resolve to loopback, private,
  // link-local or metadata addresses, and plain http; true is for local development and tests only.
  USAGE_WEBHOOK_ALLOW_PRIVATE: z
    .enum(["true", "false"], { errorMap: () => ({ message: 'expected "true" or "false"' }) })
    .default("false")
    .transform((v) => v === "true"),
});
export type BaseEnv = z.infer<typeof baseEnvSchema>;

export const DEFAULT_KAFKA_BROKERS = ["127.0.0.1:9092"];
