import { assert, assertEquals, assertMatch, assertStringIncludes } from "./assert.ts";
import { runCli, runDeploy, tempProject } from "./helpers.ts";
import { BINARY_PERMISSIONS } from "../tools/compile.ts";

Deno.test("inspect prints the flow name and a parameter table", async () => {
  const result = await runCli(["inspect", "flows/refinement.py:refine"]);
  assertEquals(result.code, 0, result.stderr);
  const [header, ...rows] = result.stdout.trim().split("\n");
  assertEquals(header, "flow refinement  —  flows/refinement.py:17 def refine");
  assertEquals(rows.map((r) => r.trim().split(/\s{2,}/).slice(0, 3)), [
    ["since", "date-time | null", "= null"],
    ["incremental", "boolean", "= true"],
    ["batch_size", "integer", "= 500"],
  ]);
});

Deno.test("inspect --format json prints the contract's three fields", async () => {
  const result = await runCli(["inspect", "flows/backfill.py:backfill", "--format", "json"]);
  assertEquals(result.code, 0, result.stderr);
  const output = JSON.parse(result.stdout);
  assertEquals(Object.keys(output), ["flow_name", "function", "parameter_openapi_schema"]);
  assertEquals(output.flow_name, "backfill");
  assertEquals(output.parameter_openapi_schema.required, ["start", "end"]);
  assertEquals(output.parameter_openapi_schema.properties.start.format, "date");
});

Deno.test("inspect: every unusable input gets one line and exit 1", async () => {
  await using project = await tempProject({
    "flows/broken.py": "from prefect import flow\n\n@flow\ndef f(a:\n",
    "flows/binary.py": new Uint8Array([0x7f, 0x45, 0x4c, 0x46, 0]),
    "flows/big.py": "x = 1\n".repeat(1024 * 1024),
    "flows/ok.py":
      "from prefect import flow, task\n\n\ndef helper(): ...\n\n\n@task\ndef step(): ...\n",
  });
  const cases: [string[], string][] = [
    [
      ["inspect", "flows/none.py:f"],
      'No flow file for "flows/none.py:f": looked for flows/none.py.',
    ],
    [
      ["inspect", "flows/broken.py:f"],
      'flows/broken.py:5:1: error: Python syntax error at the end of the file ("(" at 4:6 is never closed);',
    ],
    [
      ["inspect", "flows/binary.py:f"],
      'Flow file "flows/binary.py" was not read: it is not a text file.',
    ],
    [["inspect", "flows/big.py:f"], "was not read: it is larger than 5 MB."],
    [
      ["inspect", "flows/ok.py:helper"],
      'Function "helper" in "flows/ok.py" (line 4) is not decorated with @flow',
    ],
    [["inspect", "flows/ok.py:step"], '"step" in "flows/ok.py" (line 8) is a @task, not a @flow'],
    [["inspect", "flows/ok.py:helpr"], 'Flow not found: function "helpr" is not defined'],
    [["inspect"], "inspect: give one ENTRYPOINT"],
    [["inspect", "a.py:f", "--format", "github"], "--format must be text or json"],
  ];
  for (const [args, message] of cases) {
    const started = performance.now();
    const result = await runCli(args, { cwd: project.dir });
    assertEquals(result.code, 1, `${args.join(" ")}: ${result.stdout}`);
    assertStringIncludes(result.stderr, message);
    assertMatch(result.stderr.trim().split("\n")[0], /^(\S+:\d+:\d+: )?error: /);
    assert(!result.stderr.includes("    at "), "no stack trace");
    assert(performance.now() - started < 10_000, `${args.join(" ")} took too long`);
  }
});

Deno.test("with the binary's permissions, a path outside the project gets one clear line", async () => {
  await using project = await tempProject({ "prefect/none.yaml": "deployments: []\n" });
  await using outside = await tempProject({ "flows/f.py": "from prefect import flow\n" });
  const result = await runDeploy(["inspect", `${outside.dir}/flows/f.py:f`], {
    cwd: project.dir,
    permissions: BINARY_PERMISSIONS,
  });
  assertEquals(result.code, 1);
  assertEquals(
    result.stderr.trim(),
    `error: Cannot read "${outside.dir}/flows/f.py": deploy reads only inside the directory it ` +
      "runs in; run it from the project root.",
  );
});
