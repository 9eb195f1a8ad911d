export { type BaseEnv, baseEnvSchema, ConfigError, DEFAULT_KAFKA_BROKERS, envVars, parseEnv } from "./env.js";
export { createGroupCommit } from "./group-commit.js";
export { createLogger, type Logger } from "./logger.js";
export { createShutdown, type Shutdown } from "./shutdown.js";
