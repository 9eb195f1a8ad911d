/**
 * Checks answers against the OpenAPI document of `GET /openapi.json`: Ajv (JSON Schema 2020-12, the dialect of
 * OpenAPI 3.1) over the operation's documented schema for the answer's status and content type, `$ref`s resolved to
 * the document's components.
 */
import { Ajv2020, type ValidateFunction } from "ajv/dist/2020.js";
import addFormatsModule from "ajv-formats";
import type { OpenApiDocument } from "../../services/api/src/openapi/document.js";
import { openApiPath } from "../../services/api/src/openapi/routes.js";

// ajv-formats is CommonJS: its default export arrives as the module object under some loaders.
type AddFormats = (ajv: Ajv2020) => Ajv2020;
const addFormats = ((addFormatsModule as unknown as { default?: AddFormats }).default ??
  addFormatsModule) as unknown as AddFormats;

const COMPONENTS = "urn:openapi:components";

/** `#/components/schemas/X` → the components schema added to Ajv under its own id. */
function rewriteRefs<T>(schema: T): T {
  return JSON.parse(JSON.stringify(schema).replaceAll('"#/components/schemas/', `"${COMPONENTS}#/$defs/`)) as T;
}

type Responses = Record<string, { content?: Record<string, { schema?: unknown }> }>;

export interface Conformance {
  /** Problems with this answer against the document ([] when it conforms). */
  check(method: string, fastifyPath: string, status: number, contentType: string | undefined, body: unknown): string[];
}

export function conformance(doc: OpenApiDocument): Conformance {
  const ajv = new Ajv2020({ strict: false, allErrors: true });
  addFormats(ajv);
  ajv.addSchema({ $id: COMPONENTS, $defs: rewriteRefs(doc.components?.schemas ?? {}) });
  const compiled = new Map<string, ValidateFunction>();
  return {
    check(method, fastifyPath, status, contentType, body) {
      const path = openApiPath(fastifyPath);
      const op = (doc.paths?.[path] as Record<string, { responses?: Responses }> | undefined)?.[method.toLowerCase()];
      if (!op) return [`${method} ${path} is not in the document`];
      const answer = op.responses?.[String(status)];
      if (!answer) return [`${method} ${path}: status ${status} is not documented`];
      if (!answer.content) return body === "" || body === undefined ? [] : [`${status} has no documented body`];
      const type = (contentType ?? "").split(";")[0]!.trim();
      const entry = Object.entries(answer.content).find(([t]) => t.split(";")[0]!.trim() === type);
      if (!entry) return [`${status}: content type ${type} is not documented (${Object.keys(answer.content)})`];
      const key = `${method} ${path} ${status} ${entry[0]}`;
      let validate = compiled.get(key);
      if (!validate) {
        validate = ajv.compile(rewriteRefs(entry[1].schema ?? {}) as object);
        compiled.set(key, validate);
      }
      if (validate(body)) return [];
      return (validate.errors ?? []).map(
        (e) => `${e.instancePath || "(body)"} ${e.message} ${JSON.stringify(e.params)}`,
      );
    },
  };
}
