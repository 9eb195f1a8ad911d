/**
 * Wire format of every Kafka value: Avro single-object encoding (Avro specification, "Single object
 * encoding"): the two marker bytes C3 01, the 8-byte little-endian CRC-64-AVRO fingerprint of the writer
 * schema's Parsing Canonical Form, then the Avro binary body. The fingerprint names the schema, so a
 * consumer reads v1 and any later version side by side, and refuses bytes it has no schema for.
 */
import { readFileSync } from "node:fs";
import avro from "avsc";
import { crc64Avro } from "./fingerprint.js";
import type { PricedUsageEvent, UsageEvent } from "./model.js";

const MARKER = Buffer.from([0xc3, 0x01]);
const HEADER_LENGTH = 10;

/**
 * Directory of the Avro schema files, bundled with this package (`packages/events/schemas/avro/`; the repository's
 * `schemas/avro` is a link to it), so the package reads nothing outside itself: from `src/` and from `dist/` alike.
 */
export const AVRO_SCHEMA_DIR = new URL("../schemas/avro/", import.meta.url);

export interface WireSchema<T> {
  /** File name without extension, e.g. `usage_event_v1`. */
  readonly name: string;
  readonly fingerprint: Buffer;
  readonly type: avro.Type;
  encode(value: T): Buffer;
}

type AvroRecord = Record<string, unknown> & { occurred_at: number };

function loadSchema<T extends { occurred_at: string }>(name: string): WireSchema<T> {
  const schema = JSON.parse(readFileSync(new URL(`${name}.avsc`, AVRO_SCHEMA_DIR), "utf8"));
  const type = avro.Type.forSchema(schema);
  const fingerprint = crc64Avro(JSON.stringify(type.schema()));
  const header = Buffer.concat([MARKER, fingerprint]);
  return {
    name,
    fingerprint,
    type,
    encode(value: T): Buffer {
      const body = type.toBuffer(toAvro(value));
      return Buffer.concat([header, body], HEADER_LENGTH + body.length);
    },
  };
}

// Timestamps travel as timestamp-millis longs; the JSON form holds them as RFC 3339 strings.
function toAvro(value: { occurred_at: string }): AvroRecord {
  return { ...value, occurred_at: Date.parse(value.occurred_at) };
}

export const usageEventV1: WireSchema<UsageEvent> = loadSchema<UsageEvent>("usage_event_v1");
export const pricedUsageEventV1: WireSchema<PricedUsageEvent> = loadSchema<PricedUsageEvent>("priced_usage_event_v1");

const KNOWN = new Map<string, WireSchema<never>>(
  [usageEventV1, pricedUsageEventV1].map((s) => [s.fingerprint.toString("hex"), s as WireSchema<never>]),
);

export type Decoded = { ok: true; schema: string; value: Record<string, unknown> } | { ok: false; message: string };

/**
 * Decodes a single-object-encoded value. `occurred_at` comes back as an RFC 3339 string (or the raw long when
 * it is not a valid instant, for the field rules to reject); the caller validates the fields.
 */
export function decode(bytes: Buffer | null | undefined, expect?: WireSchema<unknown>): Decoded {
  if (!bytes || bytes.length < HEADER_LENGTH) {
    return {
      ok: false,
      message: `value is ${bytes ? `${bytes.length} bytes` : "empty"}, shorter than the Avro header`,
    };
  }
  if (bytes[0] !== MARKER[0] || bytes[1] !== MARKER[1]) {
    return { ok: false, message: "value does not start with the Avro single-object marker C3 01" };
  }
  const fp = bytes.subarray(2, HEADER_LENGTH).toString("hex");
  const schema = KNOWN.get(fp);
  if (!schema) return { ok: false, message: `unknown schema fingerprint ${fp}` };
  if (expect && schema !== expect) {
    return { ok: false, message: `expected schema ${expect.name}, got ${schema.name}` };
  }
  let record: Record<string, unknown>;
  try {
    record = schema.type.fromBuffer(bytes.subarray(HEADER_LENGTH)) as Record<string, unknown>;
  } catch (err) {
    return { ok: false, message: `Avro body does not decode as ${schema.name}: ${(err as Error).message}` };
  }
  const at = record.occurred_at;
  const date = typeof at === "number" ? new Date(at) : undefined;
  // Avro objects carry a class prototype; the JSON form is a plain object.
  const value: Record<string, unknown> = { ...record };
  value.occurred_at = date && !Number.isNaN(date.getTime()) ? date.toISOString() : at;
  return { ok: true, schema: schema.name, value };
}

/** Fingerprint hex of every schema this build can read, by name. */
export function knownSchemas(): Record<string, string> {
  return Object.fromEntries([...KNOWN.values()].map((s) => [s.name, s.fingerprint.toString("hex")]));
}
