import { baseEnvSchema, ConfigError, parseEnv } from "@usage/runtime";
import { z } from "zod";

const apiEnvSchema = baseEnvSchema.pick({ USAGE_API_PORT: true, USAGE_API_KEY: true }).extend({
  USAGE_API_URL: z.string().url("expected the API's base URL, e.g. http://127.0.0.1:8080").optional(),
});

/** Calls the HTTP API with the key from USAGE_API_KEY; a non-2xx answer becomes one line with the API's message. */
export async function callApi<T>(method: string, path: string, body?: unknown): Promise<T> {
  const env = parseEnv(apiEnvSchema);
  if (!env.USAGE_API_KEY) throw new ConfigError("USAGE_API_KEY: required to call the API (unset)");
  const base = env.USAGE_API_URL ?? `http://127.0.0.1:${env.USAGE_API_PORT}`;
  let res: Response;
  try {
    res = await fetch(`${base}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${env.USAGE_API_KEY}`,
        ...(body === undefined ? {} : { "content-type": "application/json" }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (err) {
    throw new ApiCallError(`cannot reach the API at ${base}: ${(err as Error).message}`);
  }
  const text = await res.text();
  if (!res.ok) {
    let message = text;
    try {
      message = (JSON.parse(text) as { error: { message: string } }).error.message;
    } catch {
      // not the API's JSON error shape
    }
    throw new ApiCallError(`${method} ${path}: ${res.status} ${message}`);
  }
  return (res.headers.get("content-type")?.includes("json") ? JSON.parse(text) : text) as T;
}

/** A failed API call: printed as one line, exit 1. */
export class ApiCallError extends Error {
  override readonly name = "ApiCallError";
}
