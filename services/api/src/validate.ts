/**
 * Request bodies checked with the zod schemas of the OpenAPI document (openapi/schemas.ts), so what the document says
 * a route takes is what the route accepts: one source of truth. The first problem answers 400 with the route's code
 * for the field (`codes[field]`, else `codes["*"]`) and a message naming the field.
 */
import type { z } from "zod";
import { ApiError } from "./server.js";

export function parseBody<S extends z.ZodTypeAny>(
  schema: S,
  body: unknown,
  codes: Record<string, string> & { "*": string },
): z.output<S> {
  const parsed = schema.safeParse(body ?? {});
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0]!;
  if (issue.code === "unrecognized_keys") {
    throw new ApiError(400, codes["*"], `unknown key ${issue.keys.join(", ")}`);
  }
  const field = String(issue.path[0] ?? "");
  const code = (field && codes[field]) || codes["*"];
  throw new ApiError(400, code, field ? `${issue.path.join(".")}: ${issue.message}` : `the body: ${issue.message}`);
}
