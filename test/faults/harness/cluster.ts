/**
 * A local 3-broker KRaft cluster a scenario owns (infra/kafka/cluster.sh): three combined broker + controller nodes
 * on ports of its own, replication factor 3 and min ISR 2 for every topic, the internal ones included. One node can
 * be stopped (SIGKILL for a crash) and started again on its data.
 */
import { spawn } from "node:child_process";
import { rmSync } from "node:fs";
import { createServer } from "node:net";
import { fileURLToPath } from "node:url";
import { tempDir } from "../../harness/index.js";

const SCRIPT = fileURLToPath(new URL("../../../infra/kafka/cluster.sh", import.meta.url));

export interface Cluster {
  brokers: string[];
  /** Stops node `n` (1-3), SIGTERM (controlled) or SIGKILL (a crash); resolves once it has exited. */
  stopBroker(n: 1 | 2 | 3, signal?: "SIGTERM" | "SIGKILL"): Promise<void>;
  /** Starts node `n` again on its data; resolves once it answers. */
  startBroker(n: 1 | 2 | 3): Promise<void>;
  /** Stops every node and deletes the data. */
  close(): Promise<void>;
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer()
      .once("error", () => resolve(false))
      .listen(port, "127.0.0.1", () => s.close(() => resolve(true)));
  });
}

/** A base port P with P..P+2 (brokers) and P+10..P+12 (controllers) free. */
async function freeBase(from: number): Promise<number> {
  for (let base = from; base < from + 400; base += 20) {
    const ports = [0, 1, 2, 10, 11, 12].map((d) => base + d);
    if ((await Promise.all(ports.map(portFree))).every(Boolean)) return base;
  }
  throw new Error(`no free port block from ${from}`);
}

function run(args: string[], env: NodeJS.ProcessEnv): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn("bash", [SCRIPT, ...args], {
      env: { ...process.env, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    child.stdout.on("data", (d: Buffer) => {
      out += d.toString();
    });
    child.stderr.on("data", (d: Buffer) => {
      out += d.toString();
    });
    child.on("error", reject);
    child.on("exit", (code) =>
      code === 0
        ? resolve(out)
        : reject(new Error(`cluster.sh ${args.join(" ")} exited ${code}:\n${out.slice(-3000)}`)),
    );
  });
}

export async function startCluster(name: string): Promise<Cluster> {
  const base = await freeBase(Number(process.env.USAGE_FAULTS_CLUSTER_PORT ?? 19792));
  const dataDir = tempDir(`usage-faults-cluster-${name}-`);
  const env = { KAFKA_CLUSTER_PORT: String(base), KAFKA_DATA_DIR: dataDir };
  try {
    await run(["start"], env);
  } catch (err) {
    await run(["stop"], env).catch(() => undefined);
    throw err;
  }
  return {
    brokers: [0, 1, 2].map((i) => `127.0.0.1:${base + i}`),
    stopBroker: async (n, signal = "SIGTERM") => {
      await run(["stop-broker", String(n), signal.replace("SIG", "")], env);
    },
    startBroker: async (n) => {
      await run(["start-broker", String(n)], env);
    },
    close: async () => {
      await run(["stop"], env);
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
