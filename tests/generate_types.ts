/**
 * Generates schema/types.ts from schema/deployments.schema.json (`deno task types`).
 * tests/schema_test.ts fails when the committed file differs from what this produces.
 */
import { compile } from "json-schema-to-typescript";
import schema from "../schema/deployments.schema.json" with { type: "json" };

export const TYPES_PATH = new URL("../schema/types.ts", import.meta.url);

export async function generateTypes(): Promise<string> {
  const source = await compile(withNamedDefinitionsOnly(schema) as never, "DeployTsManifest", {
    bannerComment: "// Generated from deployments.schema.json by `deno task types`. Do not edit.",
    format: false,
    unreachableDefinitions: false,
    strictIndexSignatures: true,
  });
  return source;
}

/**
 * json-schema-to-typescript names a type after every `title`; property titles are for editors,
 * so only definitions keep theirs and the types read `Deployment`, `Schedule`, not `StepId14`.
 * Keys the schema marks with `deprecationMessage` are never valid, so they are no type's fields.
 */
function withNamedDefinitionsOnly(source: unknown): unknown {
  const copy = structuredClone(source) as Record<string, unknown>;
  const strip = (node: unknown, isProperty: boolean) => {
    if (!node || typeof node !== "object") return;
    const record = node as Record<string, unknown>;
    if (isProperty) delete record.title;
    for (const [key, child] of Object.entries(record)) {
      if (key === "properties" && child && typeof child === "object") {
        const properties = child as Record<string, Record<string, unknown>>;
        for (const [name, p] of Object.entries(properties)) {
          if (p && typeof p === "object" && p.deprecationMessage) delete properties[name];
        }
        Object.values(child).forEach((p) => strip(p, true));
      } else if (key === "definitions" && child && typeof child === "object") {
        Object.values(child).forEach((d) => strip(d, false));
      } else if (Array.isArray(child)) child.forEach((c) => strip(c, true));
      else if (key === "items" || key === "additionalProperties") strip(child, true);
    }
  };
  strip(copy, false);
  return copy;
}

if (import.meta.main) {
  await Deno.writeTextFile(TYPES_PATH, await generateTypes());
  console.error(`Wrote ${TYPES_PATH.pathname}`);
}
