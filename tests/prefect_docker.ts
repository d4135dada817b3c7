/**
 * The real prefect-docker, for differential tests and benchmarks: pip-installed (`--target`, no
 * dependencies: docker-py is already in the harness' Prefect environment) next to that
 * environment, at the version pinned in tests/prefect-docker-requirements.txt.
 */
import { ensurePrefect } from "./prefect_server.ts";

const REPO_ROOT = new URL("../", import.meta.url).pathname;
const REQUIREMENTS = new URL("./prefect-docker-requirements.txt", import.meta.url).pathname;

export const PREFECT_DOCKER_VERSION: string = (() => {
  const match = Deno.readTextFileSync(REQUIREMENTS).match(/^prefect-docker==(\S+)$/m);
  if (!match) throw new Error(`${REQUIREMENTS} does not pin prefect-docker`);
  return match[1];
})();

/** Python and the environment (PYTHONPATH) under which `import prefect_docker` works. */
export async function ensurePrefectDocker(): Promise<
  { bin: string; env: Record<string, string> }
> {
  const bin = await ensurePrefect();
  const target = `${REPO_ROOT}.venv/prefect-docker-${PREFECT_DOCKER_VERSION}`;
  const marker = `${target}/.installed`;
  if (!(await Deno.stat(marker).then(() => true, () => false))) {
    console.error(`[prefect-docker] installing prefect-docker ${PREFECT_DOCKER_VERSION} (once)`);
    const output = await new Deno.Command(`${bin}/pip`, {
      args: [
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-deps",
        "--upgrade",
        "--target",
        target,
        "-r",
        REQUIREMENTS,
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!output.success) {
      throw new Error(
        `pip install prefect-docker failed:\n${new TextDecoder().decode(output.stderr)}`,
      );
    }
    await Deno.writeTextFile(marker, `${PREFECT_DOCKER_VERSION}\n`);
  }
  return { bin, env: { PYTHONPATH: target } };
}
