// ClickHouse's engine from chdb, served over the subset of ClickHouse's HTTP interface that @clickhouse/client uses:
// for benchmarks that need the engine in a process of its own (to measure a service's RSS without an embedded
// engine) on a machine without a ClickHouse server. Services reach it as a server: CLICKHOUSE_URL=http://127.0.0.1:N.
//
//   node test/bench/clickhouse-http.mjs --data-dir DIR [--port N]   serves DIR until SIGTERM/SIGINT; prints
//                                                                    `listening <url>` on stdout when ready
//   import { startClickHouseHttp } from "./clickhouse-http.mjs"      the same, as a child process: { url, pid, stop }
//
// Implemented: GET /ping and GET / ("Ok.\n"); queries by POST or GET, the SQL in the `query` URL parameter and/or the
// body (concatenated with a newline, as the server does: an INSERT's data follows its `query`); request bodies in
// gzip, deflate or br (Content-Encoding); `database`, `default_format`, `query_id`, `param_<name>` (bound by the
// engine exactly as sent, in the text form client-common's formatQueryParams produces); every other URL parameter
// applied as a setting for that request only; X-ClickHouse-Query-Id, -Format, -Timezone and -Summary headers;
// errors as HTTP 500 with ClickHouse's `Code: N. DB::Exception: … (TYPE) (version …)` body and
// X-ClickHouse-Exception-Code; a gzip or br response when the request asks with enable_http_compression=1.
//
// Not implemented: authentication (any user and password are accepted), sessions (`session_id` is ignored; every
// request stands alone), multipart/form-data query parameters, ClickHouse's native `compress=1`, streaming (each
// result is built whole in memory), progress headers, HTTP-only settings such as wait_end_of_query (accepted and
// ignored), readonly for GET, and cancelling a query when its client goes away. Queries run one at a time in the
// engine's single session, in arrival order; a SET inside a request's own SQL lasts beyond that request.
import { spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdirSync } from "node:fs";
import { createServer } from "node:http";
import { createRequire } from "node:module";
import { resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import * as zlib from "node:zlib";

const SCRIPT = fileURLToPath(import.meta.url);

/**
 * Starts the server as a child process, so the engine lives in a process of its own; resolves once it listens.
 * `port` 0 (the default) picks a free port. `stop()` sends SIGTERM and waits for the process to exit.
 */
export async function startClickHouseHttp({ dataDir, port = 0 }) {
  const child = spawn(process.execPath, [SCRIPT, "--data-dir", dataDir, "--port", String(port)], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  const exited = new Promise((done) => child.once("exit", (code, signal) => done({ code, signal })));
  const url = await new Promise((done, fail) => {
    const lines = createInterface({ input: child.stdout });
    lines.on("line", (line) => {
      const m = /^listening (\S+)$/.exec(line);
      if (m) done(m[1]);
      else process.stdout.write(`clickhouse-http: ${line}\n`);
    });
    child.once("error", fail);
    exited.then(({ code, signal }) => fail(new Error(`clickhouse-http exited before listening (${signal ?? code})`)));
  });
  return {
    url,
    pid: child.pid,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      const { code, signal } = await exited;
      if (code !== 0) throw new Error(`clickhouse-http exited with ${signal ?? code}`);
    },
  };
}

// URL parameters that are not settings.
const NOT_SETTINGS = new Set([
  "query",
  "database",
  "default_format",
  "query_id",
  "session_id",
  "session_timeout",
  "session_check",
  "user",
  "password",
  "quota_key",
  "role",
  "compress",
  "decompress",
  "buffer_size",
  "stacktrace",
]);

// Settings of the HTTP layer: nothing for the engine to apply (the response is always sent whole).
const HTTP_ONLY_SETTINGS = new Set([
  "wait_end_of_query",
  "http_wait_end_of_query",
  "send_progress_in_http_headers",
  "http_headers_progress_interval_ms",
  "http_send_progress_interval_ms",
  "http_response_buffer_size",
  "enable_http_compression",
  "http_zlib_compression_level",
  "http_response_compression_method",
  "http_native_compression_disable_checksumming_on_decompress",
  "cancel_http_readonly_queries_on_client_close",
  "add_http_cors_header",
]);

const CONTENT_TYPES = {
  JSONEachRow: "application/x-ndjson; charset=UTF-8",
  JSONCompactEachRow: "application/x-ndjson; charset=UTF-8",
  JSON: "application/json; charset=UTF-8",
  JSONCompact: "application/json; charset=UTF-8",
  JSONStrings: "application/json; charset=UTF-8",
  TabSeparated: "text/tab-separated-values; charset=UTF-8",
  TSV: "text/tab-separated-values; charset=UTF-8",
  CSV: "text/csv; charset=UTF-8; header=absent",
  CSVWithNames: "text/csv; charset=UTF-8; header=present",
};

const DECOMPRESS = { gzip: zlib.gunzip, "x-gzip": zlib.gunzip, deflate: zlib.inflate, br: zlib.brotliDecompress };
const COMPRESS = { gzip: zlib.gzip, br: zlib.brotliCompress, deflate: zlib.deflate };

async function serve({ dataDir, port }) {
  const path = resolve(dataDir);
  mkdirSync(path, { recursive: true });
  // Loaded here, not at the top: a benchmark that imports startClickHouseHttp must not load the engine itself.
  const { Session } = await import("chdb");
  // chdb's public bind path re-escapes string values as if they were raw JS strings; a value from the URL is already
  // in the text form the server binds, so it goes to the engine as is, through the addon chdb itself loads.
  const native = createRequire(createRequire(import.meta.url).resolve("chdb"))("./dist/loader.js").loadNative();
  const session = new Session(path);
  const run = (sql, format = "TabSeparated", bound) =>
    bound
      ? native.QueryAsyncConnection(session.connection, sql, format, bound)
      : native.QueryAsyncConnection(session.connection, sql, format);
  // An INSERT's data goes to the engine as bytes, not through a JS string: binary formats work, and the engine
  // reports the rows written.
  const insertRaw = (sql, data) => native.InsertRawAsyncConnection(session.connection, sql, data, false);
  const [engineVersion, timezone] = Buffer.from((await run("SELECT version(), timezone()")).bytes)
    .toString()
    .trim()
    .split("\t");

  // Settings persist in the engine's session: each request sets its own and resets those an earlier request set.
  // Requests run one at a time, so that state (and the current database) is always the running request's.
  const settingsSet = new Set();
  let tail = Promise.resolve();
  let stopping = false;
  const serially = (job) => {
    if (stopping) return Promise.reject(clickHouseError(236, "the server is shutting down", "ABORTED"));
    const result = tail.then(job);
    tail = result.then(
      () => {},
      () => {},
    );
    return result;
  };

  async function execute({ database, settings }, runSql) {
    const statements = [`USE ${quoteIdentifier(database)}`];
    for (const name of settingsSet) if (!settings.has(name)) statements.push(`SET ${name} = DEFAULT`);
    for (const [name, value] of settings) statements.push(`SET ${name} = ${quoteString(value)}`);
    try {
      const result = await runSql(`${statements.join("; ")}; `);
      for (const name of settings.keys()) settingsSet.add(name);
      return result;
    } catch (err) {
      // The SETs may have been applied before the failure: reset each (one at a time, as one may be unknown).
      for (const name of settings.keys()) await run(`SET ${name} = DEFAULT`).catch(() => {});
      throw err;
    }
  }

  // URLs as long as a server's default http_max_uri_size (1 MiB): query parameters travel in the URL.
  const server = createServer({ maxHeaderSize: 1 << 20, requestTimeout: 0 }, (req, res) => {
    handle(req, res).catch((err) => sendError(res, err));
  });

  async function handle(req, res) {
    const url = new URL(req.url ?? "/", "http://localhost");
    const params = url.searchParams;
    const body = await readBody(req);
    if (req.method === "GET" && (url.pathname === "/ping" || (url.pathname === "/" && !params.has("query")))) {
      res.writeHead(200, { "Content-Type": "text/plain; charset=UTF-8" }).end("Ok.\n");
      return;
    }
    const queryId = params.get("query_id") || randomUUID();
    if (url.pathname !== "/" || (req.method !== "GET" && req.method !== "POST")) {
      throw clickHouseError(1, `no handler for ${req.method} ${url.pathname}`, "UNSUPPORTED_METHOD");
    }
    if (String(req.headers["content-type"] ?? "").startsWith("multipart/form-data")) {
      throw clickHouseError(1, "multipart/form-data query parameters are not supported here", "UNSUPPORTED_METHOD");
    }

    const settings = new Map();
    const bound = {};
    for (const [name, value] of params) {
      if (name.startsWith("param_")) bound[name.slice("param_".length)] = value;
      else if (!NOT_SETTINGS.has(name) && !HTTP_ONLY_SETTINGS.has(name)) {
        if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) {
          throw clickHouseError(115, `Unknown setting '${name}'`, "UNKNOWN_SETTING");
        }
        settings.set(name, value);
      }
    }
    const hasBound = Object.keys(bound).length > 0;
    const request = { database: params.get("database") || "default", settings };
    const defaultFormat = params.get("default_format") || "TabSeparated";
    const querySql = params.get("query") ?? "";
    // `INSERT … FORMAT X` in the URL, its data in the body (client.insert, or exec with values).
    const insertData = /^\s*INSERT\b[\s\S]*\bFORMAT\s+\w+\s*$/i.test(querySql);

    let result;
    let format = defaultFormat;
    if (insertData && body.toString("latin1").trim() === "") {
      // Nothing to insert: done, as on a server (the engine would answer "No data to insert").
      result = { rowsWritten: 0, bytesWritten: 0, elapsed: 0 };
    } else if (insertData && !hasBound) {
      result = await serially(() => execute(request, (prefix) => insertRaw(`${prefix}${querySql}`, body)));
    } else {
      // The server reads the `query` parameter, a newline, then the body, as one query.
      const text = body.toString("utf8");
      const sql = querySql && text ? `${querySql}\n${text}` : querySql || text;
      if (sql.trim() === "") throw clickHouseError(62, "Empty query", "SYNTAX_ERROR");
      format = /\bFORMAT\s+(\w+)\s*;?\s*$/i.exec(sql)?.[1] ?? defaultFormat;
      result = await serially(() =>
        execute(request, (prefix) => run(`${prefix}${sql}`, defaultFormat, hasBound ? bound : undefined)),
      );
    }

    const summary = {
      read_rows: String(result.rowsRead ?? result.rowsWritten ?? 0),
      read_bytes: String(result.bytesRead ?? result.bytesWritten ?? 0),
      written_rows: String(result.rowsWritten ?? 0),
      written_bytes: String(result.bytesWritten ?? 0),
      total_rows_to_read: "0",
      result_rows: String(result.bytes ? (result.rowsRead ?? 0) : 0),
      result_bytes: String(result.bytes?.byteLength ?? 0),
      elapsed_ns: String(Math.round((result.elapsed ?? 0) * 1e9)),
    };
    const headers = {
      "X-ClickHouse-Query-Id": queryId,
      "X-ClickHouse-Format": format,
      "X-ClickHouse-Timezone": timezone,
      "X-ClickHouse-Server-Display-Name": "chdb",
      "X-ClickHouse-Summary": JSON.stringify(summary),
      "Content-Type": CONTENT_TYPES[format] ?? "text/plain; charset=UTF-8",
    };
    let out = result.bytes ? Buffer.from(result.bytes.buffer, result.bytes.byteOffset, result.bytes.byteLength) : "";
    const encoding = params.get("enable_http_compression") === "1" ? acceptedEncoding(req) : undefined;
    if (encoding) {
      out = await promisify(COMPRESS[encoding])(out);
      headers["Content-Encoding"] = encoding;
    }
    res.writeHead(200, { ...headers, "Content-Length": Buffer.byteLength(out) }).end(out);
  }

  function sendError(res, err) {
    const raw = err instanceof Error ? err.message : String(err);
    const m = /^Code: (\d+)\./.exec(raw);
    const code = m ? m[1] : "1001";
    let message = m ? raw : `Code: 1001. DB::Exception: ${raw}. (STD_EXCEPTION)`;
    if (!/\(version [^)]*\)\s*$/.test(message)) message += ` (version ${engineVersion})`;
    if (res.headersSent) {
      res.destroy();
      return;
    }
    res
      .writeHead(500, { "Content-Type": "text/plain; charset=UTF-8", "X-ClickHouse-Exception-Code": code })
      .end(`${message}\n`);
  }

  async function readBody(req) {
    const chunks = [];
    for await (const chunk of req) chunks.push(chunk);
    let buf = Buffer.concat(chunks);
    const encoding = String(req.headers["content-encoding"] ?? "")
      .trim()
      .toLowerCase();
    if (encoding && encoding !== "identity") {
      const decompress = DECOMPRESS[encoding];
      if (!decompress) throw clickHouseError(1, `unsupported Content-Encoding ${encoding}`, "UNSUPPORTED_METHOD");
      buf = await promisify(decompress)(buf);
    }
    return buf;
  }

  await new Promise((done, fail) => {
    server.once("error", fail);
    server.listen(port, "127.0.0.1", done);
  });
  const address = server.address();
  process.stdout.write(`listening http://127.0.0.1:${address.port}\n`);

  const stop = async () => {
    if (stopping) return;
    stopping = true;
    server.close();
    server.closeIdleConnections();
    await tail;
    server.closeAllConnections();
    session.close();
    process.exit(0);
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

function acceptedEncoding(req) {
  const accepted = String(req.headers["accept-encoding"] ?? "")
    .split(",")
    .map((s) => s.trim().split(";")[0].toLowerCase());
  return Object.keys(COMPRESS).find((e) => accepted.includes(e));
}

function clickHouseError(code, message, type) {
  return new Error(`Code: ${code}. DB::Exception: ${message}. (${type})`);
}

function quoteIdentifier(name) {
  return `\`${name.replace(/\\/g, "\\\\").replace(/`/g, "\\`")}\``;
}

function quoteString(value) {
  return `'${value.replace(/\\/g, "\\\\").replace(/'/g, "\\'")}'`;
}

if (process.argv[1] && resolve(process.argv[1]) === SCRIPT) {
  const arg = (name) => {
    const i = process.argv.indexOf(name);
    return i > 0 ? process.argv[i + 1] : undefined;
  };
  const dataDir = arg("--data-dir");
  if (!dataDir) {
    process.stderr.write("usage: node test/bench/clickhouse-http.mjs --data-dir DIR [--port N]\n");
    process.exit(2);
  }
  await serve({ dataDir, port: Number(arg("--port") ?? 8123) });
}
