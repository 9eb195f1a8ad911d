import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClickHouse, migrate } from "@usage/clickhouse";
const ch = await createClickHouse({ dataDir: mkdtempSync(join(tmpdir(), "mb-")) });
await migrate(ch.client);
await new Promise(r=>setTimeout(r,3000));
const c0=process.cpuUsage(); const t0=performance.now();
await new Promise(r=>setTimeout(r,10000));
const c=process.cpuUsage(c0); console.log('idle cores', ((c.user+c.system)/1000/(performance.now()-t0)).toFixed(3));
const threads = (await import('node:fs')).readdirSync('/proc/self/task').length; console.log('threads', threads);
const c1=process.cpuUsage(); const t1=performance.now();
for (let i=0;i<100;i++){ await ch.client.query({query:'SELECT count() FROM alerts', format:'JSONEachRow'}).then(r=>r.json()); await new Promise(r=>setTimeout(r,100)); }
const cc=process.cpuUsage(c1); console.log('10 q/s cores', ((cc.user+cc.system)/1000/(performance.now()-t1)).toFixed(3));
await ch.close();
