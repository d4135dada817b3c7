import { Ajv } from "ajv";
import { assert, assertEquals } from "./assert.ts";
import { generateTypes, TYPES_PATH } from "./generate_types.ts";
import { generateReference, REFERENCE_PATH } from "../tools/reference.ts";
import { EDITOR_KEYWORDS, schemaProblems } from "../deploy.ts";
import schema from "../schema/deployments.schema.json" with { type: "json" };

Deno.test("schema: compiles with Ajv in strict mode, editor keywords registered", () => {
  const ajv = new Ajv({ strict: true, allErrors: true });
  for (const keyword of EDITOR_KEYWORDS) ajv.addKeyword(keyword);
  const validate = ajv.compile(schema);
  assert(validate({ deployments: [] }), "the smallest manifest is valid");
  assert(!validate({}), "deployments is required");
  assertEquals(schema.$schema, "http://json-schema.org/draft-07/schema#");
  assert(schema.$id.startsWith("https://"), "has an $id");
});

Deno.test("schema: every property has a title and a description", () => {
  const missing: string[] = [];
  const walk = (node: unknown, where: string) => {
    if (!node || typeof node !== "object") return;
    const record = node as Record<string, unknown>;
    if (record.properties && typeof record.properties === "object") {
      for (const [key, child] of Object.entries(record.properties)) {
        const c = child as Record<string, unknown>;
        if (!c.title || !c.description) missing.push(`${where}/properties/${key}`);
      }
    }
    for (const [key, child] of Object.entries(record)) walk(child, `${where}/${key}`);
  };
  walk(schema, "#");
  assertEquals(missing, []);
});

Deno.test("schema: objects are closed", () => {
  const open: string[] = [];
  const walk = (node: unknown, where: string) => {
    if (!node || typeof node !== "object") return;
    const record = node as Record<string, unknown>;
    // Custom and integration steps pass arbitrary keyword arguments to other packages' code.
    const passesKwargs =
      /step_(pull_from_remote_storage|build_docker_image|push_docker_image|push_to|pull_from)|Custom step/
        .test(where + String(record.title));
    const closed = record.additionalProperties === false ||
      typeof record.additionalProperties === "object";
    if (record.properties && !closed && !passesKwargs) open.push(where);
    for (const [key, child] of Object.entries(record)) walk(child, `${where}/${key}`);
  };
  walk(schema, "#");
  assertEquals(open, []);
});

Deno.test("schema: templates are accepted where Prefect templates typed values", () => {
  const manifest = {
    deployments: [{
      name: "t",
      entrypoint: "{{ $ENTRYPOINT }}",
      tags: "{{ prefect.variables.tags }}",
      paused: "{{ $PAUSED }}",
      enforce_parameter_schema: "{{ $ENFORCE }}",
      concurrency_limit: "{{ prefect.variables.limit }}",
      schedules: [{ cron: "0 * * * *", active: "{{ $ACTIVE }}", day_or: "{{ $DAY_OR }}" }],
    }],
  };
  assertEquals(schemaProblems(manifest), []);
  const notTemplate = structuredClone(manifest);
  notTemplate.deployments[0].paused = "sometimes";
  assertEquals(schemaProblems(notTemplate).map((p) => p.path.join(".")), ["deployments.0.paused"]);
});

Deno.test("types: schema/types.ts is what `deno task types` generates", async () => {
  const committed = await Deno.readTextFile(TYPES_PATH);
  assert(
    committed === await generateTypes(),
    "schema/types.ts is stale: run `deno task types` and commit the result",
  );
});

Deno.test("vscode: the schema is mapped onto prefect/*.yaml", async () => {
  const settings = JSON.parse(
    await Deno.readTextFile(new URL("../.vscode/settings.json", import.meta.url)),
  );
  assertEquals(
    settings["yaml.schemas"]["./schema/deployments.schema.json"].includes("prefect/*.yaml"),
    true,
  );
});

Deno.test("docs: docs/manifest-reference.md is what `deno task docs` generates", async () => {
  const formatted = await new Deno.Command(Deno.execPath(), {
    args: ["fmt", "--ext", "md", "-"],
    stdin: "piped",
    stdout: "piped",
    cwd: new URL("../", import.meta.url).pathname,
  }).spawn();
  const writer = formatted.stdin.getWriter();
  await writer.write(new TextEncoder().encode(generateReference()));
  await writer.close();
  const expected = new TextDecoder().decode((await formatted.output()).stdout);
  assertEquals(
    await Deno.readTextFile(REFERENCE_PATH),
    expected,
    "docs/manifest-reference.md is stale: run `deno task docs` and commit the result",
  );
});
