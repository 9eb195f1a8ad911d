// `npm run bench`: every benchmark in turn; each prints its figures and writes bench-results/<name>.json.
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";

// Options pass through to each (`npm run bench -- --minutes 10` for the headline end-to-end figure).
const benches = ["pricing.mjs", "allowance.mjs", "floor.mjs", "e2e.mjs"];
let failed = 0;
for (const bench of benches) {
  console.log(`\n=== ${bench} ===`);
  const r = spawnSync(process.execPath, [fileURLToPath(new URL(bench, import.meta.url)), ...process.argv.slice(2)], {
    stdio: "inherit",
  });
  if (r.status !== 0) failed++;
}
process.exitCode = failed > 0 ? 1 : 0;
