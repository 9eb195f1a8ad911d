import { ConfigError } from "@usage/runtime";
import { describe, expect, it } from "vitest";
import { loadNotifierEnv } from "./env.js";

describe("loadNotifierEnv", () => {
  it("defaults the retry schedule to 1 s base, 60 s maximum, 10 attempts", () => {
    expect(loadNotifierEnv({})).toMatchObject({
      USAGE_NOTIFIER_GROUP: "usage-notifier",
      USAGE_WEBHOOK_RETRY_BASE_MS: 1000,
      USAGE_WEBHOOK_RETRY_MAX_MS: 60000,
      USAGE_WEBHOOK_MAX_ATTEMPTS: 10,
      USAGE_WEBHOOK_TIMEOUT_MS: 10000,
      USAGE_NOTIFIER_POLL_MS: 1000,
    });
    expect(loadNotifierEnv({}).USAGE_NOTIFIER_METRICS_PORT).toBeUndefined();
  });

  it("reads the retry settings and names bad ones in one line", () => {
    expect(loadNotifierEnv({ USAGE_WEBHOOK_RETRY_BASE_MS: "250", USAGE_WEBHOOK_MAX_ATTEMPTS: "3" })).toMatchObject({
      USAGE_WEBHOOK_RETRY_BASE_MS: 250,
      USAGE_WEBHOOK_MAX_ATTEMPTS: 3,
    });
    expect(() => loadNotifierEnv({ USAGE_WEBHOOK_MAX_ATTEMPTS: "0", USAGE_WEBHOOK_RETRY_BASE_MS: "x" })).toThrow(
      /USAGE_WEBHOOK_RETRY_BASE_MS.*USAGE_WEBHOOK_MAX_ATTEMPTS|USAGE_WEBHOOK_MAX_ATTEMPTS.*USAGE_WEBHOOK_RETRY_BASE_MS/,
    );
  });

  it("refuses a maximum delay below the base", () => {
    expect(() => loadNotifierEnv({ USAGE_WEBHOOK_RETRY_BASE_MS: "5000", USAGE_WEBHOOK_RETRY_MAX_MS: "1000" })).toThrow(
      ConfigError,
    );
  });
});
