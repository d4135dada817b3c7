/**
 * The 95 real prefect.yaml files of tests/fixtures/corpus/prefect-yaml (provenance in its
 * INDEX.tsv; DEPLOY_CORPUS_DIR reads another copy): each loads without a crash,
 * and its verdict and diagnostics (line, column, severity, code) match the reviewed golden file.
 *
 * After a deliberate change, regenerate with `UPDATE_GOLDEN=1 deno task test` and review the
 * diff line by line against the corpus files before committing it.
 */
import { assert, assertEquals } from "./assert.ts";
import { validate } from "../deploy.ts";
import { validateOptions } from "./helpers.ts";

const corpusDir = (Deno.env.get("DEPLOY_CORPUS_DIR") ??
  new URL("./fixtures/corpus/prefect-yaml/", import.meta.url).pathname).replace(/\/*$/, "/");
const goldenPath = new URL("./fixtures/corpus_golden.json", import.meta.url);

interface Verdict {
  valid: boolean;
  deployments: number;
  diagnostics: string[];
}

async function corpusVerdicts(): Promise<Record<string, Verdict>> {
  const names = [...Deno.readDirSync(corpusDir)]
    .map((e) => e.name)
    .filter((n) => n.endsWith(".yaml"))
    .sort();
  const verdicts: Record<string, Verdict> = {};
  for (const name of names) {
    const result = await validate(
      validateOptions({ paths: [`${corpusDir}${name}`], codeChecks: false }),
    );
    verdicts[name] = {
      valid: result.valid,
      deployments: result.deployments.length,
      diagnostics: result.diagnostics.map((d) =>
        `${d.line}:${d.column} ${d.severity} ${d.code} ${d.path}`.trimEnd()
      ),
    };
  }
  return verdicts;
}

Deno.test("corpus: every real prefect.yaml loads and matches its reviewed verdict", async () => {
  const actual = await corpusVerdicts();
  assertEquals(Object.keys(actual).length, 95, `expected 95 corpus files in ${corpusDir}`);
  if (Deno.env.get("UPDATE_GOLDEN")) {
    await Deno.writeTextFile(goldenPath, JSON.stringify(actual, null, 2) + "\n");
  }
  const golden = JSON.parse(await Deno.readTextFile(goldenPath));
  for (const [name, verdict] of Object.entries(actual)) {
    assertEquals(verdict, golden[name], `verdict of ${name} changed`);
  }
  assertEquals(Object.keys(golden).sort(), Object.keys(actual).sort());
});

Deno.test("corpus: every file is readable YAML or gets exactly one located syntax error", async () => {
  const golden: Record<string, Verdict> = JSON.parse(await Deno.readTextFile(goldenPath));
  for (const [name, verdict] of Object.entries(golden)) {
    const syntax = verdict.diagnostics.filter((d) => / error yaml-syntax/.test(d));
    assert(syntax.length <= 1, `${name} reports ${syntax.length} syntax errors`);
    for (const d of verdict.diagnostics) assert(/^[1-9]\d*:[1-9]\d* /.test(d), `${name}: ${d}`);
  }
});
