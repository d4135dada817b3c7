/**
 * `deno task compile`: dist/deploy, the single binary the Docker image runs as Fly's
 * release_command. Its permissions are set here, once: tests run the program with exactly these
 * flags (`deno run --cached-only --frozen`) where the binary itself cannot be built.
 */

/**
 * Network for the Prefect API; reading the project (manifests, flows) from the directory it runs
 * in, and writing there only what a command is asked to write (a saved plan, `plan --out`;
 * `init` and `export`: manifests, the schema, editor settings; the Dockerfile `dockerfile: auto`
 * writes, as prefect-docker does); the environment only for Prefect's settings, deploy.ts's own
 * DEPLOY_* variables (which `{{ $DEPLOY_… }}` templates may use) and NO_COLOR. For
 * `--build-image` / `--push-image`: running `docker` (the image steps) and `sh`
 * (run_shell_script, and a registry login kept in a throwaway configuration).
 */
export const BINARY_PERMISSIONS = [
  "--allow-net",
  "--allow-read=.",
  "--allow-write=.",
  "--allow-env=PREFECT_*,DEPLOY_*,NO_COLOR",
  "--allow-run=docker,sh",
];

export const COMPILE_ARGS = [
  "compile",
  "--frozen",
  ...BINARY_PERMISSIONS,
  "--output",
  "dist/deploy",
  "deploy.ts",
];

if (import.meta.main) {
  Deno.chdir(new URL("../", import.meta.url).pathname);
  const output = await new Deno.Command(Deno.execPath(), {
    args: COMPILE_ARGS,
    stdout: "inherit",
    stderr: "piped",
  }).output();
  const errors = new TextDecoder().decode(output.stderr);
  if (output.success) {
    console.error("dist/deploy built.");
    Deno.exit(0);
  }
  if (/denort|dl\.deno\.land|dns error|error sending request/i.test(errors)) {
    console.error(
      "error: deno compile could not download its runtime (denort) from dl.deno.land; this " +
        "machine has no route there. Build the binary where it does (the Dockerfile's build " +
        "stage); here, tests run the same program with the binary's permissions instead.",
    );
  } else {
    console.error(errors.trim());
  }
  Deno.exit(1);
}
