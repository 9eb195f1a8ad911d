/**
 * `usagectl start` owns the local broker it starts: start → SIGTERM → start → SIGTERM on one data dir, twice, as
 * quickly as the process allows, must leave no Kafka broker of that data dir running, and every start must have
 * served (its /healthz answered 200) on a broker of its own.
 */
import { execFileSync } from "node:child_process";
import { rmSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { freePort, spawnCli, tempDir, waitFor } from "./harness/index.js";

const KEY = "restart-operator-key-0123456789";

/** Pids of the `kafka.Kafka` JVMs whose config lies under `dataDir` (kafka.sh runs `kafka.Kafka <dir>/server.properties`). */
function brokersOf(dataDir: string): number[] {
  const ps = execFileSync("ps", ["-ww", "-eo", "pid=,args="], { encoding: "utf8" });
  const config = join(dataDir, "kafka", "server.properties");
  return ps
    .split("\n")
    .filter((line) => line.includes(`kafka.Kafka ${config}`))
    .map((line) => Number.parseInt(line.trim(), 10));
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer()
      .once("error", () => resolve(false))
      .listen(port, "127.0.0.1", () => s.close(() => resolve(true)));
  });
}

/** A free (broker, controller) port pair from `from` on: a broker already there would be reused, not ours. */
async function freePortPair(from: number): Promise<number> {
  for (let port = from; port < from + 100; port += 2) {
    if ((await portFree(port)) && (await portFree(port + 1))) return port;
  }
  throw new Error(`no free port pair in ${from}..${from + 100}`);
}

describe("usagectl start on one data dir, stopped and started again", () => {
  const dataDir = tempDir("usage-restart-");
  afterAll(() => {
    // Whatever the outcome, nothing of this test may outlive it.
    for (const pid of brokersOf(dataDir)) process.kill(pid, "SIGKILL");
    rmSync(dataDir, { recursive: true, force: true });
  });

  it("start, SIGTERM, start, SIGTERM, twice: each start serves, no broker of the data dir is left", async () => {
    const kafkaPort = await freePortPair(Number(process.env.USAGE_TEST_START_KAFKA_PORT ?? 19492));
    const apiPort = await freePort();
    const env = {
      // Empty is unset: `start` runs its own local broker on USAGE_LOCAL_KAFKA_PORT.
      KAFKA_BROKERS: "",
      USAGE_LOCAL_KAFKA_PORT: String(kafkaPort),
      USAGE_DATA_DIR: dataDir,
      USAGE_API_PORT: String(apiPort),
      USAGE_API_KEY: KEY,
      LOG_LEVEL: "debug",
    };
    const servedBy: number[][] = [];
    for (let run = 1; run <= 4; run++) {
      const pipeline = spawnCli(["start"], env);
      try {
        await waitFor(`run ${run}: /healthz 200`, async () => {
          const res = await fetch(`http://127.0.0.1:${apiPort}/healthz`);
          return res.status === 200;
        });
      } catch (err) {
        pipeline.child.kill("SIGKILL");
        await pipeline.exited;
        throw new Error(`${(err as Error).message}\n${pipeline.output().slice(-3000)}`);
      }
      servedBy.push(brokersOf(dataDir));
      pipeline.child.kill("SIGTERM");
      const code = await pipeline.exited;
      expect(code, `run ${run} exit code; output:\n${pipeline.output().slice(-3000)}`).toBe(0);
      expect(brokersOf(dataDir), `run ${run} left a broker of ${dataDir}`).toEqual([]);
    }
    // Each start ran exactly one broker of its own (a new JVM each time: none was reused from the run before).
    for (const pids of servedBy) expect(pids).toHaveLength(1);
    expect(new Set(servedBy.map((p) => p[0])).size).toBe(4);
    expect(brokersOf(dataDir)).toEqual([]);
  });

  it("a SIGTERM while the broker is still starting stops it too, and the next start serves", async () => {
    const kafkaPort = await freePortPair(Number(process.env.USAGE_TEST_START_KAFKA_PORT ?? 19492));
    const apiPort = await freePort();
    const env = {
      KAFKA_BROKERS: "",
      USAGE_LOCAL_KAFKA_PORT: String(kafkaPort),
      USAGE_DATA_DIR: dataDir,
      USAGE_API_PORT: String(apiPort),
      USAGE_API_KEY: KEY,
      LOG_LEVEL: "debug",
    };
    const early = spawnCli(["start"], env);
    // The JVM is up but not yet ready: the script is still waiting for its first metadata answer.
    await waitFor("a broker process of the data dir", () => brokersOf(dataDir).length > 0, 60_000);
    early.child.kill("SIGTERM");
    await early.exited;
    expect(brokersOf(dataDir), `output:\n${early.output().slice(-3000)}`).toEqual([]);

    const next = spawnCli(["start"], env);
    await waitFor("/healthz 200 after the interrupted start", async () => {
      const res = await fetch(`http://127.0.0.1:${apiPort}/healthz`);
      return res.status === 200;
    });
    expect(brokersOf(dataDir)).toHaveLength(1);
    next.child.kill("SIGTERM");
    expect(await next.exited).toBe(0);
    expect(brokersOf(dataDir)).toEqual([]);
  });
});
