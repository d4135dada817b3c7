import { Ajv } from "ajv";
import { assert, assertEquals } from "./assert.ts";
import { generateTypes, TYPES_PATH } from "./generate_types.ts";
import { generateReference, REFERENCE_PATH } from "../tools/reference.ts";
import { DEPRECATION_KEYWORD, EDITOR_KEYWORDS, schemaProblems } from "../deploy.ts";
import schema from "../schema/deployments.schema.json" with { type: "json" };
import environmentSchema from "../schema/environment.schema.json" with { type: "json" };

Deno.test("schema: compiles with Ajv in strict mode, editor keywords registered", () => {
  const ajv = new Ajv({ strict: true, allErrors: true });
  for (const keyword of EDITOR_KEYWORDS) ajv.addKeyword(keyword);
  ajv.addKeyword(DEPRECATION_KEYWORD);
  const validate = ajv.compile(schema);
  assert(validate({ deployments: [] }), "the smallest manifest is valid");
  assert(!validate({}), "deployments is required");
  assertEquals(schema.$schema, "http://json-schema.org/draft-07/schema#");
});

Deno.test("schema: $id is where JSR serves this version's copy of the file", async () => {
  const config = JSON.parse(await Deno.readTextFile(new URL("../deno.json", import.meta.url)));
  const path = "schema/deployments.schema.json";
  assertEquals(schema.$id, `https://jsr.io/${config.name}/${config.version}/${path}`);
  // `deno publish` uploads the entry point's module graph, which holds the schema (deploy.ts
  // imports it), and refuses to leave out a module of it; no exclude pattern may name it.
  const info = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", config.exports],
    cwd: new URL("../", import.meta.url).pathname,
    stdout: "piped",
  }).output();
  const graph = JSON.parse(new TextDecoder().decode(info.stdout));
  const schemaUrl = new URL(`../${path}`, import.meta.url).href;
  assert(graph.modules.some((m: { specifier: string }) => m.specifier === schemaUrl), schemaUrl);
  // The overlay schema is no module of the graph: only the include/exclude rules decide.
  for (const published of [path, "schema/environment.schema.json"]) {
    const matches = (patterns: string[]) =>
      patterns.some((p) => published.startsWith(p.replace(/^\.\//, "")));
    assert(!matches([...(config.exclude ?? []), ...(config.publish?.exclude ?? [])]), published);
    if (config.publish?.include) assert(matches(config.publish.include), published);
  }
});

Deno.test("schema: environment.schema.json is the manifest schema's overlay part", () => {
  const ajv = new Ajv({ strict: true, allErrors: true });
  for (const keyword of EDITOR_KEYWORDS) ajv.addKeyword(keyword);
  ajv.addKeyword(DEPRECATION_KEYWORD);
  ajv.addSchema(schema, "deployments.schema.json");
  const overlay = ajv.compile(environmentSchema);
  assert(overlay({ defaults: { name_prefix: "dev-" }, deployments: { "f/a": { paused: true } } }));
  assert(!overlay({ defaults: { entrypoint: "x" } }), "closed like the definition");
  assertEquals(environmentSchema.$ref, "deployments.schema.json#/definitions/environment");
});

Deno.test("schema: every property has a title and a description", () => {
  const missing: string[] = [];
  const walk = (node: unknown, where: string) => {
    if (!node || typeof node !== "object") return;
    const record = node as Record<string, unknown>;
    if (record.properties && typeof record.properties === "object") {
      for (const [key, child] of Object.entries(record.properties)) {
        // `true` and `false` constrain (exactly one schedule kind); they describe nothing.
        if (typeof child === "boolean") continue;
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
    // A constraint on an object closed elsewhere names its keys `true` or `false`.
    const constraint = record.properties &&
      Object.values(record.properties).every((p) => typeof p === "boolean");
    if (record.properties && !closed && !passesKwargs && !constraint) open.push(where);
    for (const [key, child] of Object.entries(record)) walk(child, `${where}/${key}`);
  };
  walk(schema, "#");
  assertEquals(open, []);
});

/** Every node of the schema, with its JSON pointer. */
function nodes(node: unknown, where = "#"): [string, Record<string, unknown>][] {
  if (!node || typeof node !== "object") return [];
  const record = node as Record<string, unknown>;
  const children = Object.entries(record).flatMap(([key, child]) =>
    key === "defaultSnippets" || key === "examples" ? [] : nodes(child, `${where}/${key}`)
  );
  return Array.isArray(node) ? children : [[where, record], ...children];
}

Deno.test("schema: hovers render Markdown: every description is also the markdownDescription", () => {
  // The YAML language server escapes `description` and renders `markdownDescription`.
  const differing = nodes(schema)
    .filter(([, n]) => typeof n.description === "string")
    .filter(([, n]) => n.markdownDescription !== n.description)
    .map(([where]) => where);
  assertEquals(differing, []);
});

Deno.test("schema: pattern messages are patternErrorMessage, which replaces no other message", () => {
  const misplaced = nodes(schema).filter(([, n]) => n.pattern && n.errorMessage).map(([w]) => w);
  assertEquals(misplaced, []);
  const orphan = nodes(schema).filter(([, n]) => n.patternErrorMessage && !n.pattern);
  assertEquals(orphan.map(([w]) => w), []);
});

Deno.test("schema: each step name has one schema; other packages' steps are custom", () => {
  const step = schema.definitions.step;
  const patterns = Object.entries(step.patternProperties).map(([p, s]) => ({
    regex: new RegExp(p, "u"),
    title: (s as { title: string }).title,
  }));
  const matching = (name: string) => patterns.filter((p) => p.regex.test(name)).map((p) => p.title);
  for (const name of Object.keys(step.properties)) assertEquals(matching(name), [], name);
  assertEquals(matching("my_company.steps.fetch_secrets"), ["Custom step"]);
  assertEquals(matching("prefect_docker.deployments.steps.other_step"), ["Custom step"]);
  assertEquals(matching("prefect.deployments.steps.git_clone_project"), ["Unknown Prefect step"]);
  assertEquals(matching("prefect.projects.steps.git_clone_project"), ["Removed step"]);
  assertEquals(matching("git_clone"), []);
});

Deno.test("schema: the timezone rule rejects wrong case only, never a name Prefect accepts", () => {
  const timezone = schema.definitions.schedule.properties.timezone;
  const pattern = new RegExp(timezone.pattern, "u");
  // Prefect checks schedules' timezones against pytz's list; Intl knows the same IANA names.
  const names = [...Intl.supportedValuesOf("timeZone"), "US/Eastern", "Etc/GMT+5", "EST5EDT"];
  assertEquals(names.filter((n) => !pattern.test(n)), []);
  for (const wrong of ["europe/berlin", "utc", "Europe/berlin", "america/New_York"]) {
    assert(!pattern.test(wrong), wrong);
  }
  assert(pattern.test("{{ $DEPLOY_TZ }}"), "templates pass");
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
