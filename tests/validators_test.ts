/**
 * schema/validators.js, the schema compiled ahead of time: it is what `deno task validators`
 * generates from the current schema, and it reports exactly what a compile at run time reports,
 * error for error, over the real corpus, this repository's manifests and overlays, and broken
 * documents.
 */
import { parse } from "yaml";
import { assert, assertEquals } from "./assert.ts";
import { manifestAjv, SCHEMA_ID, schemaDigest } from "../deploy.ts";
import * as precompiled from "../schema/validators.js";
import { generateValidators, VALIDATORS_PATH } from "./generate_validators.ts";

const REPO = new URL("../", import.meta.url).pathname;

Deno.test("validators: schema/validators.js is what `deno task validators` generates", async () => {
  const committed = await Deno.readTextFile(VALIDATORS_PATH);
  assert(
    committed === generateValidators(),
    "schema/validators.js is stale: run `deno task validators` and commit the result",
  );
  assertEquals(precompiled.SCHEMA_DIGEST, schemaDigest());
});

async function yamlFiles(dir: string): Promise<unknown[]> {
  const documents: unknown[] = [];
  for (const entry of [...Deno.readDirSync(dir)].sort((a, b) => a.name.localeCompare(b.name))) {
    if (!/\.ya?ml$/.test(entry.name)) continue;
    try {
      documents.push(parse(await Deno.readTextFile(`${dir}/${entry.name}`), { logLevel: "error" }));
    } catch {
      // Files the YAML reader refuses never reach the schema.
    }
  }
  return documents;
}

const broken: unknown[] = [
  {},
  { deployments: "none" },
  { deployments: [{ name: 1, entrypoint: ["x"], cronn: "* * * * *" }] },
  {
    deployments: [{
      name: "d",
      entrypoint: "f.py:f",
      job_variables: {},
      schedules: [{ cron: 5, interval: "x", timezone: 3, active: "yes" }, "daily"],
      work_pool: { name: "p", image: "x" },
      concurrency_limit: { limit: "two", collision_strategy: "NOPE" },
      pull: [{ "prefect.deployments.steps.git_clone": { repository: 1 }, extra: {} }],
    }],
  },
];

Deno.test("validators: ahead of time and at run time, the same errors", async () => {
  const ajv = manifestAjv();
  const runtime = {
    validate: ajv.getSchema(SCHEMA_ID)!,
    environment: ajv.getSchema(`${SCHEMA_ID}#/definitions/environment`)!,
  };
  const errors = (fn: (data: unknown) => boolean, data: unknown) => {
    const ok = fn(data);
    const list = ((fn as { errors?: unknown[] }).errors ?? []) as Record<string, unknown>[];
    return { ok, errors: ok ? [] : list.map(({ schema: _s, parentSchema: _p, ...e }) => e) };
  };
  const manifests = [
    ...await yamlFiles(`${REPO}tests/fixtures/corpus/prefect-yaml`),
    ...await yamlFiles(`${REPO}prefect`),
    ...broken,
  ];
  assert(manifests.length > 90, `${manifests.length} manifests`);
  let failing = 0;
  for (const data of manifests) {
    const expected = errors(runtime.validate, data);
    assertEquals(errors(precompiled.validate, data), expected);
    if (!expected.ok) failing++;
  }
  assert(failing >= broken.length, "the comparison covers failures");
  const overlays = [...await yamlFiles(`${REPO}prefect/environments`), { nope: 1 }, {
    deployments: { x: { tags: "t" } },
  }];
  for (const data of overlays) {
    assertEquals(errors(precompiled.environment, data), errors(runtime.environment, data));
  }
});
