/**
 * The JSR package: `deno publish --dry-run` passes its checks (licence, slow types, the files it
 * would upload) without reaching the registry, and uploads what users of another repository
 * need — the program, its libraries, the schema editors point at — and nothing else.
 */
import { assert, assertEquals, assertMatch } from "./assert.ts";
import { REPO_ROOT } from "./helpers.ts";
import denoConfig from "../deno.json" with { type: "json" };
import { BINARY_PERMISSIONS } from "../tools/compile.ts";

Deno.test("package: deno publish --dry-run passes and uploads the program and the schema", async () => {
  const output = await new Deno.Command(Deno.execPath(), {
    // --allow-dirty: a developer's tree has uncommitted work; CI's fresh clone does not need it.
    args: ["publish", "--dry-run", "--allow-dirty"],
    cwd: REPO_ROOT,
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(output.stdout) + new TextDecoder().decode(output.stderr);
  assert(output.success, text);
  assertMatch(text, /Success Dry run complete/);
  assert(!/warning\[/.test(text), `publish warns:\n${text}`);
  const files = [...text.matchAll(/file:\/\/\S+/g)]
    .map((m) => decodeURIComponent(new URL(m[0]).pathname).slice(REPO_ROOT.length)).sort();
  for (
    const needed of [
      "LICENSE",
      "README.md",
      "deno.json",
      "deploy.ts",
      "lib/prefect_client.ts",
      "schema/deployments.schema.json",
    ]
  ) assert(files.includes(needed), `${needed} is not in the package: ${files.join(", ")}`);
  for (const file of files) {
    assert(
      !/^(tests|bench|tools|flows|prefect|docs|\.)/.test(file),
      `${file} is development-only and should not be published`,
    );
  }
});

Deno.test("package: the licence is stated in deno.json and matches LICENSE", () => {
  assertEquals(denoConfig.license, "Apache-2.0");
  const license = Deno.readTextFileSync(`${REPO_ROOT}LICENSE`);
  assertMatch(license, /Apache License\s+Version 2\.0, January 2004/);
  assertMatch(license, /TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION/);
});

Deno.test("package: the README's and how-to's install commands grant the binary's permissions", () => {
  for (const doc of ["README.md", "docs/how-to.md"]) {
    const text = Deno.readTextFileSync(`${REPO_ROOT}${doc}`).replaceAll("\\\n", " ");
    const commands = text.split("\n").filter((l) =>
      /deno (install|compile) .*jsr:@deploy-ts\/deploy/.test(l)
    );
    assert(commands.length >= 2, `${doc}: no install/compile command`);
    for (const command of commands) {
      const flags = command.split(/\s+/).map((w) => w.replace(/^'|'$/g, ""))
        .filter((w) => w.startsWith("--allow"));
      assertEquals(flags, BINARY_PERMISSIONS, `${doc}: ${command.trim()}`);
      assertMatch(command, new RegExp(`jsr:@deploy-ts/deploy@${denoConfig.version}\\b`));
    }
  }
});
