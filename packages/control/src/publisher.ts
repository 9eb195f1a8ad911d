/**
 * Publishes control changes. A change is validated (and normalised) before it is sent; the version it gets is its
 * offset in the log + 1, read from the produce response. Idempotent producer with acks=all: a send the client
 * retries is written once, so one publish is one version; a publish that rejects may still have been written
 * (a timeout after the broker appended), and a caller that publishes again gets a second version of the same
 * content, which is harmless for every kind (the later one is in force; purchases are keyed by their reference).
 */
import { createProducer, type Kafka, type Producer } from "@usage/kafka";
import { type ChangeInput, CONTROL_TOPIC, controlKey, encodeChange, parseChange, versionOfOffset } from "./changes.js";

export interface ControlPublisher {
  connect(): Promise<void>;
  /** Sends one change; resolves with its version once the broker has acknowledged it (acks=all). */
  publish(change: ChangeInput): Promise<number>;
  close(): Promise<void>;
}

/** Thrown by publish when the change does not validate: nothing was sent. */
export class InvalidChangeError extends Error {
  constructor(
    readonly field: string | undefined,
    message: string,
  ) {
    super(field ? `${field}: ${message}` : message);
    this.name = "InvalidChangeError";
  }
}

export function createControlPublisher(deps: { kafka: Kafka }): ControlPublisher {
  let producer: Producer | undefined;
  let connecting: Promise<void> | undefined;

  return {
    async connect() {
      if (!connecting) {
        producer = createProducer(deps.kafka);
        connecting = producer.connect();
      }
      await connecting;
    },
    async publish(input) {
      if (!producer) throw new Error("control publisher is not connected");
      const parsed = parseChange({ ...input, at: input.at ?? new Date().toISOString() });
      if (!parsed.ok) throw new InvalidChangeError(parsed.field, parsed.message);
      const [meta] = await producer.send({
        topic: CONTROL_TOPIC,
        acks: -1,
        // The one partition, named rather than hashed: the log's single order is what makes offsets versions.
        messages: [{ key: controlKey(parsed.change), value: encodeChange(parsed.change), partition: 0 }],
      });
      if (meta?.baseOffset === undefined) throw new Error("produce response carried no offset");
      return versionOfOffset(meta.baseOffset);
    },
    async close() {
      const p = producer;
      producer = undefined;
      connecting = undefined;
      await p?.disconnect();
    },
  };
}
