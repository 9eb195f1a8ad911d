import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClickHouse, migrate, USAGE_EVENT_COLUMNS as COLUMNS } from "@usage/clickhouse";
const ch = await createClickHouse({ dataDir: mkdtempSync(join(tmpdir(), "mb-")) });
await migrate(ch.client);
let n=0;
const src = readFileSync(new URL('./insert-formats.mjs', import.meta.url),'utf8');
const rowSrc = src.slice(src.indexOf('const row = () =>'), src.indexOf('const tsv'));
const row = eval('(' + rowSrc.replace('const row = ','').replace(/;\s*$/,'') + ')');
const variants = {
  usage_events: null,
  nodedup: "ENGINE = ReplacingMergeTree(recorded_at) PARTITION BY toYYYYMM(occurred_at) ORDER BY (org_id, event_id) SETTINGS index_granularity = 1024",
  nopart: "ENGINE = ReplacingMergeTree(recorded_at) ORDER BY (org_id, event_id) SETTINGS index_granularity = 1024, non_replicated_deduplication_window = 10000",
  plain_mt: "ENGINE = MergeTree ORDER BY (org_id, event_id)",
  memory: "ENGINE = Memory",
};
for (const [name, eng] of Object.entries(variants)) if (eng) await ch.client.command({query:`CREATE TABLE ${name} AS usage_events ${eng}`});
const ROWS = Number(process.argv[2] ?? 250);
for (const name of Object.keys(variants)) {
  const batches = Array.from({length: 21}, () => Array.from({length: ROWS}, row));
  const ins = (rows, i) => ch.client.insert({table: name, columns:[...COLUMNS], values: rows.map(r=>COLUMNS.map(c=>r[c])), format:'JSONCompactEachRow', clickhouse_settings: name==='memory'?{}:{insert_deduplication_token: name+i+Math.random()}});
  await ins(batches[0], 0);
  const c0=process.cpuUsage(); const t0=performance.now();
  for (let i=1;i<21;i++) await ins(batches[i], i);
  const ms=(performance.now()-t0)/20; const c=process.cpuUsage(c0);
  console.log(ROWS, name.padEnd(14), 'wall ms/insert', ms.toFixed(1), 'cpu ms/insert', ((c.user+c.system)/1000/20).toFixed(1));
}
await ch.close();
