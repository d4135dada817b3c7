#!/usr/bin/env -S deno run --allow-read --allow-env --allow-net
/**
 * deploy.ts — declarative Prefect deployments.
 *
 * One file, in the order data flows: arguments → load → validate → plan → apply → report.
 * The Prefect API client lives in lib/prefect_client.ts.
 * Run `deno task deploy --help`.
 */
import "./lib/npm_env.ts";
import { parseArgs } from "node:util";
import {
  type Document,
  isAlias,
  isMap,
  isScalar,
  isSeq,
  LineCounter,
  type Node as YamlNode,
  parseAllDocuments,
  visit,
} from "yaml";
import { Ajv, type ErrorObject, type ValidateFunction } from "ajv";
import rrule from "rrule";
import schema from "./schema/deployments.schema.json" with { type: "json" };
import denoConfig from "./deno.json" with { type: "json" };
import {
  ConnectionLost,
  PrefectApiError,
  PrefectClient,
  SettingsError,
  settingsFromEnvironment,
} from "./lib/prefect_client.ts";
import {
  findFlow,
  type FlowLookup,
  parsePythonModule,
  type PythonFunction,
  type PythonModule,
} from "./lib/python_source.ts";
import { cleandoc, parameterSchema } from "./lib/parameter_schema.ts";
import { init, writeFiles } from "./lib/init.ts";
import { exportManifests, readForExport } from "./lib/export.ts";
import type { Deployment, DeployTsManifest, Schedule, Step, Steps } from "./schema/types.ts";

export const VERSION: string = denoConfig.version;

// ─── Errors and exit codes ───────────────────────────────────────────────────

/** A failure the user can fix: printed as one line, exit 1, never a stack trace. */
export class UserError extends Error {}
/** A wrong command line: printed with a pointer to `--help`. */
export class UsageError extends UserError {}

/** The compiled binary (and `deno task deploy`) may read only below the directory it runs in. */
const READ_OUTSIDE =
  "deploy reads only inside the directory it runs in; run it from the project root";

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
/** `plan --detailed-exitcode` with changes pending. */
export const EXIT_CHANGES = 2;

// ─── Arguments ───────────────────────────────────────────────────────────────

/** Options plan and apply share, in their help texts. */
const SYNC_OPTIONS = `  SELECTION AND INPUT
      --manifest-dir DIR       Same as giving DIR as a PATH (default: prefect/)
      --flow NAME              Only deployments of this flow (repeatable; * wildcard)
  -n, --name PATTERN           Only deployments named PATTERN or FLOW/PATTERN (repeatable; *)
      --env NAME               Apply the environment overlay <dir>/environments/NAME.yaml
      --strict                 Treat validation warnings as errors
      --no-code-checks         Skip checks that read flow source
  SERVER
      --api-url URL            Prefect API URL (default: $PREFECT_API_URL)
      --wait SECONDS           Wait up to SECONDS for the API to answer /health first
`;

export const HELP: Record<string, string> = {
  main: `deploy ${VERSION} — declarative Prefect deployments

USAGE
  deploy <command> [options]

COMMANDS
  validate [PATH...]   Check manifests offline: YAML, schema, schedules, entrypoints
  plan [PATH...]       Show what apply would change on the Prefect server (read-only)
  apply [PATH...]      Make the server match the manifests; print every deployment's ID
  inspect ENTRYPOINT   Flow name and parameter schema read from Python source (no Python needed)
  schema               Print the manifests' JSON Schema
  init                 Start using deploy.ts in a repository: manifests, schema, editor settings
  export [PATTERN...]  Write manifests for deployments that already exist on the server

OPTIONS
  -h, --help           Show help (also after a command: deploy validate --help)
      --version        Print the version

ENVIRONMENT
  PREFECT_API_URL          The API, e.g. http://127.0.0.1:4200/api (or --api-url)
  PREFECT_API_KEY          Prefect Cloud API key (sent as a Bearer token)
  PREFECT_API_AUTH_STRING  user:pass for a self-hosted server with basic auth (wins over the key)
  PREFECT_CLIENT_CUSTOM_HEADERS  JSON object of extra request headers
  NO_COLOR                 Plain output

EXAMPLES
  deploy validate
  deploy validate prefect/etl.yaml --strict
  deploy plan
  deploy apply --prune
  deploy schema > deployments.schema.json
  deploy init
  deploy export 'etl/*'
`,
  validate: `deploy validate — check manifests offline

USAGE
  deploy validate [PATH...] [options]

  PATH is a manifest file or a directory of *.yaml / *.yml files (default: prefect/).
  Every problem is reported at once, each as file:line:col. Nothing is sent anywhere.

OPTIONS
      --manifest-dir DIR   Same as giving DIR as a PATH
      --strict             Treat warnings (policy, deprecation) as errors
      --env NAME           Apply the overlay <dir>/environments/NAME.yaml first; with
                           --format json, the deployments are printed as resolved
      --no-code-checks     Skip checks that read flow source (entrypoint file and function)
      --format FORMAT      text (default), json, or github (workflow annotations)
  -h, --help               Show this help

EXIT STATUS
  0 valid (warnings allowed unless --strict), 1 invalid or unusable input

EXAMPLES
  deploy validate
  deploy validate --strict prefect/
  deploy validate prefect.yaml --no-code-checks --format json
  deploy validate --format github     # annotations in a GitHub Actions job
`,
  plan: `deploy plan — show what apply would change (read-only)

USAGE
  deploy plan [PATH...] [options]

  Validates the manifests, reads the server's deployments in a few filter requests, and lists
  per deployment: + create, ~ update (each changed field, before → after), - delete (--prune),
  and the Prefect side effects of each change. Ends with a summary line. Writes nothing.

OPTIONS
${SYNC_OPTIONS}  PLAN
      --prune                  Also plan deleting this project's deployments the manifests
                               no longer declare (tag managed-by:deploy.ts/<project>)
      --detailed-exitcode      Exit 2 when changes are pending, 0 when there are none
      --format FORMAT          text (default), json, or github
  -h, --help                   Show this help

EXIT STATUS
  0 no error (and, with --detailed-exitcode, nothing to change), 1 error, 2 changes pending

EXAMPLES
  deploy plan
  deploy plan --flow refinement --detailed-exitcode
  deploy plan -n 'refinement/*' --format json
  deploy plan --prune --api-url http://127.0.0.1:4200/api
`,
  apply: `deploy apply — make the Prefect server match the manifests

USAGE
  deploy apply [PATH...] [options]

  Validates everything and checks every referenced work pool, template value and block first:
  any problem stops it before the first write. Then it creates what is missing (flow, then one
  POST), updates what differs (one PATCH of the changed fields; schedules row by row, keyed by
  slug, so their IDs survive) and leaves the rest alone: applying unchanged manifests writes
  nothing. Prints "flow/name  <id>  created|updated|unchanged|deleted" per deployment and a
  summary line last. Every deployment written carries the tag managed-by:deploy.ts/<project>.

OPTIONS
${SYNC_OPTIONS}      --concurrency N          Deployments written in parallel (default 8)
  APPLY
      --prune                  Delete this project's deployments the manifests no longer declare
      --yes                    Confirm --prune deletions without asking (needed without a terminal)
      --format FORMAT          text (default), json, or github
  -h, --help                   Show this help

EXIT STATUS
  0 everything applied, 1 any error (nothing is written when the manifests or the server's
  prerequisites are wrong; a failed write is reported with what was and was not applied)

EXAMPLES
  deploy apply
  deploy apply --wait 60                 # Fly.io release_command: the API may still be starting
  deploy apply --flow refinement
  deploy apply --prune --yes --format json
`,
  inspect: `deploy inspect — read a flow's name and parameters from its source

USAGE
  deploy inspect ENTRYPOINT [--format text|json]

  ENTRYPOINT is path/to/file.py:function (or package.module:function). The file is parsed, not
  run: no Python, no dependencies, no import-time side effects. Prints the flow name Prefect
  would register and the parameter_openapi_schema it would generate — the same JSON, key order
  aside, as Prefect's own parameter_schema().

OPTIONS
      --format FORMAT   text (default: a table of parameters) or json
                        ({"flow_name", "function", "parameter_openapi_schema"})
  -h, --help            Show this help

EXIT STATUS
  0 a flow was read, 1 the file or function is missing, unreadable or not a flow

EXAMPLES
  deploy inspect flows/refinement.py:refine
  deploy inspect flows/refinement.py:refine --format json | jq .parameter_openapi_schema
`,
  schema: `deploy schema — print the manifests' JSON Schema (draft-07)

USAGE
  deploy schema

  Editors use it for completion and checks: put
    # yaml-language-server: $schema=../schema/deployments.schema.json
  at the top of a manifest, or map it in .vscode/settings.json.

OPTIONS
  -h, --help   Show this help

EXAMPLES
  deploy schema > deployments.schema.json
`,
  init: `deploy init — start using deploy.ts in an existing repository

USAGE
  deploy init [options]

  Run it at the repository's root. It reads the Python files (without running them) for @flow
  functions and writes:
    prefect/<flow>.yaml              a starter manifest per flow not declared yet (an example
                                     flow and its manifest when there is none)
    schema/deployments.schema.json   the JSON Schema the manifests' first line points at
    .vscode/settings.json            the schema mapped onto the manifests (merged into the file)
  With a prefect.yaml it says that prefect.yaml loads as it is, and offers to split it into
  one file per flow under prefect/ (comments and anchors kept; prefect.yaml stays).
  A file that exists and differs is replaced only when you say so; without a terminal, init
  stops before writing anything unless --yes. Ends by validating what it wrote.

OPTIONS
      --manifest-dir DIR   Where the manifests go (default: prefect/)
      --project NAME       The manifests' top-level name, which owns the deployments
                           (default: the repository's directory name)
      --work-pool NAME     The work pool starter deployments run on (default: default)
      --split              Split prefect.yaml into one file per flow without asking
      --yes                Replace files that differ without asking
  -h, --help               Show this help

EXIT STATUS
  0 written (or nothing to write), 1 refused or unusable input (nothing written)

EXAMPLES
  deploy init
  deploy init --project analytics --work-pool k8s-prod
  deploy init --split          # a repository deployed with prefect.yaml
  deploy init --yes            # after upgrading deploy: refresh the schema copy
`,
  export: `deploy export — write manifests for deployments that exist on the server

USAGE
  deploy export [PATTERN...] [options]

  PATTERN is FLOW/NAME or NAME, * as a wildcard (default: every deployment). Writes one file per
  flow into the manifest directory: entrypoint, parameters, schedules (with slugs), work pool,
  job variables, concurrency, and every other value as the server holds it (which template
  made a value cannot be known). Fields equal to what deploy.ts would send anyway (its
  defaults, the flow's docstring and parameter schema read from source) are left out. A value
  from a secret block is written as a reference to the block, never as the value; one that
  cannot be (an unnamed block) stops export before anything is written. Deployments the
  manifests declare already are skipped, and no existing file is written over.
  Then plan shows each exported deployment being taken over (its ownership tag, slugs for
  schedules that had none) and nothing else; after one apply, "No changes".
  Triggers (automations) are not exported.

OPTIONS
      --manifest-dir DIR   Where the files go (default: prefect/)
      --project NAME       The files' top-level name (default: the manifests' in DIR, else the
                           repository's directory name)
      --api-url URL        Prefect API URL (default: $PREFECT_API_URL)
      --wait SECONDS       Wait up to SECONDS for the API to answer /health first
  -h, --help               Show this help

EXIT STATUS
  0 written (or nothing to export), 1 refused, unusable input or server error (nothing written)

EXAMPLES
  deploy export
  deploy export 'etl/*' nightly-report
  deploy export --manifest-dir deploy/prefect --project analytics
`,
};

type Format = "text" | "json" | "github";

export interface Options {
  command:
    | "validate"
    | "plan"
    | "apply"
    | "inspect"
    | "schema"
    | "init"
    | "export"
    | "help"
    | "version";
  helpTopic: string;
  paths: string[];
  strict: boolean;
  codeChecks: boolean;
  format: Format;
  /** `--env NAME`: the overlay prefect/environments/NAME.yaml. */
  env?: string;
  /** `--flow` patterns. */
  flows: string[];
  /** `-n/--name` patterns. */
  names: string[];
  prune: boolean;
  yes: boolean;
  detailedExitcode: boolean;
  apiUrl?: string;
  /** Seconds to wait for /health; 0 = do not wait. */
  wait: number;
  concurrency: number;
  /** init and export: the manifests' top-level name; init: the work pool, split prefect.yaml. */
  project?: string;
  workPool?: string;
  split?: boolean;
}

const COMMANDS = ["validate", "plan", "apply", "inspect", "schema", "init", "export"] as const;

export function parseCommandLine(argv: string[]): Options {
  const [first, ...rest] = argv;
  if (first === undefined || first === "-h" || first === "--help" || first === "help") {
    const topic = first === "help" && rest[0] ? rest[0] : "main";
    if (!(topic in HELP)) throw new UsageError(`Unknown command "${topic}".`);
    return { ...defaultOptions(), command: "help", helpTopic: topic };
  }
  if (first === "--version" || first === "-V") return { ...defaultOptions(), command: "version" };
  if (first.startsWith("-")) throw new UsageError(`Expected a command before "${first}".`);
  if (!(COMMANDS as readonly string[]).includes(first)) {
    const hint = didYouMean(first, COMMANDS);
    throw new UsageError(`Unknown command "${first}".${hint ? ` Did you mean "${hint}"?` : ""}`);
  }
  const command = first as typeof COMMANDS[number];
  const input = {
    "manifest-dir": { type: "string", multiple: true },
    strict: { type: "boolean" },
    "no-code-checks": { type: "boolean" },
    format: { type: "string" },
    env: { type: "string" },
    help: { type: "boolean", short: "h" },
  } as const;
  const sync = {
    ...input,
    flow: { type: "string", multiple: true },
    name: { type: "string", short: "n", multiple: true },
    "api-url": { type: "string" },
    wait: { type: "string" },
    prune: { type: "boolean" },
  } as const;
  const optionsByCommand = {
    validate: input,
    plan: { ...sync, "detailed-exitcode": { type: "boolean" } },
    apply: { ...sync, yes: { type: "boolean" }, concurrency: { type: "string" } },
    inspect: { format: { type: "string" }, help: { type: "boolean", short: "h" } },
    schema: { help: { type: "boolean", short: "h" } },
    init: {
      "manifest-dir": { type: "string" },
      project: { type: "string" },
      "work-pool": { type: "string" },
      split: { type: "boolean" },
      yes: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
    export: {
      "manifest-dir": { type: "string" },
      project: { type: "string" },
      "api-url": { type: "string" },
      wait: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  } as const;
  let parsed;
  try {
    parsed = parseArgs({
      args: rest,
      options: optionsByCommand[command],
      allowPositionals: command !== "schema" && command !== "init",
      strict: true,
    });
  } catch (error) {
    throw new UsageError(`${command}: ${cleanParseArgsMessage((error as Error).message)}`);
  }
  const values = parsed.values as Record<string, unknown>;
  if (values.help) return { ...defaultOptions(), command: "help", helpTopic: command };
  const format = (values.format as string | undefined) ?? "text";
  if (!["text", "json", "github"].includes(format)) {
    throw new UsageError(`--format must be text, json or github, not "${format}".`);
  }
  if (command === "inspect") {
    if (parsed.positionals.length !== 1) {
      throw new UsageError("inspect: give one ENTRYPOINT, e.g. flows/etl.py:etl.");
    }
    if (format === "github") throw new UsageError("inspect: --format must be text or json.");
  }
  // export's positionals are deployment patterns; its one PATH is where it writes.
  const positionals = command === "export" ? [] : parsed.positionals;
  const paths = [...positionals, ...[values["manifest-dir"] ?? []].flat() as string[]];
  const env = values.env as string | undefined;
  if (env !== undefined && !/^[\w.-]+$/.test(env)) {
    throw new UsageError(`--env must be a name such as dev or prod, not "${env}".`);
  }
  const apiUrl = values["api-url"] as string | undefined;
  if (apiUrl !== undefined && !/^https?:\/\/./.test(apiUrl)) {
    throw new UsageError(`--api-url must be an http:// or https:// URL, not "${apiUrl}".`);
  }
  const wait = values.wait === undefined ? 0 : Number(values.wait);
  if (!Number.isFinite(wait) || wait < 0) {
    throw new UsageError(`--wait must be a number of seconds, not "${values.wait}".`);
  }
  const concurrency = values.concurrency === undefined ? 8 : Number(values.concurrency);
  if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 64) {
    throw new UsageError(
      `--concurrency must be a whole number from 1 to 64, not "${values.concurrency}".`,
    );
  }
  return {
    ...defaultOptions(),
    command,
    helpTopic: command,
    paths: paths.length ? paths : ["prefect"],
    strict: Boolean(values.strict),
    codeChecks: !values["no-code-checks"],
    format: format as Format,
    env,
    flows: (values.flow as string[] | undefined) ?? [],
    names: command === "export" ? parsed.positionals : (values.name as string[] | undefined) ?? [],
    prune: Boolean(values.prune),
    yes: Boolean(values.yes),
    detailedExitcode: Boolean(values["detailed-exitcode"]),
    apiUrl,
    wait,
    concurrency,
    project: values.project as string | undefined,
    workPool: values["work-pool"] as string | undefined,
    split: Boolean(values.split),
  };
}

export function defaultOptions(): Options {
  return {
    command: "help",
    helpTopic: "main",
    paths: ["prefect"],
    strict: false,
    codeChecks: true,
    format: "text",
    flows: [],
    names: [],
    prune: false,
    yes: false,
    detailedExitcode: false,
    wait: 0,
    concurrency: 8,
  };
}

function cleanParseArgsMessage(message: string): string {
  // node:util appends advice meant for script authors ("To specify a positional argument…").
  return message.split(". To ")[0].replace(/\.$/, "") + ".";
}

// ─── Diagnostics ─────────────────────────────────────────────────────────────

export type Severity = "error" | "warning";

export interface Diagnostic {
  severity: Severity;
  file: string;
  /** 1-based; 0 when the problem has no place inside the file (a missing path, say). */
  line: number;
  column: number;
  /** Where in the manifest, e.g. `deployments[0].schedules[1].cron`; "" for the file itself. */
  path: string;
  code: string;
  message: string;
}

type PathSegment = string | number;

function formatPath(path: PathSegment[]): string {
  return path.map((p, i) => typeof p === "number" ? `[${p}]` : i === 0 ? p : `.${p}`).join("");
}

// ─── Load ────────────────────────────────────────────────────────────────────

/** Manifests above this size are refused: the largest real prefect.yaml we know is 14 kB. */
export const MAX_MANIFEST_BYTES = 1024 * 1024;
/** Deeper YAML is refused before parsing; real manifests nest fewer than 12 levels. */
export const MAX_NESTING = 64;
const MAX_ALIAS_EXPANSIONS = 1000;

export interface ManifestFile {
  path: string;
  text: string;
  doc?: Document;
  lineCounter: LineCounter;
  /** The document as plain data, aliases and merge keys resolved; undefined when unreadable. */
  data?: unknown;
}

/** Expands PATH arguments into manifest files, sorted, each once. */
async function discoverManifests(
  paths: string[],
  report: (d: Diagnostic) => void,
): Promise<string[]> {
  const found = new Set<string>();
  for (const path of paths) {
    let info: Deno.FileInfo;
    try {
      info = await Deno.stat(path);
    } catch (error) {
      const reason = error instanceof Deno.errors.NotFound
        ? "no such file or directory"
        : error instanceof Deno.errors.NotCapable
        ? READ_OUTSIDE
        : (error as Error).message;
      report(fileDiagnostic(path, "path-not-found", `Cannot read "${path}": ${reason}.`));
      continue;
    }
    if (info.isFile) {
      found.add(path);
      continue;
    }
    const inDir: string[] = [];
    for await (const entry of Deno.readDir(path)) {
      if (entry.isFile && /\.ya?ml$/i.test(entry.name)) {
        inDir.push(`${path.replace(/\/+$/, "")}/${entry.name}`);
      }
    }
    if (inDir.length === 0) {
      report(
        fileDiagnostic(path, "no-manifests", `No manifest files (*.yaml, *.yml) in "${path}".`),
      );
    }
    inDir.sort().forEach((p) => found.add(p));
  }
  return [...found];
}

function fileDiagnostic(file: string, code: string, message: string): Diagnostic {
  return { severity: "error", file, line: 0, column: 0, path: "", code, message };
}

/** A diagnostic at `path` inside a loaded manifest or overlay, located through its YAML. */
function diagnosticAt(
  file: ManifestFile,
  path: PathSegment[],
  code: string,
  message: string,
  severity: Severity = "error",
  at: "key" | "value" = "value",
): Diagnostic {
  const { line, column } = positionOf(file, path, at);
  return { severity, file: file.path, line, column, path: formatPath(path), code, message };
}

/** Reads and parses one manifest; every problem becomes a diagnostic, never an exception. */
export async function loadManifest(
  path: string,
  report: (d: Diagnostic) => void,
): Promise<ManifestFile> {
  const lineCounter = new LineCounter();
  const file: ManifestFile = { path, text: "", lineCounter };
  const at = (offset: number, code: string, message: string, severity: Severity = "error") => {
    const { line, col } = lineCounter.linePos(offset);
    report({ severity, file: path, line, column: col, path: "", code, message });
  };

  const size = (await Deno.stat(path)).size;
  if (size > MAX_MANIFEST_BYTES) {
    report(fileDiagnostic(
      path,
      "file-too-large",
      `File is ${(size / 1024 / 1024).toFixed(1)} MB; manifests larger than ${
        MAX_MANIFEST_BYTES / 1024 / 1024
      } MB are refused.`,
    ));
    return file;
  }
  const bytes = await Deno.readFile(path);
  if (bytes.subarray(0, 8192).includes(0)) {
    report(fileDiagnostic(path, "binary-file", "File is binary, not YAML."));
    return file;
  }
  const badByte = firstInvalidUtf8(bytes);
  if (badByte >= 0) {
    const before = new TextDecoder().decode(bytes.subarray(0, badByte));
    const line = before.split("\n").length;
    const column = before.length - before.lastIndexOf("\n");
    report({
      severity: "error",
      file: path,
      line,
      column,
      path: "",
      code: "not-utf8",
      message: `File is not UTF-8: byte 0x${
        bytes[badByte].toString(16).padStart(2, "0")
      } at offset ${badByte}; save it as UTF-8.`,
    });
    return file;
  }
  file.text = new TextDecoder().decode(bytes).replace(/^\uFEFF/, "");
  const text = file.text;
  // Line starts are registered here, not by the parser, so positions work before it runs too.
  lineCounter.addNewLine(0);
  for (let i = text.indexOf("\n"); i >= 0; i = text.indexOf("\n", i + 1)) {
    lineCounter.addNewLine(i + 1);
  }

  const conflict = /^(<{7}|={7}|>{7})(?: |$)/m.exec(text);
  if (conflict) {
    at(conflict.index, "merge-conflict", "Unresolved merge-conflict marker; resolve the conflict.");
    return file;
  }
  const tabIndent = /^ *\t/m.exec(text);
  if (tabIndent) {
    at(
      tabIndent.index + tabIndent[0].length - 1,
      "tab-indent",
      "Tab used for indentation; YAML indents with spaces.",
    );
    return file;
  }
  const deep = excessiveNesting(text);
  if (deep >= 0) {
    at(deep, "nesting-too-deep", `Nesting deeper than ${MAX_NESTING} levels is refused.`);
    return file;
  }

  const docs = parseAllDocuments(text, {
    uniqueKeys: true,
    merge: true,
    prettyErrors: false,
    strict: true,
  });
  const documents = Array.isArray(docs) ? docs : [];
  if (documents.length === 0) {
    report(fileDiagnostic(path, "empty-file", "File is empty; expected a `deployments:` list."));
    return file;
  }
  if (documents.length > 1) {
    const start = documents[1].range[0];
    at(
      start,
      "multi-document",
      "A manifest holds one YAML document; this `---` starts a second one. Split it into two files.",
    );
    return file;
  }
  const doc = documents[0];
  file.doc = doc;
  if (doc.errors.length) {
    // Every duplicate key is its own mistake; after the first syntax error the rest is fallout.
    for (const error of doc.errors.filter((e) => e.code === "DUPLICATE_KEY")) {
      const message = `Duplicate key ${
        quoteKeyAt(text, error.pos[0])
      }; YAML readers keep only one of them.`;
      at(error.pos[0], "duplicate-key", message);
    }
    const syntax = doc.errors.find((e) => e.code !== "DUPLICATE_KEY");
    if (syntax) {
      const docstring = /^(\s*#.*\n)*\s*"""/.test(text)
        ? " The file starts with a Python docstring; YAML comments start with #."
        : "";
      at(
        syntax.pos[0],
        "yaml-syntax",
        `${sentence(syntax.message.split(" at line ")[0])}${docstring}`,
      );
    }
    return file;
  }
  const { collectionKey, unresolvedAlias: unresolved } = findUnreadableNodes(doc);
  if (collectionKey !== undefined) {
    const template = text.startsWith("{{", collectionKey - 1);
    at(
      template ? collectionKey - 1 : collectionKey,
      "yaml-syntax",
      template
        ? "Unquoted template: YAML reads `{{ ... }}` as a nested mapping. Put it in quotes."
        : "A mapping or list used as a key; Prefect's YAML reader refuses it.",
    );
    return file;
  }
  if (unresolved) {
    at(
      unresolved.offset,
      "undefined-alias",
      `Alias "*${unresolved.name}" refers to no anchor defined before it.`,
    );
    return file;
  }
  try {
    file.data = doc.toJS({ maxAliasCount: MAX_ALIAS_EXPANSIONS });
  } catch (error) {
    at(
      0,
      "alias-limit",
      `Aliases expand to too much data (${sentence((error as Error).message)})`,
    );
    return file;
  }
  if (depthExceeds(file.data, MAX_NESTING)) {
    at(0, "nesting-too-deep", `Nesting deeper than ${MAX_NESTING} levels is refused.`);
    file.data = undefined;
  }
  return file;
}

function firstInvalidUtf8(bytes: Uint8Array): number {
  try {
    new TextDecoder("utf-8", { fatal: true }).decode(bytes);
    return -1;
  } catch {
    // Find the first byte that starts an invalid sequence.
    let i = 0;
    while (i < bytes.length) {
      const b = bytes[i];
      const need = b < 0x80
        ? 0
        : (b & 0xe0) === 0xc0
        ? 1
        : (b & 0xf0) === 0xe0
        ? 2
        : (b & 0xf8) === 0xf0
        ? 3
        : -1;
      if (need < 0) return i;
      for (let k = 1; k <= need; k++) {
        if (i + k >= bytes.length || (bytes[i + k] & 0xc0) !== 0x80) return i;
      }
      i += need + 1;
    }
    return 0;
  }
}

/** Offset where flow brackets or indentation first exceed MAX_NESTING, or -1. */
function excessiveNesting(text: string): number {
  let depth = 0;
  let quote = "";
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quote) {
      if (c === quote) quote = "";
      else if (c === "\n") quote = "";
      continue;
    }
    if (c === '"' || c === "'") quote = c;
    else if (c === "#" && (i === 0 || /\s/.test(text[i - 1]))) {
      const end = text.indexOf("\n", i);
      i = end < 0 ? text.length : end;
    } else if (c === "[" || c === "{") {
      if (++depth > MAX_NESTING) return i;
    } else if (c === "]" || c === "}") depth = Math.max(0, depth - 1);
  }
  const indent = new RegExp(`^ {${MAX_NESTING * 4},}\\S`, "m").exec(text);
  return indent ? indent.index : -1;
}

function depthExceeds(value: unknown, limit: number): boolean {
  const stack: [unknown, number][] = [[value, 0]];
  while (stack.length) {
    const [v, d] = stack.pop()!;
    if (d > limit) return true;
    if (v && typeof v === "object") {
      for (const child of Object.values(v)) stack.push([child, d + 1]);
    }
  }
  return false;
}

/**
 * What YAML accepts but Prefect's reader does not: a mapping or list used as a key (PyYAML
 * cannot hash it; usually an unquoted `{{ template }}`), and an alias with no anchor before it.
 * One walk finds the first of each.
 */
function findUnreadableNodes(doc: Document): {
  collectionKey?: number;
  unresolvedAlias?: { name: string; offset: number };
} {
  const found: ReturnType<typeof findUnreadableNodes> = {};
  visit(doc, {
    Pair(_, pair) {
      if (found.collectionKey === undefined && (isMap(pair.key) || isSeq(pair.key))) {
        found.collectionKey = (pair.key as YamlNode).range?.[0] ?? 0;
      }
    },
    Alias(_, node) {
      if (!found.unresolvedAlias && !node.resolve(doc)) {
        found.unresolvedAlias = { name: node.source, offset: node.range?.[0] ?? 0 };
      }
    },
  });
  return found;
}

function quoteKeyAt(text: string, offset: number): string {
  const key = /^[^:\n]*/.exec(text.slice(offset))?.[0].trim() ?? "";
  return key ? `"${key}"` : "";
}

function sentence(message: string): string {
  const trimmed = message.trim().replace(/\s+/g, " ");
  const capital = trimmed.charAt(0).toUpperCase() + trimmed.slice(1);
  return /[.!?]$/.test(capital) ? capital : `${capital}.`;
}

// ─── Locating values in the YAML source ──────────────────────────────────────

interface Located {
  /** The key node of the pair that holds the value, when the value sits in a mapping. */
  key?: YamlNode;
  value?: YamlNode;
}

/** Follows a data path through the YAML tree, through aliases and merge keys. */
export function locate(doc: Document, path: PathSegment[]): Located {
  let current: Located = { value: doc.contents ?? undefined };
  for (const segment of path) {
    let node = current.value;
    if (node && isAlias(node)) node = node.resolve(doc) as YamlNode | undefined;
    if (!node) return current;
    const next = childOf(doc, node, segment);
    if (!next) return current;
    current = next;
  }
  return current;
}

function childOf(doc: Document, node: YamlNode, segment: PathSegment): Located | undefined {
  if (isSeq(node) && typeof segment === "number") {
    const item = node.items[segment];
    return item ? { value: item as YamlNode } : undefined;
  }
  if (!isMap(node)) return undefined;
  for (const pair of node.items) {
    if (isScalar(pair.key) && String(pair.key.value) === String(segment)) {
      return { key: pair.key as YamlNode, value: (pair.value ?? pair.key) as YamlNode };
    }
  }
  // Not written here: look inside `<<: *anchor` merges, last one first as YAML does.
  for (const pair of [...node.items].reverse()) {
    if (!(isScalar(pair.key) && pair.key.source === "<<")) continue;
    const sources = isSeq(pair.value) ? pair.value.items : [pair.value];
    for (const source of sources) {
      const target = isAlias(source) ? source.resolve(doc) : source;
      if (target && isMap(target)) {
        const found = childOf(doc, target as YamlNode, segment);
        if (found) return found;
      }
    }
  }
  return undefined;
}

function positionOf(
  file: ManifestFile,
  path: PathSegment[],
  prefer: "key" | "value" = "value",
): { line: number; column: number } {
  if (!file.doc) return { line: 1, column: 1 };
  const found = locate(file.doc, path);
  const node = prefer === "key" ? found.key ?? found.value : found.value ?? found.key;
  const offset = node?.range?.[0] ?? 0;
  const { line, col } = file.lineCounter.linePos(offset);
  return { line, column: col };
}

// ─── Validate: the JSON Schema ───────────────────────────────────────────────

const SCHEMA_ID = schema.$id;
/** Editor-only keywords the schema carries; registered so Ajv's strict mode accepts them. */
export const EDITOR_KEYWORDS = ["markdownDescription", "defaultSnippets", "errorMessage"];

let ajvInstance: Ajv | undefined;
function ajv(): Ajv {
  if (!ajvInstance) {
    ajvInstance = new Ajv({ allErrors: true, verbose: true, strict: true });
    for (const keyword of EDITOR_KEYWORDS) ajvInstance.addKeyword(keyword);
    ajvInstance.addSchema(schema);
  }
  return ajvInstance;
}

const validators = new WeakMap<object, ValidateFunction>();

/** A validator for the whole schema or for one part of it (an anyOf branch, to explain it). */
function validatorFor(part: SchemaNode): ValidateFunction {
  let fn = validators.get(part);
  if (!fn) {
    fn = part === schema
      ? ajv().getSchema(SCHEMA_ID)!
      : ajv().compile({ ...part, definitions: schema.definitions });
    validators.set(part, fn);
  }
  return fn;
}

interface SchemaProblem {
  path: PathSegment[];
  at: "key" | "value";
  code: string;
  message: string;
}

/** Validates data against the schema (or a part of it) and explains each failure plainly. */
export function schemaProblems(
  data: unknown,
  part: SchemaNode = schema as SchemaNode,
  base: PathSegment[] = [],
): SchemaProblem[] {
  const validate = validatorFor(part);
  if (validate(data)) return [];
  let errors = [...(validate.errors ?? [])];
  const problems: SchemaProblem[] = [];

  // A step with several keys is one mistake (arguments not indented), not many.
  for (const e of errors.filter((e) => e.keyword === "maxProperties" && isStep(e))) {
    errors = errors.filter((o) => o === e || !isWithin(o.instancePath, e.instancePath));
  }
  // Within anyOf, explain the alternative that fits the value's type; otherwise list them.
  const alternatives = errors
    .filter((e) => e.keyword === "anyOf")
    .sort((a, b) => a.instancePath.length - b.instancePath.length);
  for (const alt of alternatives) {
    if (!errors.includes(alt)) continue;
    errors = errors.filter((o) => !isWithin(o.instancePath, alt.instancePath));
    const path = [...base, ...pointerToPath(alt.instancePath)];
    const branches = alt.schema as SchemaNode[];
    const branch = fittingBranch(branches, alt.data);
    if (branch >= 0) {
      problems.push(...schemaProblems(alt.data, branches[branch], path));
    } else {
      problems.push({
        path,
        at: "value",
        code: "type",
        message: `Expected ${describeAlternatives(alt.schema as SchemaNode[])}, got ${
          describeValue(alt.data)
        }.${yaml11BooleanHint(alt.data)}`,
      });
    }
  }
  for (const e of errors) problems.push(explain(e, base));
  return problems;
}

function isWithin(path: string, ancestor: string): boolean {
  return path === ancestor || path.startsWith(`${ancestor}/`);
}

function isStep(e: ErrorObject): boolean {
  return (e.parentSchema as SchemaNode | undefined)?.title === "Step";
}

function pointerToPath(pointer: string): PathSegment[] {
  if (!pointer) return [];
  return pointer.slice(1).split("/").map((s) => {
    const key = s.replace(/~1/g, "/").replace(/~0/g, "~");
    return /^\d+$/.test(key) ? Number(key) : key;
  });
}

interface SchemaNode {
  $ref?: string;
  type?: string | string[];
  enum?: unknown[];
  anyOf?: SchemaNode[];
  title?: string;
  properties?: Record<string, SchemaNode>;
  errorMessage?: string;
  pattern?: string;
}

function resolveRef(node: SchemaNode): SchemaNode {
  let current = node;
  while (current.$ref) {
    const parts = current.$ref.replace(/^#\//, "").split("/");
    current = parts.reduce(
      (n: Record<string, unknown>, p) => n[p] as Record<string, unknown>,
      schema,
    ) as SchemaNode;
  }
  return current;
}

const TEMPLATE_REF = "#/definitions/template";

function typesOf(node: SchemaNode): Set<string> {
  const n = resolveRef(node);
  const types = new Set<string>();
  if (n.type) [n.type].flat().forEach((t) => types.add(t));
  if (n.enum) n.enum.forEach((v) => types.add(jsonType(v)));
  if (n.anyOf) n.anyOf.forEach((b) => typesOf(b).forEach((t) => types.add(t)));
  if (types.has("number")) types.add("integer");
  return types;
}

function jsonType(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  if (typeof value === "number") return Number.isInteger(value) ? "integer" : "number";
  return typeof value;
}

const hasPlaceholder = (value: unknown) => typeof value === "string" && value.includes("{{");

function fittingBranch(branches: SchemaNode[], data: unknown): number {
  const templateBranch = branches.findIndex((b) => b.$ref === TEMPLATE_REF);
  if (templateBranch >= 0 && hasPlaceholder(data)) return templateBranch;
  const fits = branches
    .map((b, i) => ({ b, i }))
    .filter(({ b }) => b.$ref !== TEMPLATE_REF && typesOf(b).has(jsonType(data)));
  return fits.length === 1 ? fits[0].i : -1;
}

function describeAlternatives(branches: SchemaNode[]): string {
  const names = branches.map((b) => {
    if (b.$ref === TEMPLATE_REF) return "a {{ template }} string";
    const n = resolveRef(b);
    if (n.enum) return `one of ${n.enum.map((v) => JSON.stringify(v)).join(", ")}`;
    return [...typesOf(n)].filter((t) => t !== "integer" || !typesOf(n).has("number"))
      .map(article).join(" or ");
  });
  return [...new Set(names)].join(" or ");
}

function article(type: string): string {
  return { null: "null", array: "a list", object: "a mapping", integer: "an integer" }[type] ??
    `a ${type}`;
}

function describeValue(value: unknown): string {
  const type = jsonType(value);
  if (type === "object") return "a mapping";
  if (type === "array") return "a list";
  if (type === "null") return "nothing (null)";
  const shown = JSON.stringify(value);
  return `${article(type)} ${shown.length > 40 ? `${shown.slice(0, 37)}…` : shown}`;
}

/** Known keys in the wrong place, and Prefect 2 keys: what to write instead. */
const MISPLACED: Record<string, Record<string, string>> = {
  "deploy.ts manifest": {
    work_pool: "belongs in each deployment; share it through an anchor under `definitions:`",
    entrypoint: "belongs in a deployment under `deployments:`",
    schedule: "belongs in a deployment under `deployments:`",
    description: "belongs in a deployment under `deployments:`",
    version: "belongs in a deployment under `deployments:` (the project's is `prefect-version`)",
  },
  Deployment: {
    job_variables: "belongs under `work_pool:`",
    work_queue_name: "belongs under `work_pool:`",
    work_pool_name: "is written `work_pool: {name: ...}`",
    cron: "belongs in a schedule under `schedules:`",
    interval: "belongs in a schedule under `schedules:`",
    rrule: "belongs in a schedule under `schedules:`",
    timezone: "belongs in a schedule under `schedules:`",
    is_schedule_active: "is a Prefect 2 key; set `active:` on each schedule",
    infra_overrides: "is a Prefect 2 key; use `work_pool.job_variables`",
    env: "belongs under `work_pool.job_variables`",
    working_dir: "belongs under `work_pool.job_variables`",
    image: "belongs under `work_pool.job_variables`",
    flow_location: "is not a Prefect key; `entrypoint` names the flow",
  },
  "Work pool": {
    image: "belongs under `job_variables:`",
    env: "belongs under `job_variables:`",
    type: "is the pool's own setting, made when the pool is created, not per deployment",
  },
  Schedule: {
    max_active_runs: "is a Prefect 2 key, removed in Prefect 3",
    catchup: "is a Prefect 2 key, removed in Prefect 3",
    is_schedule_active: "is a Prefect 2 key; use `active:`",
  },
};

function explain(e: ErrorObject, base: PathSegment[]): SchemaProblem {
  const path = [...base, ...pointerToPath(e.instancePath)];
  const parent = (e.parentSchema ?? {}) as SchemaNode;
  const custom = parent.errorMessage;
  switch (e.keyword) {
    case "additionalProperties": {
      const key = String(e.params.additionalProperty);
      const context = parent.title ?? "";
      const known = Object.keys(parent.properties ?? {});
      const misplaced = MISPLACED[context]?.[key];
      const hint = misplaced ? ` It ${misplaced}.` : (() => {
        const guess = didYouMean(key, known);
        return guess ? ` Did you mean "${guess}"?` : "";
      })();
      return {
        path: [...path, key],
        at: "key",
        code: "unknown-key",
        message: `Unknown key "${key}" in ${describeContext(context)}.${hint}`,
      };
    }
    case "required":
      return {
        path,
        at: "value",
        code: "missing-key",
        message: `Missing required key "${e.params.missingProperty}" in ${
          describeContext(parent.title ?? "")
        }.`,
      };
    case "type": {
      const expected = [e.params.type].flat().join(",").split(",").map(article).join(" or ");
      const key = path[path.length - 1];
      return {
        path,
        at: "value",
        code: "type",
        message: e.data === null && typeof key === "string"
          ? `"${key}" has no value; expected ${expected}.`
          : `Expected ${expected}, got ${describeValue(e.data)}.${typeHint(e)}`,
      };
    }
    case "enum": {
      const allowed = (e.params.allowedValues as unknown[]).map((v) => JSON.stringify(v));
      const guess = typeof e.data === "string"
        ? didYouMean(e.data, (e.params.allowedValues as unknown[]).map(String))
        : undefined;
      return {
        path,
        at: "value",
        code: "invalid-value",
        message: `Expected one of ${allowed.join(", ")}, got ${describeValue(e.data)}.${
          guess ? ` Did you mean "${guess}"?` : ""
        }`,
      };
    }
    case "maxProperties":
      if (isStep(e)) {
        const keys = Object.keys(e.data as object);
        return {
          path,
          at: "value",
          code: "step-shape",
          message: `${custom} Keys found at one level: ${keys.map((k) => `"${k}"`).join(", ")}.`,
        };
      }
      break;
    case "propertyNames":
      return {
        path: [...path, String(e.params.propertyName)],
        at: "key",
        code: "step-shape",
        message:
          `"${e.params.propertyName}" is not a step: a step's key is the import path of its function, like prefect.deployments.steps.git_clone.`,
      };
    case "minimum":
    case "maximum":
    case "exclusiveMinimum":
      return {
        path,
        at: "value",
        code: "invalid-value",
        message: `Must be ${e.params.comparison} ${e.params.limit}, got ${JSON.stringify(e.data)}.`,
      };
    case "minLength":
      return { path, at: "value", code: "invalid-value", message: "Must not be empty." };
  }
  if (custom) {
    return {
      path,
      at: "value",
      code: "invalid-value",
      message: `${custom} Got ${describeValue(e.data)}.`,
    };
  }
  return { path, at: "value", code: "invalid-value", message: sentence(e.message ?? e.keyword) };
}

function describeContext(title: string): string {
  const names: Record<string, string> = {
    "deploy.ts manifest": "the manifest's top level",
    Deployment: "a deployment",
    "Work pool": "`work_pool`",
    Schedule: "a schedule",
    Trigger: "a trigger",
  };
  return names[title] ?? (title ? `\`${title}\`` : "this mapping");
}

const YAML11_BOOLEANS = new Set(["yes", "no", "on", "off", "y", "n"]);

/** PyYAML reads `yes`/`on`/`off` as booleans; YAML 1.2 (and we) read them as strings. */
function yaml11BooleanHint(data: unknown): string {
  return typeof data === "string" && YAML11_BOOLEANS.has(data.toLowerCase())
    ? ` Write true or false: "${data}" is a string in YAML 1.2.`
    : "";
}

function typeHint(e: ErrorObject): string {
  const expected = [e.params.type].flat().join(",");
  if (expected.includes("boolean")) return yaml11BooleanHint(e.data);
  if (expected.includes("string") && typeof e.data === "number") {
    return ` Quote it: "${e.data}".`;
  }
  return "";
}

/** Validators of one flow parameter's schema, compiled once each. */
const parameterValidators = new Map<string, ValidateFunction>();
let parameterAjv: Ajv | undefined;

function parameterValidator(property: Json, definitions: Json | undefined): ValidateFunction {
  const schema = { ...property, ...(definitions ? { definitions } : {}) };
  const key = JSON.stringify(schema);
  let validator = parameterValidators.get(key);
  if (!validator) {
    // Prefect's keywords (`position`) and later drafts' (`prefixItems`) are not Ajv's: ignored.
    parameterAjv ??= new Ajv({ strict: false, validateFormats: false });
    validator = parameterAjv.compile(schema);
    parameterValidators.set(key, validator);
  }
  return validator;
}

/** "an integer", "a string or null", "one of \"a\", \"b\"". */
function describeSchema(schema: Json): string {
  if (Array.isArray(schema.enum)) {
    return `one of ${schema.enum.map((v) => JSON.stringify(v)).join(", ")}`;
  }
  if ("const" in schema) return JSON.stringify(schema.const);
  if (Array.isArray(schema.anyOf)) return (schema.anyOf as Json[]).map(describeSchema).join(" or ");
  if (typeof schema.$ref === "string") return `a ${schema.$ref.split("/").pop()}`;
  if (typeof schema.type === "string") {
    if (schema.type === "null") return "null";
    const name = schema.type === "array"
      ? "list"
      : schema.type === "object"
      ? "mapping"
      : schema.type;
    return article(name);
  }
  return "a value";
}

/** Prefect's parameter references (`{"__prefect_kind": "json", ...}`) resolve at run time. */
function isPrefectKind(value: unknown): boolean {
  return !!value && typeof value === "object" && "__prefect_kind" in value;
}

// ─── Validate: meaning ───────────────────────────────────────────────────────

export function didYouMean(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of candidates) {
    const d = editDistance(word.toLowerCase(), candidate.toLowerCase());
    if (d < bestDistance) [best, bestDistance] = [candidate, d];
  }
  const allowed = Math.max(1, Math.floor(word.length / 3));
  return bestDistance <= allowed ? best : undefined;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(
        previous[j] + 1,
        current[j - 1] + 1,
        previous[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
    }
    previous = current;
  }
  return previous[b.length];
}

/**
 * Checks a cron expression the way Prefect's validator (croniter) does: 5 fields, or 6 with
 * seconds last, or a macro; names for months and weekdays; `L`, `#`, `?`; no random `R`/`H`.
 * Returns the reason it is invalid, or undefined.
 */
export function cronProblem(expression: string): string | undefined {
  const macros = ["@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"];
  const text = expression.trim();
  if (text.startsWith("@")) {
    return macros.includes(text.toLowerCase()) ? undefined : `unknown macro "${text}"`;
  }
  const fields = text.split(/\s+/);
  if (fields.length !== 5 && fields.length !== 6) {
    return `expected 5 fields (minute hour day-of-month month day-of-week), found ${fields.length}`;
  }
  if (fields.some((f) => /^[rh]$/i.test(f) || /^[rh]\(/i.test(f))) {
    return "random (R) and hashed (H) expressions are not supported by Prefect";
  }
  const specs: { name: string; min: number; max: number; names?: string[] }[] = [
    { name: "minute", min: 0, max: 59 },
    { name: "hour", min: 0, max: 23 },
    { name: "day-of-month", min: 1, max: 31 },
    {
      name: "month",
      min: 1,
      max: 12,
      names: ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"],
    },
    {
      name: "day-of-week",
      min: 0,
      max: 7,
      names: ["sun", "mon", "tue", "wed", "thu", "fri", "sat"],
    },
    { name: "second", min: 0, max: 59 },
  ];
  for (let i = 0; i < fields.length; i++) {
    const problem = cronFieldProblem(fields[i], specs[i], i);
    if (problem) return `${specs[i].name} field "${fields[i]}": ${problem}`;
  }
  return undefined;
}

function cronFieldProblem(
  field: string,
  spec: { min: number; max: number; names?: string[] },
  index: number,
): string | undefined {
  const value = (token: string): number | undefined => {
    if (/^\d+$/.test(token)) return Number(token);
    const named = spec.names?.indexOf(token.toLowerCase()) ?? -1;
    return named >= 0 ? named + (index === 3 ? 1 : 0) : undefined;
  };
  for (const part of field.split(",")) {
    if (part === "") return "empty list item";
    if (part === "?" && (index === 2 || index === 4)) continue;
    if (part === "L" && index === 2) continue;
    if (index === 4 && /^\w+#[1-5]$/.test(part)) {
      const day = value(part.split("#")[0]);
      if (day === undefined || day > 7) return `unknown day "${part}"`;
      continue;
    }
    const [range, step, extra] = part.split("/");
    if (extra !== undefined) return `"${part}" has two steps`;
    if (step !== undefined && !(/^\d+$/.test(step) && Number(step) > 0)) {
      return `step "${step}" must be a positive number`;
    }
    if (range === "*") continue;
    const bounds = range.split("-");
    if (bounds.length > 2) return `"${range}" is not a range`;
    const numbers = bounds.map(value);
    if (numbers.some((n) => n === undefined)) return `"${range}" is not a number or name`;
    for (const n of numbers as number[]) {
      if (n < spec.min || n > spec.max) return `${n} is outside ${spec.min}-${spec.max}`;
    }
  }
  return undefined;
}

/** Seconds in a Prefect interval (number, numeric string, ISO-8601 duration, [D ]HH:MM:SS). */
export function intervalSeconds(value: number | string): number | undefined {
  if (typeof value === "number") return value;
  const text = value.trim();
  if (/^-?\d+(\.\d+)?$/.test(text)) return Number(text);
  const iso =
    /^P(?:(\d+(?:\.\d+)?)W)?(?:(\d+(?:\.\d+)?)D)?(?:T(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?)?$/i
      .exec(text);
  if (iso && text.toUpperCase() !== "P" && !/T$/i.test(text)) {
    const [w, d, h, m, s] = iso.slice(1).map((x) => Number(x ?? 0));
    return w * 604800 + d * 86400 + h * 3600 + m * 60 + s;
  }
  const clock = /^(?:(\d+)\s*d(?:ays?)?,?\s*)?(\d{1,2}):(\d{2})(?::(\d{2}(?:\.\d+)?))?$/i.exec(
    text,
  );
  if (clock) {
    const [d, h, m, s] = clock.slice(1).map((x) => Number(x ?? 0));
    return d * 86400 + h * 3600 + m * 60 + s;
  }
  return undefined;
}

/** The canonical spelling of an IANA timezone, or undefined when it is not one. */
export function canonicalTimezone(name: string): string | undefined {
  // Building a DateTimeFormat costs ~0.2 ms; manifests repeat a handful of zones.
  if (!timezoneCache.has(name)) {
    try {
      timezoneCache.set(
        name,
        new Intl.DateTimeFormat("en-US", { timeZone: name }).resolvedOptions().timeZone,
      );
    } catch {
      timezoneCache.set(name, undefined);
    }
  }
  return timezoneCache.get(name);
}
const timezoneCache = new Map<string, string | undefined>();

const RUNTIME_PLACEHOLDER_ROOTS = ["ctx", "flow_run", "event", "flow", "deployment"];
const PLACEHOLDER = /\{\{\s*([\w.\-\[\]$]+)\s*\}\}/g;

/** Output keys of Prefect's built-in steps, which also become top-level template values. */
const STEP_OUTPUTS: Record<string, string[]> = {
  git_clone: ["directory"],
  set_working_directory: ["directory"],
  pull_from_remote_storage: ["directory"],
  pull_with_block: ["directory"],
  run_shell_script: ["stdout", "stderr"],
  pip_install_requirements: ["stdout", "stderr"],
  build_docker_image: ["image_name", "tag", "image", "image_id", "additional_tags"],
  push_docker_image: ["image_name", "tag", "image", "additional_tags"],
  push_to_s3: ["bucket", "folder"],
  pull_from_s3: ["bucket", "folder", "directory"],
  push_to_gcs: ["bucket", "folder"],
  pull_from_gcs: ["bucket", "folder", "directory"],
  push_to_azure_blob_storage: ["container", "folder"],
  pull_from_azure_blob_storage: ["container", "folder", "directory"],
};
const KNOWN_STEPS = Object.keys(schema.definitions.step.properties);
const PREFECT_STEP_NAMESPACE = "prefect.deployments.steps.";

/** What earlier steps make available to `{{ ... }}`: their ids and output keys. */
interface StepScope {
  ids: Set<string>;
  outputs: Set<string>;
  /** A step of another package ran: its outputs are unknown, so bare names cannot be checked. */
  open: boolean;
}

const emptyScope = (): StepScope => ({ ids: new Set(), outputs: new Set(), open: false });

export interface DeploymentEntry {
  file: ManifestFile;
  index: number;
  flow: string;
  name: string;
  line: number;
  column: number;
  spec: Deployment;
  /** The flow function, when its source was found and parsed. */
  flowSource?: { file: string; module: PythonModule; fn: PythonFunction };
}

/** Semantic checks on one parsed, schema-valid manifest. */
class ManifestChecker {
  constructor(
    private file: ManifestFile,
    private options: Options,
    private report: (d: Diagnostic) => void,
    private sources: FlowSources,
  ) {}

  private problem(
    path: PathSegment[],
    code: string,
    message: string,
    severity: Severity = "error",
    at: "key" | "value" = "value",
  ) {
    this.report(diagnosticAt(this.file, path, code, message, severity, at));
  }

  check(manifest: DeployTsManifest): DeploymentEntry[] {
    const top = {
      build: this.checkSteps(manifest.build, ["build"], emptyScope()),
      push: undefined as StepScope | undefined,
      pull: this.checkSteps(manifest.pull, ["pull"], emptyScope()),
    };
    top.push = this.checkSteps(manifest.push, ["push"], top.build);
    return (manifest.deployments ?? []).flatMap((deployment, index) =>
      deployment ? [this.checkDeployment(deployment, index, top)] : []
    );
  }

  private checkDeployment(
    d: Deployment,
    index: number,
    top: { build: StepScope; push?: StepScope; pull: StepScope },
  ): DeploymentEntry {
    const here: PathSegment[] = ["deployments", index];
    const flow = this.sources.flowName(d.entrypoint, d.flow_name);

    // Deployment-level steps replace the top-level ones.
    const build = d.build !== undefined && d.build !== null
      ? this.checkSteps(d.build, [...here, "build"], emptyScope())
      : top.build;
    const push = d.push !== undefined && d.push !== null
      ? this.checkSteps(d.push, [...here, "push"], build)
      : top.push ?? build;
    if (d.pull !== undefined && d.pull !== null) {
      this.checkSteps(d.pull, [...here, "pull"], emptyScope());
    }

    if (d.schedule && d.schedules?.length) {
      this.problem(
        [...here, "schedule"],
        "schedule-conflict",
        "Both `schedule` and `schedules` are set; Prefect refuses this. Keep `schedules`.",
        "error",
        "key",
      );
    } else if (d.schedule && Object.keys(d.schedule).length) {
      this.problem(
        [...here, "schedule"],
        "legacy-schedule",
        "`schedule:` is deprecated; write `schedules:` with one item.",
        "warning",
        "key",
      );
    }
    const schedules: [Schedule, PathSegment[]][] = [
      ...(d.schedules ?? []).map((
        s,
        i,
      ): [Schedule, PathSegment[]] => [s, [...here, "schedules", i]]),
      // Prefect's own template writes `schedule: {}` for "none".
      ...(d.schedule && Object.keys(d.schedule).length
        ? [[d.schedule, [...here, "schedule"]] as [Schedule, PathSegment[]]]
        : []),
    ];
    const slugs = new Map<string, PathSegment[]>();
    for (const [schedule, path] of schedules) {
      this.checkSchedule(schedule, path);
      if (schedule.slug !== undefined) {
        const first = slugs.get(schedule.slug);
        if (first) {
          const { line } = positionOf(this.file, first);
          this.problem(
            [...path, "slug"],
            "duplicate-slug",
            `Schedule slug "${schedule.slug}" is already used in this deployment (line ${line}).`,
          );
        } else slugs.set(schedule.slug, [...path, "slug"]);
      }
    }

    if (!d.work_pool?.name) {
      this.problem(
        d.work_pool ? [...here, "work_pool"] : [...here, "name"],
        "no-work-pool",
        `Deployment "${d.name}" has no work pool: no worker will ever run it. Set \`work_pool: {name: ...}\`.`,
        "warning",
        "key",
      );
    }

    this.checkEntrypoint(d.entrypoint, [...here, "entrypoint"], Boolean(d.flow_name));
    const flowSource = this.sources.flowFunction(d.entrypoint);
    if (flowSource && this.options.codeChecks) {
      this.checkParameters(d, here, flowSource, schedules);
    }

    const scope = mergeScopes(build, push ?? emptyScope());
    for (const key of Object.keys(d) as (keyof Deployment)[]) {
      if (["build", "push", "pull", "triggers"].includes(key)) continue;
      this.checkTemplates(d[key], [...here, key], scope);
    }

    const { line, column } = positionOf(this.file, here);
    return { file: this.file, index, flow, name: d.name, line, column, spec: d, flowSource };
  }

  private checkSchedule(s: Schedule, path: PathSegment[]) {
    const kinds = (["cron", "interval", "rrule"] as const).filter((k) => s[k] !== undefined);
    if (kinds.length !== 1) {
      this.problem(
        path,
        "schedule-kind",
        kinds.length === 0
          ? "A schedule needs one of `cron`, `interval` or `rrule`."
          : `A schedule takes exactly one of \`cron\`, \`interval\` or \`rrule\`, not ${
            kinds.map((k) => `\`${k}\``).join(" and ")
          }.`,
      );
    }
    if (typeof s.cron === "string" && !hasPlaceholder(s.cron)) {
      const reason = cronProblem(s.cron);
      if (reason) {
        this.problem([...path, "cron"], "invalid-cron", `Invalid cron "${s.cron}": ${reason}.`);
      }
    }
    if (s.interval !== undefined && !hasPlaceholder(s.interval)) {
      const seconds = intervalSeconds(s.interval);
      if (seconds === undefined) {
        this.problem(
          [...path, "interval"],
          "invalid-interval",
          `Invalid interval ${
            JSON.stringify(s.interval)
          }: give seconds, an ISO-8601 duration such as "PT15M", or "HH:MM:SS".`,
        );
      } else if (seconds <= 0) {
        this.problem(
          [...path, "interval"],
          "invalid-interval",
          "An interval must be longer than zero.",
        );
      }
    }
    if (typeof s.rrule === "string" && !hasPlaceholder(s.rrule)) {
      const reason = rruleProblem(s.rrule);
      if (reason) this.problem([...path, "rrule"], "invalid-rrule", `Invalid rrule: ${reason}.`);
    }
    if (
      s.anchor_date !== undefined && !hasPlaceholder(s.anchor_date) && !isIsoDateTime(s.anchor_date)
    ) {
      this.problem(
        [...path, "anchor_date"],
        "invalid-anchor-date",
        `Invalid anchor_date "${s.anchor_date}": write an ISO-8601 date-time such as "2026-01-01T00:00:00Z".`,
      );
    }
    if (s.day_or !== undefined && s.cron === undefined) {
      this.problem(
        [...path, "day_or"],
        "invalid-value",
        "`day_or` applies to cron schedules only.",
      );
    }
    if (typeof s.timezone === "string" && !hasPlaceholder(s.timezone)) {
      const canonical = canonicalTimezone(s.timezone);
      if (!canonical) {
        this.problem(
          [...path, "timezone"],
          "invalid-timezone",
          `Unknown timezone "${s.timezone}"; use an IANA name such as "Europe/Berlin".`,
        );
      } else if (canonical.toLowerCase() === s.timezone.toLowerCase() && canonical !== s.timezone) {
        this.problem(
          [...path, "timezone"],
          "invalid-timezone",
          `Timezone names are case-sensitive: write "${canonical}", not "${s.timezone}".`,
        );
      }
    }
    if (s.timezone === undefined || s.timezone === null) {
      this.problem(
        path,
        "implicit-timezone",
        "State the schedule's `timezone` (Prefect reads it as UTC when omitted).",
        "warning",
      );
    }
    if (s.active === undefined) {
      this.problem(
        path,
        "implicit-active",
        "State the schedule's `active: true` or `active: false` explicitly.",
        "warning",
      );
    }
  }

  private checkEntrypoint(entrypoint: string, path: PathSegment[], flowNameGiven: boolean) {
    if (!this.options.codeChecks || hasPlaceholder(entrypoint)) return;
    const { file, module, object } = parseEntrypoint(entrypoint);
    const found = this.sources.entrypoint(entrypoint);
    if (found.kind === "no-file") {
      if (file) {
        this.problem(
          path,
          "entrypoint-not-found",
          `Flow file "${file}" does not exist (paths are relative to the directory deploy runs in).`,
        );
      } else {
        this.problem(
          path,
          "entrypoint-not-found",
          `Module "${module}" is not in this project (looked for ${
            found.candidates.join(", ")
          }); it must be installed where the flow runs.`,
          "warning",
        );
      }
      return;
    }
    if (found.kind === "unreadable") {
      this.problem(
        path,
        "flow-source-unreadable",
        `Flow file "${found.file}" was not read: ${found.reason}.`,
        "warning",
      );
      return;
    }
    const syntax = found.module.syntaxError;
    if (syntax) {
      this.problem(
        path,
        "python-syntax",
        `Flow file "${found.file}" has a Python syntax error at line ${syntax.line}, column ${syntax.column}; Prefect could not import it.`,
      );
      return;
    }
    const name = object.split(".")[0];
    const lookup = found.lookup;
    if (lookup.kind === "missing") {
      const near = didYouMean(name, [...found.module.functions.keys()]);
      if (found.module.classes.has(name) || object.includes(".")) return;
      this.problem(
        path,
        "flow-not-found",
        `Function "${name}" is not defined at the top level of "${found.file}".${
          near ? ` Did you mean "${near}"?` : ""
        }`,
      );
    } else if (lookup.kind === "not-a-flow") {
      this.problem(
        path,
        "not-a-flow",
        `Function "${name}" in "${found.file}" (line ${lookup.fn.line}) is not decorated with @flow; Prefect can only deploy flows.`,
      );
    } else if (lookup.kind === "dynamic-name" && !flowNameGiven) {
      this.problem(
        path,
        "dynamic-flow-name",
        `The flow name of "${name}" is computed when "${found.file}" is imported, so it cannot be read from the source; set \`flow_name\` in the manifest.`,
        "warning",
      );
    }
  }

  /**
   * The "missing parameters" guard: every parameter a deployment or schedule passes must be one
   * the flow takes, of the type its signature says, and every required one must be given.
   */
  private checkParameters(
    d: Deployment,
    here: PathSegment[],
    source: { file: string; module: PythonModule; fn: PythonFunction },
    schedules: [Schedule, PathSegment[]][],
  ) {
    const schema = (d.parameter_openapi_schema as Json | undefined) ??
      parameterSchema(source.module, source.fn);
    const properties = (schema.properties ?? {}) as Record<string, Json>;
    // Prefect's schema lists *args and **kwargs as required; Python never needs them.
    const variadic = new Set(
      source.fn.parameters.filter((p) => p.kind.startsWith("var_")).map((p) => p.name),
    );
    const required = ((schema.required ?? []) as string[]).filter((name) => !variadic.has(name));
    const takesAnyKeyword = source.fn.parameters.some((p) => p.kind === "var_keyword");
    const flow = `flow "${source.fn.name}" (${source.file})`;
    const checkValues = (values: unknown, path: PathSegment[]) => {
      if (!values || typeof values !== "object" || Array.isArray(values)) return;
      for (const [name, value] of Object.entries(values)) {
        const property = properties[name];
        if (!property) {
          if (takesAnyKeyword) continue;
          const guess = didYouMean(name, Object.keys(properties));
          this.problem(
            [...path, name],
            "unknown-parameter",
            `The ${flow} has no parameter "${name}".${
              guess ? ` Did you mean "${guess}"?` : ""
            } Prefect would reject the run.`,
            "error",
            "key",
          );
          continue;
        }
        if (hasPlaceholder(value) || isPrefectKind(value)) continue;
        const valid = parameterValidator(property, schema.definitions as Json | undefined);
        if (!valid(value)) {
          this.problem(
            [...path, name],
            "parameter-type",
            `Parameter "${name}" of the ${flow} expects ${describeSchema(property)}, not ${
              describeValue(value)
            }.`,
          );
        }
      }
    };
    checkValues(d.parameters, [...here, "parameters"]);
    for (const [schedule, path] of schedules) {
      checkValues(schedule.parameters, [...path, "parameters"]);
    }
    const given = (extra: unknown) =>
      new Set(Object.keys({ ...d.parameters, ...(extra as object ?? {}) }));
    const names = (missing: string[]) => missing.map((m) => `"${m}"`).join(", ");
    if (schedules.length) {
      for (const [schedule, path] of schedules) {
        const missing = required.filter((name) => !given(schedule.parameters).has(name));
        if (missing.length) {
          this.problem(
            path,
            "missing-parameter",
            `This schedule's runs would lack ${names(missing)}, required by the ${flow}; set ${
              missing.length > 1 ? "them" : "it"
            } in the deployment's or the schedule's parameters.`,
            "error",
            "key",
          );
        }
      }
    } else {
      const missing = required.filter((name) => !given(undefined).has(name));
      if (missing.length) {
        this.problem(
          d.parameters ? [...here, "parameters"] : [...here, "name"],
          "missing-parameter",
          `The ${flow} requires ${
            names(missing)
          }, which the deployment does not set: every run must pass ${
            missing.length > 1 ? "them" : "it"
          }.`,
          "warning",
          "key",
        );
      }
    }
  }

  /** Checks steps in order and returns what they make available to later templates. */
  private checkSteps(
    steps: Steps | undefined,
    path: PathSegment[],
    inherited: StepScope,
  ): StepScope {
    const scope: StepScope = {
      ids: new Set(inherited.ids),
      outputs: new Set(inherited.outputs),
      open: inherited.open,
    };
    (steps ?? []).forEach((step: Step, i: number) => {
      const entries = Object.entries(step);
      if (entries.length !== 1) return; // reported by the schema
      const [name, args] = entries[0];
      const stepPath = [...path, i];
      const shortName = name.split(".").pop()!;
      if (name.startsWith("prefect.projects.steps.")) {
        this.problem(
          [...stepPath, name],
          "removed-step",
          `Step "${name}" was removed in Prefect 2.11; use "${PREFECT_STEP_NAMESPACE}${shortName}".`,
          "error",
          "key",
        );
      } else if (name.startsWith(PREFECT_STEP_NAMESPACE) && !KNOWN_STEPS.includes(name)) {
        const guess = didYouMean(name, KNOWN_STEPS);
        this.problem(
          [...stepPath, name],
          "unknown-step",
          `Prefect has no step "${name}".${guess ? ` Did you mean "${guess}"?` : ""}`,
          "error",
          "key",
        );
      }
      this.checkTemplates(args, [...stepPath, name], scope);
      const id = (args as { id?: unknown } | null)?.id;
      if (typeof id === "string") {
        if (scope.ids.has(id) && !inherited.ids.has(id)) {
          this.problem(
            [...stepPath, name, "id"],
            "duplicate-step-id",
            `Step id "${id}" is used twice; the second hides the first's outputs.`,
          );
        }
        scope.ids.add(id);
      }
      const outputs = STEP_OUTPUTS[shortName];
      if (outputs && KNOWN_STEPS.includes(name)) outputs.forEach((o) => scope.outputs.add(o));
      else scope.open = true;
    });
    return scope;
  }

  /** Placeholders must be well formed and point at something that will exist. */
  private checkTemplates(value: unknown, path: PathSegment[], scope: StepScope) {
    if (typeof value === "string") {
      if (value.includes("{{") || value.includes("}}")) {
        this.checkTemplateString(value, path, scope);
      }
    } else if (Array.isArray(value)) {
      value.forEach((v, i) => this.checkTemplates(v, [...path, i], scope));
    } else if (value && typeof value === "object") {
      for (const [k, v] of Object.entries(value)) this.checkTemplates(v, [...path, k], scope);
    }
  }

  private checkTemplateString(text: string, path: PathSegment[], scope: StepScope) {
    const stripped = text.replace(PLACEHOLDER, "");
    if (stripped.includes("{{") || stripped.includes("}}")) {
      this.problem(
        path,
        "template-syntax",
        `Malformed placeholder in ${
          JSON.stringify(text)
        }: Prefect fills only \`{{ name }}\` made of letters, digits, \`_\`, \`.\`, \`-\` and \`$\`, and leaves anything else as text.`,
      );
      return;
    }
    for (const [, expression] of text.matchAll(PLACEHOLDER)) {
      const problem = placeholderProblem(expression, scope);
      if (problem) this.problem(path, "template-reference", problem);
    }
  }
}

function mergeScopes(a: StepScope, b: StepScope): StepScope {
  return {
    ids: new Set([...a.ids, ...b.ids]),
    outputs: new Set([...a.outputs, ...b.outputs]),
    open: a.open || b.open,
  };
}

export function placeholderProblem(expression: string, scope: StepScope): string | undefined {
  const shown = `"{{ ${expression} }}"`;
  if (expression.startsWith("$")) {
    return /^\$[A-Za-z_][A-Za-z0-9_]*$/.test(expression)
      ? undefined
      : `${shown} is not an environment variable name.`;
  }
  const [root, ...rest] = expression.split(".");
  if (root === "prefect") {
    if (rest[0] === "variables") {
      return rest.length === 2 ? undefined : `${shown}: write {{ prefect.variables.<name> }}.`;
    }
    if (rest[0] === "blocks") {
      return rest.length >= 3
        ? undefined
        : `${shown}: write {{ prefect.blocks.<block-type>.<block-name> }}.`;
    }
    return `${shown}: Prefect resolves only prefect.variables.* and prefect.blocks.*; step outputs are {{ <step-id>.<key> }}.`;
  }
  if (RUNTIME_PLACEHOLDER_ROOTS.includes(root)) return undefined;
  if (scope.ids.has(root)) return undefined;
  if (rest.length === 0 && (scope.outputs.has(root) || scope.open)) return undefined;
  const known = [...scope.ids].map((id) => `"${id}"`).join(", ");
  return `${shown} refers to no earlier step ${rest.length ? "id" : "id or output"}${
    known ? ` (step ids here: ${known})` : " (no step before it has an id)"
  }; Prefect would leave it empty.`;
}

function rruleProblem(text: string): string | undefined {
  if (text.length > 6500) return "longer than Prefect's 6500 characters";
  try {
    rrule.rrulestr(text, { forceset: true });
    if (!/FREQ=/i.test(text) && !/^(RDATE|DTSTART|EXDATE)/im.test(text)) return "no FREQ";
    return undefined;
  } catch (error) {
    return (error as Error).message.replace(/ undefined/g, "").toLowerCase();
  }
}

function isIsoDateTime(text: string): boolean {
  return /^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$/.test(text) &&
    !Number.isNaN(Date.parse(text.replace(" ", "T")));
}

/** The parts of an entrypoint, read as Prefect's import_object reads them. */
export function parseEntrypoint(
  entrypoint: string,
): { file?: string; module?: string; object: string } {
  if (entrypoint.includes(".py:")) {
    const at = entrypoint.lastIndexOf(":");
    return { file: entrypoint.slice(0, at), object: entrypoint.slice(at + 1) };
  }
  const at = entrypoint.includes(":") ? entrypoint.lastIndexOf(":") : entrypoint.lastIndexOf(".");
  return { module: entrypoint.slice(0, at), object: entrypoint.slice(at + 1) };
}

function moduleFileCandidates(module: string): string[] {
  const modulePath = module.replaceAll(".", "/");
  return [`${modulePath}.py`, `${modulePath}/__init__.py`];
}

/** Flow files larger than this are not read by the offline checks. */
const MAX_SOURCE_BYTES = 5 * 1024 * 1024;

/** What an entrypoint leads to in the project's Python source. */
export type EntrypointSource =
  | { kind: "found"; file: string; module: PythonModule; lookup: FlowLookup }
  | { kind: "no-file"; candidates: string[] }
  | { kind: "unreadable"; file: string; reason: string };

/** Reads and parses each flow file once per run; many deployments share one file. */
export class FlowSources {
  #modules = new Map<string, PythonModule | string | undefined>();

  /** The parsed module, a reason it cannot be read, or undefined when there is no such file. */
  module(path: string): PythonModule | string | undefined {
    if (!this.#modules.has(path)) this.#modules.set(path, this.#read(path));
    return this.#modules.get(path);
  }

  #read(path: string): PythonModule | string | undefined {
    let bytes: Uint8Array;
    try {
      const info = Deno.statSync(path);
      if (!info.isFile) return undefined;
      if (info.size > MAX_SOURCE_BYTES) {
        return `it is larger than ${MAX_SOURCE_BYTES / 1024 / 1024} MB`;
      }
      bytes = Deno.readFileSync(path);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return undefined;
      throw error;
    }
    if (bytes.includes(0)) return "it is not a text file";
    let text: string;
    try {
      text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
    } catch {
      return "it is not UTF-8 text";
    }
    return parsePythonModule(text);
  }

  entrypoint(entrypoint: string): EntrypointSource {
    const { file, module, object } = parseEntrypoint(entrypoint);
    const candidates = file ? [file] : moduleFileCandidates(module!);
    for (const candidate of candidates) {
      const parsed = this.module(candidate);
      if (parsed === undefined) continue;
      if (typeof parsed === "string") {
        return { kind: "unreadable", file: candidate, reason: parsed };
      }
      return {
        kind: "found",
        file: candidate,
        module: parsed,
        lookup: findFlow(parsed, object.split(".")[0]),
      };
    }
    return { kind: "no-file", candidates };
  }

  /** The flow's function when the entrypoint leads to a parsed, error-free flow. */
  flowFunction(
    entrypoint: string,
  ): { file: string; module: PythonModule; fn: PythonFunction } | undefined {
    if (hasPlaceholder(entrypoint)) return undefined;
    const found = this.entrypoint(entrypoint);
    if (found.kind !== "found" || found.module.syntaxError) return undefined;
    const lookup = found.lookup;
    if (lookup.kind !== "flow" && lookup.kind !== "dynamic-name") return undefined;
    return { file: found.file, module: found.module, fn: lookup.fn };
  }

  /** The flow name Prefect would register: `flow_name`, else read from the source. */
  flowName(entrypoint: string, flowName?: string | null): string {
    if (flowName) return flowName;
    if (!hasPlaceholder(entrypoint)) {
      const found = this.entrypoint(entrypoint);
      if (found.kind === "found" && found.lookup.kind === "flow") return found.lookup.flowName;
    }
    return flowNameFromFunction(parseEntrypoint(entrypoint).object);
  }
}

// ─── Validate: environments ──────────────────────────────────────────────────

/** What an environment overlay changes (schema: `#/definitions/environment_change`). */
interface EnvironmentChange {
  name?: string;
  name_prefix?: string;
  name_suffix?: string;
  tags?: string[];
  parameters?: Json;
  work_pool?: Json;
  paused?: boolean;
  schedules?: { active?: boolean };
}

export interface Environment {
  name: string;
  file: ManifestFile;
  defaults: EnvironmentChange;
  deployments: Record<string, EnvironmentChange>;
  /** Keys of `deployments` that matched a deployment. */
  used: Set<string>;
}

/** Overlays live beside the manifests, one level down, so they are never read as manifests. */
export function environmentPath(options: Options): string {
  const first = options.paths[0] ?? "prefect";
  let dir = first;
  try {
    if (Deno.statSync(first).isFile) {
      dir = first.includes("/") ? first.slice(0, first.lastIndexOf("/")) : ".";
    }
  } catch {
    // a missing PATH is reported by discovery
  }
  return `${dir.replace(/\/+$/, "")}/environments/${options.env}.yaml`;
}

async function loadEnvironment(
  options: Options,
  report: (d: Diagnostic) => void,
): Promise<Environment | undefined> {
  const path = environmentPath(options);
  try {
    await Deno.stat(path);
  } catch {
    report(fileDiagnostic(
      path,
      "environment-not-found",
      `Environment "${options.env}" has no overlay: ${path} does not exist.`,
    ));
    return undefined;
  }
  const file = await loadManifest(path, report);
  if (file.data === undefined) return undefined;
  const problems = schemaProblems(file.data ?? {}, schema.definitions.environment as SchemaNode);
  for (const p of problems) report(diagnosticAt(file, p.path, p.code, p.message, "error", p.at));
  if (problems.length) return undefined;
  const data = (file.data ?? {}) as { defaults?: EnvironmentChange; deployments?: Json };
  return {
    name: options.env!,
    file,
    defaults: data.defaults ?? {},
    deployments: (data.deployments ?? {}) as Record<string, EnvironmentChange>,
    used: new Set(),
  };
}

/**
 * Rewrites a manifest's deployments for the environment, before any check runs, so every check
 * sees what will be deployed. Maps merge over the manifest's values; tags are added.
 */
function applyEnvironment(data: unknown, environment: Environment, sources: FlowSources) {
  const list = (data as { deployments?: unknown } | null)?.deployments;
  if (!Array.isArray(list)) return;
  list.forEach((item, index) => {
    const d = item as Record<string, unknown> | null;
    if (!d || typeof d !== "object" || typeof d.name !== "string") return;
    const flow = typeof d.entrypoint === "string"
      ? sources.flowName(d.entrypoint, typeof d.flow_name === "string" ? d.flow_name : undefined)
      : undefined;
    const keys = [`${flow}/${d.name}`, d.name].filter((k) => k in environment.deployments);
    keys.forEach((k) => environment.used.add(k));
    const changes = [environment.defaults, ...keys.map((k) => environment.deployments[k])];
    const result = { ...d };
    let name = d.name;
    let prefix = "";
    let suffix = "";
    for (const change of changes) {
      if (change.name !== undefined) name = change.name;
      if (change.name_prefix !== undefined) prefix = change.name_prefix;
      if (change.name_suffix !== undefined) suffix = change.name_suffix;
      if (change.tags) {
        const tags = Array.isArray(result.tags) ? result.tags as string[] : [];
        result.tags = [...tags, ...change.tags.filter((t) => !tags.includes(t))];
      }
      if (change.parameters) {
        result.parameters = { ...(result.parameters as Json ?? {}), ...change.parameters };
      }
      if (change.work_pool) {
        const pool = (result.work_pool ?? {}) as Json;
        const jobVariables = pool.job_variables || change.work_pool.job_variables
          ? {
            job_variables: {
              ...(pool.job_variables as Json ?? {}),
              ...(change.work_pool.job_variables as Json ?? {}),
            },
          }
          : {};
        result.work_pool = { ...pool, ...change.work_pool, ...jobVariables };
      }
      if (change.paused !== undefined) result.paused = change.paused;
      if (change.schedules?.active !== undefined) {
        const active = change.schedules.active;
        if (Array.isArray(result.schedules)) {
          result.schedules = result.schedules.map((s) =>
            s && typeof s === "object" ? { ...s, active } : s
          );
        }
        if (result.schedule && typeof result.schedule === "object") {
          result.schedule = { ...result.schedule, active };
        }
      }
    }
    result.name = `${prefix}${name}${suffix}`;
    list[index] = result;
  });
}

/** Overlay entries that name no deployment are typos: reported in the overlay, at the key. */
function reportUnusedEnvironmentKeys(
  environment: Environment,
  deployments: DeploymentEntry[],
  report: (d: Diagnostic) => void,
) {
  const names = deployments.flatMap((d) => [`${d.flow}/${d.name}`]);
  for (const key of Object.keys(environment.deployments)) {
    if (environment.used.has(key)) continue;
    const guess = didYouMean(key, names);
    report(diagnosticAt(
      environment.file,
      ["deployments", key],
      "unknown-deployment",
      `"${key}" matches no deployment in the manifests (write flow/name or name).${
        guess ? ` Did you mean "${guess}"?` : ""
      }`,
      "error",
      "key",
    ));
  }
}

// ─── Validate: everything ────────────────────────────────────────────────────

export interface ValidationResult {
  files: string[];
  /** The environment overlay applied (`--env`), if any. */
  environment?: string;
  deployments: DeploymentEntry[];
  diagnostics: Diagnostic[];
  valid: boolean;
}

export async function validate(options: Options): Promise<ValidationResult> {
  const diagnostics: Diagnostic[] = [];
  const report = (d: Diagnostic) => diagnostics.push(d);
  const paths = await discoverManifests(options.paths, report);
  const deployments: DeploymentEntry[] = [];
  const loaded: ManifestFile[] = [];
  const sources = new FlowSources();
  const environment = options.env ? await loadEnvironment(options, report) : undefined;
  for (const path of paths) {
    const file = await loadManifest(path, report);
    if (file.data === undefined) continue;
    if (environment) applyEnvironment(file.data, environment, sources);
    const problems = schemaProblems(file.data);
    for (const p of problems) report(diagnosticAt(file, p.path, p.code, p.message, "error", p.at));
    loaded.push(file);
    const checkable = schemaValidParts(file.data, problems);
    if (checkable) {
      deployments.push(...new ManifestChecker(file, options, report, sources).check(checkable));
    }
  }
  reportDuplicateDeployments(loaded, report, sources);
  if (environment) reportUnusedEnvironmentKeys(environment, deployments, report);
  if (options.strict) diagnostics.forEach((d) => d.severity = "error");
  diagnostics.sort((a, b) =>
    a.file.localeCompare(b.file) || a.line - b.line || a.column - b.column
  );
  return {
    files: paths,
    environment: options.env ? environmentPath(options) : undefined,
    deployments,
    diagnostics,
    valid: !diagnostics.some((d) => d.severity === "error"),
  };
}

/**
 * Deployment names are unique per flow across all files. Checked on the raw data, so two
 * deployments with other mistakes still learn that they collide.
 */
function reportDuplicateDeployments(
  files: ManifestFile[],
  report: (d: Diagnostic) => void,
  sources: FlowSources,
) {
  const seen = new Map<string, string>();
  for (const file of files) {
    const list = (file.data as { deployments?: unknown } | null)?.deployments;
    if (!Array.isArray(list)) continue;
    list.forEach((item, index) => {
      const d = item as Record<string, unknown> | null;
      if (typeof d?.name !== "string" || typeof d.entrypoint !== "string") return;
      const flow = sources.flowName(
        d.entrypoint,
        typeof d.flow_name === "string" ? d.flow_name : undefined,
      );
      const key = `${flow}/${d.name}`;
      const at = diagnosticAt(
        file,
        ["deployments", index, "name"],
        "duplicate-deployment",
        `Deployment "${key}" is declared twice; the first is at ${seen.get(key)}.`,
      );
      if (seen.has(key)) report(at);
      else seen.set(key, `${file.path}:${at.line}:${at.column}`);
    });
  }
}

/** Prefect's default flow name: the function's name with `_` as `-`. */
function flowNameFromFunction(objectPath: string): string {
  return objectPath.split(".").pop()!.replaceAll("_", "-");
}

/**
 * The parts of a manifest the meaning checks can trust: everything when the schema passed,
 * else the deployments without schema problems (so one typo does not hide the rest).
 */
function schemaValidParts(data: unknown, problems: SchemaProblem[]): DeployTsManifest | undefined {
  if (problems.length === 0) return data as DeployTsManifest;
  const manifest = data as Record<string, unknown>;
  if (!manifest || typeof manifest !== "object" || !Array.isArray(manifest.deployments)) {
    return undefined;
  }
  if (problems.some((p) => p.path[0] !== "deployments")) return undefined;
  const broken = new Set(problems.map((p) => p.path[1]));
  return {
    ...manifest,
    deployments: manifest.deployments.map((d, i) => broken.has(i) ? null : d),
  } as DeployTsManifest;
}

// ─── Plan: what the manifests want ───────────────────────────────────────────

const OWNER_TAG_PREFIX = "managed-by:deploy.ts/";
const SET_WORKING_DIRECTORY = "prefect.deployments.steps.set_working_directory";
const EMPTY_PARAMETER_SCHEMA = { type: "object", properties: {} };

type Json = Record<string, unknown>;

/** A schedule as the API takes it, plus what the manifest leaves to the server. */
export interface DesiredSchedule {
  slug: string;
  replaces?: string;
  schedule: Json;
  /** Absent: keep the server's value (people toggle schedules in the UI). */
  active?: boolean;
  parameters: Json;
  max_scheduled_runs?: number;
}

export interface DesiredDeployment {
  entry: DeploymentEntry;
  flow: string;
  name: string;
  /** Every field the tool owns, at its desired value (Prefect's default when unstated). */
  fields: Json;
  /** Absent: keep the server's value. */
  paused?: boolean;
  schedules: DesiredSchedule[];
}

/** The project owning the manifests: their top-level `name`, else the repository's directory. */
export function projectName(files: ManifestFile[]): string {
  const names = new Set<string>();
  for (const file of files) {
    const name = (file.data as { name?: unknown } | null)?.name;
    if (typeof name === "string" && name) names.add(name);
  }
  if (names.size > 1) {
    throw new UserError(
      `The manifests name different projects (${
        [...names].map((n) => `"${n}"`).join(", ")
      }); ownership and --prune need one. Give every file the same top-level \`name\`.`,
    );
  }
  if (names.size === 1) return [...names][0];
  let dir = Deno.cwd();
  while (true) {
    try {
      Deno.statSync(`${dir}/.git`);
      break;
    } catch {
      const parent = dir.slice(0, dir.lastIndexOf("/")) || "/";
      if (parent === dir) {
        dir = Deno.cwd();
        break;
      }
      dir = parent;
    }
  }
  return dir.split("/").filter(Boolean).pop() ?? "default";
}

export const ownerTag = (project: string) => `${OWNER_TAG_PREFIX}${project}`;

/** Derived slugs are positional, so editing a schedule keeps its slug and its ID. */
export function derivedSlug(index: number): string {
  return `schedule-${index + 1}`;
}

/** `*` is the only wildcard; everything else matches literally. */
function wildcard(pattern: string): RegExp {
  const escaped = pattern.split("*").map((part) => part.replace(/[.+?^${}()|[\]\\]/g, "\\$&"));
  return new RegExp(`^${escaped.join(".*")}$`);
}

/** `--flow` and `-n` patterns: which items they match, and which patterns matched nothing. */
export interface Selection {
  matches(item: { flow: string; name: string }): boolean;
  /** The patterns no item matched so far, as flags: `--name "x"`. */
  unmatched(): string[];
}

export function selection(flows: string[], names: string[]): Selection {
  const flowPatterns = flows.map((p) => ({ flag: "--flow", text: p, re: wildcard(p), hits: 0 }));
  const namePatterns = names.map((p) => ({
    flag: "--name",
    text: p,
    re: wildcard(p),
    qualified: p.includes("/"),
    hits: 0,
  }));
  return {
    matches(item: { flow: string; name: string }): boolean {
      const flowHit = flowPatterns.filter((p) => p.re.test(item.flow));
      const nameHit = namePatterns.filter((p) =>
        p.re.test(p.qualified ? `${item.flow}/${item.name}` : item.name)
      );
      const ok = (flowPatterns.length === 0 || flowHit.length > 0) &&
        (namePatterns.length === 0 || nameHit.length > 0);
      if (ok) [...flowHit, ...nameHit].forEach((p) => p.hits++);
      return ok;
    },
    unmatched(): string[] {
      return [...flowPatterns, ...namePatterns].filter((p) => !p.hits)
        .map((p) => `${p.flag} "${p.text}"`);
    },
  };
}

/** The manifests' deployments `--flow` and `-n` select; a pattern matching none is a typo. */
export function selectDeployments<T extends { flow: string; name: string }>(
  items: T[],
  flows: string[],
  names: string[],
): T[] {
  const select = selection(flows, names);
  const selected = items.filter((item) => select.matches(item));
  const unmatched = select.unmatched();
  if (unmatched.length) {
    throw new UserError(`No deployment in the manifests matches ${unmatched.join(" or ")}.`);
  }
  return selected;
}

// ─── Plan: templates ─────────────────────────────────────────────────────────

/** Values `{{ prefect.variables.x }}` and `{{ prefect.blocks.t.n }}` resolve to. */
export interface TemplateValues {
  env: (name: string) => string | undefined;
  variables: Map<string, unknown>;
  /** Key `type/name`; the block document's `data`. */
  blocks: Map<string, unknown>;
}

type Reference =
  | { kind: "env"; name: string }
  | { kind: "variable"; name: string }
  | { kind: "block"; type: string; name: string; path: string[] }
  | { kind: "runtime" }
  | { kind: "step"; expression: string };

function parseReference(expression: string): Reference {
  if (expression.startsWith("$")) return { kind: "env", name: expression.slice(1) };
  const parts = expression.split(".");
  if (parts[0] === "prefect" && parts[1] === "variables" && parts[2]) {
    return { kind: "variable", name: parts.slice(2).join(".") };
  }
  if (parts[0] === "prefect" && parts[1] === "blocks" && parts.length >= 4) {
    return { kind: "block", type: parts[2], name: parts[3], path: parts.slice(4) };
  }
  if (RUNTIME_PLACEHOLDER_ROOTS.includes(parts[0])) return { kind: "runtime" };
  return { kind: "step", expression };
}

/** Every variable and block the selected deployments use, so they are read once each. */
export function templateReferences(values: unknown[]): { variables: string[]; blocks: string[] } {
  const variables = new Set<string>();
  const blocks = new Set<string>();
  const walk = (value: unknown) => {
    if (typeof value === "string") {
      for (const match of value.matchAll(PLACEHOLDER)) {
        const ref = parseReference(match[1]);
        if (ref.kind === "variable") variables.add(ref.name);
        if (ref.kind === "block") blocks.add(`${ref.type}/${ref.name}`);
      }
    } else if (Array.isArray(value)) value.forEach(walk);
    else if (value && typeof value === "object") Object.values(value).forEach(walk);
  };
  values.forEach(walk);
  return { variables: [...variables], blocks: [...blocks] };
}

class TemplateResolver {
  problems: { path: PathSegment[]; code: string; message: string }[] = [];

  constructor(private values: TemplateValues) {}

  /**
   * Resolves placeholders as Prefect does at deploy time: a string that is one placeholder
   * becomes the raw value, placeholders inside text become text. Run-time ones (`ctx`,
   * `flow_run`…) stay. In steps (`onlyEnv`) Prefect variables and blocks stay for the worker.
   */
  resolve(value: unknown, path: PathSegment[], onlyEnv = false): unknown {
    if (typeof value === "string") return this.#resolveString(value, path, onlyEnv);
    if (Array.isArray(value)) return value.map((v, i) => this.resolve(v, [...path, i], onlyEnv));
    if (value && typeof value === "object") {
      return Object.fromEntries(
        Object.entries(value).map(([k, v]) => [k, this.resolve(v, [...path, k], onlyEnv)]),
      );
    }
    return value;
  }

  #resolveString(text: string, path: PathSegment[], onlyEnv: boolean): unknown {
    const whole = text.match(/^\{\{\s*([\w.\-\[\]$]+)\s*\}\}$/);
    if (whole) {
      const found = this.#lookup(whole[1], path, onlyEnv);
      return found === KEEP ? text : found;
    }
    return text.replace(PLACEHOLDER, (placeholder, expression: string) => {
      const found = this.#lookup(expression, path, onlyEnv);
      if (found === KEEP) return placeholder;
      if (found !== null && typeof found === "object") {
        this.problems.push({
          path,
          code: "template-type",
          message: `"{{ ${expression} }}" is an object and cannot be part of a text; ` +
            "make it the whole value.",
        });
        return placeholder;
      }
      return String(found);
    });
  }

  #lookup(expression: string, path: PathSegment[], onlyEnv: boolean): unknown {
    const ref = parseReference(expression);
    switch (ref.kind) {
      case "runtime":
        return KEEP;
      case "env": {
        let value: string | undefined;
        try {
          value = this.values.env(ref.name);
        } catch (error) {
          if (!(error instanceof Deno.errors.NotCapable)) throw error;
          this.problems.push({
            path,
            code: "env-not-permitted",
            message: `Environment variable "${ref.name}" may not be read: the compiled deploy ` +
              `reads only PREFECT_*, DEPLOY_* and NO_COLOR. Rename it, e.g. DEPLOY_${ref.name}.`,
          });
          return KEEP;
        }
        if (value === undefined) {
          this.problems.push({
            path,
            code: "missing-env",
            message:
              `Environment variable "${ref.name}" is not set (used as "{{ $${ref.name} }}").`,
          });
          return KEEP;
        }
        return value;
      }
      case "variable": {
        if (onlyEnv) return KEEP;
        if (!this.values.variables.has(ref.name)) {
          this.problems.push({
            path,
            code: "missing-variable",
            message: `Prefect variable "${ref.name}" does not exist on the server.`,
          });
          return KEEP;
        }
        return this.values.variables.get(ref.name);
      }
      case "block": {
        if (onlyEnv) return KEEP;
        const key = `${ref.type}/${ref.name}`;
        if (!this.values.blocks.has(key)) {
          this.problems.push({
            path,
            code: "missing-block",
            message: `Block "${ref.name}" of type "${ref.type}" does not exist on the server.`,
          });
          return KEEP;
        }
        let value = this.values.blocks.get(key);
        for (const segment of ref.path) {
          value = (value as Json | undefined)?.[segment];
        }
        if (
          ref.path.length === 0 && value && typeof value === "object" &&
          Object.keys(value).length === 1 && "value" in value
        ) {
          value = (value as Json).value;
        }
        if (value === undefined) {
          this.problems.push({
            path,
            code: "missing-block",
            message: `Block "${key}" has no field "${ref.path.join(".")}".`,
          });
          return KEEP;
        }
        return value;
      }
      case "step":
        if (onlyEnv) return KEEP;
        this.problems.push({
          path,
          code: "step-output",
          message: `"{{ ${expression} }}" needs the output of a build or push step, and ` +
            "deploy.ts does not run those steps: build and push images before apply, and write " +
            "the resulting values (or environment variables) into the manifest.",
        });
        return KEEP;
    }
  }
}
const KEEP = Symbol("keep");

// ─── Plan: building the desired state ────────────────────────────────────────

function asBoolean(value: unknown, path: PathSegment[], resolver: TemplateResolver) {
  if (typeof value === "boolean" || value === undefined || value === null) {
    return value ?? undefined;
  }
  if (typeof value === "string" && /^(true|false)$/i.test(value.trim())) {
    return value.trim().toLowerCase() === "true";
  }
  resolver.problems.push({
    path,
    code: "template-type",
    message: `Expected true or false, got ${JSON.stringify(value)} after templating.`,
  });
  return undefined;
}

function asInteger(value: unknown, path: PathSegment[], resolver: TemplateResolver) {
  if (value === undefined || value === null) return undefined;
  const number = typeof value === "string" ? Number(value.trim()) : value;
  if (typeof number === "number" && Number.isInteger(number)) return number;
  resolver.problems.push({
    path,
    code: "template-type",
    message: `Expected an integer, got ${JSON.stringify(value)} after templating.`,
  });
  return undefined;
}

/** The API's shape of one manifest schedule. */
function desiredSchedule(
  s: Schedule,
  index: number,
  path: PathSegment[],
  resolver: TemplateResolver,
): DesiredSchedule {
  const r = resolver.resolve(s, path) as Schedule & Json;
  const schedule: Json = {};
  if (r.cron !== undefined) {
    schedule.cron = r.cron;
    schedule.day_or = asBoolean(r.day_or, [...path, "day_or"], resolver) ?? true;
  } else if (r.interval !== undefined) {
    const seconds = intervalSeconds(r.interval as number | string);
    if (seconds === undefined) {
      resolver.problems.push({
        path: [...path, "interval"],
        code: "invalid-interval",
        message: `Invalid interval ${JSON.stringify(r.interval)} after templating.`,
      });
    }
    schedule.interval = seconds;
    if (r.anchor_date) schedule.anchor_date = r.anchor_date;
  } else if (r.rrule !== undefined) {
    schedule.rrule = r.rrule;
  }
  if (r.timezone) schedule.timezone = r.timezone;
  return {
    slug: r.slug ?? derivedSlug(index),
    replaces: r.replaces,
    schedule,
    active: asBoolean(r.active, [...path, "active"], resolver),
    parameters: (r.parameters ?? {}) as Json,
    max_scheduled_runs: asInteger(r.max_scheduled_runs, [...path, "max_scheduled_runs"], resolver),
  };
}

/** Turns validated manifest entries into the state the server should have. */
export function desiredDeployments(
  entries: DeploymentEntry[],
  project: string,
  values: TemplateValues,
  report: (d: Diagnostic) => void,
): DesiredDeployment[] {
  return entries.map((entry) => {
    const resolver = new TemplateResolver(values);
    const d = entry.spec;
    const here: PathSegment[] = ["deployments", entry.index];
    const at = (key: string) => [...here, key];
    const field = <T>(key: keyof Deployment): T => resolver.resolve(d[key], at(key)) as T;

    const top = entry.file.data as DeployTsManifest;
    const pull = d.pull !== undefined && d.pull !== null
      ? resolver.resolve(d.pull, at("pull"), true)
      : top.pull !== undefined && top.pull !== null
      ? resolver.resolve(top.pull, ["pull"], true)
      // As `prefect deploy`: run from the directory the deployment was made in.
      : [{ [SET_WORKING_DIRECTORY]: { directory: Deno.cwd() } }];

    const tagsValue = field<unknown>("tags") ?? [];
    const tags = Array.isArray(tagsValue)
      ? tagsValue.map(String)
      : String(tagsValue).split(",").map((t) => t.trim()).filter(Boolean);
    const owner = ownerTag(project);
    if (!tags.includes(owner)) tags.push(owner);

    const pool = (resolver.resolve(d.work_pool ?? {}, at("work_pool")) ?? {}) as Json;
    const concurrency = field<unknown>("concurrency_limit");
    let limit: number | undefined;
    let concurrencyOptions: Json | null = null;
    if (concurrency !== null && typeof concurrency === "object") {
      const c = concurrency as Json;
      limit = asInteger(c.limit, [...at("concurrency_limit"), "limit"], resolver);
      if (c.collision_strategy !== undefined || c.grace_period_seconds !== undefined) {
        concurrencyOptions = {
          collision_strategy: c.collision_strategy ?? "ENQUEUE",
          ...(c.grace_period_seconds !== undefined
            ? { grace_period_seconds: c.grace_period_seconds }
            : {}),
        };
      }
    } else {
      limit = asInteger(concurrency, at("concurrency_limit"), resolver);
    }

    const fields: Json = {
      entrypoint: field<string>("entrypoint"),
      path: null,
      // As `prefect deploy`: the flow's docstring when the manifest gives no description.
      description: field<string | null>("description") ??
        (entry.flowSource?.fn.docstring ? cleandoc(entry.flowSource.fn.docstring) : null),
      version: field<string | null>("version") ?? null,
      tags,
      parameters: field<Json>("parameters") ?? {},
      parameter_openapi_schema: field<Json>("parameter_openapi_schema") ??
        (entry.flowSource
          ? parameterSchema(entry.flowSource.module, entry.flowSource.fn)
          : EMPTY_PARAMETER_SCHEMA),
      enforce_parameter_schema: asBoolean(
        field("enforce_parameter_schema"),
        at("enforce_parameter_schema"),
        resolver,
      ) ?? true,
      pull_steps: pull,
      work_pool_name: pool.name ?? null,
      // The server puts a deployment without a queue on its pool's "default" queue.
      work_queue_name: pool.work_queue_name ?? (pool.name ? "default" : null),
      job_variables: pool.job_variables ?? {},
      concurrency_limit: limit ?? null,
      concurrency_options: limit === undefined ? null : concurrencyOptions,
    };

    const manifestSchedules: [Schedule, PathSegment[]][] = d.schedules?.length
      ? d.schedules.map((s, i) => [s, [...here, "schedules", i]])
      : d.schedule && Object.keys(d.schedule).length
      ? [[d.schedule, at("schedule")]]
      : [];
    const schedules = manifestSchedules.map(([s, path], i) =>
      desiredSchedule(s, i, path, resolver)
    );
    const slugs = new Set<string>();
    schedules.forEach((s, i) => {
      if (slugs.has(s.slug)) {
        resolver.problems.push({
          path: manifestSchedules[i][1],
          code: "duplicate-slug",
          message: `Schedule ${i + 1} gets the slug "${s.slug}", which another schedule of ` +
            "this deployment already has; give it a `slug`.",
        });
      }
      slugs.add(s.slug);
    });

    for (const p of resolver.problems) report(diagnosticAt(entry.file, p.path, p.code, p.message));
    return {
      entry,
      flow: entry.flow,
      name: entry.name,
      fields,
      paused: asBoolean(field("paused"), at("paused"), resolver),
      schedules,
    };
  });
}

// ─── Plan: reading the server ────────────────────────────────────────────────

export interface ServerSchedule {
  id: string;
  schedule: Json;
  active: boolean;
  parameters: Json;
  slug: string | null;
  max_scheduled_runs: number | null;
}

export interface ServerDeployment {
  id: string;
  name: string;
  flow_id: string;
  paused: boolean;
  tags: string[];
  schedules: ServerSchedule[];
  global_concurrency_limit: { limit: number } | null;
  concurrency_options: Json | null;
  [field: string]: unknown;
}

export interface ServerState {
  version?: string;
  flowIds: Map<string, string>;
  /** Key `flow/name`. */
  deployments: Map<string, ServerDeployment & { flow: string }>;
  /** This project's deployments (by owner tag), for --prune. */
  owned: (ServerDeployment & { flow: string })[];
  pools: Set<string>;
  values: TemplateValues;
}

/** Reads everything the plan needs in a handful of filter requests. */
export async function readServerState(
  client: PrefectClient,
  entries: DeploymentEntry[],
  project: string,
  prune: boolean,
): Promise<ServerState> {
  // The version check runs alongside the reads; its clearer message wins when both fail.
  const versionCheck = client.checkServer();
  versionCheck.catch(() => {});
  const flowNames = [...new Set(entries.map((e) => e.flow))];
  const poolNames = [
    ...new Set(
      entries.map((e) => e.spec.work_pool?.name).filter((n): n is string =>
        typeof n === "string" && !hasPlaceholder(n)
      ),
    ),
  ];
  // Steps keep their Prefect variables and blocks for the worker: only the fields are resolved.
  const refs = templateReferences(
    entries.map(({ spec: { pull: _pull, build: _build, push: _push, ...fields } }) => fields),
  );
  const nothing = Promise.resolve([]);
  type Flow = { id: string; name: string };
  const reads = Promise.all([
    flowNames.length
      ? client.filterAll<Flow>("/flows/filter", { flows: { name: { any_: flowNames } } })
      : nothing as Promise<Flow[]>,
    flowNames.length
      ? client.filterAll<ServerDeployment>("/deployments/filter", {
        flows: { name: { any_: flowNames } },
      })
      : nothing as Promise<ServerDeployment[]>,
    prune
      ? client.filterAll<ServerDeployment>("/deployments/filter", {
        deployments: { tags: { all_: [ownerTag(project)] } },
      })
      : nothing as Promise<ServerDeployment[]>,
    poolNames.length
      ? client.filterAll<{ name: string }>("/work_pools/filter", {
        work_pools: { name: { any_: poolNames } },
      })
      : nothing as Promise<{ name: string }[]>,
    refs.variables.length
      ? client.filterAll<{ name: string; value: unknown }>("/variables/filter", {
        variables: { name: { any_: refs.variables } },
      })
      : nothing as Promise<{ name: string; value: unknown }[]>,
  ]);
  reads.catch(() => {});
  const version = await versionCheck;
  const [flows, deployments, owned, pools, variables] = await reads;
  const blocks = new Map<string, unknown>();
  await Promise.all(refs.blocks.map(async (key) => {
    const [type, name] = key.split("/");
    const { status, data } = await client.request<{ data: unknown }>(
      "GET",
      `/block_types/slug/${encodeURIComponent(type)}/block_documents/name/${
        encodeURIComponent(name)
      }?include_secrets=true`,
      undefined,
      { accept: [404] },
    );
    if (status === 200) blocks.set(key, data.data);
  }));

  const flowIds = new Map(flows.map((f) => [f.name, f.id]));
  const flowNameById = new Map(flows.map((f) => [f.id, f.name]));
  const unknownFlowIds = [...new Set(owned.map((d) => d.flow_id))]
    .filter((id) => !flowNameById.has(id));
  if (unknownFlowIds.length) {
    const more = await client.filterAll<Flow>("/flows/filter", {
      flows: { id: { any_: unknownFlowIds } },
    });
    more.forEach((f) => flowNameById.set(f.id, f.name));
  }
  const withFlow = (d: ServerDeployment) => ({ ...d, flow: flowNameById.get(d.flow_id) ?? "?" });
  return {
    version,
    flowIds,
    deployments: new Map(deployments.map((d) => [`${withFlow(d).flow}/${d.name}`, withFlow(d)])),
    owned: owned.map(withFlow),
    pools: new Set(pools.map((p) => p.name)),
    values: {
      env: (name) => Deno.env.get(name),
      variables: new Map(variables.map((v) => [v.name, v.value])),
      blocks,
    },
  };
}

// ─── Plan: comparing ─────────────────────────────────────────────────────────

export interface Change {
  field: string;
  before: unknown;
  after: unknown;
}

export type Action = "create" | "update" | "delete" | "noop";

export interface ScheduleOps {
  add: DesiredSchedule[];
  change: { id: string; slug: string; body: Json }[];
  remove: { id: string; slug: string | null }[];
}

export interface PlannedDeployment {
  flow: string;
  name: string;
  id: string | null;
  action: Action;
  changes: Change[];
  effects: string[];
  desired?: DesiredDeployment;
  /** Update: the PATCH body, changed fields only. */
  patch: Json;
  schedules: ScheduleOps;
}

/** Equality of JSON values with object keys in any order. */
export function sameJson(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== typeof b || a === null || b === null || typeof a !== "object") return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) {
    const other = b as unknown[];
    return a.length === other.length && a.every((v, i) => sameJson(v, other[i]));
  }
  const ak = Object.keys(a as Json).filter((k) => (a as Json)[k] !== undefined);
  const bk = Object.keys(b as Json).filter((k) => (b as Json)[k] !== undefined);
  return ak.length === bk.length &&
    ak.every((k) => sameJson((a as Json)[k], (b as Json)[k]));
}

const withoutNulls = (value: Json | null | undefined): Json =>
  Object.fromEntries(Object.entries(value ?? {}).filter(([, v]) => v !== null && v !== undefined));

/** The server's value of each field we own, in the shape of `DesiredDeployment.fields`. */
function serverFields(d: ServerDeployment): Json {
  return {
    entrypoint: d.entrypoint ?? null,
    path: d.path ?? null,
    description: d.description ?? null,
    version: d.version ?? null,
    tags: d.tags ?? [],
    parameters: d.parameters ?? {},
    parameter_openapi_schema: d.parameter_openapi_schema ?? EMPTY_PARAMETER_SCHEMA,
    enforce_parameter_schema: d.enforce_parameter_schema,
    pull_steps: d.pull_steps ?? null,
    work_pool_name: d.work_pool_name ?? null,
    work_queue_name: d.work_queue_name ?? null,
    job_variables: d.job_variables ?? {},
    concurrency_limit: d.global_concurrency_limit?.limit ?? null,
    concurrency_options: d.global_concurrency_limit ? d.concurrency_options ?? null : null,
  };
}

function sameField(field: string, desired: unknown, actual: unknown): boolean {
  switch (field) {
    case "tags":
      return sameJson([...desired as string[]].sort(), [...actual as string[]].sort());
    case "concurrency_options": {
      // The server fills in the default strategy; an unstated one means that default.
      const norm = (v: unknown) => withoutNulls({ collision_strategy: "ENQUEUE", ...v as Json });
      return desired === null && actual === null ||
        (desired === null
          ? sameJson(norm(actual), { collision_strategy: "ENQUEUE" })
          : sameJson(norm(desired), norm(actual)));
    }
    default:
      return sameJson(desired, actual);
  }
}

/** Whether a server schedule already is what the manifest asks, ignoring what it leaves unstated. */
function sameSchedule(desired: Json, actual: Json): boolean {
  const kind = ["cron", "interval", "rrule"].find((k) => desired[k] !== undefined);
  if (!kind || actual[kind] === undefined || actual[kind] === null) return false;
  if (desired.timezone !== undefined && desired.timezone !== actual.timezone) return false;
  switch (kind) {
    case "cron":
      return desired.cron === actual.cron && (desired.day_or ?? true) === (actual.day_or ?? true);
    case "interval":
      return Number(desired.interval) === Number(actual.interval) &&
        (desired.anchor_date === undefined ||
          Date.parse(String(desired.anchor_date)) === Date.parse(String(actual.anchor_date)));
    default: {
      // The server writes a DTSTART into rules that have none.
      const rule = String(actual.rrule);
      const wanted = String(desired.rrule);
      return wanted === rule ||
        (!/DTSTART/i.test(wanted) && rule.replace(/^DTSTART[^\n]*\n/i, "") === wanted);
    }
  }
}

/** What to send so the server's schedule becomes the desired one, keeping unstated parts. */
function scheduleBody(desired: DesiredSchedule, actual?: ServerSchedule): Json {
  const schedule = { ...desired.schedule };
  const kind = ["cron", "interval", "rrule"].find((k) => schedule[k] !== undefined);
  if (actual && actual.schedule[kind!] !== undefined) {
    if (schedule.timezone === undefined && actual.schedule.timezone) {
      schedule.timezone = actual.schedule.timezone;
    }
    if (kind === "interval" && schedule.anchor_date === undefined) {
      schedule.anchor_date = actual.schedule.anchor_date;
    }
  }
  const maxRuns = desired.max_scheduled_runs ?? actual?.max_scheduled_runs;
  return {
    slug: desired.slug,
    schedule,
    active: desired.active ?? actual?.active ?? true,
    // Always sent: the schedule PATCH resets absent parameters to {}.
    parameters: desired.parameters,
    ...(maxRuns ? { max_scheduled_runs: maxRuns } : {}),
  };
}

function planSchedules(
  desired: DesiredSchedule[],
  actual: ServerSchedule[],
): { ops: ScheduleOps; changes: Change[]; effects: string[] } {
  const ops: ScheduleOps = { add: [], change: [], remove: [] };
  const changes: Change[] = [];
  const effects: string[] = [];
  const unclaimed = new Set(actual);
  const claim = (match: (a: ServerSchedule) => boolean) => {
    const found = [...unclaimed].find(match);
    if (found) unclaimed.delete(found);
    return found;
  };
  const pairs: [DesiredSchedule, ServerSchedule | undefined][] = desired.map((d) => [
    d,
    claim((a) => a.slug === d.slug),
  ]);
  for (const pair of pairs) {
    const [d] = pair;
    // A renamed slug (`replaces`), then a slug-less schedule with the same timing, keep their IDs.
    pair[1] ??= (d.replaces ? claim((a) => a.slug === d.replaces) : undefined) ??
      claim((a) => a.slug === null && sameSchedule(d.schedule, a.schedule));
  }
  for (const [d, a] of pairs) {
    const label = `schedules[${d.slug}]`;
    if (!a) {
      ops.add.push(d);
      changes.push({ field: label, before: null, after: scheduleBody(d) });
      continue;
    }
    const body = scheduleBody(d, a);
    const diffs: Change[] = [];
    if (a.slug !== d.slug) diffs.push({ field: `${label}.slug`, before: a.slug, after: d.slug });
    if (!sameSchedule(d.schedule, a.schedule)) {
      diffs.push({ field: `${label}.schedule`, before: a.schedule, after: body.schedule });
    }
    if (d.active !== undefined && d.active !== a.active) {
      diffs.push({ field: `${label}.active`, before: a.active, after: d.active });
    }
    if (!sameJson(d.parameters, a.parameters ?? {})) {
      diffs.push({ field: `${label}.parameters`, before: a.parameters, after: d.parameters });
    }
    if (d.max_scheduled_runs !== undefined && d.max_scheduled_runs !== a.max_scheduled_runs) {
      diffs.push({
        field: `${label}.max_scheduled_runs`,
        before: a.max_scheduled_runs,
        after: d.max_scheduled_runs,
      });
    }
    if (diffs.length) {
      ops.change.push({ id: a.id, slug: d.slug, body });
      changes.push(...diffs);
    }
  }
  for (const a of unclaimed) {
    ops.remove.push({ id: a.id, slug: a.slug });
    changes.push({
      field: `schedules[${a.slug ?? a.id}]`,
      before: withoutNulls({ slug: a.slug, schedule: a.schedule, active: a.active }),
      after: null,
    });
    if (a.slug === null) {
      effects.push(
        `The slug-less schedule ${a.id} is deleted; its replacement gets a new ID.`,
      );
    }
  }
  return { ops, changes, effects };
}

const RUNS_DELETED =
  "Prefect deletes this deployment's future auto-scheduled runs; its scheduler re-creates them.";

/** Compares the desired deployments with the server's: the plan, as pure data. */
export function planDeployments(
  desired: DesiredDeployment[],
  state: ServerState,
  /** With --prune: which of this project's server deployments may be deleted. */
  prune: { selected: (d: { flow: string; name: string }) => boolean } | null,
): PlannedDeployment[] {
  const planned: PlannedDeployment[] = desired.map((want) => {
    const key = `${want.flow}/${want.name}`;
    const have = state.deployments.get(key);
    const base = { flow: want.flow, name: want.name, desired: want };
    if (!have) {
      return {
        ...base,
        id: null,
        action: "create",
        changes: [],
        effects: [],
        patch: {},
        schedules: { add: want.schedules, change: [], remove: [] },
      };
    }
    const actual = serverFields(have);
    const changes: Change[] = [];
    const effects: string[] = [];
    const patch: Json = {};
    for (const [field, value] of Object.entries(want.fields)) {
      if (sameField(field, value, actual[field])) continue;
      if (field === "job_variables" && sameJson(value, {})) {
        effects.push(
          "job_variables stay as they are: Prefect's API cannot clear them (it ignores {}). " +
            "Delete the deployment to reset them.",
        );
        continue;
      }
      changes.push({ field, before: actual[field], after: value });
      patch[field] = value;
    }
    if (patch.concurrency_limit !== undefined || patch.concurrency_options !== undefined) {
      patch.concurrency_limit = want.fields.concurrency_limit;
      patch.concurrency_options = want.fields.concurrency_options;
    }
    if (want.paused !== undefined && want.paused !== have.paused) {
      changes.push({ field: "paused", before: have.paused, after: want.paused });
      patch.paused = want.paused;
    }
    const schedules = planSchedules(want.schedules, have.schedules ?? []);
    changes.push(...schedules.changes);
    effects.push(...schedules.effects);
    const deletesRuns = Object.keys(patch).length > 0 || schedules.ops.change.length > 0 ||
      schedules.ops.remove.length > 0;
    if (deletesRuns) effects.unshift(RUNS_DELETED);
    return {
      ...base,
      id: have.id,
      action: changes.length ? "update" : "noop",
      changes,
      effects,
      patch,
      schedules: schedules.ops,
    };
  });
  if (prune) {
    const wanted = new Set(desired.map((d) => `${d.flow}/${d.name}`));
    for (const have of state.owned) {
      if (wanted.has(`${have.flow}/${have.name}`) || !prune.selected(have)) continue;
      planned.push({
        flow: have.flow,
        name: have.name,
        id: have.id,
        action: "delete",
        changes: [],
        effects: ["Deletes the deployment and every scheduled run of it that has not started."],
        patch: {},
        schedules: { add: [], change: [], remove: [] },
      });
    }
  }
  return planned;
}

// ─── Apply ───────────────────────────────────────────────────────────────────

export type Outcome = "created" | "updated" | "unchanged" | "deleted" | "failed";

export interface AppliedDeployment extends PlannedDeployment {
  result: Outcome;
  error?: string;
}

/** Runs tasks with at most `limit()` in flight; a lowered limit retires workers as they finish. */
async function inPool(tasks: (() => Promise<void>)[], limit: () => number): Promise<void> {
  let next = 0;
  const worker = async (index: number) => {
    while (next < tasks.length && index < limit()) await tasks[next++]();
  };
  await Promise.all(
    Array.from({ length: Math.min(limit(), tasks.length) }, (_, index) => worker(index)),
  );
}

/**
 * Carries out a plan: one POST per created deployment (plus its flow when new), one PATCH of
 * the changed fields per updated one, schedule rows one by one so their IDs survive. A failure
 * of one deployment does not stop the others; it is reported with what was done.
 */
export async function applyPlan(
  client: PrefectClient,
  plan: PlannedDeployment[],
  state: ServerState,
  concurrency: number,
  onDone: (result: AppliedDeployment) => void,
): Promise<AppliedDeployment[]> {
  const flowIds = new Map<string, Promise<string>>(
    [...state.flowIds].map(([name, id]) => [name, Promise.resolve(id)]),
  );
  const flowId = (name: string) => {
    if (!flowIds.has(name)) {
      // POST /flows/ is an upsert by name, safe to send again.
      flowIds.set(
        name,
        client.request<{ id: string }>("POST", "/flows/", { name }).then((r) => r.data.id),
      );
    }
    return flowIds.get(name)!;
  };

  client.writeConcurrency = concurrency;
  const results: AppliedDeployment[] = new Array(plan.length);
  await inPool(
    plan.map((item, index) => async () => {
      let result: AppliedDeployment;
      try {
        result = await applyOne(client, item, flowId);
      } catch (error) {
        const message = error instanceof PrefectApiError || error instanceof UserError
          ? error.message
          : `unexpected error: ${(error as Error)?.message ?? error}`;
        result = { ...item, result: "failed", error: client.redact(message) };
      }
      results[index] = result;
      onDone(result);
    }),
    // A busy server (SQLite answers 503 to concurrent writers) gets half the parallel writes
    // per complaint: retrying eight writers at once only wastes the backoff.
    () => Math.max(1, Math.floor(concurrency / 2 ** client.overloaded)),
  );
  return results;
}

async function applyOne(
  client: PrefectClient,
  item: PlannedDeployment,
  flowId: (name: string) => Promise<string>,
): Promise<AppliedDeployment> {
  const path = `/deployments/${item.id}`;
  switch (item.action) {
    case "noop":
      return { ...item, result: "unchanged" };
    case "delete":
      await client.request("DELETE", path, undefined, { accept: [404] });
      return { ...item, result: "deleted" };
    case "create": {
      const want = item.desired!;
      const id = await createDeployment(client, want, await flowId(want.flow));
      return { ...item, id, result: "created" };
    }
    case "update": {
      if (Object.keys(item.patch).length) await client.request("PATCH", path, item.patch);
      await applySchedules(client, item.id!, item.schedules);
      return { ...item, result: "updated" };
    }
  }
}

async function applySchedules(client: PrefectClient, id: string, ops: ScheduleOps) {
  const path = `/deployments/${id}/schedules`;
  // Removals first, so a slug freed by one schedule can be taken by another.
  for (const r of ops.remove) {
    await client.request("DELETE", `${path}/${r.id}`, undefined, { accept: [404] });
  }
  for (const c of ops.change) await client.request("PATCH", `${path}/${c.id}`, c.body);
  if (ops.add.length) {
    await client.request("POST", path, ops.add.map((s) => scheduleBody(s)), {
      resendAfterDrop: false,
    });
  }
}

/**
 * Creates with one POST. The POST is an upsert that would replace schedules, so it is never
 * sent blindly twice: after a lost connection the deployment is looked up first.
 */
async function createDeployment(
  client: PrefectClient,
  want: DesiredDeployment,
  flowId: string,
): Promise<string> {
  // POST /deployments/ drops max_scheduled_runs; such schedules go through the sub-resource.
  const inline = !want.schedules.some((s) => s.max_scheduled_runs !== undefined);
  const body = {
    name: want.name,
    flow_id: flowId,
    ...want.fields,
    paused: want.paused ?? false,
    schedules: inline ? want.schedules.map((s) => scheduleBody(s)) : [],
  };
  const byName = `/deployments/name/${encodeURIComponent(want.flow)}/${
    encodeURIComponent(want.name)
  }`;
  let id: string | undefined;
  for (let attempt = 1; id === undefined; attempt++) {
    try {
      id = (await client.request<{ id: string }>("POST", "/deployments/", body, {
        resendAfterDrop: false,
      })).data.id;
    } catch (error) {
      if (!(error instanceof ConnectionLost) || attempt >= 3) throw error;
      const found = await client.request<{ id: string }>("GET", byName, undefined, {
        accept: [404],
      });
      if (found.status === 200) id = found.data.id;
    }
  }
  if (!inline && want.schedules.length) {
    await applySchedules(client, id, { add: want.schedules, change: [], remove: [] });
  }
  return id;
}

// ─── Report ──────────────────────────────────────────────────────────────────

const useColor = () => !Deno.env.get("NO_COLOR") && Deno.stderr.isTerminal();

function paint(text: string, code: number): string {
  return useColor() ? `\x1b[${code}m${text}\x1b[0m` : text;
}

export function formatDiagnostic(d: Diagnostic): string {
  const where = d.line ? `${d.file}:${d.line}:${d.column}` : d.file;
  const label = d.severity === "error" ? paint("error", 31) : paint("warning", 33);
  return `${where}: ${label}: ${d.message} [${d.code}]`;
}

function githubAnnotation(d: Diagnostic): string {
  const escapeData = (s: string) =>
    s.replace(/%/g, "%25").replace(/\r/g, "%0D").replace(/\n/g, "%0A");
  const escapeProperty = (s: string) => escapeData(s).replace(/:/g, "%3A").replace(/,/g, "%2C");
  const props = [`file=${escapeProperty(d.file)}`];
  if (d.line) props.push(`line=${d.line}`, `col=${d.column}`);
  props.push(`title=${escapeProperty(d.code)}`);
  return `::${d.severity} ${props.join(",")}::${escapeData(d.message)}`;
}

function summary(result: ValidationResult): string {
  const errors = result.diagnostics.filter((d) => d.severity === "error").length;
  const warnings = result.diagnostics.length - errors;
  const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? "" : "s"}`;
  return `${result.valid ? "Valid" : "Invalid"}: ${
    plural(result.deployments.length, "deployment")
  } in ${plural(result.files.length, "file")}, ${plural(errors, "error")}, ${
    plural(warnings, "warning")
  }.`;
}

export function validationJson(result: ValidationResult): unknown {
  return {
    valid: result.valid,
    files: result.files,
    // Only with --env, so the contract's four keys stay as they are otherwise.
    ...(result.environment ? { environment: result.environment } : {}),
    deployments: result.deployments.map((d) => ({
      flow: d.flow,
      name: d.name,
      file: d.file.path,
      line: d.line,
      column: d.column,
      spec: d.spec,
    })),
    diagnostics: result.diagnostics.map((d) => ({
      severity: d.severity,
      file: d.file,
      line: d.line || null,
      column: d.column || null,
      path: d.path,
      code: d.code,
      message: d.message,
    })),
  };
}

async function runValidate(options: Options): Promise<number> {
  const result = await validate(options);
  if (options.format === "json") {
    console.log(JSON.stringify(validationJson(result), null, 2));
  } else if (options.format === "github") {
    result.diagnostics.forEach((d) => console.log(githubAnnotation(d)));
    console.log(summary(result));
  } else {
    result.diagnostics.forEach((d) => console.error(formatDiagnostic(d)));
    console.log(summary(result));
  }
  return result.valid ? EXIT_OK : EXIT_FAILURE;
}

function compact(value: unknown): string {
  const text = value === undefined ? "(none)" : JSON.stringify(value);
  return text.length > 160 ? `${text.slice(0, 157)}...` : text;
}

const SYMBOLS: Record<Action, string> = { create: "+", update: "~", delete: "-", noop: " " };

function countActions(items: { action: Action }[]) {
  const count = (a: Action) => items.filter((i) => i.action === a).length;
  return {
    create: count("create"),
    update: count("update"),
    delete: count("delete"),
    unchanged: count("noop"),
  };
}

export function planSummary(plan: PlannedDeployment[]): string {
  const c = countActions(plan);
  return `Plan: ${c.create} to create, ${c.update} to update, ${c.delete} to delete, ` +
    `${c.unchanged} unchanged.`;
}

function renderPlan(plan: PlannedDeployment[]): string[] {
  const lines: string[] = [];
  for (const item of plan) {
    if (item.action === "noop") continue;
    lines.push(`${SYMBOLS[item.action]} ${item.action.padEnd(6)}  ${item.flow}/${item.name}`);
    for (const c of item.changes) {
      lines.push(`      ${c.field}: ${compact(c.before)} → ${compact(c.after)}`);
    }
    for (const e of item.effects) lines.push(`      ! ${e}`);
  }
  if (!lines.length) lines.push("No changes: the server matches the manifests.");
  lines.push("", planSummary(plan));
  return lines;
}

export function applySummary(results: AppliedDeployment[]): string {
  const count = (o: Outcome) => results.filter((r) => r.result === o).length;
  const failed = count("failed");
  return `Apply: ${count("created")} created, ${count("updated")} updated, ${
    count("deleted")
  } deleted, ${count("unchanged")} unchanged${failed ? `, ${failed} failed` : ""}.`;
}

function resultLine(r: AppliedDeployment, width: number): string {
  const name = `${r.flow}/${r.name}`.padEnd(width);
  return r.result === "failed"
    ? `${name}  ${r.id ?? "-"}  failed (${r.action} not applied): ${r.error}`
    : `${name}  ${r.id}  ${r.result}`;
}

function syncJson(
  items: (PlannedDeployment | AppliedDeployment)[],
  client: PrefectClient,
  started: number,
): unknown {
  const failed = items.filter((i) => (i as AppliedDeployment).result === "failed").length;
  return {
    deployments: items.map((i) => ({
      flow: i.flow,
      name: i.name,
      id: i.id,
      action: i.action,
      changes: i.changes,
      effects: i.effects,
      ...("result" in i ? { result: i.result, ...(i.error ? { error: i.error } : {}) } : {}),
    })),
    summary: {
      ...countActions(items),
      ...(items.some((i) => "result" in i) ? { failed } : {}),
    },
    requests: { read: client.reads, write: client.writes },
    duration_ms: Math.round(performance.now() - started),
  };
}

// ─── Plan and apply: the commands ────────────────────────────────────────────

/** Hides credentials in everything printed once the client knows them. */
let redact = (text: string) => text;

const progress = (text: string) => console.error(redact(text));

function reportDiagnostics(diagnostics: Diagnostic[], format: Format) {
  for (const d of diagnostics) {
    if (format === "github") console.log(redact(githubAnnotation(d)));
    else console.error(redact(formatDiagnostic(d)));
  }
}

function confirmDeletions(plan: PlannedDeployment[], options: Options) {
  const doomed = plan.filter((p) => p.action === "delete");
  if (!doomed.length || options.yes) return;
  const list = doomed.map((d) => `${d.flow}/${d.name}`).join(", ");
  if (!Deno.stdin.isTerminal()) {
    throw new UserError(
      `--prune would delete ${doomed.length} deployment(s) (${list}); pass --yes to confirm ` +
        "(there is no terminal to ask).",
    );
  }
  const answer = prompt(`Delete ${doomed.length} deployment(s): ${list}? Type "yes" to confirm:`);
  if (answer?.trim().toLowerCase() !== "yes") {
    throw new UserError("Apply cancelled; nothing written.");
  }
}

/** Manifest parts `prefect deploy` acts on and deploy.ts does not (yet): said, never silent. */
function notSynced(entries: DeploymentEntry[]): Diagnostic[] {
  const found: Diagnostic[] = [];
  const warn = (entry: DeploymentEntry, path: PathSegment[], code: string, message: string) =>
    found.push(diagnosticAt(entry.file, path, code, message, "warning", "key"));
  const files = new Set<ManifestFile>();
  for (const entry of entries) {
    const here = ["deployments", entry.index];
    if (entry.spec.triggers?.length) {
      warn(
        entry,
        [...here, "triggers"],
        "triggers-not-synced",
        "deploy.ts does not create automations from `triggers` yet; they are left as they are on the server.",
      );
    }
    for (const key of ["build", "push"] as const) {
      if (entry.spec[key]?.length) {
        warn(
          entry,
          [...here, key],
          "steps-not-run",
          `deploy.ts does not run \`${key}\` steps; build and push images before apply.`,
        );
      }
    }
    const top = entry.file.data as DeployTsManifest;
    if (!files.has(entry.file) && (top.build?.length || top.push?.length)) {
      files.add(entry.file);
      warn(
        entry,
        [top.build?.length ? "build" : "push"],
        "steps-not-run",
        "deploy.ts does not run `build` or `push` steps; build and push images before apply.",
      );
    }
  }
  return found;
}

async function runSync(options: Options): Promise<number> {
  const started = performance.now();
  const validation = await validate(options);
  reportDiagnostics(validation.diagnostics, options.format);
  if (!validation.valid) {
    progress(summary(validation));
    return EXIT_FAILURE;
  }
  const selected = selectDeployments(validation.deployments, options.flows, options.names);
  const project = projectName([...new Set(validation.deployments.map((d) => d.file))]);
  if (options.prune && selected.length === 0) {
    throw new UserError(
      `--prune refuses to run when the manifests declare no deployment: it would delete every ` +
        `deployment of project "${project}".`,
    );
  }

  const settings = settingsFromEnvironment((name) => Deno.env.get(name), options.apiUrl);
  const client = new PrefectClient({ ...settings, onRetry: progress });
  redact = (text) => client.redact(text);
  if (options.wait > 0) await client.waitForHealth(options.wait, progress);
  progress(
    `Reading ${client.displayUrl} for ${selected.length} deployment(s) of project "${project}"`,
  );
  const state = await readServerState(client, selected, project, options.prune);

  reportDiagnostics(notSynced(selected), options.format);
  const problems: Diagnostic[] = [];
  const desired = desiredDeployments(selected, project, state.values, (d) => problems.push(d));
  for (const want of desired) {
    const pool = want.fields.work_pool_name;
    if (typeof pool === "string" && !state.pools.has(pool)) {
      problems.push(diagnosticAt(
        want.entry.file,
        ["deployments", want.entry.index, "work_pool", "name"],
        "missing-work-pool",
        `Work pool "${pool}" does not exist on ${client.displayUrl}. Create it ` +
          `(prefect work-pool create "${pool}" --type process) or fix the name.`,
      ));
    }
  }
  if (problems.length) {
    reportDiagnostics(problems, options.format);
    progress(`Stopped before any change: ${problems.length} error(s).`);
    return EXIT_FAILURE;
  }

  // --prune deletes only within the selection, when there is one.
  const pruneScope = selection(options.flows, options.names);
  const plan = planDeployments(
    desired,
    state,
    options.prune ? { selected: (d) => pruneScope.matches(d) } : null,
  );

  if (options.command === "plan") {
    if (options.format === "json") {
      console.log(redact(JSON.stringify(syncJson(plan, client, started), null, 2)));
    } else renderPlan(plan).forEach((line) => console.log(redact(line)));
    const pending = plan.some((p) => p.action !== "noop");
    return options.detailedExitcode && pending ? EXIT_CHANGES : EXIT_OK;
  }

  confirmDeletions(plan, options);
  const width = Math.max(0, ...plan.map((p) => `${p.flow}/${p.name}`.length));
  const results = await applyPlan(client, plan, state, options.concurrency, (r) => {
    if (options.format === "text") console.log(redact(resultLine(r, width)));
    else if (options.format === "github" && r.result === "failed") {
      console.log(redact(`::error title=apply failed::${r.flow}/${r.name}: ${r.error}`));
    }
  });
  if (options.format === "json") {
    console.log(redact(JSON.stringify(syncJson(results, client, started), null, 2)));
  } else {
    progress(
      `${client.reads + client.writes} requests (${client.reads} reads, ${client.writes} writes) ` +
        `in ${((performance.now() - started) / 1000).toFixed(1)} s`,
    );
    console.log(applySummary(results));
  }
  return results.some((r) => r.result === "failed") ? EXIT_FAILURE : EXIT_OK;
}

// ─── Inspect ─────────────────────────────────────────────────────────────────

/** `deploy inspect`: one flow's name and parameter schema, read from its source. */
function runInspect(entrypoint: string, format: Format): number {
  if (!entrypoint.includes(":") && !entrypoint.includes(".")) {
    throw new UsageError(
      `inspect: "${entrypoint}" is not an entrypoint; write path/file.py:function.`,
    );
  }
  const sources = new FlowSources();
  const found = sources.entrypoint(entrypoint);
  const { object } = parseEntrypoint(entrypoint);
  if (found.kind === "no-file") {
    throw new UserError(
      `No flow file for "${entrypoint}": looked for ${found.candidates.join(", ")}.`,
    );
  }
  if (found.kind === "unreadable") {
    throw new UserError(`Flow file "${found.file}" was not read: ${found.reason}.`);
  }
  const syntax = found.module.syntaxError;
  if (syntax) {
    throw new UserError(
      `${found.file}:${syntax.line}:${syntax.column}: Python syntax error; Prefect could not import this file either.`,
    );
  }
  const lookup = found.lookup;
  if (lookup.kind === "missing") {
    const near = didYouMean(object, [...found.module.functions.keys()]);
    throw new UserError(
      `Flow not found: function "${object}" is not defined at the top level of "${found.file}".${
        near ? ` Did you mean "${near}"?` : ""
      }`,
    );
  }
  if (lookup.kind === "not-a-flow") {
    throw new UserError(
      `${found.file}:${lookup.fn.line}: function "${object}" is not decorated with @flow.`,
    );
  }
  const flowName = lookup.kind === "flow" ? lookup.flowName : null;
  const schema = parameterSchema(found.module, lookup.fn);
  if (format === "json") {
    console.log(JSON.stringify(
      { flow_name: flowName, function: lookup.fn.name, parameter_openapi_schema: schema },
      null,
      2,
    ));
    return EXIT_OK;
  }
  if (lookup.kind === "dynamic-name") {
    console.error(
      `warning: the flow name is computed when "${found.file}" is imported; set flow_name in the manifest.`,
    );
  }
  console.log(
    `flow ${flowName ?? "(computed at import)"}  —  ${found.file}:${lookup.fn.line} ${
      lookup.fn.isAsync ? "async " : ""
    }def ${lookup.fn.name}`,
  );
  const properties = schema.properties as Record<string, Json>;
  const required = new Set((schema.required ?? []) as string[]);
  const rows = Object.entries(properties).map(([name, p]) => [
    name,
    typeLabel(p),
    required.has(name) ? "required" : "default" in p ? `= ${JSON.stringify(p.default)}` : "",
    typeof p.description === "string" ? p.description.split("\n")[0] : "",
  ]);
  if (!rows.length) console.log("  (no parameters)");
  const widths = [0, 1, 2].map((i) => Math.max(...rows.map((r) => r[i].length)));
  for (const row of rows) {
    console.log(
      `  ${row.map((cell, i) => i < 3 ? cell.padEnd(widths[i]) : cell).join("  ").trimEnd()}`,
    );
  }
  return EXIT_OK;
}

/** A parameter's type as a Python reader would write it: `list[str] | None`, `date-time`. */
function typeLabel(schema: Json): string {
  if (typeof schema.$ref === "string") return schema.$ref.split("/").pop()!;
  if (Array.isArray(schema.anyOf)) return (schema.anyOf as Json[]).map(typeLabel).join(" | ");
  if (Array.isArray(schema.enum)) return schema.enum.map((v) => JSON.stringify(v)).join(" | ");
  if ("const" in schema) return JSON.stringify(schema.const);
  switch (schema.type) {
    case "array": {
      const items = schema.prefixItems
        ? (schema.prefixItems as Json[]).map(typeLabel).join(", ")
        : typeLabel((schema.items ?? {}) as Json);
      return `${schema.prefixItems ? "tuple" : schema.uniqueItems ? "set" : "list"}[${items}]`;
    }
    case "object":
      return typeof schema.additionalProperties === "object"
        ? `dict[str, ${typeLabel(schema.additionalProperties as Json)}]`
        : "dict";
    case undefined:
      return "any";
    default:
      return typeof schema.format === "string" ? schema.format : String(schema.type);
  }
}

// ─── Init ────────────────────────────────────────────────────────────────────

/** `deploy init`: lib/init.ts decides what to write; validate checks the result. */
async function runInit(options: Options): Promise<number> {
  const sources = new FlowSources();
  await init({
    manifestDir: options.paths[0],
    project: options.project ?? projectName([]),
    workPool: options.workPool ?? "default",
    split: Boolean(options.split),
    yes: options.yes,
    schemaText: JSON.stringify(schema, null, 2) + "\n",
  }, {
    flowName: (entrypoint, flowName) => sources.flowName(entrypoint, flowName),
    check: async (paths) => summary(await validate({ ...options, command: "validate", paths })),
    ask: Deno.stdin.isTerminal() ? (question) => confirm(question) : undefined,
    refuse: (message) => {
      throw new UserError(message);
    },
    out: (line) => console.log(line),
    note: (line) => console.error(line),
  });
  return EXIT_OK;
}

// ─── Export ──────────────────────────────────────────────────────────────────

/** `deploy export`: lib/export.ts turns the server's deployments into manifests. */
async function runExport(options: Options): Promise<number> {
  const dir = options.paths[0].replace(/\/+$/, "") || ".";
  const existing = existsSync(dir)
    ? await validate({ ...options, command: "validate", paths: [dir], codeChecks: false })
    : undefined;
  const project = options.project ??
    projectName([...new Set(existing?.deployments.map((d) => d.file) ?? [])]);
  const settings = settingsFromEnvironment((name) => Deno.env.get(name), options.apiUrl);
  const client = new PrefectClient({ ...settings, onRetry: progress });
  redact = (text) => client.redact(text);
  if (options.wait > 0) await client.waitForHealth(options.wait, progress);
  await client.checkServer();
  const wanted = selection([], options.names);
  const found = await readForExport(client, (d) => !options.names.length || wanted.matches(d));
  if (wanted.unmatched().length) {
    throw new UserError(
      `No deployment on ${client.displayUrl} matches ${wanted.unmatched().join(", ")}.`,
    );
  }
  const sources = new FlowSources();
  const result = exportManifests(found.deployments, found.secrets, {
    flowName: (entrypoint) => sources.flowName(entrypoint),
    inferred: (entrypoint) => {
      const source = sources.flowFunction(entrypoint);
      if (!source) return undefined;
      const docstring = source.fn.docstring;
      return {
        schema: parameterSchema(source.module, source.fn),
        description: docstring ? cleandoc(docstring) : null,
      };
    },
  }, {
    project,
    manifestDir: dir,
    cwd: Deno.cwd(),
    declared: new Set(existing?.deployments.map((d) => `${d.flow}/${d.name}`) ?? []),
    exists: existsSync,
    source: client.displayUrl,
  });
  result.notes.forEach((note) => progress(note));
  if (result.refused.length) {
    throw new UserError(
      `Nothing exported: ${result.refused.join(" ")} Give the block a name, or move the value ` +
        "out of the deployment.",
    );
  }
  writeFiles(result.files.map((f) => ({ ...f, status: "create", what: "" })));
  for (const file of result.files) {
    console.log(`wrote ${file.path}  ${file.deployments.join(", ")}`);
  }
  const count = result.files.reduce((n, f) => n + f.deployments.length, 0);
  progress(
    count
      ? `Exported ${count} deployment(s) as project "${project}". Next: deploy plan shows each ` +
        "being taken over; deploy apply does it."
      : "Nothing to export.",
  );
  return EXIT_OK;
}

function existsSync(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

// ─── Entry point ─────────────────────────────────────────────────────────────

export async function main(argv: string[]): Promise<number> {
  try {
    const options = parseCommandLine(argv);
    switch (options.command) {
      case "help":
        console.log(HELP[options.helpTopic]);
        return EXIT_OK;
      case "version":
        console.log(`deploy ${VERSION}`);
        return EXIT_OK;
      case "schema":
        console.log(JSON.stringify(schema, null, 2));
        return EXIT_OK;
      case "validate":
        return await runValidate(options);
      case "plan":
      case "apply":
        return await runSync(options);
      case "inspect":
        return runInspect(options.paths[0], options.format);
      case "init":
        return await runInit(options);
      case "export":
        return await runExport(options);
    }
  } catch (error) {
    if (error instanceof UsageError) {
      console.error(`error: ${error.message}\nRun "deploy --help" for usage.`);
    } else if (
      error instanceof UserError || error instanceof PrefectApiError ||
      error instanceof SettingsError
    ) {
      console.error(redact(`error: ${error.message}`));
    } else if (error instanceof Deno.errors.NotCapable && /read access/.test(error.message)) {
      const path = error.message.match(/"([^"]+)"/)?.[1] ?? "a file";
      console.error(`error: Cannot read "${path}": ${READ_OUTSIDE}.`);
    } else if (error instanceof Deno.errors.NotCapable) {
      console.error(
        `error: ${
          sentence((error as Error).message)
        } Run with the permissions in deno.json's tasks.`,
      );
    } else {
      console.error(`error: internal error: ${(error as Error)?.message ?? error}`);
      const debug = Deno.permissions.querySync({ name: "env", variable: "DEPLOY_DEBUG" });
      if (debug.state === "granted" && Deno.env.get("DEPLOY_DEBUG")) {
        console.error((error as Error)?.stack);
      }
    }
    return EXIT_FAILURE;
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
