import { assertEquals } from "./assert.ts";
import { findFlow, parsePythonModule, pythonString } from "../lib/python_source.ts";
import { validate } from "../deploy.ts";
import { tempProject, validateOptions } from "./helpers.ts";

const SOURCE = `"""Module docstring."""
import prefect
from prefect import flow as prefect_flow, task
from prefect import flow

FLOW_NAME = "nightly-" "etl"


@flow
def plain(a, /, b: int = 1, *args, c: "list[str]" = [], **kwargs):
    """Plain flow."""


@flow(name="named", log_prints=True)
async def named_one(
    x: int,  # a comment
    # another comment
    y: dict[str, int] | None = None,
):
    ...


@prefect.flow(name=FLOW_NAME)
def from_constant(*, only: bool = False): ...


@prefect_flow(name=f"dynamic-{1}")
def dynamic(): ...


@task
def not_a_flow(): ...


def undecorated(): ...


class Model:
    pass
`;

Deno.test("python source: parameters by kind, with annotations and defaults", () => {
  const module = parsePythonModule(SOURCE);
  assertEquals(module.syntaxError, undefined);
  const plain = module.functions.get("plain")!;
  assertEquals(
    plain.parameters.map((p) => [p.name, p.kind, p.annotationText ?? null, !!p.default]),
    [
      ["a", "positional_only", null, false],
      ["b", "positional_or_keyword", "int", true],
      ["args", "var_positional", null, false],
      ["c", "keyword_only", '"list[str]"', true],
      ["kwargs", "var_keyword", null, false],
    ],
  );
  assertEquals(plain.docstring, "Plain flow.");
  const named = module.functions.get("named_one")!;
  assertEquals(named.isAsync, true);
  assertEquals(named.parameters.map((p) => p.annotationText), ["int", "dict[str, int] | None"]);
  assertEquals(module.functions.get("from_constant")!.parameters[0].kind, "keyword_only");
  assertEquals([...module.classes.keys()], ["Model"]);
});

Deno.test("python source: flow names as Prefect registers them", () => {
  const module = parsePythonModule(SOURCE);
  const name = (fn: string) => {
    const found = findFlow(module, fn);
    return found.kind === "flow" ? found.flowName : found.kind;
  };
  assertEquals(name("plain"), "plain");
  assertEquals(name("named_one"), "named");
  assertEquals(name("from_constant"), "nightly-etl");
  assertEquals(name("dynamic"), "dynamic-name");
  assertEquals(name("not_a_flow"), "not-a-flow");
  assertEquals(name("absent"), "missing");
  assertEquals(name("Model"), "missing");
});

Deno.test("python source: string literals and syntax errors", () => {
  assertEquals(pythonString(`"a\\tb"`), "a\tb");
  assertEquals(pythonString(`r"a\\tb"`), "a\\tb");
  assertEquals(pythonString(`'''x\ny'''`), "x\ny");
  assertEquals(pythonString(`f"x"`), undefined);
  assertEquals(parsePythonModule("def broken(:\n    pass\n").syntaxError, {
    line: 1,
    column: 12,
    found: '":" ("(" at 1:11 is never closed)',
  });
});

Deno.test("validate reads flow names and reports functions that are not flows", async () => {
  await using project = await tempProject({
    "flows/etl.py": SOURCE,
    "flows/broken.py": "def oops(:\n",
    "flows/binary.py": new Uint8Array([0, 1, 2, 3]),
    "prefect/etl.yaml": `deployments:
  - name: a
    entrypoint: flows/etl.py:named_one
  - name: b
    entrypoint: flows/etl.py:not_a_flow
  - name: c
    entrypoint: flows/etl.py:dynamic
  - name: d
    entrypoint: flows/broken.py:oops
  - name: e
    entrypoint: flows/etl.py:plaim
  - name: f
    entrypoint: flows/binary.py:x
  - name: g
    entrypoint: flows/broken.py:oops
  - name: h
    entrypoint: flows/etl.py:undecorated
`,
  });
  const cwd = Deno.cwd();
  Deno.chdir(project.dir);
  try {
    const result = await validate(validateOptions());
    assertEquals(result.deployments.map((d) => `${d.flow}/${d.name}`), [
      "named/a",
      "not-a-flow/b",
      "dynamic/c",
      "oops/d",
      "plaim/e",
      "x/f",
      "oops/g",
      "undecorated/h",
    ]);
    const found = result.diagnostics
      .filter((d) => d.code !== "no-work-pool" && d.code !== "implicit-project-name")
      .map((d) => `${d.file}:${d.line}:${d.column} ${d.severity} ${d.code}: ${d.message}`);
    assertEquals(found, [
      // At the error in the flow file, once for the two deployments that use it.
      'flows/broken.py:1:10 error python-syntax: Python syntax error at ":" ("(" at 1:9 is never closed); Prefect could not import this file, so no flow in it can be deployed.',
      'prefect/etl.yaml:2:5 warning missing-parameter: The flow "named_one" (flows/etl.py) requires "x", which the deployment does not set: every run must pass it.',
      'prefect/etl.yaml:5:17 error not-a-flow: Function "not_a_flow" in "flows/etl.py" (line 32) is a @task, not a @flow; Prefect deploys flows only. Point the entrypoint at the flow that calls it.',
      'prefect/etl.yaml:7:17 warning dynamic-flow-name: The flow name of "dynamic" is computed when "flows/etl.py" is imported, so it cannot be read from the source; set `flow_name` in the manifest.',
      'prefect/etl.yaml:11:17 error flow-not-found: Function "plaim" is not defined at the top level of "flows/etl.py". Did you mean "plain"?',
      'prefect/etl.yaml:13:17 warning flow-source-unreadable: Flow file "flows/binary.py" was not read: it is not a text file.',
      'prefect/etl.yaml:17:17 error not-a-flow: Function "undecorated" in "flows/etl.py" (line 35) is not decorated with @flow; Prefect can only deploy flows.',
    ]);
  } finally {
    Deno.chdir(cwd);
  }
});
