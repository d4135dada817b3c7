/**
 * Differential test: the parameter schema and flow name deploy.ts reads from source, against
 * what Prefect itself generates for the same functions (pip-installed Prefect of the test
 * harness, `parameter_schema(flow)` on the imported flow).
 */
import { assert, assertEquals } from "./assert.ts";
import { ensurePrefect } from "./prefect_server.ts";
import { findFlow, parsePythonModule } from "../lib/python_source.ts";
import { parameterSchema } from "../lib/parameter_schema.ts";

const FIXTURES = new URL("./fixtures/flows/", import.meta.url).pathname;
const REFERENCE_SCRIPT = new URL("./prefect_parameter_schema.py", import.meta.url).pathname;

/** JSON with object keys sorted, so key order never counts. */
function canonical(value: unknown): string {
  return JSON.stringify(
    value,
    (_, v) =>
      v && typeof v === "object" && !Array.isArray(v)
        ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => a.localeCompare(b)))
        : v,
  );
}

Deno.test("parameter schemas and flow names equal Prefect's own, for every fixture flow", async (t) => {
  const bin = await ensurePrefect();
  const files = [...Deno.readDirSync(FIXTURES)].filter((e) => e.name.endsWith(".py"))
    .map((e) => `${FIXTURES}${e.name}`).sort();
  const output = await new Deno.Command(`${bin}/python`, {
    args: [REFERENCE_SCRIPT, ...files],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert(output.success, new TextDecoder().decode(output.stderr));
  const reference: Record<string, Record<string, { flow_name: string; schema: unknown }>> = JSON
    .parse(new TextDecoder().decode(output.stdout));

  let compared = 0;
  for (const file of files) {
    const module = parsePythonModule(await Deno.readTextFile(file));
    for (const [fn, expected] of Object.entries(reference[file])) {
      compared++;
      await t.step(`${file.slice(FIXTURES.length)}:${fn}`, () => {
        const found = findFlow(module, fn);
        assert(found.kind === "flow", `${fn}: ${found.kind}`);
        if (found.kind !== "flow") return;
        assertEquals(found.flowName, expected.flow_name);
        assertEquals(canonical(parameterSchema(module, found.fn)), canonical(expected.schema));
      });
    }
  }
  assert(compared >= 40, `only ${compared} fixture flows`);
});
