import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClickHouse } from "@usage/clickhouse";
const ch = await createClickHouse({ dataDir: mkdtempSync(join(tmpdir(), "mb-")) });
await ch.client.command({query:"CREATE TABLE t (a String, d DateTime64(3,'UTC'), x Decimal(38,12)) ENGINE = MergeTree ORDER BY a SETTINGS non_replicated_deduplication_window = 100"});
await ch.client.insert({table:'t', values:[{a:'one', d:'2026-11-30T10:00:00.123Z', x:'1.5'}], format:'JSONEachRow', clickhouse_settings:{insert_deduplication_token:'T1'}});
await ch.client.insert({table:'t', values:[{a:'one-again', d:'2026-11-30 10:00:00', x:'2'}], format:'JSONEachRow', clickhouse_settings:{insert_deduplication_token:'T1'}});
await ch.client.insert({table:'t', columns:['a','d','x'], values:[['two','2026-11-30 10:00:00.5', '0.000000000001']], format:'JSONCompactEachRow'});
await ch.client.insert({table:'t', values:[{a:'three', d:'2026-11-30 10:00:00', x:'3'}], format:'JSONEachRow'});
console.log(await (await ch.client.query({query:'SELECT a, d, x FROM t ORDER BY a', format:'JSONEachRow'})).json());
console.log(await (await ch.client.query({query:"SELECT name, value FROM system.settings WHERE changed", format:'JSONEachRow'})).json());
try { await ch.client.insert({table:'nope', values:[{a:1}], format:'JSONEachRow'}); } catch (e) { console.log('err', e.constructor.name, e.code, e.type, e.message.slice(0,100)); }
try { await ch.client.query({query:'SELECT 1', clickhouse_settings:{max_threads:1}}); } catch (e) { console.log('err', e.message); }
await ch.close();
