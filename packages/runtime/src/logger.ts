import { destination, type Logger, pino } from "pino";

export type { Logger } from "pino";

/** One structured logger per process; services take a child with their name. Secrets are redacted by path. */
export function createLogger(options: { level?: string; name?: string; destination?: number } = {}): Logger {
  return pino(
    {
      level: options.level ?? "info",
      name: options.name,
      base: undefined,
      redact: {
        paths: ["secret", "*.secret", "apiKey", "*.apiKey", "authorization", "*.authorization"],
        censor: "[redacted]",
      },
    },
    destination({ dest: options.destination ?? 2, sync: false }),
  );
}
