/**
 * Generates schema/validators.js, the manifest schema compiled by Ajv ahead of time
 * (`deno task validators`), so `validate` does not compile it on every run. It holds the whole
 * schema (`validate`) and the environment overlay's part (`environment`), with the digest of
 * the schema it was made from. tests/validators_test.ts fails when the committed file differs
 * from what this produces; deploy.ts passes over a copy whose digest is not the schema's.
 */
// A CommonJS module: its default import is `module.exports`, whose `default` is the function.
import standalone from "ajv/dist/standalone/index.js";
import { manifestAjv, SCHEMA_ID, schemaDigest } from "../deploy.ts";

export const VALIDATORS_PATH = new URL("../schema/validators.js", import.meta.url);

export function generateValidators(): string {
  const ajv = manifestAjv({ code: { source: true, esm: true } });
  let code: string;
  try {
    code = standalone.default(ajv, {
      validate: SCHEMA_ID,
      environment: `${SCHEMA_ID}#/definitions/environment`,
    });
  } catch (error) {
    throw new Error(
      `Ajv cannot compile the schema ahead of time (${(error as Error).message}); a keyword ` +
        "defined with `validate` must be defined with `code` instead.",
    );
  }
  // Ajv's runtime helpers come as CommonJS requires; this file is an ES module.
  const helpers = new Set<string>();
  code = code.replace(/require\("ajv\/dist\/runtime\/(\w+)"\)/g, (_, name: string) => {
    helpers.add(name);
    return `ajvRuntime_${name}`;
  });
  if (/\brequire\(/.test(code)) throw new Error("Ajv's code requires a module not handled here");
  return [
    "// Generated from deployments.schema.json by `deno task validators`. Do not edit.",
    '// @ts-self-types="./validators.d.ts"',
    ...[...helpers].sort().map((h) => `import ajvRuntime_${h} from "ajv/dist/runtime/${h}.js";`),
    `export const SCHEMA_DIGEST = "${schemaDigest()}";`,
    code.replace(/^"use strict";/, ""),
    "",
  ].join("\n");
}

if (import.meta.main) {
  await Deno.writeTextFile(VALIDATORS_PATH, generateValidators());
  console.error(`Wrote ${VALIDATORS_PATH.pathname}`);
}
