export {
  type ClickHouse,
  type ClickHouseClient,
  type ClickHouseOptions,
  createClickHouse,
  DEFAULT_DATABASE,
} from "./client.js";
export { MIGRATIONS_DIR, type Migration, migrate, readMigrations } from "./migrations.js";
