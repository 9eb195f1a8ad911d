/**
 * A Kafka broker a scenario owns, to stop and start again: `startLocalBroker` (infra/kafka/kafka.sh) on a port
 * pair of its own (the broker's and, +1, its KRaft controller's) and its own data dir. `kafka.sh stop` sends
 * SIGTERM (a controlled shutdown; SIGKILL after 8 s) and keeps the data dir; `start` on the same dir skips the
 * format step and recovers the logs, so topics, committed offsets and transaction state survive the restart.
 */
import { rmSync } from "node:fs";
import { createServer } from "node:net";
import { type LocalBroker, startLocalBroker } from "@usage/kafka";
import { tempDir } from "../../harness/index.js";

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer()
      .once("error", () => resolve(false))
      .listen(port, "127.0.0.1", () => s.close(() => resolve(true)));
  });
}

/**
 * The first pair (port, port + 1) free on 127.0.0.1 from `from` on. kafka.sh reuses whatever broker already
 * answers on its port, and this one must be ours to stop.
 */
async function freePortPair(from: number): Promise<number> {
  for (let port = from; port < from + 200; port += 2) {
    if ((await portFree(port)) && (await portFree(port + 1))) return port;
  }
  throw new Error(`no free port pair in ${from}..${from + 200}`);
}

export interface OwnBroker {
  brokers: string[];
  port: number;
  dataDir: string;
  /** Stops the broker, keeping its data; resolves once the process has exited. */
  stop(): Promise<void>;
  /** Starts it again on the same port and data dir; resolves once it answers metadata requests. */
  start(): Promise<void>;
  /** Stops it (if running) and deletes its data. */
  close(): Promise<void>;
}

export async function startOwnBroker(name: string): Promise<OwnBroker> {
  const port = await freePortPair(Number(process.env.USAGE_FAULTS_KAFKA_PORT ?? 19892));
  const dataDir = tempDir(`usage-faults-kafka-${name}-`);
  let running: LocalBroker | undefined = await startLocalBroker({ dataDir, port });
  return {
    brokers: running.brokers,
    port,
    dataDir,
    async stop() {
      await running?.stop();
      running = undefined;
    },
    async start() {
      if (!(await portFree(port))) throw new Error(`127.0.0.1:${port} is taken: it is no longer ours to start`);
      running = await startLocalBroker({ dataDir, port });
    },
    async close() {
      await running?.stop();
      running = undefined;
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
