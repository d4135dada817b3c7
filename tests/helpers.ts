/** Shared test helpers: option defaults, temporary projects, and running the CLI. */
import type { Options } from "../deploy.ts";

export const REPO_ROOT = new URL("../", import.meta.url).pathname;
export const DEPLOY_TS = new URL("../deploy.ts", import.meta.url).pathname;

export function validateOptions(overrides: Partial<Options> = {}): Options {
  return {
    command: "validate",
    helpTopic: "validate",
    paths: ["prefect"],
    strict: false,
    codeChecks: true,
    format: "text",
    ...overrides,
  };
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs deploy.ts as users do, with the permissions of `deno task validate`. */
export async function runCli(args: string[], options: { cwd?: string } = {}): Promise<CliResult> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--frozen",
      "--allow-read",
      "--allow-env=NO_COLOR",
      DEPLOY_TS,
      ...args,
    ],
    cwd: options.cwd ?? REPO_ROOT,
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decode = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: output.code, stdout: decode(output.stdout), stderr: decode(output.stderr) };
}

/** A temporary project directory with the given files; removed by the returned function. */
export async function tempProject(files: Record<string, string | Uint8Array>) {
  const dir = await Deno.makeTempDir({ prefix: "deploy-ts-test-" });
  for (const [name, content] of Object.entries(files)) {
    const path = `${dir}/${name}`;
    await Deno.mkdir(path.slice(0, path.lastIndexOf("/")), { recursive: true });
    if (typeof content === "string") await Deno.writeTextFile(path, content);
    else await Deno.writeFile(path, content);
  }
  return { dir, [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }) };
}
