/** Shared test helpers: option defaults, temporary projects, and running the CLI. */
import { defaultOptions, type Options } from "../deploy.ts";

export const REPO_ROOT = new URL("../", import.meta.url).pathname;
export const DEPLOY_TS = new URL("../deploy.ts", import.meta.url).pathname;

export function validateOptions(overrides: Partial<Options> = {}): Options {
  return { ...defaultOptions(), command: "validate", helpTopic: "validate", ...overrides };
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

/**
 * Runs deploy.ts with the permissions of `deno task deploy`, against the given API. Only the
 * variables passed in `env` (plus PATH) are visible, so the caller's Prefect settings never leak.
 */
export async function runDeploy(
  args: string[],
  options: {
    cwd: string;
    env?: Record<string, string>;
    stdin?: string;
    /** Permission flags; default those of `deno task deploy`. */
    permissions?: string[];
  },
): Promise<CliResult> {
  const permissions = options.permissions ??
    ["--allow-read", "--allow-write", "--allow-env", "--allow-net"];
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--frozen", "--cached-only", ...permissions, DEPLOY_TS, ...args],
    cwd: options.cwd,
    env: { NO_COLOR: "1", PATH: Deno.env.get("PATH") ?? "", ...options.env },
    clearEnv: true,
    stdin: options.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (options.stdin !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(options.stdin));
    await writer.close();
  }
  const output = await child.output();
  const decode = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: output.code, stdout: decode(output.stdout), stderr: decode(output.stderr) };
}

/** A tiny client for asserting on the server's state directly. */
export function api(apiUrl: string) {
  let csrf: Record<string, string> = {};
  return async <T = unknown>(method: string, path: string, body?: unknown): Promise<T> => {
    for (let attempt = 1;; attempt++) {
      const response = await fetch(apiUrl + path, {
        method,
        headers: body === undefined ? { ...csrf } : { "content-type": "application/json", ...csrf },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const text = await response.text();
      if (response.status === 403 && text.includes("CSRF") && attempt < 3) {
        const token = await (await fetch(`${apiUrl}/csrf-token?client=tests`)).json();
        csrf = { "Prefect-Csrf-Token": token.token, "Prefect-Csrf-Client": "tests" };
        continue;
      }
      // SQLite-backed servers answer 503 when the database is busy; Prefect's client retries.
      if (response.status === 503 && attempt < 10) {
        await new Promise((resolve) => setTimeout(resolve, 200 * attempt));
        continue;
      }
      if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${text}`);
      return (text ? JSON.parse(text) : null) as T;
    }
  };
}
