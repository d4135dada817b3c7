/**
 * Build and push steps run natively, without Python: prefect-docker's `build_docker_image` and
 * `push_docker_image` through the `docker` CLI (which honours DOCKER_HOST), and Prefect's
 * `run_shell_script`. Arguments, defaults and outputs are those of prefect-docker 0.7.4 and
 * Prefect 3.8.8, read from their source; where the CLI differs from docker-py the choice is
 * noted. The order in which a manifest's steps run, and which of them a deployment uses, is
 * decided in deploy.ts; this module runs one step at a time.
 */

type Json = Record<string, unknown>;

/** A step that could not run or failed: its message, and the last lines it printed. */
export class StepError extends Error {
  constructor(message: string, readonly tail: string[] = []) {
    super(message);
  }
}

/** What a step may use from the program that runs it. */
export interface StepContext {
  /** Shows one line of a step's output to the user (deploy.ts: stderr, credentials hidden). */
  output(line: string): void;
  /** Reads an environment variable; throws Deno.errors.NotCapable where it may not. */
  env(name: string): string | undefined;
  /** The manifest's `prefect-version`: the Prefect of `dockerfile: auto`'s base image. */
  prefectVersion?: string;
  /** Values never to show (registry passwords, block values used by steps). */
  secrets: string[];
  /** The clock, for the default image tag. */
  now(): Date;
}

/** The step functions run here, by their import paths as manifests write them. */
export const NATIVE_STEPS: Record<string, (inputs: Json, ctx: StepContext) => Promise<Json>> = {
  "prefect_docker.deployments.steps.build_docker_image": buildDockerImage,
  "prefect_docker.deployments.steps.push_docker_image": pushDockerImage,
  "prefect.deployments.steps.run_shell_script": runShellScript,
  "prefect.deployments.steps.utility.run_shell_script": runShellScript,
};

/** Keys Prefect removes from a step's arguments before calling it. */
export const RESERVED_KEYS = ["id", "requires"];

/**
 * prefect-docker's `@cacheable` steps: `ignore_cache` is not an argument of the step; it makes
 * the step run again although an identical one already ran in this invocation.
 */
export function takeIgnoreCache(fqn: string, inputs: Json): { inputs: Json; ignoreCache: boolean } {
  if (!fqn.startsWith("prefect_docker.")) return { inputs, ignoreCache: false };
  const { ignore_cache, ...rest } = inputs;
  return { inputs: rest, ignoreCache: pythonTruthy(ignore_cache) };
}

/** Runs one step, its reserved keys already removed and its templates filled. */
export async function runStep(fqn: string, inputs: Json, ctx: StepContext): Promise<Json> {
  const step = NATIVE_STEPS[fqn];
  if (!step) throw new StepError(`"${fqn}" is not run natively.`);
  return await step(inputs, ctx);
}

// ─── Python's reading of values ──────────────────────────────────────────────

/** `bool(value)` in Python: a step receives `"false"` as a non-empty, hence true, string. */
export function pythonTruthy(value: unknown): boolean {
  if (value === null || value === undefined || value === false || value === 0 || value === "") {
    return false;
  }
  if (Array.isArray(value)) return value.length > 0;
  if (typeof value === "object") return Object.keys(value).length > 0;
  return true;
}

/** `str.splitlines()`: every line boundary Python knows, no trailing empty line. */
export function pythonSplitLines(text: string): string[] {
  // Python's line boundaries include the file, group and record separators (0x1c-0x1e).
  // deno-lint-ignore no-control-regex
  const lines = text.split(/\r\n|[\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029]/);
  if (lines.at(-1) === "") lines.pop();
  return lines;
}

/** `shlex.split(command)` (POSIX mode, no comments): the words a line of a script runs as. */
export function shlexSplit(command: string): string[] {
  const words: string[] = [];
  let word = "";
  let inWord = false;
  let quote = "";
  for (let i = 0; i < command.length; i++) {
    const c = command[i];
    if (quote === "'") {
      if (c === "'") quote = "";
      else word += c;
    } else if (quote === '"') {
      if (c === '"') quote = "";
      else if (c === "\\") {
        if (i + 1 >= command.length) throw new StepError("No escaped character");
        const next = command[++i];
        // Inside double quotes only the quote and the backslash itself are escaped.
        word += next === '"' || next === "\\" ? next : `\\${next}`;
      } else word += c;
    } else if (" \t\r\n".includes(c)) {
      if (inWord) words.push(word);
      word = "";
      inWord = false;
    } else {
      inWord = true;
      if (c === "'" || c === '"') quote = c;
      else if (c === "\\") {
        if (i + 1 >= command.length) throw new StepError("No escaped character");
        word += command[++i];
      } else word += c;
    }
  }
  if (quote) throw new StepError("No closing quotation");
  if (inWord) words.push(word);
  return words;
}

/** `string.Template(text).safe_substitute(values)`: `$name`, `${name}`, `$$`; unknowns stay. */
export function safeSubstitute(
  text: string,
  lookup: (name: string) => string | undefined,
): string {
  return text.replace(
    /\$(?:(\$)|([_a-zA-Z][_a-zA-Z0-9]*)|\{([_a-zA-Z][_a-zA-Z0-9]*)\})/g,
    (whole, dollar: string | undefined, name?: string, braced?: string) => {
      if (dollar) return "$";
      return lookup((name ?? braced)!) ?? whole;
    },
  );
}

// ─── prefect-docker's naming ─────────────────────────────────────────────────

/**
 * The default tag: `slugify(datetime.now(ZoneInfo("UTC")).isoformat())`, e.g.
 * `2026-01-02t03-04-05-123000-00-00` (JavaScript's clock has milliseconds).
 */
export function defaultImageTag(now: Date): string {
  const iso = now.toISOString(); // 2026-01-02T03:04:05.123Z
  const micros = now.getUTCMilliseconds() * 1000;
  const seconds = iso.slice(0, 19);
  const fraction = micros ? `.${String(micros).padStart(6, "0")}` : "";
  return `${seconds}${fraction}+00:00`.toLowerCase().replace(/[^-a-z0-9]+/g, "-")
    .replace(/-+/g, "-").replace(/^-|-$/g, "");
}

/**
 * `split_repository_path` and the default namespace: a name without a registry or organisation
 * gets `PREFECT_DEFAULT_DOCKER_BUILD_NAMESPACE` in front, when that is set.
 */
export function qualifiedImageName(name: string, ctx: Pick<StepContext, "env">): string {
  if (/\s/.test(name)) {
    throw new StepError(
      `Invalid Docker image name ${pythonRepr(name)}. Image names cannot contain spaces. Use ` +
        "lowercase letters, numbers, and separators like '-', '_', '.', and '/'.",
    );
  }
  const parts = splitAtMost(name, "/", 2);
  let namespace: string | undefined;
  if (parts.length === 3 || (parts.length === 2 && /[.:]/.test(parts[0]))) {
    namespace = parts.slice(0, -1).join("/");
  } else if (parts.length === 2) namespace = parts[0];
  const repository = parts.at(-1)!;
  namespace ||= ctx.env("PREFECT_DEPLOYMENTS_DEFAULT_DOCKER_BUILD_NAMESPACE") ||
    ctx.env("PREFECT_DEFAULT_DOCKER_BUILD_NAMESPACE") || undefined;
  return [namespace, repository].filter(Boolean).join("/");
}

/** Python's `str.split(sep, maxsplit)`. */
function splitAtMost(text: string, separator: string, maxSplit: number): string[] {
  const parts = text.split(separator);
  return parts.length <= maxSplit + 1
    ? parts
    : [...parts.slice(0, maxSplit), parts.slice(maxSplit).join(separator)];
}

function pythonRepr(text: string): string {
  return text.includes("'") && !text.includes('"') ? `"${text}"` : `'${text}'`;
}

/** `get_prefect_image_name()`: the official image of a Prefect release and a Python minor. */
export function prefectImageName(prefectVersion: string, pythonVersion: string): string {
  const tag = `${prefectVersion}-python${pythonVersion}`.replace(/[^a-zA-Z0-9_.-]+/g, "-")
    .slice(0, 128);
  return `prefecthq/prefect:${tag}`;
}

/**
 * The Dockerfile `dockerfile: auto` writes, line for line as prefect-docker's
 * `build_docker_image` does: the Prefect image, the requirements installed first when the
 * project has a requirements.txt, then the whole directory under /opt/prefect/<its name>/.
 */
export function autoDockerfile(
  baseImage: string,
  directoryName: string,
  hasRequirements: boolean,
): string {
  const home = `/opt/prefect/${directoryName}`;
  const lines = [`FROM ${baseImage}`];
  if (hasRequirements) {
    lines.push(`COPY requirements.txt ${home}/requirements.txt`);
    lines.push(`RUN uv pip install -r ${home}/requirements.txt`);
  }
  lines.push(`COPY . ${home}/`, `WORKDIR ${home}/`);
  return lines.map((line) => `${line}\n`).join("");
}

const PREFECT_RELEASE = /^\d+(\.\d+)*((a|b|rc)\d+)?(\.post\d+)?(\.dev\d+)?$/;

/**
 * The base image of `dockerfile: auto`. prefect-docker takes the Prefect and Python that run
 * `prefect deploy`; here they are the manifest's `prefect-version` and DEPLOY_PYTHON_VERSION (or
 * the project's .python-version file, as uv and pyenv read it).
 */
function autoBaseImage(ctx: StepContext): string {
  const prefect = ctx.prefectVersion;
  if (!prefect || !PREFECT_RELEASE.test(prefect)) {
    throw new StepError(
      `dockerfile: auto builds FROM prefecthq/prefect:<Prefect>-python<Python>, and the ` +
        (prefect
          ? `manifest's prefect-version "${prefect}" is not a Prefect release such as "3.8.8".`
          : "manifest states no `prefect-version` (write e.g. `prefect-version: 3.8.8` at its top)."),
    );
  }
  let python = ctx.env("DEPLOY_PYTHON_VERSION")?.trim();
  let source = "DEPLOY_PYTHON_VERSION";
  if (!python) {
    source = ".python-version";
    try {
      python = Deno.readTextFileSync(".python-version").split("\n")[0].trim();
    } catch {
      throw new StepError(
        "dockerfile: auto needs the Python of its base image: set DEPLOY_PYTHON_VERSION " +
          '(e.g. "3.12") or write it into .python-version.',
      );
    }
  }
  const minor = python.match(/^(\d+)\.(\d+)(\.\d+)?$/);
  if (!minor) {
    throw new StepError(`${source} "${python}" is not a Python version such as "3.12".`);
  }
  return prefectImageName(prefect, `${minor[1]}.${minor[2]}`);
}

// ─── Running commands ────────────────────────────────────────────────────────

const TAIL_LINES = 20;

interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
  /** The last lines of both streams as they came. */
  tail: string[];
}

/**
 * Runs a program with its output captured and, when `stream`, shown line by line as it comes.
 * SIGINT is passed on, so an interrupted build stops and its temporary Dockerfile is removed.
 */
async function execute(
  program: string,
  args: string[],
  ctx: StepContext,
  options: { cwd?: string; env?: Record<string, string>; stdin?: string; stream: boolean },
): Promise<CommandResult> {
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command(program, {
      args,
      cwd: options.cwd,
      env: options.env,
      stdin: options.stdin === undefined ? "null" : "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new StepError(
        options.cwd && !existsSync(options.cwd)
          ? `Directory "${options.cwd}" does not exist.`
          : `"${program}" is not installed or not on PATH.`,
      );
    }
    if (error instanceof Deno.errors.NotCapable) {
      const variable = error.message.match(/with (\w+) environment variable/)?.[1];
      throw new StepError(
        variable
          ? `Running "${program}" with ${variable} set needs Deno's full --allow-run (its rule ` +
            `for LD_* and DYLD_* variables); unset ${variable} for deploy.`
          : `Running "${program}" is not permitted; deploy runs only docker and sh (the ` +
            "binary's --allow-run).",
      );
    }
    throw error;
  }
  const forward = () => child.kill("SIGINT");
  Deno.addSignalListener("SIGINT", forward);
  if (options.stdin !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(options.stdin));
    await writer.close();
  }
  const tail: string[] = [];
  const read = async (stream: ReadableStream<Uint8Array>): Promise<string> => {
    let text = "";
    let pending = "";
    const emit = (line: string) => {
      if (options.stream) ctx.output(line);
      tail.push(line);
      if (tail.length > TAIL_LINES) tail.shift();
    };
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      text += chunk;
      // A lone \r (progress drawn over itself) ends a line too; one at the very end may be
      // the first half of \r\n.
      const lines = (pending + chunk).split(/\r\n|\n|\r(?=[^\n])/);
      pending = lines.pop()!;
      lines.forEach(emit);
    }
    if (pending.replace(/\r$/, "")) emit(pending.replace(/\r$/, ""));
    return text;
  };
  try {
    const [stdout, stderr, status] = await Promise.all([
      read(child.stdout),
      read(child.stderr),
      child.status,
    ]);
    return { code: status.code, stdout, stderr, tail };
  } finally {
    Deno.removeSignalListener("SIGINT", forward);
  }
}

function existsSync(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

async function docker(
  args: string[],
  ctx: StepContext,
  what: string,
  options: { stdin?: string; stream?: boolean } = {},
): Promise<CommandResult> {
  const result = await execute("docker", args, ctx, { stream: true, ...options });
  if (result.code !== 0) {
    throw new StepError(`${what} exited with status ${result.code}.`, result.tail);
  }
  return result;
}

// ─── The steps ───────────────────────────────────────────────────────────────

function stringArgument(inputs: Json, key: string, step: string): string | undefined {
  const value = inputs[key];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "string") {
    throw new StepError(`${step}: \`${key}\` must be a string, got ${JSON.stringify(value)}.`);
  }
  return value;
}

function listArgument(inputs: Json, key: string, step: string): string[] {
  const value = inputs[key];
  if (!pythonTruthy(value)) return [];
  if (!Array.isArray(value)) {
    throw new StepError(`${step}: \`${key}\` must be a list, got ${JSON.stringify(value)}.`);
  }
  return value.map(String);
}

function unknownArguments(step: string, given: string[], known: string[]) {
  const unknown = given.filter((key) => !known.includes(key));
  if (unknown.length) {
    throw new StepError(
      `${step} takes no argument ${unknown.map((k) => `"${k}"`).join(", ")} (it takes ${
        known.join(", ")
      }).`,
    );
  }
}

const BUILD_ARGUMENTS = [
  "image_name",
  "dockerfile",
  "tag",
  "additional_tags",
  "persist_dockerfile",
  "dockerfile_output_path",
  "build_backend",
];

/**
 * docker-py's `APIClient.build()` keywords, which prefect-docker passes on, as `docker build`
 * flags. Transport settings (timeout, gzip, encoding…) have no meaning for the CLI; a build
 * from a file object has no CLI form.
 */
const BUILD_FLAGS: Record<string, (value: unknown) => string[]> = {
  nocache: (v) => pythonTruthy(v) ? ["--no-cache"] : [],
  rm: (v) => [`--rm=${pythonTruthy(v)}`],
  forcerm: (v) => pythonTruthy(v) ? ["--force-rm"] : [],
  quiet: (v) => pythonTruthy(v) ? ["--quiet"] : [],
  squash: (v) => pythonTruthy(v) ? ["--squash"] : [],
  buildargs: (v) => pairs(v, "buildargs").flatMap(([k, x]) => ["--build-arg", `${k}=${x}`]),
  shmsize: (v) => ["--shm-size", String(v)],
  cache_from: (v) => listOf(v).flatMap((image) => ["--cache-from", image]),
  target: (v) => ["--target", String(v)],
  network_mode: (v) => ["--network", String(v)],
  platform: (v) => ["--platform", String(v)],
  isolation: (v) => ["--isolation", String(v)],
  extra_hosts: (v) =>
    (Array.isArray(v) ? v.map(String) : pairs(v, "extra_hosts").map(([h, ip]) => `${h}:${ip}`))
      .flatMap((entry) => ["--add-host", entry]),
  container_limits: (v) =>
    pairs(v, "container_limits").flatMap(([k, x]) => {
      const flag = {
        memory: "--memory",
        memswap: "--memory-swap",
        cpushares: "--cpu-shares",
        cpusetcpus: "--cpuset-cpus",
      }[k];
      if (!flag) throw new StepError(`build_docker_image: unknown container_limits key "${k}".`);
      return [flag, String(x)];
    }),
  timeout: () => [],
  gzip: () => [],
  encoding: () => [],
  decode: () => [],
  use_config_proxy: () => [],
};

function pairs(value: unknown, key: string): [string, unknown][] {
  if (value === null || value === undefined) return [];
  if (typeof value !== "object" || Array.isArray(value)) {
    throw new StepError(`build_docker_image: \`${key}\` must be a mapping.`);
  }
  return Object.entries(value);
}

function listOf(value: unknown): string[] {
  return value === null || value === undefined ? [] : [value].flat().map(String);
}

/**
 * prefect-docker's `build_docker_image`: builds in the working directory (build kwarg `path`
 * changes the context), pulls the base image (`pull: false` turns that off, as in docker-py),
 * tags the image `image_name:tag` and each of `additional_tags`, labels it with the Prefect
 * version, and returns `image_name`, `tag`, `image`, `image_id` and `additional_tags`.
 */
export async function buildDockerImage(inputs: Json, ctx: StepContext): Promise<Json> {
  const step = "build_docker_image";
  const given = stringArgument(inputs, "image_name", step);
  if (given === undefined) throw new StepError(`${step} needs \`image_name\`.`);
  const kwargs = Object.fromEntries(
    Object.entries(inputs).filter(([key]) => !BUILD_ARGUMENTS.includes(key)),
  );
  const unsupported = Object.keys(kwargs).filter((k) =>
    !(k in BUILD_FLAGS) && k !== "path" &&
    k !== "pull" && k !== "labels"
  );
  unknownArguments(step, unsupported, [...BUILD_ARGUMENTS, "and docker-py's build() keywords"]);
  const imageName = qualifiedImageName(given, ctx);

  let dockerfile = stringArgument(inputs, "dockerfile", step) ?? "Dockerfile";
  const auto = dockerfile === "auto";
  if (auto) {
    const directoryName = Deno.cwd().split("/").filter(Boolean).pop() ?? "";
    const text = autoDockerfile(autoBaseImage(ctx), directoryName, existsSync("requirements.txt"));
    if (existsSync("Dockerfile")) throw new StepError("Dockerfile already exists.");
    writeFile("Dockerfile", text);
    dockerfile = "Dockerfile";
  }
  try {
    if (auto && pythonTruthy(inputs.persist_dockerfile)) {
      const output = stringArgument(inputs, "dockerfile_output_path", step) ||
        "Dockerfile.generated";
      writeFile(output, Deno.readTextFileSync("Dockerfile"));
    }
    const backend = stringArgument(inputs, "build_backend", step) ?? "docker-py";
    if (backend === "buildx") {
      throw new StepError(
        `${step}: build_backend "buildx" is not run natively (it needs python-on-whales); ` +
          'leave the default, "docker-py".',
      );
    }
    if (backend !== "docker-py") {
      throw new StepError(`Invalid build_backend '${backend}'. Expected 'docker-py' or 'buildx'.`);
    }
    const tag = stringArgument(inputs, "tag", step) || defaultImageTag(ctx.now());
    const additionalTags = listArgument(inputs, "additional_tags", step);

    const context = kwargs.path === undefined ? "." : String(kwargs.path);
    const labels: Json = {
      ...(kwargs.labels as Json | undefined ?? {}),
      ...(ctx.prefectVersion ? { "io.prefect.version": ctx.prefectVersion } : {}),
    };
    const flags = Object.entries(kwargs).flatMap(([key, value]) => BUILD_FLAGS[key]?.(value) ?? []);
    // docker-py reads a relative Dockerfile path inside the context; the CLI from here.
    const file = dockerfile.startsWith("/") ? dockerfile : `${context}/${dockerfile}`;
    const image = `${imageName}:${tag}`;
    await docker(
      [
        "build",
        ...(pythonTruthy(kwargs.pull ?? true) ? ["--pull"] : []),
        ...flags,
        ...Object.entries(labels).flatMap(([k, v]) => ["--label", `${k}=${v}`]),
        "--file",
        file,
        "--tag",
        image,
        ...additionalTags.flatMap((t) => ["--tag", `${imageName}:${t}`]),
        context,
      ],
      ctx,
      "docker build",
    );
    const inspected = await docker(
      ["image", "inspect", "--format", "{{.Id}}", image],
      ctx,
      "docker image inspect",
      { stream: false },
    );
    return {
      image_name: imageName,
      tag,
      image,
      image_id: inspected.stdout.trim(),
      additional_tags: additionalTags,
    };
  } finally {
    if (auto) Deno.removeSync("Dockerfile");
  }
}

function writeFile(path: string, text: string) {
  try {
    Deno.writeTextFileSync(path, text);
  } catch (error) {
    if (error instanceof Deno.errors.NotCapable) {
      throw new StepError(
        `build_docker_image may not write "${path}": deploy writes only inside the directory ` +
          "it runs in.",
      );
    }
    throw error;
  }
}

/**
 * Logs in with the given credentials in a configuration directory of its own, which is removed
 * afterwards, and pushes: docker-py keeps a login in memory, the CLI writes it to disk.
 */
const PUSH_WITH_LOGIN = `set -e
DOCKER_CONFIG=$(mktemp -d)
export DOCKER_CONFIG
trap 'rm -rf "$DOCKER_CONFIG"' EXIT
docker login --username "$1" --password-stdin $2
shift 2
for ref do docker push $ref; done`;

/**
 * prefect-docker's `push_docker_image`: pushes `image_name:tag` (every tag of the repository
 * when `tag` is empty, as docker-py does) and each of `additional_tags`, logging in first when
 * `credentials` (a docker-registry-credentials block) are given.
 */
export async function pushDockerImage(inputs: Json, ctx: StepContext): Promise<Json> {
  const step = "push_docker_image";
  unknownArguments(step, Object.keys(inputs), [
    "image_name",
    "tag",
    "credentials",
    "additional_tags",
    "build_backend",
  ]);
  const given = stringArgument(inputs, "image_name", step);
  if (given === undefined) throw new StepError(`${step} needs \`image_name\`.`);
  const imageName = qualifiedImageName(given, ctx);
  const additionalTags = listArgument(inputs, "additional_tags", step);
  const backend = stringArgument(inputs, "build_backend", step) ?? "docker-py";
  if (backend !== "docker-py") {
    throw new StepError(
      backend === "buildx"
        ? `${step}: build_backend "buildx" is not run natively; leave the default, "docker-py".`
        : `Invalid build_backend '${backend}'. Expected 'docker-py' or 'buildx'.`,
    );
  }
  const tag = inputs.tag === undefined || inputs.tag === null ? null : String(inputs.tag);
  const refs = [
    tag ? [imageName + `:${tag}`] : ["--all-tags", imageName],
    ...additionalTags.map((t) => [`${imageName}:${t}`]),
  ];

  const credentials = inputs.credentials;
  if (credentials === undefined || credentials === null) {
    for (const ref of refs) await docker(["push", ...ref], ctx, "docker push");
  } else {
    const { username, password, registry_url: registry } = credentials as Json;
    if (
      typeof credentials !== "object" || typeof username !== "string" ||
      typeof password !== "string"
    ) {
      throw new StepError(
        `${step}: \`credentials\` must be a docker-registry-credentials block with a username ` +
          'and a password, e.g. "{{ prefect.blocks.docker-registry-credentials.NAME }}".',
      );
    }
    ctx.secrets.push(password);
    const result = await execute(
      "sh",
      [
        "-c",
        PUSH_WITH_LOGIN,
        "sh",
        username,
        typeof registry === "string" ? registry : "",
        ...refs.map((r) => r.join(" ")),
      ],
      ctx,
      { stdin: password, stream: true },
    );
    if (result.code !== 0) {
      throw new StepError(`docker login and push exited with status ${result.code}.`, result.tail);
    }
  }
  return {
    image_name: imageName,
    tag,
    // f"{image_name}:{tag}", None included.
    image: `${imageName}:${tag ?? "None"}`,
    additional_tags: additionalTags,
  };
}

/**
 * Prefect's `run_shell_script`: each line of `script` runs as its own command (split as
 * `shlex.split` does and run without a shell, unless `shell: true`), in `directory`, with `env`
 * added to the environment; `expand_env_vars` substitutes `$VAR` first. Stops at the first
 * failing line. Returns `stdout` and `stderr`, stripped.
 */
export async function runShellScript(inputs: Json, ctx: StepContext): Promise<Json> {
  const step = "run_shell_script";
  unknownArguments(step, Object.keys(inputs), [
    "script",
    "directory",
    "env",
    "stream_output",
    "expand_env_vars",
    "shell",
  ]);
  const script = stringArgument(inputs, "script", step);
  if (script === undefined) throw new StepError(`${step} needs \`script\`.`);
  const directory = stringArgument(inputs, "directory", step);
  const env = Object.fromEntries(
    Object.entries((inputs.env ?? {}) as Json).map(([k, v]) => [k, String(v)]),
  );
  const stream = pythonTruthy(inputs.stream_output ?? true);
  const shell = pythonTruthy(inputs.shell);
  const lookup = (name: string) => {
    if (name in env) return env[name];
    try {
      return ctx.env(name);
    } catch (error) {
      if (!(error instanceof Deno.errors.NotCapable)) throw error;
      throw new StepError(
        `${step}: expand_env_vars would read "$${name}", which deploy may not read (it reads ` +
          "PREFECT_*, DEPLOY_* and NO_COLOR); pass it in `env` or rename it DEPLOY_" + name + ".",
      );
    }
  };
  let stdout = "";
  let stderr = "";
  for (let command of pythonSplitLines(script)) {
    if (pythonTruthy(inputs.expand_env_vars)) command = safeSubstitute(command, lookup);
    let args: string[];
    if (shell) {
      command = command.trim();
      if (!command) continue;
      args = ["-c", command];
    } else {
      let words: string[];
      try {
        words = shlexSplit(command);
      } catch (error) {
        throw new StepError(
          `${step}: cannot split ${JSON.stringify(command)}: ${(error as Error).message}.`,
        );
      }
      if (!words.length) continue;
      // `exec "$@"` runs the words as they are, as Python's create_subprocess_exec would.
      args = ["-c", 'exec "$@"', "sh", ...words];
    }
    const result = await execute("sh", args, ctx, { cwd: directory, env, stream });
    stdout += result.stdout;
    stderr += result.stderr;
    if (result.code !== 0) {
      throw new StepError(
        `\`run_shell_script\` failed with error code ${result.code} running ${
          JSON.stringify(command)
        }.`,
        result.tail,
      );
    }
  }
  return { stdout: stdout.trim(), stderr: stderr.trim() };
}
