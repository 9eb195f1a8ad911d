// Records every optional platform package (biome, turbo, esbuild, rollup binaries for other systems) in
// package-lock.json. The registry mirror this project is developed against lacks some of those builds, so
// `npm install` leaves them out of the lock file, and `npm ci` then refuses the lock file as out of sync.
// An entry with only a version is enough: npm ci skips an optional package it cannot or need not install, and
// on a machine that does need it, npm fetches it by version. Run after changing dependencies: `npm run lock`.
import { readFileSync, writeFileSync } from "node:fs";

const file = new URL("../package-lock.json", import.meta.url);
const lock = JSON.parse(readFileSync(file, "utf8"));
const packages = lock.packages;
let added = 0;
for (const meta of Object.values(packages)) {
  for (const [name, version] of Object.entries(meta.optionalDependencies ?? {})) {
    const key = `node_modules/${name}`;
    if (!packages[key]) {
      packages[key] = { version, dev: Boolean(meta.dev), optional: true };
      added++;
    }
  }
}
lock.packages = Object.fromEntries(
  Object.entries(packages).sort(([a], [b]) => (a === "" ? -1 : b === "" ? 1 : a.localeCompare(b))),
);
writeFileSync(file, `${JSON.stringify(lock, null, 2)}\n`);
console.log(`package-lock.json: recorded ${added} optional platform package(s)`);
