import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

/** `infra/kafka/kafka.sh`: the one script that fetches, starts and stops the local broker for start, tests and CI. */
export const KAFKA_SCRIPT = fileURLToPath(new URL("../../../infra/kafka/kafka.sh", import.meta.url));

export interface LocalBroker {
  brokers: string[];
  /** Stops the broker if this process started it; a broker that was already running is left alone. */
  stop(): Promise<void>;
}

export interface LocalBrokerOptions {
  dataDir: string;
  port?: number;
  /** Receives the script's progress lines. */
  onOutput?: (line: string) => void;
}

/** Starts (or reuses) a single-node KRaft broker on 127.0.0.1 and resolves once it answers metadata requests. */
export async function startLocalBroker(options: LocalBrokerOptions): Promise<LocalBroker> {
  const port = options.port ?? 9092;
  const env = { ...process.env, KAFKA_DATA_DIR: options.dataDir, KAFKA_PORT: String(port) };
  await runScript("start", env, options.onOutput);
  return {
    brokers: [`127.0.0.1:${port}`],
    stop: () => runScript("stop", env, options.onOutput),
  };
}

function runScript(command: string, env: NodeJS.ProcessEnv, onOutput?: (line: string) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn("bash", [KAFKA_SCRIPT, command], { env, stdio: ["ignore", "pipe", "pipe"] });
    let tail = "";
    const take = (chunk: Buffer) => {
      const text = chunk.toString();
      tail = (tail + text).slice(-4000);
      for (const line of text.split("\n")) if (line.trim()) onOutput?.(line);
    };
    child.stdout.on("data", take);
    child.stderr.on("data", take);
    child.on("error", reject);
    child.on("exit", (code) => {
      if (code === 0) resolve();
      else reject(new Error(`infra/kafka/kafka.sh ${command} exited ${code}:\n${tail}`));
    });
  });
}
