import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

/** `infra/kafka/kafka.sh`: the one script that fetches, starts and stops the local broker for start, tests and CI. */
export const KAFKA_SCRIPT = fileURLToPath(new URL("../../../infra/kafka/kafka.sh", import.meta.url));

export interface LocalBroker {
  brokers: string[];
  /**
   * Stops the broker of this data dir (found by its command line, so whatever an earlier start left running too);
   * a broker of another data dir that was already answering on the port is left alone.
   */
  stop(): Promise<void>;
}

export interface LocalBrokerOptions {
  dataDir: string;
  port?: number;
  /** Receives the script's progress lines. */
  onOutput?: (line: string) => void;
  /** Aborting while the broker is starting interrupts the start and stops what it launched; the start rejects. */
  signal?: AbortSignal;
}

/** Starts (or reuses) a single-node KRaft broker on 127.0.0.1 and resolves once it answers metadata requests. */
export async function startLocalBroker(options: LocalBrokerOptions): Promise<LocalBroker> {
  const port = options.port ?? 9092;
  const env = { ...process.env, KAFKA_DATA_DIR: options.dataDir, KAFKA_PORT: String(port) };
  const stop = () => runKafkaScript(["stop"], env, options.onOutput);
  try {
    options.signal?.throwIfAborted();
    await runKafkaScript(["start"], env, options.onOutput, options.signal);
    options.signal?.throwIfAborted();
  } catch (err) {
    // A start that failed or was interrupted may have launched the broker already: nothing may outlive it.
    await stop().catch(() => undefined);
    throw err;
  }
  return { brokers: [`127.0.0.1:${port}`], stop };
}

/**
 * Runs kafka.sh with `args`. The script runs in its own process group, so a Ctrl-C in the caller's terminal does not
 * cut a start or stop short (the caller decides what to stop); `signal` ends it (and the JVMs it waits on).
 */
export function runKafkaScript(
  args: string[],
  env: NodeJS.ProcessEnv,
  onOutput?: (line: string) => void,
  signal?: AbortSignal,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn("bash", [KAFKA_SCRIPT, ...args], { env, stdio: ["ignore", "pipe", "pipe"], detached: true });
    let tail = "";
    const take = (chunk: Buffer) => {
      const text = chunk.toString();
      tail = (tail + text).slice(-4000);
      for (const line of text.split("\n")) if (line.trim()) onOutput?.(line);
    };
    const interrupt = () => {
      // The group: the script and what it waits on (the readiness check); the broker has a session of its own.
      if (child.pid !== undefined) {
        try {
          process.kill(-child.pid, "SIGTERM");
        } catch {
          // already gone
        }
      }
    };
    signal?.addEventListener("abort", interrupt, { once: true });
    child.stdout.on("data", take);
    child.stderr.on("data", take);
    child.on("error", reject);
    child.on("exit", (code, killed) => {
      signal?.removeEventListener("abort", interrupt);
      if (code === 0) resolve();
      else if (signal?.aborted) reject(signal.reason);
      else reject(new Error(`infra/kafka/kafka.sh ${args.join(" ")} exited ${code ?? killed}:\n${tail}`));
    });
  });
}
