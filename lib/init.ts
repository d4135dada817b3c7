/**
 * `deploy init`: what to write into an existing repository so deploy.ts can validate, plan and
 * apply its flows — a starter manifest per flow found in its Python source (or, with a
 * prefect.yaml, its deployments split into one file per flow), the JSON Schema, and the editor
 * settings that point at it. Planned as data first, so nothing is written before every question
 * about an existing file has been answered.
 */
import { type Alias, type Document, isSeq, parseDocument, stringify, visit } from "yaml";
import { applyEdits, modify, parse as parseJsonc, type ParseError } from "jsonc-parser";
import { findFlow, parsePythonModule } from "./python_source.ts";
import { parameterSchema } from "./parameter_schema.ts";

type Json = Record<string, unknown>;

/** Flow files larger than this are skipped, as validate skips them. */
const MAX_SOURCE_BYTES = 5 * 1024 * 1024;
/** Directories that hold other people's code or build output, never a project's flows. */
const SKIPPED_DIRS = new Set(["node_modules", "__pycache__", "site-packages", "dist", "build"]);
const TEST_FILE = /^(test_.*|.*_test|conftest)\.py$/;

export const SCHEMA_PATH = "schema/deployments.schema.json";
export const SETTINGS_PATH = ".vscode/settings.json";

/** A `@flow` function found in the repository's source. */
export interface FoundFlow {
  /** Path relative to the repository root, with `/`. */
  file: string;
  function: string;
  line: number;
  /** Prefect's flow name; undefined when computed at import time. */
  flowName?: string;
  parameterOpenapiSchema: Json;
}

/**
 * Every `@flow` function at the top level of a Python file under `root`, skipping hidden
 * directories, virtual environments, installed packages, build output and test files.
 */
export function findFlows(root = "."): FoundFlow[] {
  const found: FoundFlow[] = [];
  const full = (path: string) => path === "" ? root : root === "." ? path : `${root}/${path}`;
  const walk = (dir: string) => {
    const entries = [...Deno.readDirSync(full(dir))].sort((a, b) => a.name.localeCompare(b.name));
    if (entries.some((e) => e.name === "pyvenv.cfg")) return;
    for (const entry of entries) {
      const path = dir === "" ? entry.name : `${dir}/${entry.name}`;
      if (entry.name.startsWith(".")) continue;
      if (entry.isDirectory && !SKIPPED_DIRS.has(entry.name)) walk(path);
      if (!entry.isFile || !entry.name.endsWith(".py") || TEST_FILE.test(entry.name)) continue;
      if (Deno.statSync(full(path)).size > MAX_SOURCE_BYTES) continue;
      let text: string;
      try {
        text = new TextDecoder("utf-8", { fatal: true }).decode(Deno.readFileSync(full(path)));
      } catch {
        continue;
      }
      if (!text.includes("flow")) continue;
      const module = parsePythonModule(text);
      if (module.syntaxError) continue;
      for (const name of module.functions.keys()) {
        const lookup = findFlow(module, name);
        if (lookup.kind !== "flow" && lookup.kind !== "dynamic-name") continue;
        found.push({
          file: path,
          function: name,
          line: lookup.fn.line,
          flowName: lookup.kind === "flow" ? lookup.flowName : undefined,
          parameterOpenapiSchema: parameterSchema(module, lookup.fn),
        });
      }
    }
  };
  walk("");
  return found;
}

/** The path from directory `from` to `to`, both relative to the repository root. */
export function relativePath(from: string, to: string): string {
  const a = from.split("/").filter((p) => p && p !== ".");
  const b = to.split("/").filter((p) => p && p !== ".");
  let common = 0;
  while (common < a.length && common < b.length - 1 && a[common] === b[common]) common++;
  return [...a.slice(common).map(() => ".."), ...b.slice(common)].join("/");
}

/** The first line of every manifest init writes: VS Code's YAML extension reads it. */
export function modeline(manifestDir: string): string {
  return `# yaml-language-server: $schema=${relativePath(manifestDir, SCHEMA_PATH)}`;
}

/** A file name for a flow: its name, lower case, with anything unusual as `-`. */
export function fileStem(flowName: string): string {
  return flowName.toLowerCase().replace(/[^a-z0-9_-]+/g, "-").replace(/^-+|-+$/g, "") || "flow";
}

const scalar = (value: unknown) => stringify(value, { lineWidth: 0 }).trimEnd();

/**
 * A value of the parameter's type for a required parameter, so the starter deployment passes
 * `validate --strict`; the comment beside it asks for a real one.
 */
function exampleValue(property: Json, definitions: Json): unknown {
  if (property.$ref) {
    const target = definitions[String(property.$ref).split("/").pop()!] as Json | undefined;
    return target ? exampleValue(target, definitions) : null;
  }
  if (Array.isArray(property.enum) && property.enum.length) return property.enum[0];
  if (Array.isArray(property.anyOf)) {
    const first = (property.anyOf as Json[]).find((v) => v.type !== "null") ?? {};
    return exampleValue(first, definitions);
  }
  if (Array.isArray(property.allOf) && property.allOf.length) {
    return exampleValue(property.allOf[0] as Json, definitions);
  }
  switch (property.type) {
    case "string":
      return property.format === "date-time"
        ? "2026-01-01T00:00:00Z"
        : property.format === "date"
        ? "2026-01-01"
        : "";
    case "integer":
    case "number":
      return 0;
    case "boolean":
      return false;
    case "array":
      return [];
    case "object":
      return {};
    default:
      return null;
  }
}

export interface StarterOptions {
  project: string;
  manifestDir: string;
  workPool: string;
}

/** One manifest for one flow: a deployment per entrypoint that defines it. */
export function starterManifest(flowName: string, flows: FoundFlow[], options: StarterOptions) {
  const lines = [
    modeline(options.manifestDir),
    `# Deployments of flow "${flowName}", written by deploy init. Check them with`,
    "# deploy validate, see what the server would get with deploy plan, then deploy apply.",
    `name: ${scalar(options.project)}`,
    "deployments:",
  ];
  flows.forEach((flow, index) => {
    lines.push(
      `  - name: ${index === 0 ? "default" : `default-${index + 1}`}`,
      `    entrypoint: ${scalar(`${flow.file}:${flow.function}`)}`,
      "    work_pool:",
      `      name: ${scalar(options.workPool)}`,
    );
    const schema = flow.parameterOpenapiSchema;
    const properties = (schema.properties ?? {}) as Record<string, Json>;
    const required = ((schema.required ?? []) as string[]).filter((name) => properties[name]);
    if (required.length) {
      lines.push("    parameters:");
      for (const name of required) {
        const value = exampleValue(properties[name], (schema.definitions ?? {}) as Json);
        lines.push(`      ${scalar(name)}: ${scalar(value)}  # required by the flow: set it`);
      }
    }
    lines.push(
      "    # schedules:",
      '    #   - { slug: daily, cron: "0 6 * * *", timezone: UTC, active: true }',
    );
  });
  return lines.join("\n") + "\n";
}

/**
 * A prefect.yaml as one manifest per flow, comments and anchors kept: every file carries the
 * top-level keys and the deployments of one flow. An alias whose anchor went to another file
 * becomes a copy of what it pointed at.
 */
export function splitPrefectYaml(
  text: string,
  flowOf: (deployment: Json) => string,
  options: { project: string; manifestDir: string },
): Map<string, string> {
  const doc = parseDocument(text, { merge: true, uniqueKeys: false });
  const data = doc.toJS({ maxAliasCount: 1000 }) as { deployments?: unknown; name?: unknown };
  const list = Array.isArray(data?.deployments) ? data.deployments as Json[] : [];
  const groups = new Map<string, number[]>();
  list.forEach((d, index) => {
    const flow = flowOf(d ?? {});
    groups.set(flow, [...groups.get(flow) ?? [], index]);
  });
  const anchors = new Map<string, unknown>();
  visit(doc, (_, node) => {
    const anchor = (node as { anchor?: string } | null)?.anchor;
    if (anchor) anchors.set(anchor, node);
  });
  const result = new Map<string, string>();
  for (const [flow, indexes] of groups) {
    const copy = doc.clone() as Document;
    const seq = copy.get("deployments", true);
    if (isSeq(seq)) seq.items = seq.items.filter((_, i) => indexes.includes(i));
    resolveDanglingAliases(copy, anchors);
    if (typeof data?.name !== "string") copy.set("name", options.project);
    result.set(flow, `${modeline(options.manifestDir)}\n${copy.toString({ lineWidth: 0 })}`);
  }
  return result;
}

function resolveDanglingAliases(doc: Document, anchors: Map<string, unknown>) {
  for (let round = 0; round < 16; round++) {
    let replaced = false;
    visit(doc, {
      Alias(_, alias: Alias) {
        if (alias.resolve(doc) !== undefined) return;
        const source = anchors.get(alias.source) as { clone(): { anchor?: string } } | undefined;
        if (!source) return;
        const clone = source.clone();
        clone.anchor = undefined;
        replaced = true;
        return clone as never;
      },
    });
    if (!replaced) return;
  }
}

/**
 * `.vscode/settings.json` with the schema mapped onto the manifests, everything else (comments
 * included) as it was. Undefined when the file is not JSON with comments.
 */
export function mergeSettings(existing: string | undefined, globs: string[]): string | undefined {
  const text = existing ?? "{}\n";
  const errors: ParseError[] = [];
  const settings = parseJsonc(text, errors, { allowTrailingComma: true });
  if (errors.length || !settings || typeof settings !== "object" || Array.isArray(settings)) {
    return undefined;
  }
  const key = `./${SCHEMA_PATH}`;
  const schemas = (settings as Json)["yaml.schemas"];
  const before = schemas && typeof schemas === "object" ? (schemas as Json)[key] : undefined;
  const have = Array.isArray(before)
    ? before.map(String)
    : typeof before === "string"
    ? [before]
    : [];
  const wanted = [...have, ...globs.filter((g) => !have.includes(g))];
  if (existing !== undefined && wanted.length === have.length) return existing;
  const format = { formattingOptions: { insertSpaces: true, tabSize: 2, eol: "\n" } };
  const edited = applyEdits(text, modify(text, ["yaml.schemas", key], wanted, format));
  return edited.endsWith("\n") ? edited : `${edited}\n`;
}

/** One file init would write, and how it relates to what is there. */
export interface PlannedFile {
  path: string;
  content: string;
  /** `create`: new; `unchanged`: already so; `replace`: exists and differs (needs a yes). */
  status: "create" | "unchanged" | "replace";
  what: string;
}

export function plannedFile(path: string, content: string, what: string): PlannedFile {
  let existing: string | undefined;
  try {
    existing = Deno.readTextFileSync(path);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  const status = existing === undefined ? "create" : existing === content ? "unchanged" : "replace";
  return { path, content, status, what };
}

/** Writes the files that are new or confirmed, creating their directories. */
export function writeFiles(files: PlannedFile[]) {
  for (const file of files) {
    if (file.status === "unchanged") continue;
    const dir = file.path.includes("/") ? file.path.slice(0, file.path.lastIndexOf("/")) : "";
    if (dir) Deno.mkdirSync(dir, { recursive: true });
    Deno.writeTextFileSync(file.path, file.content);
  }
}

/** The entrypoints the manifests in `dir` already declare (`file.py:function` as written). */
export function declaredEntrypoints(dir: string): Set<string> {
  const declared = new Set<string>();
  let entries: Deno.DirEntry[];
  try {
    entries = [...Deno.readDirSync(dir)];
  } catch {
    return declared;
  }
  for (const entry of entries) {
    if (!entry.isFile || !/\.ya?ml$/i.test(entry.name)) continue;
    try {
      const data = parseDocument(Deno.readTextFileSync(`${dir}/${entry.name}`)).toJS() as {
        deployments?: { entrypoint?: unknown }[];
      };
      for (const d of data?.deployments ?? []) {
        if (typeof d?.entrypoint === "string") declared.add(d.entrypoint);
      }
    } catch {
      // an unreadable manifest is validate's to report
    }
  }
  return declared;
}

const EXAMPLE_FLOW_FILE = "flows/hello.py";
const EXAMPLE_FLOW = `from prefect import flow


@flow(log_prints=True)
def hello(name: str = "world"):
    """Says hello: a first flow, written by deploy init. Replace it with your own."""
    print(f"Hello, {name}!")
`;

export interface InitOptions {
  /** Where the manifests go, relative to the repository root (default prefect). */
  manifestDir: string;
  project: string;
  workPool: string;
  /** Split an existing prefect.yaml into one file per flow without asking. */
  split: boolean;
  /** Replace files that differ without asking. */
  yes: boolean;
  /** The JSON Schema, as `deploy schema` prints it. */
  schemaText: string;
}

export interface InitIo {
  /** Prefect's flow name for an entrypoint, as validate reads it. */
  flowName(entrypoint: string, flowName?: string): string;
  /** validate's summary line for these paths. */
  check(paths: string[]): Promise<string>;
  /** Asks a yes/no question; absent without a terminal. */
  ask?: (question: string) => boolean;
  /** Stops with one message; nothing has been written. */
  refuse(message: string): never;
  out(line: string): void;
  note(line: string): void;
}

/**
 * Plans every file, asks about each that would replace a different one (or refuses without a
 * terminal unless `yes`), then writes, then validates what is there.
 */
export async function init(options: InitOptions, io: InitIo): Promise<void> {
  const dir = options.manifestDir.replace(/\/+$/, "") || ".";
  const files: PlannedFile[] = [];
  const prefectYaml = ["prefect.yaml", "prefect.yml"].find((p) => isFile(p));
  let manifests = [dir];

  if (prefectYaml) {
    io.note(`${prefectYaml} loads as it is: ${await io.check([prefectYaml])}`);
    io.note(`  deploy validate ${prefectYaml} / deploy plan ${prefectYaml} read it directly.`);
    const split = options.split ||
      io.ask?.(`Split ${prefectYaml} into one file per flow under ${dir}/?`) === true;
    if (split) {
      const parts = splitPrefectYaml(
        Deno.readTextFileSync(prefectYaml),
        (d) =>
          io.flowName(
            String(d.entrypoint ?? ""),
            typeof d.flow_name === "string" ? d.flow_name : undefined,
          ),
        { project: options.project, manifestDir: dir },
      );
      for (const [flow, content] of uniqueStems(parts)) {
        files.push(plannedFile(
          `${dir}/${flow.stem}.yaml`,
          content,
          `flow "${flow.name}", from ${prefectYaml}`,
        ));
      }
      io.note(
        `${prefectYaml} itself stays; once ${dir}/ is what you deploy, remove it (git rm ${prefectYaml}).`,
      );
    } else {
      manifests = [prefectYaml];
      io.note(`To keep one file per flow under ${dir}/ instead: deploy init --split`);
    }
  } else {
    const declared = declaredEntrypoints(dir);
    let flows = findFlows();
    if (!flows.length) {
      io.note("No @flow functions found; writing an example flow to start from.");
      files.push(plannedFile(EXAMPLE_FLOW_FILE, EXAMPLE_FLOW, "an example flow"));
      flows = [{
        file: EXAMPLE_FLOW_FILE,
        function: "hello",
        line: 4,
        flowName: "hello",
        parameterOpenapiSchema: {},
      }];
    }
    const byFlow = new Map<string, FoundFlow[]>();
    for (const flow of flows) {
      const entrypoint = `${flow.file}:${flow.function}`;
      if (declared.has(entrypoint)) continue;
      if (flow.flowName === undefined) {
        io.note(
          `Skipped ${entrypoint} (line ${flow.line}): its flow name is computed at import time; ` +
            "declare it by hand with flow_name.",
        );
        continue;
      }
      byFlow.set(flow.flowName, [...byFlow.get(flow.flowName) ?? [], flow]);
    }
    if (declared.size && !byFlow.size) io.note(`Every flow found is declared in ${dir}/ already.`);
    const starters = new Map(
      [...byFlow].map(([name, group]) => [name, starterManifest(name, group, options)]),
    );
    for (const [flow, content] of uniqueStems(starters)) {
      files.push(plannedFile(`${dir}/${flow.stem}.yaml`, content, `flow "${flow.name}"`));
    }
  }

  files.push(plannedFile(SCHEMA_PATH, options.schemaText, "the manifests' JSON Schema"));
  const globs = [`${dir}/*.yaml`, `${dir}/*.yml`, ...(prefectYaml ? [prefectYaml] : [])];
  const existingSettings = isFile(SETTINGS_PATH) ? Deno.readTextFileSync(SETTINGS_PATH) : undefined;
  const settings = mergeSettings(existingSettings, globs);
  if (settings === undefined) {
    io.note(
      `${SETTINGS_PATH} is not JSON with comments, so it is left alone; map the schema there ` +
        `by hand: "yaml.schemas": {"./${SCHEMA_PATH}": ${JSON.stringify(globs)}}`,
    );
  } else {
    files.push(plannedFile(SETTINGS_PATH, settings, "the schema mapped onto the manifests"));
  }

  const differing = files.filter((f) => f.status === "replace");
  const kept = new Set<PlannedFile>();
  if (differing.length && !options.yes) {
    if (!io.ask) {
      io.refuse(
        `init would replace ${differing.length} file(s) that differ from what it writes: ${
          differing.map((f) => f.path).join(", ")
        }. Nothing was written; rerun with --yes to replace them, or in a terminal to choose.`,
      );
    }
    for (const file of differing) {
      if (!io.ask(`${file.path} exists and differs (${file.what}). Replace it?`)) kept.add(file);
    }
  }
  const written = files.filter((f) => !kept.has(f));
  writeFiles(written);
  const width = Math.max(...files.map((f) => f.path.length));
  for (const file of files) {
    const status = kept.has(file)
      ? "kept"
      : { create: "created", unchanged: "unchanged", replace: "replaced" }[file.status];
    io.out(`${status.padEnd(9)} ${file.path.padEnd(width)}  ${file.what}`);
  }
  if (manifests[0] === dir && !isDirWithManifests(dir)) return;
  io.note(`deploy validate ${manifests.join(" ")}: ${await io.check(manifests)}`);
}

/** Gives each flow a file name of its own: `etl.yaml`, then `etl-2.yaml` for a clash. */
function uniqueStems(byFlow: Map<string, string>): [{ name: string; stem: string }, string][] {
  const used = new Set<string>();
  return [...byFlow].map(([name, content]) => {
    let stem = fileStem(name);
    for (let n = 2; used.has(stem); n++) stem = `${fileStem(name)}-${n}`;
    used.add(stem);
    return [{ name, stem }, content];
  });
}

function isFile(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

function isDirWithManifests(dir: string): boolean {
  try {
    return [...Deno.readDirSync(dir)].some((e) => e.isFile && /\.ya?ml$/i.test(e.name));
  } catch {
    return false;
  }
}
