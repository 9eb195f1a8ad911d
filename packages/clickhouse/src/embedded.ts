/**
 * The embedded engine's connection: chdb's ChdbConnection, with settings scoped the way a ClickHouse server scopes
 * them, and inserts handed to the engine as bytes.
 *
 * Why: chdb's connection applies a call's `clickhouse_settings` by prefixing `SET k = v; …` to the statement. A SET
 * stays on the process's one session, so a setting meant for one query reaches every later one. For
 * `insert_deduplication_token` that loses data: after a batch's insert with token T, an insert into the same table
 * without a token (the start-up rollup repair, `INSERT … SELECT`) carries T too, and the engine drops it as a repeat
 * of that batch. And a `SET …;` prefix makes the engine split a multi-statement text, which reads the whole insert
 * body: about 9 ms of 19 for 1,000 usage_events rows (test/bench/insert-formats.mjs has the figures).
 *
 * So:
 *   - the client's own settings (the same on every call) are SET once on the session when it opens, and dropped
 *     from each call;
 *   - an insert's other settings go in the INSERT's own SETTINGS clause (`INSERT INTO t (…) SETTINGS k = v FORMAT
 *     F`), scoped to that insert as on a server, and its body goes to the engine as one Buffer (chdb's raw insert:
 *     no copy into the SQL text, the engine's parser reads it);
 *   - any other call with a setting of its own is refused: on this engine it could only be a SET that stays.
 */
import { type ClickHouseSettings, parseError } from "@clickhouse/client";
import type { RawInsertFormat } from "chdb";
import type { createChdbConnection } from "chdb/connection";

type ChdbConnection = ReturnType<typeof createChdbConnection>;
type QueryParams = Parameters<ChdbConnection["query"]>[0];
type ExecParams = Parameters<ChdbConnection["exec"]>[0];
type InsertParams = Parameters<ChdbConnection["insert"]>[0];
type InsertResult = Awaited<ReturnType<ChdbConnection["insert"]>>;

// Settings of the HTTP layer, which clickhouse-js may send and the embedded engine has no use for (chdb's connection
// drops the same list).
const HTTP_ONLY = new Set([
  "wait_end_of_query",
  "send_progress_in_http_headers",
  "http_response_buffer_size",
  "http_headers_progress_interval_ms",
  "http_send_progress_interval_ms",
  "enable_http_compression",
  "http_zlib_compression_level",
  "http_response_compression_method",
  "http_native_compression_disable_checksumming_on_decompress",
]);

// The query clickhouse-js builds for an insert (client-common getInsertQuery): `INSERT INTO t[ (a, b)] FORMAT F`.
const INSERT_QUERY = /^INSERT INTO ([A-Za-z_][A-Za-z0-9_.]*)(?: \(([A-Za-z0-9_, ]+)\))? FORMAT ([A-Za-z]+)$/;

type SettingValue = string | number | boolean;
// Settings as any copy of clickhouse-js's settings type declares them (chdb brings its own copy of the types).
type Settings = object & { [name: string]: unknown };

function literal(value: SettingValue): string {
  if (typeof value === "number") return String(value);
  if (typeof value === "boolean") return value ? "1" : "0";
  return `'${value.replace(/\\/g, "\\\\").replace(/'/g, "''")}'`;
}

/** The settings of a call that are not already the session's, HTTP-only ones left out. */
function ownSettings(session: Settings, settings?: Settings): Record<string, SettingValue> {
  const own: Record<string, SettingValue> = {};
  for (const [name, value] of Object.entries(settings ?? {})) {
    if (value === undefined || HTTP_ONLY.has(name)) continue;
    if (session[name] === value) continue;
    if (typeof value !== "string" && typeof value !== "number" && typeof value !== "boolean")
      throw new Error(`setting ${name}: only string, number and boolean values are supported on the embedded engine`);
    own[name] = value;
  }
  return own;
}

async function bodyOf(values: InsertParams["values"]): Promise<Buffer> {
  if (typeof values === "string") return Buffer.from(values);
  const chunks: Buffer[] = [];
  for await (const chunk of values as AsyncIterable<string | Uint8Array>)
    chunks.push(
      typeof chunk === "string" ? Buffer.from(chunk) : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length),
    );
  return Buffer.concat(chunks);
}

/**
 * Opens the session with `session` settings SET once and returns the connection to give @clickhouse/client
 * (`createClient({ connection })`, without `clickhouse_settings`: they are the session's now).
 */
export async function embeddedConnection(inner: ChdbConnection, session: ClickHouseSettings): Promise<ChdbConnection> {
  for (const [name, value] of Object.entries(ownSettings({}, session))) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw new Error(`invalid setting name ${JSON.stringify(name)}`);
    await inner.command({ query: `SET ${name} = ${literal(value)}` });
  }
  const refuseOwn = (params: QueryParams | ExecParams): void => {
    const own = Object.keys(ownSettings(session, params.clickhouse_settings));
    if (own.length > 0)
      throw new Error(
        `the embedded engine takes per-call settings on inserts only (${own.join(", ")}): a SET would stay on its session`,
      );
  };
  const insert = async (params: InsertParams): Promise<InsertResult> => {
    const match = INSERT_QUERY.exec(params.query.trim());
    if (!match)
      throw new Error(`the embedded engine's insert does not recognise the query ${JSON.stringify(params.query)}`);
    const [, table, columns, format] = match;
    const body = await bodyOf(params.values);
    const result = { query_id: params.query_id ?? crypto.randomUUID(), response_headers: {}, http_status_code: 200 };
    if (body.length === 0) return result;
    const settings = ownSettings(session, params.clickhouse_settings);
    try {
      await inner.chdb.rawInsert({
        table: table as string,
        ...(columns ? { columns: columns.split(",").map((c) => c.trim()) } : {}),
        format: format as RawInsertFormat,
        values: body,
        ...(Object.keys(settings).length > 0 ? { settings } : {}),
        ...(params.abort_signal ? { signal: params.abort_signal } : {}),
      });
    } catch (err) {
      // As every other call's errors: a ClickHouseError with the engine's code and type when the message has them.
      const mapped = parseError(err instanceof Error ? err.message : String(err));
      mapped.cause = err;
      throw mapped;
    }
    return result;
  };
  return new Proxy(inner, {
    get(target, prop) {
      if (prop === "insert") return insert;
      if (prop === "query" || prop === "command" || prop === "exec") {
        return (params: QueryParams | ExecParams) => {
          refuseOwn(params);
          const call = target[prop] as (p: QueryParams | ExecParams) => Promise<unknown>;
          return call.call(target, { ...params, clickhouse_settings: undefined });
        };
      }
      const value = Reflect.get(target, prop, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}
