import { describe, expect, it } from "vitest";
import { baseEnvSchema, ConfigError, parseEnv } from "./env.js";

describe("parseEnv", () => {
  it("applies the defaults of SPEC §10", () => {
    const env = parseEnv(baseEnvSchema, {});
    expect(env).toMatchObject({
      USAGE_DATA_DIR: "./.data",
      USAGE_API_PORT: 8080,
      LOG_LEVEL: "info",
      USAGE_BACKFILL_DAYS: 35,
    });
    expect(env.KAFKA_BROKERS).toBeUndefined();
    expect(Object.isFrozen(env)).toBe(true);
  });

  it("reads and splits broker lists", () => {
    expect(parseEnv(baseEnvSchema, { KAFKA_BROKERS: "a:9092,b:9093" }).KAFKA_BROKERS).toEqual(["a:9092", "b:9093"]);
  });

  it("names every bad variable in one line", () => {
    let error: unknown;
    try {
      parseEnv(baseEnvSchema, { USAGE_API_PORT: "abc", KAFKA_BROKERS: "nope", LOG_LEVEL: "loud" });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const message = (error as ConfigError).message;
    expect(message.split("\n")).toHaveLength(1);
    expect(message).toContain("USAGE_API_PORT: expected a port number (1-65535)");
    expect(message).toContain('got "abc"');
    expect(message).toContain("KAFKA_BROKERS");
    expect(message).toContain("LOG_LEVEL");
    expect((error as ConfigError).exitCode).toBe(2);
  });

  it("never prints a secret's value", () => {
    expect(() => parseEnv(baseEnvSchema, { USAGE_API_KEY: "short-secret" })).toThrow(
      /USAGE_API_KEY: .*\(got a value\)/,
    );
    expect(() => parseEnv(baseEnvSchema, { USAGE_API_KEY: "short-secret" })).not.toThrow(/short-secret/);
  });

  it("reads the local broker's port for `usagectl start`, 9092 by default", () => {
    expect(parseEnv(baseEnvSchema, {}).USAGE_LOCAL_KAFKA_PORT).toBe(9092);
    expect(parseEnv(baseEnvSchema, { USAGE_LOCAL_KAFKA_PORT: "29000" }).USAGE_LOCAL_KAFKA_PORT).toBe(29000);
    // Its controller takes the next port, so 65535 cannot be one.
    for (const bad of ["x", "0", "65535", "9092.5"]) {
      expect(() => parseEnv(baseEnvSchema, { USAGE_LOCAL_KAFKA_PORT: bad })).toThrow(
        new RegExp(`^invalid environment: USAGE_LOCAL_KAFKA_PORT: expected a port number .*got "${bad}"`),
      );
    }
  });

  it("treats an empty variable as unset", () => {
    expect(parseEnv(baseEnvSchema, { USAGE_API_PORT: "" }).USAGE_API_PORT).toBe(8080);
  });
});
