import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createChdbConnection } from "chdb/connection";
import { USAGE_EVENT_COLUMNS as COLUMNS } from "@usage/clickhouse";
const conn = createChdbConnection({ path: mkdtempSync(join(tmpdir(), "mb-")) });
const s = conn.chdb;
const src = readFileSync(new URL('./insert-formats.mjs', import.meta.url),'utf8');
const rowSrc = src.slice(src.indexOf('const row = () =>'), src.indexOf('const tsv'));
let n=0;
const row = eval('(' + rowSrc.replace('const row = ','').replace(/;\s*$/,'') + ')');
await s.queryAsync("CREATE DATABASE IF NOT EXISTS usage");
await s.queryAsync(`CREATE TABLE usage.mem (event_id String, org_id String, user_id String, user_email String, account_uuid String, request_id String, region String, seat_tier String, product String, model String, model_base String, occurred_at DateTime64(3,'UTC'), input_tokens UInt64, output_tokens UInt64, cache_write_tokens UInt64, cache_read_tokens UInt64, prompt_tokens UInt64, long_context Bool, rate_card_version String, input_cost Decimal(38,12), output_cost Decimal(38,12), cache_write_cost Decimal(38,12), cache_read_cost Decimal(38,12), gross_cost Decimal(38,12), discount_pct Decimal(9,4), net_cost Decimal(38,12), priced_at DateTime64(3,'UTC'), batch_id String, is_late Bool) ENGINE = Memory`);
for (const ROWS of [250, 1000, 4000]) {
const rows = Array.from({length: ROWS}, row);
const body = rows.map(r=>JSON.stringify(COLUMNS.map(c=>r[c]))).join('\n');
let t0=performance.now(); for (let i=0;i<10;i++) await s.queryAsync(`INSERT INTO usage.mem (${COLUMNS.join(',')}) FORMAT JSONCompactEachRow\n${body}`);
console.log(ROWS, 'inline wall ms', ((performance.now()-t0)/10).toFixed(1));
const buf = Buffer.from(body);
t0=performance.now(); for (let i=0;i<10;i++) await s.rawInsert({table:'usage.mem', columns:[...COLUMNS], format:'JSONCompactEachRow', values: buf});
console.log(ROWS, 'raw wall ms', ((performance.now()-t0)/10).toFixed(1));
t0=performance.now(); for (let i=0;i<10;i++) await s.queryAsync(`INSERT INTO usage.mem (${COLUMNS.join(',')}) SETTINGS max_query_size=100000000 FORMAT JSONCompactEachRow\n${body}`);
console.log(ROWS, 'inline big max_query_size wall ms', ((performance.now()-t0)/10).toFixed(1));
}
