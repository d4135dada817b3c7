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
import type { Alias, Document, Node as YamlNode } from "yaml";
import {
  Ajv,
  type ErrorObject,
  type KeywordCxt,
  type Options as AjvOptions,
  type ValidateFunction,
} from "ajv";
import rrule from "rrule";
import schema from "./schema/deployments.schema.json" with { type: "json" };
import denoConfig from "./deno.json" with { type: "json" };
import {
  capabilitiesOf,
  type ClientSettings,
  ConnectionLost,
  objectShape,
  PrefectApiError,
  PrefectClient,
  type ServerCapabilities,
  SettingsError,
  settingsFromEnvironment,
  type Shape,
} from "./lib/prefect_client.ts";
import {
  findFlow,
  type FlowLookup,
  parsePythonModule,
  type PythonFunction,
  type PythonModule,
  type PythonSyntaxError,
} from "./lib/python_source.ts";
import { cleandoc, parameterSchema } from "./lib/parameter_schema.ts";
import { locateSpot, readPlainYaml, type Spot } from "./lib/plain_yaml.ts";
import { DeployLock, LockError } from "./lib/lock.ts";
import {
  canonicalJson,
  digest,
  looksLikeSavedPlan,
  parseSavedPlan,
  PLAN_FORMAT,
  PLAN_FORMAT_VERSION,
  planDifferences,
  PlanFileError,
  type SavedPlan,
} from "./lib/saved_plan.ts";
import type { YamlProblem } from "./lib/yaml_data.ts";
import {
  inspectPath,
  listDirectory,
  READ_OUTSIDE,
  readProjectFileSync,
} from "./lib/project_files.ts";
import {
  applyAutomations,
  AUTOMATION_TEMPLATE_ROOTS,
  automationName,
  type AutomationOp,
  type Automations,
  checkTriggers,
  deleteDeploymentAutomations,
  type DesiredAutomation,
  desiredAutomations,
  metricTriggerPaths,
  planAutomations,
  pruneAutomations,
  readMarkedAutomations,
  withNamedAutomations,
} from "./lib/automations.ts";
import {
  NATIVE_STEPS,
  RESERVED_KEYS,
  runStep,
  type StepContext,
  StepError,
  takeIgnoreCache,
} from "./lib/steps.ts";
import type {
  Deployment,
  DeployTsManifest,
  Schedule,
  SLA,
  Step,
  Steps,
  Trigger,
} from "./schema/types.ts";

export const VERSION: string = denoConfig.version;

// ─── Errors and exit codes ───────────────────────────────────────────────────

/** A failure the user can fix: printed as one line, exit 1, never a stack trace. */
export class UserError extends Error {}
/** A wrong command line: printed with a pointer to the command's `--help`. */
export class UsageError extends UserError {
  constructor(message: string, readonly command?: string) {
    super(message);
  }
}

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
  STEPS (run first, before anything is planned; the image steps use the docker CLI)
      --build-image            Run the build steps (docker build, shell scripts); their
                               outputs fill {{ step-id.key }} templates
      --push-image             Run the push steps (docker push)
                               Without them, a field filled by a step output keeps the
                               server's value, and a new deployment that needs one is an error
  SERVER
      --api-url URL            Prefect API URL (default: $PREFECT_API_URL)
      --wait SECONDS           Wait up to SECONDS for the API to answer /health first
  OWNERSHIP
      --adopt                  Take over declared deployments that another project or
                               environment owns (deployments nobody owns are adopted anyway,
                               shown as "adopt")
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

  Validates the manifests, reads the server's deployments and automations in a few filter
  requests, and lists per deployment: + create, ~ update (each changed field, before → after),
  > adopt (a deployment nobody owns yet), - delete (--prune), and the Prefect side effects of
  each change; under it, its triggers' automations the same way. Ends with a summary line.
  Writes nothing to the server and takes no lock.

OPTIONS
${SYNC_OPTIONS}  PLAN
      --prune                  Also plan deleting this project's deployments (in this
                               environment) that the manifests no longer declare
      --out FILE               Save the plan; "deploy apply FILE" applies exactly it
      --detailed-exitcode      Exit 2 when changes are pending, 0 when there are none
      --format FORMAT          text (default), json, or github
  -h, --help                   Show this help

EXIT STATUS
  0 no error (and, with --detailed-exitcode, nothing to change), 1 error, 2 changes pending

EXAMPLES
  deploy plan
  deploy plan --flow refinement --detailed-exitcode
  deploy plan -n 'refinement/*' --format json
  deploy plan --env prod --prune --out prod.plan      # review it, then: deploy apply prod.plan
  deploy plan --build-image              # builds the images (no push) to show their new tags
`,
  apply: `deploy apply — make the Prefect server match the manifests

USAGE
  deploy apply [PATH...] [options]
  deploy apply PLANFILE [options]

  Validates everything and checks every referenced work pool, template value and block first:
  any problem stops it before the first write. Then it creates what is missing (flow, then one
  POST), updates what differs (one PATCH of the changed fields; schedules row by row, keyed by
  slug, so their IDs survive) and leaves the rest alone: applying unchanged manifests writes
  nothing. Each trigger is an automation owned by its deployment, created, updated in place
  (its ID survives) or deleted to match. Prints "flow/name  <id>  created|updated|adopted|
  unchanged|deleted" per deployment (and one line per automation written) and a summary line
  last. Every deployment and automation written carries the ownership tag
  managed-by:deploy.ts/<project> (and deploy.ts/env:<name> with --env). While it writes, it
  holds a lock on the server for the project and environment: a second apply waits.

  With PLANFILE (from "deploy plan --out"), applies exactly that plan — same manifests,
  selection, environment and server — and refuses, writing nothing, if any of them moved.

OPTIONS
${SYNC_OPTIONS}      --concurrency N          Deployments written in parallel (default 8)
      --lock-timeout SECONDS   Wait this long for another apply's lock (default 300)
  APPLY
      --prune                  Delete this project's deployments (in this environment) that the
                               manifests no longer declare
      --yes                    Confirm --prune deletions without asking (needed without a terminal)
      --plan FILE              Same as giving PLANFILE
      --format FORMAT          text (default), json, or github
  -h, --help                   Show this help

EXIT STATUS
  0 everything applied, 1 any error (nothing is written when the manifests or the server's
  prerequisites are wrong; a failed write is reported with what was and was not applied)

EXAMPLES
  deploy apply
  deploy apply --wait 60                 # Fly.io release_command: the API may still be starting
  deploy apply --build-image --push-image   # CI: build and push the images, then apply
  deploy apply --flow refinement
  deploy apply --prune --yes --format json
  deploy apply prod.plan                 # the plan a reviewer approved, or nothing
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
  at the top of a manifest (or the URL in the schema's $id, where JSR serves this
  version), or map it onto prefect/*.yaml and prefect.yaml in .vscode/settings.json.
  Overlays take its part #/definitions/environment.

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
  job variables, concurrency, triggers, and every other value as the server holds it (which
  template made a value cannot be known). Fields equal to what deploy.ts would send anyway (its
  defaults, the flow's docstring and parameter schema read from source) are left out. A value
  from a secret block is written as a reference to the block, never as the value; one that
  cannot be (an unnamed block) stops export before anything is written. Deployments the
  manifests declare already are skipped, and no existing file is written over.
  Triggers are the automations whose one action runs the deployment (read in one listing);
  automations that do anything else, or share a name with another acting on it, are named in
  a note and left out. Paused deployments and switched-off triggers get a comment, not
  paused/enabled, so the UI keeps those switches.
  Then plan shows each exported deployment and automation being taken over (its ownership tag,
  slugs for schedules that had none) and nothing else; after one apply, "No changes".

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
  /** `--adopt`: take over deployments another project or environment owns. */
  adopt: boolean;
  /** `plan --out FILE`. */
  out?: string;
  /** `apply PLANFILE` / `apply --plan FILE`. */
  planFile?: string;
  lockTimeout: number;
  detailedExitcode: boolean;
  apiUrl?: string;
  /** Seconds to wait for /health; 0 = do not wait. */
  wait: number;
  concurrency: number;
  /** `--build-image`: run the manifests' build steps first. */
  buildImage: boolean;
  /** `--push-image`: run the manifests' push steps first. */
  pushImage: boolean;
  /** init and export: the manifests' top-level name; init: the work pool, split prefect.yaml. */
  project?: string;
  workPool?: string;
  split?: boolean;
}

const COMMANDS = ["validate", "plan", "apply", "inspect", "schema", "init", "export"] as const;

/**
 * Parses the command line. `callerDir`: the directory the user typed it in when that is not the
 * working directory (`deno task` runs in the project root), so relative PATHs mean what they typed.
 */
export function parseCommandLine(argv: string[], callerDir?: string): Options {
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
  const usage = (message: string) => new UsageError(message, command);
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
    adopt: { type: "boolean" },
    "build-image": { type: "boolean" },
    "push-image": { type: "boolean" },
  } as const;
  const optionsByCommand = {
    validate: input,
    plan: { ...sync, "detailed-exitcode": { type: "boolean" }, out: { type: "string" } },
    apply: {
      ...sync,
      yes: { type: "boolean" },
      concurrency: { type: "string" },
      plan: { type: "string" },
      "lock-timeout": { type: "string" },
    },
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
    const unknown = /^Unknown option '([^']+)'/.exec((error as Error).message)?.[1];
    throw usage(
      unknown
        ? unknownOption(command, unknown, optionsByCommand)
        : `${command}: ${cleanParseArgsMessage((error as Error).message)}`,
    );
  }
  const values = parsed.values as Record<string, unknown>;
  if (values.help) return { ...defaultOptions(), command: "help", helpTopic: command };
  const format = (values.format as string | undefined) ?? "text";
  if (!["text", "json", "github"].includes(format)) {
    throw usage(`--format must be text, json or github, not "${format}".`);
  }
  if (command === "inspect") {
    if (parsed.positionals.length !== 1) {
      throw usage("inspect: give one ENTRYPOINT, e.g. flows/etl.py:etl.");
    }
    if (format === "github") throw usage("inspect: --format must be text or json.");
  }
  const typed = (path: string) => {
    if (command !== "inspect") return fromCallerDir(path, callerDir);
    // inspect's ENTRYPOINT names a file the same way (`path/file.py:function`); a module does not.
    const file = path.lastIndexOf(".py:") + ".py".length;
    return file > 2 ? fromCallerDir(path.slice(0, file), callerDir) + path.slice(file) : path;
  };
  // export's positionals are deployment patterns; its one PATH is where it writes.
  const positionals = command === "export" ? [] : parsed.positionals;
  const paths = [...positionals, ...[values["manifest-dir"] ?? []].flat() as string[]].map(typed);
  if (values.plan !== undefined && paths.length) {
    throw usage("apply: a saved plan (--plan) brings its own manifests; drop the PATHs.");
  }
  const env = values.env as string | undefined;
  if (env !== undefined && !/^[\w.-]+$/.test(env)) {
    throw usage(`--env must be a name such as dev or prod, not "${env}".`);
  }
  const apiUrl = values["api-url"] as string | undefined;
  if (apiUrl !== undefined && !/^https?:\/\/./.test(apiUrl)) {
    throw usage(`--api-url must be an http:// or https:// URL, not "${apiUrl}".`);
  }
  const wait = values.wait === undefined ? 0 : Number(values.wait);
  if (!Number.isFinite(wait) || wait < 0) {
    throw usage(`--wait must be a number of seconds, not "${values.wait}".`);
  }
  const lockTimeout = values["lock-timeout"] === undefined ? 300 : Number(values["lock-timeout"]);
  if (!Number.isFinite(lockTimeout) || lockTimeout < 0) {
    throw new UsageError(
      `--lock-timeout must be a number of seconds, not "${values["lock-timeout"]}".`,
    );
  }
  const out = values.out as string | undefined;
  if (out !== undefined && /\.ya?ml$/i.test(out)) {
    throw new UsageError(
      `--out "${out}" would look like a manifest; name the plan e.g. prod.plan.`,
    );
  }
  const concurrency = values.concurrency === undefined ? 8 : Number(values.concurrency);
  if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 64) {
    throw usage(
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
    adopt: Boolean(values.adopt),
    out,
    planFile: values.plan as string | undefined,
    lockTimeout,
    detailedExitcode: Boolean(values["detailed-exitcode"]),
    apiUrl,
    wait,
    concurrency,
    buildImage: Boolean(values["build-image"]),
    pushImage: Boolean(values["push-image"]),
    project: values.project as string | undefined,
    workPool: values["work-pool"] as string | undefined,
    split: Boolean(values.split),
  };
}

/**
 * `deno task deploy` passes Deno's INIT_CWD, the directory the task was typed in, as
 * DEPLOY_CALLER_DIR. Only a directory inside the project root counts (an INIT_CWD inherited
 * from an outer tool may point anywhere).
 */
function callerDirectory(): string | undefined {
  const variable = "DEPLOY_CALLER_DIR";
  if (Deno.permissions.querySync({ name: "env", variable }).state !== "granted") return undefined;
  const dir = Deno.env.get(variable)?.replace(/\/+$/, "");
  if (!dir) return undefined;
  const root = Deno.cwd();
  return dir !== root && dir.startsWith(`${root}/`) ? dir : undefined;
}

/** A relative PATH typed in `callerDir`, as a path from the working directory. */
function fromCallerDir(path: string, callerDir: string | undefined): string {
  if (!callerDir || path.startsWith("/")) return path;
  const root = Deno.cwd();
  const segments: string[] = [];
  for (const part of `${callerDir.slice(root.length + 1)}/${path}`.split("/")) {
    if (part === "..") {
      if (segments.length && segments.at(-1) !== "..") segments.pop();
      else segments.push("..");
    } else if (part && part !== ".") segments.push(part);
  }
  return segments.join("/") || ".";
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
    adopt: false,
    lockTimeout: 300,
    detailedExitcode: false,
    wait: 0,
    concurrency: 8,
    buildImage: false,
    pushImage: false,
  };
}

/** An option this command does not take: the one it most likely means, or who takes it. */
function unknownOption(
  command: string,
  option: string,
  optionsByCommand: Record<string, Record<string, { type: string; short?: string }>>,
): string {
  const flags = (c: string) =>
    Object.entries(optionsByCommand[c]).flatMap(([long, o]) => [
      `--${long}`,
      ...(o.short ? [`-${o.short}`] : []),
    ]);
  const owners = Object.keys(optionsByCommand).filter((c) => flags(c).includes(option));
  const bare = (flag: string) => flag.replace(/^-+/, "");
  // One letter is too little to guess from.
  const guess = bare(option).length > 1
    ? didYouMean(bare(option), flags(command).map(bare))
    : undefined;
  const hint = owners.length
    ? ` It is an option of ${listed(owners, "and")}.`
    : guess
    ? ` Did you mean "${flags(command).find((f) => bare(f) === guess)}"?`
    : "";
  return `${command}: unknown option "${option}".${hint}`;
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
/**
 * Values aliases and merge keys may add. 2,000 deployments sharing a 60-value `<<: *base` add
 * 120,000; a billion-laughs file adds billions and is refused before anything is built.
 */
export const MAX_ALIAS_VALUES = 250_000;

export interface ManifestFile {
  path: string;
  text: string;
  /** The full parser's tree; or, for plain YAML, `spots` (where each key and value is). */
  doc?: Document;
  spots?: Spot;
  lineCounter: LineStarts;
  /** The document as plain data, aliases and merge keys resolved; undefined when unreadable. */
  data?: unknown;
  /** The node each alias refers to (resolved once, for locating values through aliases). */
  aliases?: Map<Alias, YamlNode>;
}

/**
 * Expands PATH arguments into manifest files, sorted, each once. A `*.yaml` entry of a directory
 * that cannot be read as a manifest (a broken or outside symlink, a FIFO, a directory) is
 * reported, never skipped: --prune would take its deployments for undeclared.
 */
function discoverManifests(paths: string[], report: (d: Diagnostic) => void): string[] {
  const found = new Set<string>();
  const cannotRead = (path: string, code: string, reason: string) =>
    report(fileDiagnostic(path, code, `Cannot read "${path}": ${reason}.`));
  for (const path of paths) {
    const info = inspectPath(path);
    if (info.kind === "missing") {
      cannotRead(path, "path-not-found", info.reason);
      continue;
    }
    if (info.kind === "unreadable") {
      cannotRead(path, "path-unreadable", info.reason);
      continue;
    }
    if (info.kind === "file") {
      found.add(path);
      continue;
    }
    const entries = listDirectory(path);
    if (!Array.isArray(entries)) {
      cannotRead(path, "path-unreadable", entries.reason);
      continue;
    }
    const inDir: string[] = [];
    for (const { name, info } of entries) {
      if (!/\.ya?ml$/i.test(name)) continue;
      const at = `${path.replace(/\/+$/, "")}/${name}`;
      if (info.kind === "file") inDir.push(at);
      else {
        cannotRead(
          at,
          "path-unreadable",
          info.kind === "directory" ? "it is a directory, not a manifest file" : info.reason,
        );
      }
    }
    if (inDir.length === 0 && !entries.some((e) => /\.ya?ml$/i.test(e.name))) {
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

/** Where each line starts, to turn offsets into 1-based lines and columns. */
class LineStarts {
  readonly starts: number[] = [];

  addNewLine(offset: number) {
    this.starts.push(offset);
  }

  linePos(offset: number): { line: number; col: number } {
    let [low, high] = [0, this.starts.length - 1];
    while (low < high) {
      const mid = (low + high + 1) >> 1;
      if (this.starts[mid] <= offset) low = mid;
      else high = mid - 1;
    }
    return { line: low + 1, col: offset - (this.starts[low] ?? 0) + 1 };
  }
}

/**
 * The full YAML reader (the `yaml` package and lib/yaml_data.ts), loaded the first time a
 * manifest is not plain YAML: most projects never need it, and loading it cost a fifth of a
 * plain project's whole `validate`. Every YAML tree deploy.ts holds comes from it, so code
 * given a tree may use it.
 */
let fullYaml:
  | { yaml: typeof import("yaml"); data: typeof import("./lib/yaml_data.ts") }
  | undefined;

/** Every document in `text`, as the full parser reads manifests. */
export async function parseFullYaml(text: string): Promise<Document.Parsed[]> {
  fullYaml ??= { yaml: await import("yaml"), data: await import("./lib/yaml_data.ts") };
  const docs = fullYaml.yaml.parseAllDocuments(text, {
    uniqueKeys: true,
    merge: true,
    prettyErrors: false,
    strict: true,
  });
  return Array.isArray(docs) ? docs : [];
}

/** Reads and parses one manifest; every problem becomes a diagnostic, never an exception. */
export async function loadManifest(
  path: string,
  report: (d: Diagnostic) => void,
): Promise<ManifestFile> {
  const lineCounter = new LineStarts();
  const file: ManifestFile = { path, text: "", lineCounter };
  const at = (offset: number, code: string, message: string, severity: Severity = "error") => {
    const { line, col } = lineCounter.linePos(offset);
    report({ severity, file: path, line, column: col, path: "", code, message });
  };

  // Read synchronously, as flow sources are: each awaited file operation is a round trip to a
  // worker thread, and for 100 manifests those waits were most of the time spent loading them.
  const read = readProjectFileSync(path, MAX_MANIFEST_BYTES);
  if (read.kind === "too-large") {
    report(fileDiagnostic(
      path,
      "file-too-large",
      `File is ${(read.size / 1024 / 1024).toFixed(1)} MB; manifests larger than ${
        MAX_MANIFEST_BYTES / 1024 / 1024
      } MB are refused.`,
    ));
    return file;
  }
  if (read.kind !== "read") {
    const code = read.kind === "missing" ? "path-not-found" : "path-unreadable";
    report(fileDiagnostic(path, code, `Cannot read "${path}": ${read.reason}.`));
    return file;
  }
  const bytes = read.bytes;
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
  // The scan for a tab is cheap; the line-by-line pattern only runs when there is one.
  const tabIndent = text.includes("\t") ? /^ *\t/m.exec(text) : null;
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

  // Most manifests are plain YAML, which lib/plain_yaml.ts reads many times faster; the rest,
  // and anything malformed, goes to the full parser, whose errors are reported.
  const plain = readPlainYaml(text, MAX_NESTING);
  if (plain) {
    file.spots = plain.spots;
    file.data = plain.data;
    return file;
  }

  const documents = await parseFullYaml(text);
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
  const resolved = fullYaml!.data.yamlData(doc, text, {
    maxAliasValues: MAX_ALIAS_VALUES,
    maxDepth: MAX_NESTING,
  });
  file.aliases = resolved.aliases;
  for (const problem of resolved.problems) {
    const [code, message, offset = problem.offset] = yamlProblem(problem, text);
    at(offset, code, message);
  }
  file.data = resolved.data;
  return file;
}

/** The code, message (and a better offset) of a problem found turning the YAML into data. */
function yamlProblem(problem: YamlProblem, text: string): [string, string, number?] {
  switch (problem.kind) {
    case "collection-key":
      return text.startsWith("{{", problem.offset - 1)
        ? [
          "yaml-syntax",
          "Unquoted template: YAML reads `{{ ... }}` as a nested mapping. Put it in quotes.",
          problem.offset - 1,
        ]
        : ["yaml-syntax", "A mapping or list used as a key; Prefect's YAML reader refuses it."];
    case "undefined-alias":
      return [
        "undefined-alias",
        `Alias "*${problem.name}" refers to no anchor defined before it.`,
      ];
    case "recursive-alias":
      return [
        "recursive-alias",
        `Alias "*${problem.name}" is inside the value it refers to; that value would contain ` +
        "itself, which JSON cannot hold.",
      ];
    case "merge-source":
      return ["merge-source", "A merge key (`<<`) takes a mapping or a list of mappings."];
    case "too-many-values":
      return [
        "alias-limit",
        `Aliases expand to too much data (more than ${problem.limit.toLocaleString("en")} ` +
        "values); write the repeated parts out where they differ, or share fewer of them.",
      ];
    case "too-deep":
      return ["nesting-too-deep", `Nesting deeper than ${problem.limit} levels is refused.`];
    case "unsafe-integer":
      return [
        "integer-precision",
        `Integer ${problem.text} cannot be carried exactly: deploy.ts holds numbers as 64-bit ` +
        `floats, exact only up to ±${Number.MAX_SAFE_INTEGER}, and would send a rounded ` +
        "value. Quote it to pass it as a string.",
      ];
    case "non-finite":
      return [
        "invalid-number",
        `${problem.text} is not a number JSON can carry; give a finite number.`,
      ];
  }
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

/**
 * Follows a data path through the YAML tree, through aliases and merge keys. `aliases` (from
 * loading) saves a scan of the document per alias.
 */
export function locate(
  doc: Document,
  path: PathSegment[],
  aliases?: Map<Alias, YamlNode>,
): Located {
  const { isAlias } = fullYaml!.yaml;
  const resolve = (alias: Alias) =>
    (aliases ? aliases.get(alias) : alias.resolve(doc)) as YamlNode | undefined;
  let current: Located = { value: doc.contents ?? undefined };
  for (const segment of path) {
    let node = current.value;
    if (node && isAlias(node)) node = resolve(node);
    if (!node) return current;
    const next = childOf(resolve, node, segment);
    if (!next) return current;
    current = next;
  }
  return current;
}

function childOf(
  resolve: (alias: Alias) => YamlNode | undefined,
  node: YamlNode,
  segment: PathSegment,
): Located | undefined {
  const { isAlias, isMap, isScalar, isSeq } = fullYaml!.yaml;
  const { isMergeKey } = fullYaml!.data;
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
    if (!isMergeKey(pair.key)) continue;
    const value = isAlias(pair.value) ? resolve(pair.value) : pair.value;
    const sources = isSeq(value) ? value.items : [value];
    for (const source of sources) {
      const target = isAlias(source) ? resolve(source) : source;
      if (target && isMap(target)) {
        const found = childOf(resolve, target as YamlNode, segment);
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
  let offset: number;
  if (file.spots) {
    const spot = locateSpot(file.spots, path);
    offset = prefer === "key" ? spot.key ?? spot.value : spot.value;
  } else if (file.doc) {
    const found = locate(file.doc, path, file.aliases);
    const node = prefer === "key" ? found.key ?? found.value : found.value ?? found.key;
    offset = node?.range?.[0] ?? 0;
  } else return { line: 1, column: 1 };
  const { line, col } = file.lineCounter.linePos(offset);
  return { line, column: col };
}

// ─── Validate: the JSON Schema ───────────────────────────────────────────────

export const SCHEMA_ID = schema.$id;

/**
 * The schema as validate compiles it: without the rules that restate, for editors, checks
 * validate makes itself with more precise messages — exactly one of cron/interval/rrule
 * (`schedule-kind`), timezone case (`invalid-timezone`), removed and unknown Prefect steps
 * (`removed-step`, `unknown-step`) — so that no problem is reported twice.
 */
const validationSchema = (() => {
  const copy = structuredClone(schema) as unknown as {
    definitions: {
      schedule_kind: object;
      schedule: { properties: { timezone: { pattern?: string } } };
      step: { patternProperties: Record<string, object> };
    };
  };
  const { schedule, step } = copy.definitions;
  copy.definitions.schedule_kind = {};
  delete schedule.properties.timezone.pattern;
  for (const pattern of Object.keys(step.patternProperties)) {
    if (pattern.startsWith("^prefect")) step.patternProperties[pattern] = {};
  }
  return copy as unknown as SchemaNode & { definitions: Record<string, SchemaNode> };
})();

/** Editor-only keywords the schema carries; registered so Ajv's strict mode accepts them. */
export const EDITOR_KEYWORDS = [
  "markdownDescription",
  "defaultSnippets",
  "errorMessage",
  "patternErrorMessage",
];

/**
 * `deprecationMessage` marks a key Prefect ignores or no longer reads where it is written
 * (`job_variables` in a deployment, Prefect 2 keys). Editors show its message as an error
 * wherever the key appears, so validate fails it too and prints the same message.
 */
export const DEPRECATION_KEYWORD = {
  keyword: "deprecationMessage",
  schemaType: "string",
  // Generated code, not a function, so that `deno task validators` can compile it ahead of time.
  code: (cxt: KeywordCxt): void => cxt.fail(),
} as const;

/** The Ajv that compiles the schema: here for its parts, ahead of time by `deno task validators`. */
export function manifestAjv(options: AjvOptions = {}): Ajv {
  const instance = new Ajv({ allErrors: true, verbose: true, strict: true, ...options });
  for (const keyword of EDITOR_KEYWORDS) instance.addKeyword(keyword);
  instance.addKeyword(DEPRECATION_KEYWORD);
  instance.addSchema(validationSchema);
  return instance;
}

let ajvInstance: Ajv | undefined;
const ajv = () => ajvInstance ??= manifestAjv();

/** Names the schema compiled ahead of time (FNV-1a of its JSON); another digest means stale. */
export function schemaDigest(): string {
  const text = JSON.stringify(validationSchema);
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) hash = Math.imul(hash ^ text.charCodeAt(i), 0x01000193);
  return (hash >>> 0).toString(16).padStart(8, "0");
}

// Compiling the schema costs more than validating 1,000 deployments with it, so
// schema/validators.js holds it compiled (`deno task validators`). A stale or unreadable copy
// is passed over for a compile here; tests/validators_test.ts fails until it is regenerated.
const precompiled = await import("./schema/validators.js").then(
  (generated) => generated.SCHEMA_DIGEST === schemaDigest() ? generated : undefined,
  () => undefined,
);

const validators = new WeakMap<object, ValidateFunction>();

/** A validator for the whole schema or for one part of it (an anyOf branch, to explain it). */
function validatorFor(part: SchemaNode): ValidateFunction {
  let fn = validators.get(part);
  if (!fn) {
    fn = part === validationSchema
      ? precompiled?.validate ?? ajv().getSchema(SCHEMA_ID)!
      : part === validationSchema.definitions.environment && precompiled
      ? precompiled.environment
      : ajv().compile({ ...part, definitions: validationSchema.definitions });
    validators.set(part, fn);
  }
  return fn;
}

interface SchemaProblem {
  path: PathSegment[];
  at: "key" | "value";
  code: string;
  message: string;
  /** What the problem leaves unusable when that is not `path` (a missing key: the key). */
  subject?: PathSegment[];
}

/** Validates data against the schema (or a part of it) and explains each failure plainly. */
export function schemaProblems(
  data: unknown,
  part: SchemaNode = validationSchema,
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
  patternErrorMessage?: string;
  deprecationMessage?: string;
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

function explain(e: ErrorObject, base: PathSegment[]): SchemaProblem {
  const path = [...base, ...pointerToPath(e.instancePath)];
  const parent = (e.parentSchema ?? {}) as SchemaNode;
  const custom = parent.errorMessage;
  switch (e.keyword) {
    case "additionalProperties": {
      const key = String(e.params.additionalProperty);
      if (isStep(e)) return notAStep(key, path);
      const context = parent.title ?? "";
      // Keys marked as misplaced are known, but never the right guess.
      const known = Object.entries(parent.properties ?? {})
        .filter(([, p]) => !p.deprecationMessage)
        .map(([k]) => k);
      const guess = didYouMean(key, known);
      return {
        path: [...path, key],
        at: "key",
        code: "unknown-key",
        message: `Unknown key "${key}" in ${describeContext(context)}.${
          guess ? ` Did you mean "${guess}"?` : ""
        }`,
      };
    }
    case "deprecationMessage":
      return { path, at: "key", code: "unknown-key", message: parent.deprecationMessage! };
    case "required":
      return {
        path,
        subject: [...path, String(e.params.missingProperty)],
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
  const pattern = e.keyword === "pattern" ? parent.patternErrorMessage : undefined;
  if (pattern ?? custom) {
    return {
      path,
      at: "value",
      code: "invalid-value",
      message: `${pattern ?? custom} Got ${describeValue(e.data)}.`,
    };
  }
  return { path, at: "value", code: "invalid-value", message: sentence(e.message ?? e.keyword) };
}

function notAStep(key: string, path: PathSegment[]): SchemaProblem {
  return {
    path: [...path, key],
    at: "key",
    code: "step-shape",
    message:
      `"${key}" is not a step: a step's key is the import path of its function, like prefect.deployments.steps.git_clone.`,
  };
}

function describeContext(title: string): string {
  const names: Record<string, string> = {
    "deploy.ts manifest": "the manifest's top level",
    Deployment: "a deployment",
    "Work pool": "`work_pool`",
    Schedule: "a schedule",
    Trigger: "a trigger",
    "Child trigger": "a child trigger",
    "Metric query": "`metric`",
    SLA: "an SLA",
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

/** Validators of one flow parameter's schema, compiled once each; an Error when it cannot be. */
const parameterValidators = new Map<string, ValidateFunction | Error>();
let parameterAjv: Ajv | undefined;

export function parameterValidator(
  property: Json,
  definitions: Json | undefined,
): ValidateFunction | Error {
  const schema = { ...property, ...(definitions ? { definitions } : {}) };
  const key = JSON.stringify(schema);
  let validator = parameterValidators.get(key);
  if (!validator) {
    // Prefect's keywords (`position`) and later drafts' (`prefixItems`) are not Ajv's: ignored.
    // Checking each schema against the meta-schema first would cost more than all the checks;
    // a schema Ajv cannot compile says so instead.
    parameterAjv ??= new Ajv({ strict: false, validateFormats: false, validateSchema: false });
    try {
      validator = parameterAjv.compile(schema);
    } catch (error) {
      validator = error as Error;
    }
    parameterValidators.set(key, validator);
  }
  return validator;
}

/**
 * Whether a schema of JSON types alone — `{"type": "integer"}`, or an `anyOf` of such, as most
 * flows' parameters are — accepts `value`, decided without compiling it: true only when Ajv
 * would agree; anything else, a mismatch included, is left to Ajv.
 */
export function plainTypesAccept(schema: unknown, value: unknown): boolean {
  if (!isMapping(schema)) return false;
  const keys = Object.keys(schema).filter((key) => !SCHEMA_ANNOTATIONS.has(key));
  if (keys.length !== 1) return false;
  if (keys[0] === "anyOf") {
    return Array.isArray(schema.anyOf) && schema.anyOf.some((s) => plainTypesAccept(s, value));
  }
  if (keys[0] !== "type") return false;
  return [schema.type].flat().some((type) => {
    switch (type) {
      case "string":
        return typeof value === "string";
      case "integer":
        return Number.isInteger(value);
      case "number":
        return Number.isFinite(value);
      case "boolean":
        return typeof value === "boolean";
      case "null":
        return value === null;
      case "array":
        return Array.isArray(value);
      case "object":
        return isMapping(value);
      default:
        return false;
    }
  });
}
/** Keywords that accept everything (formats, as the parameter validators do not check them). */
const SCHEMA_ANNOTATIONS = new Set(["title", "description", "position", "default", "format"]);

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

/**
 * Where the schema found a manifest wrong, so that each meaning check runs whenever its own input
 * is right: one mistake hides only the checks that read the broken value.
 */
export class SchemaVerdict {
  /** Paths the schema found wrong, as `pathKey`s. */
  #broken = new Set<string>();
  /** Every path that has a broken path at or below it. */
  #containsBroken = new Set<string>();
  /** Unknown keys by the path of the mapping they are in. */
  #unknownKeys = new Map<string, string[]>();

  constructor(problems: SchemaProblem[]) {
    for (const p of problems) {
      const path = p.subject ?? p.path;
      this.#broken.add(pathKey(path));
      for (let n = 0; n <= path.length; n++) this.#containsBroken.add(pathKey(path.slice(0, n)));
      if (p.code === "unknown-key") {
        const parent = pathKey(path.slice(0, -1));
        this.#unknownKeys.set(parent, [
          ...this.#unknownKeys.get(parent) ?? [],
          String(path.at(-1)),
        ]);
      }
    }
  }

  /** Nothing is wrong at `path`, above it or inside it. */
  valid(path: PathSegment[]): boolean {
    return !this.#broken.size || this.shaped(path) && !this.#containsBroken.has(pathKey(path));
  }

  /** The value at `path` has its type and shape, though parts inside it may still be wrong. */
  shaped(path: PathSegment[]): boolean {
    if (!this.#broken.size) return true;
    for (let n = 0; n <= path.length; n++) {
      if (this.#broken.has(pathKey(path.slice(0, n)))) return false;
    }
    return true;
  }

  /** The key at `path` is one the schema does not know (its value is read by no check). */
  unknownKey(path: PathSegment[]): boolean {
    if (!this.#unknownKeys.size) return false;
    return this.#unknownKeys.get(pathKey(path.slice(0, -1)))?.includes(String(path.at(-1))) ??
      false;
  }

  /**
   * Whether `key` is truly left out of the mapping at `path`: absent, and no unknown key beside
   * it could be that key misspelt or misplaced (`cronn`, `work_pool_name`).
   */
  leftOut(mapping: Record<string, unknown>, path: PathSegment[], key: string): boolean {
    if (mapping[key] !== undefined || !this.shaped(path)) return false;
    return !this.#unknownKeys.size ||
      !this.#unknownKeys.get(pathKey(path))?.some((written) => resembles(written, key));
  }
}

const pathKey = (path: PathSegment[]) => path.join("\u0000");

function resembles(written: string, key: string): boolean {
  return written.includes(key) || key.includes(written) || didYouMean(written, [key]) === key;
}

const isMapping = (value: unknown): value is Record<string, unknown> =>
  value !== null && typeof value === "object" && !Array.isArray(value);

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

const CRON_FIELDS: { name: string; min: number; max: number; names?: string[] }[] = [
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
  for (let i = 0; i < fields.length; i++) {
    const problem = cronFieldProblem(fields[i], CRON_FIELDS[i], i);
    if (problem) return `${CRON_FIELDS[i].name} field "${fields[i]}": ${problem}`;
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

const MONTH_NAMES = [
  "January",
  "February",
  "March",
  "April",
  "May",
  "June",
  "July",
  "August",
  "September",
  "October",
  "November",
  "December",
];
/** The most days each month can have (February 29 in leap years). */
const MONTH_DAYS = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/**
 * Why a valid cron expression can never fire (`0 0 31 2 *`: February has no 31st), or undefined.
 * croniter then finds no next date whatever the day of the week says, so Prefect schedules
 * nothing.
 */
export function cronNeverFires(expression: string): string | undefined {
  const fields = expression.trim().split(/\s+/);
  if (fields.length < 5 || /L/.test(fields[2])) return undefined;
  const days = cronFieldValues(fields[2], CRON_FIELDS[2], 2);
  const months = cronFieldValues(fields[3], CRON_FIELDS[3], 3);
  if (!days || !months) return undefined;
  const possible = [...months].some((m) => [...days].some((d) => d <= MONTH_DAYS[m - 1]));
  if (possible) return undefined;
  const dayList = [...days].sort((a, b) => a - b).map(ordinal);
  const monthList = [...months].sort((a, b) => a - b).map((m) => MONTH_NAMES[m - 1]);
  return `${listed(monthList, "and")} ${monthList.length > 1 ? "have" : "has"} no ${
    listed(dayList, "or")
  }`;
}

/** The numbers a cron field stands for, or undefined when it is not a plain list of ranges. */
function cronFieldValues(
  field: string,
  spec: { min: number; max: number; names?: string[] },
  index: number,
): Set<number> | undefined {
  const value = (token: string): number | undefined => {
    if (/^\d+$/.test(token)) return Number(token);
    const named = spec.names?.indexOf(token.toLowerCase()) ?? -1;
    return named >= 0 ? named + (index === 3 ? 1 : 0) : undefined;
  };
  const values = new Set<number>();
  for (const part of field.split(",")) {
    const [range, step = "1"] = part.split("/");
    const [low, high] = range === "*" || range === "?"
      ? [spec.min, spec.max]
      : range.includes("-")
      ? range.split("-").map(value)
      : [value(range), step === "1" ? value(range) : spec.max];
    if (low === undefined || high === undefined || !/^\d+$/.test(step)) return undefined;
    for (let n = low; n <= high; n += Number(step)) values.add(n);
  }
  return values;
}

function ordinal(n: number): string {
  const suffix = n % 10 === 1 && n !== 11 ? "st" : n % 10 === 2 && n !== 12 ? "nd" : "th";
  return `${n}${n % 10 === 3 && n !== 13 ? "rd" : suffix}`;
}

/** "a", "a and b", "a, b and c". */
function listed(items: string[], conjunction: string): string {
  return items.length > 1
    ? `${items.slice(0, -1).join(", ")} ${conjunction} ${items.at(-1)}`
    : items[0] ?? "";
}

/** Python's longest timedelta, just under 10^9 days: Prefect refuses longer intervals (422). */
export const MAX_INTERVAL_SECONDS = 999_999_999 * 86400 + 86399;

/** Prefect's default PREFECT_SERVER_DEPLOYMENT_SCHEDULE_MAX_SCHEDULED_RUNS. */
const DEFAULT_MAX_SCHEDULED_RUNS = 50;

/** Characters Prefect forbids in flow, deployment, work pool and queue names. */
const BANNED_NAME_CHARACTERS = /[\/%&><]/;

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

function intervalTooLong(interval: unknown): string {
  return `Interval ${JSON.stringify(interval)} is longer than ${MAX_INTERVAL_SECONDS} seconds ` +
    "(999,999,999 days), the longest duration Prefect accepts.";
}

/** The canonical spelling of an IANA timezone, or undefined when it is not one. */
export function canonicalTimezone(name: string): string | undefined {
  // A zone ICU lists is its own canonical spelling. Looking it up costs ~1 ms once; the first
  // DateTimeFormat costs ~10 ms (ICU's calendar data), later ones ~0.2 ms: only aliases, other
  // spellings and mistakes build one, and manifests repeat a handful of zones.
  if (listedTimezones().has(name)) return name;
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

/** The zones ICU lists, each in its canonical spelling, and "UTC", which it leaves out. */
function listedTimezones(): Set<string> {
  return timezoneList ??= new Set([...Intl.supportedValuesOf("timeZone"), "UTC"]);
}
let timezoneList: Set<string> | undefined;

/** What is wrong with a schedule's timezone, with the IANA name it most likely means. */
export function timezoneProblem(name: string): string | undefined {
  const canonical = canonicalTimezone(name);
  if (canonical) {
    return canonical.toLowerCase() === name.toLowerCase() && canonical !== name
      ? `Timezone names are case-sensitive: write "${canonical}", not "${name}".`
      : undefined;
  }
  const guess = timezoneGuess(name);
  return guess
    ? `Unknown timezone "${name}". Did you mean "${guess}"?`
    : `Unknown timezone "${name}"; use an IANA name such as "Europe/Berlin".`;
}

function timezoneGuess(name: string): string | undefined {
  const zones = [...listedTimezones()];
  const written = name.trim().replace(/\s+/g, "_");
  const city = (zone: string) => zone.slice(zone.lastIndexOf("/") + 1).toLowerCase();
  const same = zones.filter((z) => z.toLowerCase() === written.toLowerCase());
  const sameCity = zones.filter((z) => city(z) === city(written));
  if (same.length === 1) return same[0];
  if (sameCity.length === 1) return sameCity[0];
  const near = didYouMean(written, zones);
  if (near) return near;
  const cities = zones.map(city);
  const nearCity = didYouMean(city(written), cities);
  const matches = zones.filter((z) => city(z) === nearCity);
  return matches.length === 1 ? matches[0] : undefined;
}

const RUNTIME_PLACEHOLDER_ROOTS = ["ctx", "flow_run", "event", "flow", "deployment"];
/** In triggers, also what the server's Jinja has when the automation fires. */
const TRIGGER_PLACEHOLDER_ROOTS = [
  ...new Set([...RUNTIME_PLACEHOLDER_ROOTS, ...AUTOMATION_TEMPLATE_ROOTS]),
];
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

/**
 * How a value's placeholders are checked: `resolved`, plan fills their `{{ $ENV }}` (deployment
 * fields, pull steps, triggers); `runtime`, the roots left for run time; `jinja`, a trigger's
 * `parameters`, which the server renders as Jinja when the automation fires, so any balanced
 * `{{ … }}` and `{% … %}` is allowed; `context`, said before a problem (for which deployment a
 * top-level step is checked).
 */
interface TemplateCheck {
  resolved?: boolean;
  runtime?: string[];
  jinja?: boolean;
  context?: string;
}

/** What earlier steps make available to `{{ ... }}`: their ids and output keys. */
interface StepScope {
  /** Each id's step (short name) and outputs; no outputs: another package's step. */
  ids: Map<string, { step: string; outputs?: string[] }>;
  outputs: Set<string>;
  /** A step of another package ran: its outputs are unknown, so bare names cannot be checked. */
  open: boolean;
  /** A step of the wrong shape ran: its id and outputs are unknown, so no step reference is. */
  unknown: boolean;
}

const emptyScope = (): StepScope => ({
  ids: new Map(),
  outputs: new Set(),
  open: false,
  unknown: false,
});

/** A list of steps and where it is written. */
export interface StepList {
  steps: Step[];
  path: PathSegment[];
}

/**
 * The build and push steps a deployment runs, by `prefect deploy`'s rules: a deployment's own
 * `build` replaces the top level's, even when empty or null; its own `push` does only when it
 * has steps. Push steps run after the build steps and see their outputs.
 */
export function effectiveSteps(
  top: DeployTsManifest,
  d: Deployment,
  index: number,
): { build: StepList; push: StepList } {
  const here = ["deployments", index];
  return {
    build: "build" in d
      ? { steps: d.build ?? [], path: [...here, "build"] }
      : { steps: top.build ?? [], path: ["build"] },
    push: d.push?.length
      ? { steps: d.push, path: [...here, "push"] }
      : { steps: top.push ?? [], path: ["push"] },
  };
}

export interface DeploymentEntry {
  file: ManifestFile;
  index: number;
  /** "" when the entrypoint and `flow_name` are themselves invalid. */
  flow: string;
  /** "" when `name` is itself invalid. */
  name: string;
  line: number;
  column: number;
  /** As written; only what the schema found valid is typed right (see `SchemaVerdict`). */
  spec: Deployment;
  /** The flow function, when its source was found and parsed. */
  flowSource?: { file: string; module: PythonModule; fn: PythonFunction };
  /** What the deployment's build steps, then build and push steps, provide to templates. */
  stepScopes: { build: StepScope; push: StepScope };
}

/** Fields Prefect reads when the deployment is made, never at run time: cron, booleans, limits. */
const DEPLOY_TIME_FIELDS = {
  deployment: ["entrypoint", "paused", "enforce_parameter_schema", "concurrency_limit"],
  schedule: ["cron", "interval", "rrule", "timezone", "anchor_date", "active", "day_or"],
};

/**
 * Meaning checks on one parsed manifest. Each runs when the values it reads are valid by the
 * schema, so a schema error hides only the checks that depend on it.
 */
class ManifestChecker {
  constructor(
    private file: ManifestFile,
    private options: Options,
    private report: (d: Diagnostic) => void,
    private sources: FlowSources,
    private verdict: SchemaVerdict,
  ) {}

  private problem(
    path: PathSegment[],
    code: string,
    message: string,
    severity: Severity = "error",
    at: "key" | "value" = "value",
    /** What makes two problems at one place the same one. */
    identity = message,
  ) {
    const key = `${formatPath(path)} ${code} ${identity}`;
    if (this.#reported.has(key)) return;
    this.#reported.add(key);
    this.report(diagnosticAt(this.file, path, code, message, severity, at));
  }

  /** Problems already reported: top-level steps are checked once per deployment running them. */
  #reported = new Set<string>();

  /**
   * One entry per deployment the file declares, whatever else is wrong with it; each as soon as
   * it is checked, so the caller may let other work run in between.
   */
  *check(data: unknown): Generator<DeploymentEntry> {
    if (!isMapping(data)) return;
    const manifest = data as unknown as DeployTsManifest;
    const deployments = Array.isArray(manifest.deployments) ? manifest.deployments : [];
    // Top-level steps are checked with each deployment that runs them (after its own build, and
    // before its pull steps, which see build and push outputs), and once on their own when none
    // does; a problem found twice is reported once.
    const declared = deployments.filter(isMapping);
    const topBuild = this.checkSteps(manifest.build, ["build"], emptyScope());
    const unusedPush = declared.every((d) => Array.isArray(d.push) && d.push.length);
    const unusedPull = declared.every((d) => d.pull !== undefined && d.pull !== null);
    if (unusedPush || unusedPull) {
      const topPush = this.checkSteps(manifest.push, ["push"], topBuild);
      if (unusedPull) {
        this.checkSteps(manifest.pull, ["pull"], mergeScopes(topBuild, topPush), {
          resolved: true,
        });
      }
    }
    if (deployments.length) {
      for (const key of ["build", "push"] as const) this.checkStepsRun(manifest[key], [key]);
    }
    for (const [index, deployment] of deployments.entries()) {
      if (isMapping(deployment)) yield this.checkDeployment(deployment, index, manifest);
    }
  }

  private checkDeployment(
    d: Record<string, unknown>,
    index: number,
    top: DeployTsManifest,
  ): DeploymentEntry {
    const here: PathSegment[] = ["deployments", index];
    const at = (key: string): PathSegment[] => [...here, key];
    const v = this.verdict;
    const spec = d as unknown as Deployment;
    const entrypoint = typeof d.entrypoint === "string" && v.valid(at("entrypoint"))
      ? d.entrypoint
      : undefined;
    const flowName = typeof d.flow_name === "string" && v.valid(at("flow_name"))
      ? d.flow_name
      : undefined;
    const name = typeof d.name === "string" && v.valid(at("name")) ? d.name : "";
    const flow = entrypoint !== undefined
      ? this.sources.flowName(entrypoint, flowName)
      : flowName ?? "";

    const steps = effectiveSteps(top, spec, index);
    const build = this.checkSteps(steps.build.steps, steps.build.path, emptyScope());
    // The top-level push runs after this deployment's own build, when it has one.
    const context = steps.push.path[0] === "push" && steps.build.path[0] !== "build"
      ? `For deployment "${name}", whose own \`build\` replaces the top-level one: `
      : "";
    const push = this.checkSteps(steps.push.steps, steps.push.path, build, { context });
    const scope = mergeScopes(build, push);
    // `prefect deploy` fills build and push outputs into the pull steps it registers.
    if (d.pull !== undefined && d.pull !== null) {
      this.checkSteps(spec.pull, at("pull"), scope, { resolved: true });
    } else this.checkSteps(top.pull, ["pull"], scope, { resolved: true });
    for (const key of ["build", "push"] as const) this.checkStepsRun(d[key], at(key));

    const legacy = isMapping(d.schedule) && v.shaped(at("schedule")) ? d.schedule : undefined;
    const list = Array.isArray(d.schedules) && v.shaped(at("schedules")) ? d.schedules : undefined;
    if (legacy && list?.length) {
      this.problem(
        at("schedule"),
        "schedule-conflict",
        "Both `schedule` and `schedules` are set; Prefect refuses this. Keep `schedules`.",
        "error",
        "key",
      );
    } else if (legacy && Object.keys(legacy).length) {
      this.problem(
        at("schedule"),
        "legacy-schedule",
        "`schedule:` is deprecated; write `schedules:` with one item.",
        "warning",
        "key",
      );
    }
    const schedules: [Schedule, PathSegment[]][] = [
      ...(list ?? []).flatMap((s, i): [Schedule, PathSegment[]][] =>
        isMapping(s) ? [[s as Schedule, [...at("schedules"), i]]] : []
      ),
      // Prefect's own template writes `schedule: {}` for "none".
      ...(legacy && Object.keys(legacy).length
        ? [[legacy as Schedule, at("schedule")] as [Schedule, PathSegment[]]]
        : []),
    ];
    for (const [schedule, path] of schedules) this.checkSchedule(schedule, path);
    // Slugs as apply gives them: the schedules list, else the legacy schedule.
    this.checkSlugs(
      list?.length ? schedules.filter(([, path]) => path[2] === "schedules") : schedules,
    );

    const pool = d.work_pool;
    const poolPath = at("work_pool");
    const noPool = pool === undefined
      ? v.leftOut(d, here, "work_pool")
      : isMapping(pool) && v.shaped(poolPath) && (pool.name === undefined
        ? v.leftOut(pool, poolPath, "name")
        : !pool.name && v.valid([...poolPath, "name"]));
    if (noPool) {
      this.problem(
        pool ? poolPath : at("name"),
        "no-work-pool",
        `${
          name ? `Deployment "${name}"` : "This deployment"
        } has no work pool: no worker will ever run it. Set \`work_pool: {name: ...}\`.`,
        "warning",
        "key",
      );
    }

    if (Array.isArray(d.tags)) {
      d.tags.forEach((tag, i) => {
        if (
          typeof tag === "string" &&
          (tag.startsWith(OWNER_TAG_PREFIX) || tag.startsWith(ENVIRONMENT_TAG_PREFIX))
        ) {
          this.problem(
            [...here, "tags", i],
            "reserved-tag",
            `Tag "${tag}" is deploy.ts's ownership mark, which it sets itself from the project ` +
              "`name` and --env; remove it from the manifest.",
          );
        }
      });
    }

    const flowNameGiven = Boolean(flowName) ||
      (d.flow_name === undefined ? !v.leftOut(d, here, "flow_name") : !v.valid(at("flow_name")));
    if (entrypoint !== undefined) {
      this.checkEntrypoint(entrypoint, at("entrypoint"), flowNameGiven);
    }
    const flowSource = entrypoint !== undefined ? this.sources.flowFunction(entrypoint) : undefined;
    if (flowSource && this.options.codeChecks) {
      const hasSchedules = this.known(d, here, "schedules") && this.known(d, here, "schedule")
        ? schedules.length > 0
        : undefined;
      this.checkParameters(d, here, flowSource, schedules, hasSchedules);
    }

    for (const key of Object.keys(d)) {
      if (["build", "push", "pull", "triggers"].includes(key) || v.unknownKey(at(key))) continue;
      this.checkTemplates(d[key], at(key), scope, { resolved: true });
    }
    for (const key of DEPLOY_TIME_FIELDS.deployment) this.checkDeployTimeValue(d, at(key));
    if (isMapping(d.concurrency_limit)) {
      this.checkDeployTimeValue(d.concurrency_limit, [...at("concurrency_limit"), "limit"]);
    }
    if (isMapping(pool)) {
      this.checkDeployTimeValue(pool, [...poolPath, "name"]);
    }
    this.checkTriggerList(d, here, scope);
    this.checkSlas(d, here);

    const { line, column } = positionOf(this.file, here);
    return {
      file: this.file,
      index,
      flow,
      name,
      line,
      column,
      spec,
      flowSource,
      stepScopes: { build, push },
    };
  }

  /** Whether `key` of the mapping at `path` is known to be there or not, with the right type. */
  private known(mapping: Record<string, unknown>, path: PathSegment[], key: string): boolean {
    return mapping[key] === undefined
      ? this.verdict.leftOut(mapping, path, key)
      : this.verdict.shaped([...path, key]);
  }

  /** What Prefect would reject or drop in the triggers (lib/automations.ts), and their templates. */
  private checkTriggerList(d: Record<string, unknown>, here: PathSegment[], scope: StepScope) {
    const path = [...here, "triggers"];
    if (!Array.isArray(d.triggers)) return;
    const triggers = d.triggers as Trigger[];
    // Prefect's rules read whole triggers: only when the schema found none of them broken.
    if (this.verdict.valid(path)) {
      const name = typeof d.name === "string" ? d.name : "";
      for (const p of checkTriggers(name, triggers, path, intervalSeconds)) {
        this.problem(p.path, p.code, p.message, "error", p.at);
      }
    }
    triggers.forEach((trigger, i) => {
      if (!isMapping(trigger)) return;
      for (const [key, value] of Object.entries(trigger)) {
        if (this.verdict.unknownKey([...path, i, key])) continue;
        this.checkTemplates(value, [...path, i, key], scope, {
          resolved: true,
          runtime: TRIGGER_PLACEHOLDER_ROOTS,
          jinja: key === "parameters",
        });
      }
    });
  }

  /** Prefect Cloud's SLAs come in three kinds, told apart by their one kind key. */
  private checkSlas(d: Record<string, unknown>, here: PathSegment[]) {
    const names = new Map<string, number>();
    if (!Array.isArray(d.sla)) return;
    (d.sla as SLA[]).forEach((sla, i) => {
      const path = [...here, "sla", i];
      if (!this.verdict.shaped(path)) return;
      const kindKeys = ["duration", "stale_after", "within"] as const;
      const kinds = kindKeys.filter((k) => sla[k] !== undefined);
      // No kind, but an unknown key that looks like one: the typo is the problem, reported.
      const typo = !kinds.length &&
        kindKeys.some((k) =>
          !this.verdict.leftOut(sla as unknown as Record<string, unknown>, path, k)
        );
      if (kinds.length !== 1 && !typo) {
        this.problem(
          path,
          "sla-kind",
          kinds.length
            ? `An SLA takes exactly one of \`duration\`, \`stale_after\` or \`within\`, not ${
              kinds.map((k) => `\`${k}\``).join(" and ")
            }.`
            : "An SLA needs one of `duration` (time to completion), `stale_after` (frequency) " +
              "or `within` (lateness).",
        );
      }
      for (const key of ["stale_after", "within"] as const) {
        const value = sla[key];
        if (
          typeof value === "string" && !hasPlaceholder(value) &&
          intervalSeconds(value) === undefined
        ) {
          this.problem(
            [...path, key],
            "invalid-duration",
            `Invalid duration ${
              JSON.stringify(value)
            }: give seconds, an ISO-8601 duration such as "PT10M", or "HH:MM:SS".`,
          );
        }
      }
      const first = names.get(sla.name);
      if (first !== undefined) {
        this.problem(
          [...path, "name"],
          "duplicate-sla",
          `SLA name "${sla.name}" is already used by SLA ${first + 1} of this deployment.`,
        );
      } else names.set(sla.name, i);
    });
  }

  private checkSchedule(s: Schedule, path: PathSegment[]) {
    const v = this.verdict;
    const mapping = s as Record<string, unknown>;
    const kinds = (["cron", "interval", "rrule"] as const).filter((k) => s[k] !== undefined);
    if (
      kinds.length > 1 || (kinds.length === 0 &&
        (["cron", "interval", "rrule"] as const).every((k) => v.leftOut(mapping, path, k)))
    ) {
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
    // A value with a placeholder is checked once plan has filled it in.
    const literal = (key: keyof Schedule) =>
      s[key] !== undefined && !hasPlaceholder(s[key]) && v.valid([...path, key]);
    if (literal("cron") && typeof s.cron === "string") {
      const reason = cronProblem(s.cron);
      const never = reason ? undefined : cronNeverFires(s.cron);
      if (reason) {
        this.problem([...path, "cron"], "invalid-cron", `Invalid cron "${s.cron}": ${reason}.`);
      } else if (never) {
        this.problem(
          [...path, "cron"],
          "cron-never-fires",
          `Cron "${s.cron}" never fires: ${never}. Prefect accepts it and schedules no run.`,
          "warning",
        );
      }
    }
    if (literal("interval")) {
      const seconds = intervalSeconds(s.interval!);
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
      } else if (seconds > MAX_INTERVAL_SECONDS) {
        this.problem([...path, "interval"], "invalid-interval", intervalTooLong(s.interval));
      }
    }
    if (
      typeof s.max_scheduled_runs === "number" && s.max_scheduled_runs > DEFAULT_MAX_SCHEDULED_RUNS
    ) {
      this.problem(
        [...path, "max_scheduled_runs"],
        "max-scheduled-runs",
        `max_scheduled_runs ${s.max_scheduled_runs} is above ${DEFAULT_MAX_SCHEDULED_RUNS}, which a ` +
          "Prefect server refuses unless PREFECT_SERVER_DEPLOYMENT_SCHEDULE_MAX_SCHEDULED_RUNS " +
          "was raised.",
        "warning",
      );
    }
    if (literal("rrule") && typeof s.rrule === "string") {
      const reason = rruleProblem(s.rrule);
      if (reason) this.problem([...path, "rrule"], "invalid-rrule", `Invalid rrule: ${reason}.`);
    }
    if (literal("anchor_date") && !isIsoDateTime(s.anchor_date!)) {
      this.problem(
        [...path, "anchor_date"],
        "invalid-anchor-date",
        `Invalid anchor_date "${s.anchor_date}": write an ISO-8601 date-time such as "2026-01-01T00:00:00Z".`,
      );
    }
    if (s.day_or !== undefined && kinds.length === 1 && s.cron === undefined) {
      this.problem(
        [...path, "day_or"],
        "invalid-value",
        "`day_or` applies to cron schedules only.",
      );
    }
    if (literal("timezone") && typeof s.timezone === "string") {
      const problem = timezoneProblem(s.timezone);
      if (problem) this.problem([...path, "timezone"], "invalid-timezone", problem);
    }
    if (s.timezone === null || v.leftOut(mapping, path, "timezone")) {
      this.problem(
        path,
        "implicit-timezone",
        "State the schedule's `timezone` (Prefect reads it as UTC when omitted).",
        "warning",
      );
    }
    if (v.leftOut(mapping, path, "active")) {
      this.problem(
        path,
        "implicit-active",
        "State the schedule's `active: true` or `active: false` explicitly.",
        "warning",
      );
    }
    for (const key of DEPLOY_TIME_FIELDS.schedule) {
      this.checkDeployTimeValue(mapping, [...path, key]);
    }
  }

  /**
   * Slugs are unique per deployment, including the ones apply derives by position
   * (`schedule-2`) for schedules that have none.
   */
  private checkSlugs(schedules: [Schedule, PathSegment[]][]) {
    const taken = new Map<string, { at: PathSegment[]; derived: boolean }>();
    for (const [s, path] of schedules) {
      const mapping = s as Record<string, unknown>;
      const derived = this.verdict.leftOut(mapping, path, "slug");
      // Apply numbers the schedules of the list by position; the legacy schedule is the first.
      const slug = derived
        ? derivedSlug(path[2] === "schedules" ? path[3] as number : 0)
        : typeof s.slug === "string" && this.verdict.valid([...path, "slug"])
        ? s.slug
        : undefined;
      if (slug === undefined) continue;
      const at = derived ? path : [...path, "slug"];
      const first = taken.get(slug);
      if (!first) {
        taken.set(slug, { at, derived });
        continue;
      }
      const { line } = positionOf(this.file, first.at);
      this.problem(
        at,
        "duplicate-slug",
        derived
          ? `This schedule has no slug, so apply gives it "${slug}" by its position, which the schedule at line ${line} already has; give it a \`slug\`.`
          : first.derived
          ? `Schedule slug "${slug}" is what apply gives the slug-less schedule at line ${line} by its position; give that schedule a \`slug\`.`
          : `Schedule slug "${slug}" is already used in this deployment (line ${line}).`,
      );
    }
  }

  /**
   * A placeholder Prefect leaves for run time (`{{ flow_run.id }}`) in a field it reads when the
   * deployment is made stays as text, which no cron, boolean or limit can be.
   */
  private checkDeployTimeValue(mapping: Record<string, unknown>, path: PathSegment[]) {
    const value = mapping[path.at(-1) as string];
    if (typeof value !== "string" || !value.includes("{{") || this.verdict.unknownKey(path)) return;
    const runtime = [...value.matchAll(PLACEHOLDER)].map((m) => m[1])
      .filter((expression) => parseReference(expression).kind === "runtime");
    if (!runtime.length) return;
    this.problem(
      path,
      "template-type",
      `"{{ ${runtime[0]} }}" is filled only when a flow runs, so \`${
        path.at(-1)
      }\` would be the text ${
        JSON.stringify(value)
      } when the deployment is made. Use a value, {{ $ENV }} or {{ prefect.variables.x }}.`,
    );
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
    if (found.kind === "inaccessible") {
      this.problem(path, "entrypoint-unreadable", `Cannot read "${found.file}": ${found.reason}.`);
      return;
    }
    const syntax = found.module.syntaxError;
    if (syntax) {
      // At the error itself, once per file however many deployments use it.
      this.report(pythonSyntaxDiagnostic(found.file, syntax));
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
      this.problem(path, "not-a-flow", notAFlowMessage(name, found.file, lookup));
    } else if (
      lookup.kind === "flow" && !flowNameGiven && BANNED_NAME_CHARACTERS.test(lookup.flowName)
    ) {
      this.problem(
        path,
        "invalid-flow-name",
        `The flow name "${lookup.flowName}" (from "${found.file}") contains one of \`/\`, \`%\`, ` +
          "`&`, `>`, `<`, which Prefect forbids; it would refuse to load the flow.",
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
   * `hasSchedules` is undefined when the schedules are too broken to tell.
   */
  private checkParameters(
    d: Record<string, unknown>,
    here: PathSegment[],
    source: { file: string; module: PythonModule; fn: PythonFunction },
    schedules: [Schedule, PathSegment[]][],
    hasSchedules: boolean | undefined,
  ) {
    const v = this.verdict;
    const given = d.parameter_openapi_schema;
    if (given !== undefined && !v.valid([...here, "parameter_openapi_schema"])) return;
    const schema = (given as Json | undefined) ?? parameterSchema(source.module, source.fn);
    const properties = (schema.properties ?? {}) as Record<string, Json>;
    // Prefect's schema lists *args and **kwargs as required; Python never needs them.
    const variadic = new Set(
      source.fn.parameters.filter((p) => p.kind.startsWith("var_")).map((p) => p.name),
    );
    const required = ((schema.required ?? []) as string[]).filter((name) => !variadic.has(name));
    const takesAnyKeyword = source.fn.parameters.some((p) => p.kind === "var_keyword");
    const flow = `flow "${source.fn.name}" (${source.file})`;
    const checkValues = (values: unknown, path: PathSegment[]) => {
      if (!isMapping(values) || !v.shaped(path)) return;
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
        // Compiling a validator costs about 1 ms (the first ones several): most values need none.
        if (plainTypesAccept(property, value)) continue;
        const valid = parameterValidator(property, schema.definitions as Json | undefined);
        if (valid instanceof Error) {
          this.problem(
            [...path, name],
            "invalid-parameter-schema",
            `Parameter "${name}" cannot be checked: its schema in \`parameter_openapi_schema\` ` +
              `is not valid JSON Schema (${valid.message}).`,
          );
        } else if (!valid(value)) {
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
    if (Array.isArray(d.triggers)) {
      d.triggers.forEach((trigger, i) => {
        if (isMapping(trigger)) {
          checkValues(trigger.parameters, [...here, "triggers", i, "parameters"]);
        }
      });
    }
    // Which parameters a run gets is known only when every `parameters` involved is.
    if (hasSchedules === undefined || !this.known(d, here, "parameters")) return;
    const givenNames = (extra: unknown) =>
      new Set(Object.keys({ ...d.parameters as Json, ...(extra as object ?? {}) }));
    const names = (missing: string[]) => missing.map((m) => `"${m}"`).join(", ");
    if (hasSchedules) {
      for (const [schedule, path] of schedules) {
        if (!this.known(schedule as Record<string, unknown>, path, "parameters")) continue;
        const missing = required.filter((name) => !givenNames(schedule.parameters).has(name));
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
      const missing = required.filter((name) => !givenNames(undefined).has(name));
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

  /**
   * Checks steps in order and returns what they make available to later templates. `resolved`:
   * plan fills these steps' `{{ $ENV }}` placeholders (pull steps).
   */
  private checkSteps(
    steps: Steps | undefined,
    path: PathSegment[],
    inherited: StepScope,
    how: TemplateCheck = {},
  ): StepScope {
    const scope: StepScope = {
      ids: new Map(inherited.ids),
      outputs: new Set(inherited.outputs),
      open: inherited.open,
      unknown: inherited.unknown,
    };
    if (steps === undefined || steps === null) return scope;
    if (!Array.isArray(steps)) return { ...scope, unknown: true }; // reported by the schema
    steps.forEach((step: unknown, i: number) => {
      const stepPath = [...path, i];
      if (!isMapping(step)) {
        scope.unknown = true;
        return;
      }
      const entries = Object.entries(step);
      for (const [name] of entries) this.checkStepName(name, [...stepPath, name]);
      if (entries.length !== 1) {
        // Arguments not indented under the step's key (reported by the schema): their
        // templates are still checked, but the step's id and outputs are unknown.
        this.checkTemplates(step, stepPath, scope, how);
        scope.unknown = true;
        return;
      }
      const [name, args] = entries[0];
      const shortName = name.split(".").pop()!;
      this.checkTemplates(args, [...stepPath, name], scope, how);
      const known = KNOWN_STEPS.includes(name) ? STEP_OUTPUTS[shortName] : undefined;
      const id = (args as { id?: unknown } | null)?.id;
      if (typeof id === "string") {
        if (scope.ids.has(id) && !inherited.ids.has(id)) {
          this.problem(
            [...stepPath, name, "id"],
            "duplicate-step-id",
            `Step id "${id}" is used twice; the second hides the first's outputs.`,
          );
        }
        scope.ids.set(id, { step: shortName, outputs: known });
      }
      if (known) known.forEach((o) => scope.outputs.add(o));
      else scope.open = true;
    });
    return scope;
  }

  private checkStepName(name: string, path: PathSegment[]) {
    const shortName = name.split(".").pop()!;
    if (name.startsWith("prefect.projects.steps.")) {
      this.problem(
        path,
        "removed-step",
        `Step "${name}" was removed in Prefect 2.11; use "${PREFECT_STEP_NAMESPACE}${shortName}".`,
        "error",
        "key",
      );
    } else if (name.startsWith(PREFECT_STEP_NAMESPACE) && !KNOWN_STEPS.includes(name)) {
      const guess = didYouMean(name, KNOWN_STEPS);
      this.problem(
        path,
        "unknown-step",
        `Prefect has no step "${name}".${guess ? ` Did you mean "${guess}"?` : ""}`,
        "error",
        "key",
      );
    }
  }

  /**
   * Build and push steps deploy.ts cannot run (only its native ones run, with --build-image and
   * --push-image): said offline, since apply would refuse them.
   */
  private checkStepsRun(steps: unknown, path: PathSegment[]) {
    if (!Array.isArray(steps)) return;
    steps.forEach((step, i) => {
      if (!isMapping(step)) return;
      const keys = Object.keys(step);
      if (keys.length !== 1 || keys[0] in NATIVE_STEPS) return;
      const native = [...new Set(Object.keys(NATIVE_STEPS).map((fqn) => fqn.split(".").pop()))];
      this.problem(
        [...path, i, keys[0]],
        "steps-not-run",
        `deploy.ts does not run "${keys[0]}" (it runs ${native.join(", ")}): run it before ` +
          "deploy and pass its result in a {{ $DEPLOY_... }} variable, or leave this deployment " +
          "to `prefect deploy`.",
        "warning",
        "key",
      );
    });
  }

  /** Placeholders must be well formed and point at something that will exist. */
  private checkTemplates(
    value: unknown,
    path: PathSegment[],
    scope: StepScope,
    how: TemplateCheck,
  ) {
    if (typeof value === "string") {
      if (value.includes("{{") || value.includes("}}") || (how.jinja && value.includes("{%"))) {
        this.checkTemplateString(value, path, scope, how);
      }
    } else if (Array.isArray(value)) {
      value.forEach((v, i) => this.checkTemplates(v, [...path, i], scope, how));
    } else if (isMapping(value)) {
      for (const [k, v] of Object.entries(value)) {
        if (!this.verdict.unknownKey([...path, k])) {
          this.checkTemplates(v, [...path, k], scope, how);
        }
      }
    }
  }

  private checkTemplateString(
    text: string,
    path: PathSegment[],
    scope: StepScope,
    how: TemplateCheck,
  ) {
    if (how.jinja && !jinjaBalanced(text)) {
      this.problem(
        path,
        "template-syntax",
        `Unbalanced Jinja in ${
          JSON.stringify(text)
        }: every \`{{\` needs its \`}}\` and every \`{%\` its \`%}\`; the server would reject the automation.`,
      );
      return;
    }
    const stripped = text.replace(PLACEHOLDER, "");
    if (!how.jinja && (stripped.includes("{{") || stripped.includes("}}"))) {
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
      const problem = placeholderProblem(expression, scope, how.runtime);
      if (problem) {
        // A top-level step checked for several deployments: its placeholder's first problem
        // counts, said for the deployment it was found with.
        this.problem(
          path,
          "template-reference",
          `${how.context ?? ""}${problem}`,
          "error",
          "value",
          expression,
        );
      } else if (
        how.resolved && expression.startsWith("$") && !readableVariable(expression.slice(1))
      ) {
        this.problem(path, "env-not-permitted", envNotPermitted(expression.slice(1)));
      }
    }
  }
}

/** Whether every `{{` and `{%` of a Jinja text is closed before the next one opens. */
function jinjaBalanced(text: string): boolean {
  let closer: string | undefined;
  for (const [token] of text.matchAll(/\{\{|\}\}|\{%|%\}/g)) {
    if (token === "{{" || token === "{%") {
      if (closer) return false;
      closer = token === "{{" ? "}}" : "%}";
    } else if (token !== closer) return false;
    else closer = undefined;
  }
  return closer === undefined;
}

function mergeScopes(a: StepScope, b: StepScope): StepScope {
  return {
    ids: new Map([...a.ids, ...b.ids]),
    outputs: new Set([...a.outputs, ...b.outputs]),
    open: a.open || b.open,
    unknown: a.unknown || b.unknown,
  };
}

export function placeholderProblem(
  expression: string,
  scope: StepScope,
  runtime = RUNTIME_PLACEHOLDER_ROOTS,
): string | undefined {
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
  if (runtime.includes(root) || scope.unknown) return undefined;
  const step = scope.ids.get(root);
  if (step) {
    const key = rest.join(".").split(/[.[]/)[0];
    if (!step.outputs || !key || step.outputs.includes(key)) return undefined;
    const guess = didYouMean(key, step.outputs);
    return `${shown}: step "${root}" (${step.step}) has no output "${key}"${
      guess ? `; did you mean "${guess}"?` : "."
    } Its outputs are ${step.outputs.join(", ")}.`;
  }
  if (rest.length === 0 && (scope.outputs.has(root) || scope.open)) return undefined;
  const known = [...scope.ids.keys()].map((id) => `"${id}"`).join(", ");
  if (runtime === TRIGGER_PLACEHOLDER_ROOTS) {
    const guess = didYouMean(root, runtime);
    return `${shown} is neither something the automation has when it fires (event, automation, ` +
      `labels, …) nor an earlier step's output; Prefect would leave it empty.${
        guess ? ` Did you mean "${guess}"?` : ""
      }`;
  }
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

/** A Python syntax error, at the flow file's own line and column. */
function pythonSyntaxDiagnostic(file: string, syntax: PythonSyntaxError): Diagnostic {
  return {
    severity: "error",
    file,
    line: syntax.line,
    column: syntax.column,
    path: "",
    code: "python-syntax",
    message: pythonSyntaxMessage(syntax),
  };
}

function pythonSyntaxMessage(syntax: PythonSyntaxError): string {
  return `Python syntax error at ${syntax.found}; Prefect could not import this file, so no flow in it can be deployed.`;
}

function notAFlowMessage(
  name: string,
  file: string,
  lookup: { fn: PythonFunction; isTask: boolean },
): string {
  return lookup.isTask
    ? `Function "${name}" in "${file}" (line ${lookup.fn.line}) is a @task, not a @flow; Prefect deploys flows only. Point the entrypoint at the flow that calls it.`
    : `Function "${name}" in "${file}" (line ${lookup.fn.line}) is not decorated with @flow; Prefect can only deploy flows.`;
}

/**
 * Whether `{{ $NAME }}` can be read by this process. The compiled binary and `deno task deploy`
 * may read only PREFECT_*, DEPLOY_* and NO_COLOR; validate run with the same flags says so first.
 */
function readableVariable(name: string): boolean {
  return /^(PREFECT_|DEPLOY_)/.test(name) ||
    Deno.permissions.querySync({ name: "env", variable: name }).state === "granted";
}

function envNotPermitted(name: string): string {
  return `Environment variable "${name}" may not be read: the compiled deploy ` +
    `reads only PREFECT_*, DEPLOY_* and NO_COLOR. Rename it, e.g. DEPLOY_${name}.`;
}

/** Flow files larger than this are not read by the offline checks. */
const MAX_SOURCE_BYTES = 5 * 1024 * 1024;

/** What an entrypoint leads to in the project's Python source. */
export type EntrypointSource =
  | { kind: "found"; file: string; module: PythonModule; lookup: FlowLookup }
  | { kind: "no-file"; candidates: string[] }
  /** The file is there but is not Python text a check can read (a warning: Prefect may cope). */
  | { kind: "unreadable"; file: string; reason: string }
  /** The path itself fails: a loop, a FIFO, a name too long, outside the project (an error). */
  | { kind: "inaccessible"; file: string; reason: string };

type SourceFile = PythonModule | Omit<Extract<EntrypointSource, { reason: string }>, "file">;

/** Reads and parses each flow file once per run; many deployments share one file. */
export class FlowSources {
  #modules = new Map<string, SourceFile | undefined>();

  /** The parsed module, why it cannot be read, or undefined when there is no such file. */
  module(path: string): SourceFile | undefined {
    if (!this.#modules.has(path)) this.#modules.set(path, this.#read(path));
    return this.#modules.get(path);
  }

  #read(path: string): SourceFile | undefined {
    const read = readProjectFileSync(path, MAX_SOURCE_BYTES);
    switch (read.kind) {
      case "missing":
        return undefined;
      case "too-large":
        return {
          kind: "unreadable",
          reason: `it is larger than ${MAX_SOURCE_BYTES / 1024 / 1024} MB`,
        };
      case "unreadable":
        return { kind: "inaccessible", reason: read.reason };
    }
    if (read.bytes.includes(0)) return { kind: "unreadable", reason: "it is not a text file" };
    let text: string;
    try {
      text = new TextDecoder("utf-8", { fatal: true }).decode(read.bytes);
    } catch {
      return { kind: "unreadable", reason: "it is not UTF-8 text" };
    }
    return parsePythonModule(text);
  }

  entrypoint(entrypoint: string): EntrypointSource {
    const { file, module, object } = parseEntrypoint(entrypoint);
    const candidates = file ? [file] : moduleFileCandidates(module!);
    for (const candidate of candidates) {
      const parsed = this.module(candidate);
      if (parsed === undefined) continue;
      if ("reason" in parsed) return { ...parsed, file: candidate };
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
  triggers?: { enabled?: boolean };
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
  if (inspectPath(path).kind === "missing") {
    report(fileDiagnostic(
      path,
      "environment-not-found",
      `Environment "${options.env}" has no overlay: ${path} does not exist.${
        environmentsHint(options.env!, path.slice(0, path.lastIndexOf("/")))
      }`,
    ));
    return undefined;
  }
  const file = await loadManifest(path, report);
  if (file.data === undefined) return undefined;
  const problems = schemaProblems(file.data ?? {}, validationSchema.definitions.environment);
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

/** The environments that do have an overlay in `dir`, the likeliest first. */
function environmentsHint(env: string, dir: string): string {
  let names: string[] = [];
  try {
    names = [...Deno.readDirSync(dir)]
      .filter((e) => e.isFile && e.name.endsWith(".yaml"))
      .map((e) => e.name.slice(0, -".yaml".length))
      .sort();
  } catch {
    // no environments directory
  }
  if (!names.length) return ` No environment has an overlay yet: create ${dir}/${env}.yaml.`;
  const guess = didYouMean(env, names);
  return guess
    ? ` Did you mean --env ${guess}?`
    : ` Environments with an overlay: ${names.join(", ")}.`;
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
      if (change.triggers?.enabled !== undefined && Array.isArray(result.triggers)) {
        const enabled = change.triggers.enabled;
        result.triggers = result.triggers.map((t) =>
          t && typeof t === "object" ? { ...t, enabled } : t
        );
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
  /** The manifests as read (their text is what a saved plan pins), the overlay last. */
  manifests: ManifestFile[];
  /** The environment overlay applied (`--env`), if any. */
  environment?: string;
  project: Project;
  deployments: DeploymentEntry[];
  diagnostics: Diagnostic[];
  valid: boolean;
}

/** The project that owns the manifests' deployments on the server. */
export interface Project {
  name: string;
  /** No manifest says `name:`: the project is named after the repository's directory. */
  implicit: boolean;
}

/**
 * `onProject` hears the project's name, and the flow names the entrypoints suggest, as soon as
 * the manifests are parsed, before they are checked: plan and apply start reading the server
 * then. When it answers that it began such reads, checking lets the event loop turn every few
 * milliseconds, or the reads would not leave before it ends.
 */
export async function validate(
  options: Options,
  onProject?: (project: Project, flowNames: Set<string>) => boolean,
): Promise<ValidationResult> {
  const diagnostics: Diagnostic[] = [];
  const report = (d: Diagnostic) => diagnostics.push(d);
  const paths = discoverManifests(options.paths, report);
  const deployments: DeploymentEntry[] = [];
  const loaded: ManifestFile[] = [];
  const sources = new FlowSources();
  const environment = options.env ? await loadEnvironment(options, report) : undefined;
  for (const path of paths) {
    const file = await loadManifest(path, report);
    if (file.data !== undefined) loaded.push(file);
  }
  // Reported after the checks' own, so diagnostics at one place keep their order.
  const projectDiagnostics: Diagnostic[] = [];
  const project = checkProjectName(loaded, (d) => projectDiagnostics.push(d));
  // Not when something is wrong already: unparsable YAML, say, may hide the name it gives.
  const reading = ![...diagnostics, ...projectDiagnostics].some((d) => d.severity === "error") &&
    !!onProject?.(project, likelyFlowNames(loaded));
  const turn = reading ? eventLoopTurns(4) : undefined;
  // Before the first check, which may be long (the Python parser's first use): the reads leave now.
  await turn?.();
  for (const file of loaded) {
    if (environment) applyEnvironment(file.data, environment, sources);
    const problems = schemaProblems(file.data);
    for (const p of problems) report(diagnosticAt(file, p.path, p.code, p.message, "error", p.at));
    const checker = new ManifestChecker(
      file,
      options,
      report,
      sources,
      new SchemaVerdict(problems),
    );
    for (const entry of checker.check(file.data)) {
      deployments.push(entry);
      const pause = turn?.();
      if (pause) await pause;
    }
  }
  reportDuplicateDeployments(loaded, report, sources);
  projectDiagnostics.forEach(report);
  if (environment) reportUnusedEnvironmentKeys(environment, deployments, report);
  if (options.strict) diagnostics.forEach((d) => d.severity = "error");
  // A flow file's syntax error is reported by every deployment that uses the file: once is enough.
  const seen = new Set<string>();
  const distinct = diagnostics.filter((d) => {
    const key = JSON.stringify(d);
    return !seen.has(key) && seen.add(key);
  });
  distinct.sort((a, b) => a.file.localeCompare(b.file) || a.line - b.line || a.column - b.column);
  return {
    files: paths,
    manifests: environment ? [...loaded, environment.file] : loaded,
    environment: options.env ? environmentPath(options) : undefined,
    project,
    deployments,
    diagnostics: distinct,
    valid: !distinct.some((d) => d.severity === "error"),
  };
}

/**
 * Lets pending I/O (a request being sent, a response arriving) proceed once `everyMs` of
 * uninterrupted work has passed: timers, since awaiting a promise runs no I/O, and two, since a
 * new connection takes one turn to connect and another to send.
 */
function eventLoopTurns(everyMs: number): () => Promise<void> | undefined {
  let last = -Infinity;
  const timer = () => new Promise((resolve) => setTimeout(resolve, 0));
  return () => {
    if (performance.now() - last < everyMs) return undefined;
    return timer().then(timer).then(() => {
      last = performance.now();
    });
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

/**
 * All files must name one project: ownership marks and --prune depend on it. Without any
 * `name:`, the repository's directory names it — and then where it was cloned decides what the
 * project owns, which is worth a warning.
 */
function checkProjectName(files: ManifestFile[], report: (d: Diagnostic) => void): Project {
  const named = files.flatMap((file) => {
    const name = (file.data as { name?: unknown } | null)?.name;
    return typeof name === "string" && name ? [{ file, name }] : [];
  });
  const distinct = [...new Set(named.map((n) => n.name))];
  if (distinct.length > 1) {
    for (const { file, name } of named) {
      const other = named.find((n) => n.name !== name)!;
      const at = positionOf(other.file, ["name"]);
      report(diagnosticAt(
        file,
        ["name"],
        "project-mismatch",
        `The manifests name different projects: "${name}" here, "${other.name}" in ` +
          `${other.file.path}:${at.line}:${at.column}. Ownership and --prune need one project; ` +
          "give every file the same top-level `name`.",
      ));
    }
  }
  if (distinct.length) return { name: distinct[0], implicit: false };
  const name = directoryProjectName();
  if (files.length) {
    report(diagnosticAt(
      files[0],
      [],
      "implicit-project-name",
      `No manifest has a top-level \`name\`, so the project is named after the directory ` +
        `("${name}"): every deployment is marked ${ownerTag(name)}, and a clone in a ` +
        "directory of another name would neither own nor prune them. Set `name:` in every manifest.",
      "warning",
    ));
  }
  return { name, implicit: true };
}

/** The name of the directory holding `.git` (else the working directory). */
function directoryProjectName(): string {
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

/**
 * The flow names the manifests' entrypoints suggest before any flow file is read: `flow_name`,
 * else the function's. A decorator's `name=` may differ; the checks settle each name.
 */
function likelyFlowNames(files: ManifestFile[]): Set<string> {
  const names = new Set<string>();
  for (const file of files) {
    const list = (file.data as { deployments?: unknown } | null)?.deployments;
    if (!Array.isArray(list)) continue;
    for (const item of list) {
      const d = item as Record<string, unknown> | null;
      if (typeof d?.flow_name === "string" && d.flow_name) names.add(d.flow_name);
      else if (typeof d?.entrypoint === "string" && !hasPlaceholder(d.entrypoint)) {
        names.add(flowNameFromFunction(parseEntrypoint(d.entrypoint).object));
      }
    }
  }
  return names;
}

/** Prefect's default flow name: the function's name with `_` as `-`. */
function flowNameFromFunction(objectPath: string): string {
  return objectPath.split(".").pop()!.replaceAll("_", "-");
}

// ─── Plan: what the manifests want ───────────────────────────────────────────

const OWNER_TAG_PREFIX = "managed-by:deploy.ts/";
const ENVIRONMENT_TAG_PREFIX = "deploy.ts/env:";
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
  /** One per trigger, templates resolved. */
  automations: DesiredAutomation[];
  /** Fields filled by outputs of steps that did not run, kept at the server's values. */
  kept: { field: string; value: unknown }[];
}

/**
 * Who owns a deployment: a project and an environment (null: the default one). The mark is
 * tags, because tags are what the API can filter on and PATCH: `managed-by:deploy.ts/<project>`
 * always (so deployments written before environments had marks read as the default
 * environment's), plus `deploy.ts/env:<name>` outside the default environment.
 */
export interface Owner {
  project: string;
  environment: string | null;
}

export const ownerTag = (project: string) => `${OWNER_TAG_PREFIX}${project}`;
export const environmentTag = (environment: string) => `${ENVIRONMENT_TAG_PREFIX}${environment}`;

export function ownerTags(owner: Owner): string[] {
  return [
    ownerTag(owner.project),
    ...(owner.environment === null ? [] : [environmentTag(owner.environment)]),
  ];
}

/** The owner a server deployment's tags name, or undefined when deploy.ts never marked it. */
export function ownerOf(tags: readonly string[]): Owner | undefined {
  const project = tags.find((t) => t.startsWith(OWNER_TAG_PREFIX));
  if (project === undefined) return undefined;
  const environment = tags.find((t) => t.startsWith(ENVIRONMENT_TAG_PREFIX));
  return {
    project: project.slice(OWNER_TAG_PREFIX.length),
    environment: environment === undefined
      ? null
      : environment.slice(ENVIRONMENT_TAG_PREFIX.length),
  };
}

export const sameOwner = (a: Owner | undefined, b: Owner) =>
  a !== undefined && a.project === b.project && a.environment === b.environment;

export function describeOwner(owner: Owner): string {
  return `project "${owner.project}", environment "${owner.environment ?? "default"}"`;
}

/** The tags marking an automation as the project's; which deployment it runs does the rest. */
const automationMarks = (owner: Owner) => ownerTags(owner);

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
  /** The patterns no item matched so far. */
  unmatched(): { flag: "--flow" | "--name"; pattern: string }[];
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
    unmatched() {
      return [...flowPatterns, ...namePatterns].filter((p) => !p.hits)
        .map((p) => ({ flag: p.flag as "--flow" | "--name", pattern: p.text }));
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
    const flags = unmatched.map(({ flag, pattern }) => `${flag} "${pattern}"`);
    throw new UserError(
      `No deployment in the manifests matches ${flags.join(" or ")}.${
        [...new Set(unmatched.map((u) => selectionHint(u, items)))].join("")
      }`,
    );
  }
  return selected;
}

/** What an unmatched `--flow` or `-n` most likely meant, else what there is to select. */
function selectionHint(
  { flag, pattern }: { flag: "--flow" | "--name"; pattern: string },
  items: { flow: string; name: string }[],
): string {
  if (!items.length) return " The manifests declare no deployment.";
  const candidates = [
    ...new Set(
      items.map((i) =>
        flag === "--flow" ? i.flow : pattern.includes("/") ? `${i.flow}/${i.name}` : i.name
      ),
    ),
  ];
  const guess = pattern.includes("*") ? undefined : didYouMean(pattern, candidates);
  if (guess) return ` Did you mean ${flag} "${guess}"?`;
  const shown = candidates.slice(0, 10).map((c) => `"${c}"`).join(", ");
  return ` ${flag === "--flow" ? "Flows" : "Deployments"} in the manifests: ${shown}${
    candidates.length > 10 ? `, and ${candidates.length - 10} more` : ""
  }.`;
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

function parseReference(expression: string, runtime = RUNTIME_PLACEHOLDER_ROOTS): Reference {
  if (expression.startsWith("$")) return { kind: "env", name: expression.slice(1) };
  const parts = expression.split(".");
  if (parts[0] === "prefect" && parts[1] === "variables" && parts[2]) {
    return { kind: "variable", name: parts.slice(2).join(".") };
  }
  if (parts[0] === "prefect" && parts[1] === "blocks" && parts.length >= 4) {
    return { kind: "block", type: parts[2], name: parts[3], path: parts.slice(4) };
  }
  if (runtime.includes(parts[0])) return { kind: "runtime" };
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

type StepSection = "build" | "push";

/** A deployment's build and push outputs, as its templates see them. */
interface StepValues {
  /** Prefect's outputs of the steps that ran, by step id and by bare name; absent: none ran. */
  outputs?: Json;
  /** Which section provides a step output (`id.key` or a bare name); undefined: none does. */
  provider: (expression: string) => StepSection | undefined;
  /**
   * What an output of a step that did not run becomes: the placeholder (checking a step's
   * arguments before any step runs), an error (running a step), or the server's value.
   */
  missing: "keep" | "error" | "server";
  /** The deployment as the server has it, when it exists. */
  server?: ServerDeployment;
}

/** Which section's steps provide a step output (`id.key` or a bare name) of a deployment. */
function stepProviders(entry: DeploymentEntry): StepValues["provider"] {
  return (expression) => {
    const root = expression.split(/[.[]/)[0];
    const provides = (scope: StepScope) =>
      scope.ids.has(root) || scope.outputs.has(root) || (!expression.includes(".") && scope.open);
    const { build, push } = entry.stepScopes;
    return provides(build) ? "build" : provides(push) ? "push" : undefined;
  };
}

/** Prefect's `get_from_dict`: `a.b[0].c`, numbers index lists; NOT_SET when absent. */
function outputValue(outputs: unknown, expression: string): unknown {
  const keys = expression.replaceAll("[", ".").replaceAll("]", "").split(".");
  return valueAt(outputs, keys.map((key) => /^-?\d+$/.test(key) ? Number(key) : key));
}

function valueAt(root: unknown, path: PathSegment[]): unknown {
  let value = root;
  for (const key of path) {
    if ((Array.isArray(value) || typeof value === "string") && typeof key === "number") {
      value = value.at(key);
    } else if (
      value && typeof value === "object" && !Array.isArray(value) && typeof key === "string"
    ) {
      value = Object.hasOwn(value, key) ? (value as Json)[key] : undefined;
    } else return NOT_SET;
    if (value === undefined) return NOT_SET;
  }
  return value;
}
const NOT_SET = Symbol("not set");

/**
 * Where a deployment field of the manifest lives on the server's deployment, for the fields a
 * step output can fill while keeping the server's value.
 */
function serverPathOf(path: PathSegment[]): PathSegment[] | undefined {
  const [root, index, key, ...rest] = path;
  if (root === "pull") return ["pull_steps", index, key, ...rest];
  if (root !== "deployments") return undefined;
  switch (key) {
    case "work_pool":
      if (rest[0] === "job_variables") return ["job_variables", ...rest.slice(1)];
      if (rest.length === 1 && rest[0] === "name") return ["work_pool_name"];
      if (rest.length === 1 && rest[0] === "work_queue_name") return ["work_queue_name"];
      return undefined;
    case "pull":
      return ["pull_steps", ...rest];
    case "parameters":
    case "description":
    case "version":
    case "entrypoint":
      return [key as string, ...rest];
  }
  return undefined;
}

class TemplateResolver {
  problems: { path: PathSegment[]; code: string; message: string }[] = [];
  /** Fields whose step outputs did not run and which keep the server's values instead. */
  kept: { field: string; value: unknown }[] = [];

  /**
   * `runtime`: placeholder roots left for run time (in triggers, the automation's too); `steps`:
   * the build and push outputs the deployment's templates see.
   */
  constructor(
    private values: TemplateValues,
    private runtime = RUNTIME_PLACEHOLDER_ROOTS,
    private steps?: StepValues,
  ) {}

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
      if (found === NOT_RUN) return this.#withoutStep(text, whole[1], path);
      return found === KEEP ? text : found;
    }
    let notRun: string | undefined;
    const filled = text.replace(PLACEHOLDER, (placeholder, expression: string) => {
      const found = this.#lookup(expression, path, onlyEnv);
      if (found === NOT_RUN) notRun ??= expression;
      if (found === KEEP || found === NOT_RUN) return placeholder;
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
    return notRun === undefined ? filled : this.#withoutStep(text, notRun, path);
  }

  /**
   * A value made from the output of a step that did not run: the server's value of the field,
   * so a plan without --build-image shows no false change; an error when there is none.
   */
  #withoutStep(text: string, expression: string, path: PathSegment[]): unknown {
    const section = this.steps?.provider(expression) ?? "build";
    const flags = section === "push" ? "--build-image --push-image" : "--build-image";
    const shown = `"{{ ${expression} }}" is the output of a ${section} step`;
    const problem = (code: string, message: string) => {
      this.problems.push({ path, code, message });
      return text;
    };
    switch (this.steps?.missing) {
      case "keep":
        return text;
      case "error":
        return problem("step-not-run", `${shown}, which runs only with --${section}-image.`);
    }
    const server = this.steps?.server;
    if (!server) {
      return problem(
        "step-output-needed",
        `${shown}, and this deployment does not exist on the server yet: run with ${flags} ` +
          "to create it.",
      );
    }
    const field = serverPathOf(path);
    const value = field && valueAt(server, field);
    if (!field || value === NOT_SET) {
      return problem(
        "step-output-needed",
        `${shown}, which runs only with ${flags}${
          field ? `, and the server's deployment has no ${formatPath(field)} to keep` : ""
        }.`,
      );
    }
    this.kept.push({ field: formatPath(field), value });
    return value;
  }

  /** A server value as it is, or a problem when reading it as JSON has already rounded it. */
  #exact(value: unknown, what: string, path: PathSegment[]): unknown {
    const inexact = inexactInteger(value);
    if (inexact === undefined) return value;
    this.problems.push({
      path,
      code: "integer-precision",
      message: `${what} holds an integer beyond ±${Number.MAX_SAFE_INTEGER} (read as ` +
        `${inexact}), which deploy.ts cannot carry exactly; store it as a string.`,
    });
    return KEEP;
  }

  #lookup(expression: string, path: PathSegment[], onlyEnv: boolean): unknown {
    const ref = parseReference(expression, this.runtime);
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
            message: envNotPermitted(ref.name),
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
        return this.#exact(
          this.values.variables.get(ref.name),
          `Prefect variable "${ref.name}"`,
          path,
        );
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
        return this.#exact(value, `Block "${key}"`, path);
      }
      case "step": {
        // In pull steps, outputs of the pull steps themselves are for the worker.
        if (onlyEnv && !this.steps?.provider(expression)) return KEEP;
        const outputs = this.steps?.outputs;
        const found = outputs ? outputValue(outputs, expression) : NOT_SET;
        return found === NOT_SET ? NOT_RUN : found;
      }
    }
  }
}
const KEEP = Symbol("keep");
/** The output of a build or push step that did not run. */
const NOT_RUN = Symbol("not run");

// ─── Steps: --build-image and --push-image ───────────────────────────────────

interface StepCall {
  entry: DeploymentEntry;
  section: StepSection;
  fqn: string;
  args: Json;
  /** Where the step's key is written. */
  path: PathSegment[];
}

/** A step that stopped the run: where, why, and the last lines it printed. */
export interface StepFailure {
  diagnostics: Diagnostic[];
  tail: string[];
}

/**
 * Runs the selected deployments' build steps (`--build-image`) and then their push steps
 * (`--push-image`), each deployment's in order, before anything is planned. A step that already
 * ran with the same arguments in this invocation (a top-level build shared by many deployments)
 * is not run again: its outputs are reused, unless it sets `ignore_cache`. Returns each
 * deployment's outputs, as Prefect collects them, or what stopped the run.
 */
export async function runDeploymentSteps(
  entries: DeploymentEntry[],
  sections: StepSection[],
  client: PrefectClient,
  progress: (line: string) => void,
): Promise<{ outputs: Map<DeploymentEntry, Json> } | StepFailure> {
  const calls = new Map<DeploymentEntry, StepCall[]>();
  for (const entry of entries) {
    const steps = effectiveSteps(entry.file.data as DeployTsManifest, entry.spec, entry.index);
    calls.set(
      entry,
      sections.flatMap((section) =>
        steps[section].steps.map((step, i) => {
          const [fqn, args] = Object.entries(step)[0];
          return {
            entry,
            section,
            fqn,
            args: (args ?? {}) as Json,
            path: [...steps[section].path, i, fqn],
          };
        })
      ),
    );
  }
  const all = [...calls.values()].flat();
  if (!all.length) return { outputs: new Map() };
  const at = (call: StepCall, code: string, message: string) =>
    diagnosticAt(call.entry.file, call.path, code, message, "error", "key");
  const unique = (diagnostics: Diagnostic[]) => [
    ...new Map(diagnostics.map((d) => [`${d.file}:${d.line}:${d.column}:${d.message}`, d]))
      .values(),
  ];

  const foreign = all.filter((call) => !(call.fqn in NATIVE_STEPS));
  if (foreign.length) {
    return {
      tail: [],
      diagnostics: unique(foreign.map((call) =>
        at(
          call,
          "step-not-native",
          `deploy.ts does not run "${call.fqn}" (it runs ${
            [...new Set(Object.keys(NATIVE_STEPS).map((fqn) => fqn.split(".").pop()))].join(", ")
          }): run it before deploy and pass its result in a {{ $DEPLOY_... }} variable, or ` +
            "leave this deployment to `prefect deploy`.",
        )
      )),
    };
  }

  // The server is checked first, so a wrong URL does not wait for a build to be reported.
  await client.checkServer();
  const values = await readTemplateValues(client, all.map((call) => call.args));
  const resolver = (call: StepCall, outputs: Json | undefined, missing: StepValues["missing"]) =>
    new TemplateResolver(values, RUNTIME_PLACEHOLDER_ROOTS, {
      outputs,
      provider: stepProviders(call.entry),
      missing,
    });
  const resolveArgs = (call: StepCall, r: TemplateResolver) => {
    const args = Object.fromEntries(
      Object.entries(call.args).filter(([key]) => !RESERVED_KEYS.includes(key)),
    );
    const inputs = r.resolve(args, call.path) as Json;
    return {
      inputs,
      problems: r.problems.map((p) => diagnosticAt(call.entry.file, p.path, p.code, p.message)),
    };
  };
  // Environment variables, Prefect variables and blocks are checked before any step runs.
  const unresolved = all.flatMap((call) =>
    resolveArgs(call, resolver(call, undefined, "keep")).problems
  );
  if (unresolved.length) return { diagnostics: unique(unresolved), tail: [] };

  const secrets = [...values.blocks.values()].flatMap(stringsIn).filter((s) => s.length >= 4);
  const ctx: StepContext = {
    output: (line) => progress(`  ${hide(line, ctx.secrets)}`),
    env: (name) => Deno.env.get(name),
    secrets,
    now: () => new Date(),
  };
  const ran = new Map<string, Json>();
  const outputs = new Map<DeploymentEntry, Json>();
  for (const [entry, list] of calls) {
    const collected: Json = {};
    for (const call of list) {
      const resolved = resolveArgs(call, resolver(call, collected, "error"));
      if (resolved.problems.length) return { diagnostics: resolved.problems, tail: [] };
      const { inputs, ignoreCache } = takeIgnoreCache(call.fqn, resolved.inputs);
      const prefectVersion = (entry.file.data as DeployTsManifest)["prefect-version"];
      const key = JSON.stringify([call.fqn, inputs, prefectVersion]);
      let result = ignoreCache ? undefined : ran.get(key);
      if (!result) {
        const id = typeof call.args.id === "string" ? ` "${call.args.id}"` : "";
        const { line, column } = positionOf(entry.file, call.path, "key");
        const name = call.fqn.split(".").pop();
        progress(
          `Running ${call.section} step ${name}${id} (${entry.file.path}:${line}:${column})`,
        );
        try {
          result = await runStep(call.fqn, inputs, { ...ctx, prefectVersion });
        } catch (error) {
          const message = error instanceof Error ? error.message : String(error);
          return {
            diagnostics: [
              at(
                call,
                "step-failed",
                hide(
                  `${SECTION_TITLES[call.section]} step ${name}${id} failed: ${message}`,
                  ctx.secrets,
                ),
              ),
            ],
            tail: error instanceof StepError ? error.tail.map((l) => hide(l, ctx.secrets)) : [],
          };
        }
        ran.set(key, result);
      }
      // As Prefect's run_steps: under the step's id, and each output by its bare name.
      if (typeof call.args.id === "string") collected[call.args.id] = result;
      Object.assign(collected, result);
    }
    outputs.set(entry, collected);
  }
  return { outputs };
}

const SECTION_TITLES: Record<StepSection, string> = { build: "Build", push: "Push" };

/** Every string inside a value: the parts of a block a step may print. */
function stringsIn(value: unknown): string[] {
  if (typeof value === "string") return [value];
  if (value && typeof value === "object") return Object.values(value).flatMap(stringsIn);
  return [];
}

function hide(text: string, secrets: string[]): string {
  return secrets.reduce((t, secret) => t.split(secret).join("***"), redact(text));
}

/** The Prefect variables and blocks that templates in `values` use, read once each. */
async function readTemplateValues(
  client: PrefectClient,
  values: unknown[],
): Promise<TemplateValues> {
  const refs = templateReferences(values);
  const variables = refs.variables.length
    ? await client.filterAll<{ name: string; value: unknown }>("/variables/filter", {
      variables: { name: { any_: refs.variables } },
    }, VARIABLE_SHAPE)
    : [];
  return {
    env: (name) => Deno.env.get(name),
    variables: new Map(variables.map((v) => [v.name, v.value])),
    blocks: (await readBlocks(client, refs.blocks)).blocks,
  };
}

/** The first integer in a JSON value that a JavaScript number no longer holds exactly. */
function inexactInteger(value: unknown): number | undefined {
  if (typeof value === "number") {
    return Number.isInteger(value) && !Number.isSafeInteger(value) ? value : undefined;
  }
  if (value && typeof value === "object") {
    for (const v of Object.values(value)) {
      const found = inexactInteger(v);
      if (found !== undefined) return found;
    }
  }
  return undefined;
}

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
  if (typeof number === "number" && Number.isSafeInteger(number)) return number;
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
    if (seconds === undefined || seconds <= 0 || seconds > MAX_INTERVAL_SECONDS) {
      resolver.problems.push({
        path: [...path, "interval"],
        code: "invalid-interval",
        message: seconds && seconds > MAX_INTERVAL_SECONDS
          ? intervalTooLong(r.interval)
          : `Invalid interval ${JSON.stringify(r.interval)} after templating.`,
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

/** What fills `{{ step-id.key }}` in deployment fields: the outputs of steps that ran. */
export interface StepResults {
  outputs: Map<DeploymentEntry, Json>;
  /** The server's deployments by `flow/name`, whose values stand in for steps that did not run. */
  server: Map<string, ServerDeployment>;
}

/** Turns validated manifest entries into the state the server should have. */
export function desiredDeployments(
  entries: DeploymentEntry[],
  owner: Owner,
  values: TemplateValues,
  report: (d: Diagnostic) => void,
  steps?: StepResults,
): DesiredDeployment[] {
  let workingDirectory: string | undefined;
  return entries.map((entry) => {
    const resolver = new TemplateResolver(values, RUNTIME_PLACEHOLDER_ROOTS, {
      outputs: steps?.outputs.get(entry),
      provider: stepProviders(entry),
      missing: "server",
      server: steps?.server.get(`${entry.flow}/${entry.name}`),
    });
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
      : [{ [SET_WORKING_DIRECTORY]: { directory: workingDirectory ??= Deno.cwd() } }];

    const tagsValue = field<unknown>("tags") ?? [];
    const tags = Array.isArray(tagsValue)
      ? tagsValue.map(String)
      : String(tagsValue).split(",").map((t) => t.trim()).filter(Boolean);
    for (const mark of ownerTags(owner)) if (!tags.includes(mark)) tags.push(mark);

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

    // Triggers keep what the automation renders when it fires; the rest resolves now.
    const triggerResolver = new TemplateResolver(values, TRIGGER_PLACEHOLDER_ROOTS);
    const triggers = triggerResolver.resolve(d.triggers ?? [], at("triggers")) as unknown[];
    resolver.problems.push(
      ...triggerResolver.problems,
      ...checkTriggers(entry.name, triggers, at("triggers"), intervalSeconds),
    );

    // Before the problems are reported: a templated `paused` that is not a boolean is one.
    const paused = asBoolean(field("paused"), at("paused"), resolver);
    for (const p of resolver.problems) report(diagnosticAt(entry.file, p.path, p.code, p.message));
    return {
      entry,
      flow: entry.flow,
      name: entry.name,
      fields,
      paused,
      schedules,
      automations: desiredAutomations(entry.name, triggers, intervalSeconds),
      kept: resolver.kept,
    };
  });
}

// ─── Plan: reading the server ────────────────────────────────────────────────

export interface ServerSchedule {
  id: string;
  created?: string;
  schedule: Json;
  active: boolean;
  /** Absent before Prefect 3.2. */
  parameters?: Json;
  /** Null when made by `prefect deploy`; absent before Prefect 3.2. */
  slug?: string | null;
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
  /** Whose deployments `owned` lists: the project and environment the state was read for. */
  owner: Owner;
  flowIds: Map<string, string>;
  /** Key `flow/name`. */
  deployments: Map<string, ServerDeployment & { flow: string }>;
  /** The deployments this project and environment own (by their mark), declared or not. */
  owned: (ServerDeployment & { flow: string })[];
  pools: Set<string>;
  values: TemplateValues;
  /**
   * Which version of each block the templates read (`type/name id updated`): a saved plan pins
   * these instead of the values, which may be secret.
   */
  blockVersions: string[];
  /** The project's automations, and unmarked ones named as a declared trigger. */
  automations: Automations;
}

/** What the filter endpoints must answer before their items are trusted. */
const FLOW_SHAPE = objectShape("flows", { id: "string", name: "string" });
const SCHEDULE_SHAPE = objectShape("a schedule", { id: "string", schedule: "object" });
const DEPLOYMENT_SHAPE: Shape = {
  describe: "deployments",
  test: (d) =>
    objectShape("", {
      id: "string",
      name: "string",
      flow_id: "string",
      paused: "boolean",
      tags: "array",
      schedules: "array",
    }).test(d) && (d as ServerDeployment).schedules.every((s) => SCHEDULE_SHAPE.test(s)),
};
const POOL_SHAPE = objectShape("work pools", { id: "string", name: "string" });
const VARIABLE_SHAPE = objectShape("variables", { id: "string", name: "string" });
const BLOCK_DOCUMENT_SHAPE = objectShape("a block document", {
  data: "object",
  block_schema: "object?",
});

/**
 * The values of a block document's secret fields. `secret_fields` (in its block schema) lists
 * dotted paths, `*` for every key of a secret dict; a `secret` block without it is all secret.
 */
export function blockSecrets(document: Json, typeSlug: string): unknown[] {
  const fields = ((document.block_schema as Json | undefined)?.fields as Json | undefined)
    ?.secret_fields;
  const paths = Array.isArray(fields)
    ? fields.filter((f): f is string => typeof f === "string")
    : typeSlug === "secret"
    ? ["*"]
    : [];
  return paths.flatMap((path) => {
    let values: unknown[] = [document.data];
    for (const segment of path.split(".")) {
      values = values.flatMap((v) =>
        v && typeof v === "object"
          ? segment === "*" ? Object.values(v) : [(v as Json)[segment]]
          : []
      );
    }
    return values.filter((v) => v !== undefined && v !== null);
  });
}

/**
 * The reads that need only what parsing the manifests tells — the owner and the flow names the
 * entrypoints suggest — so they can begin while the manifests are checked.
 */
export interface EarlyReads {
  /** `--wait`: the server answered `/health`. */
  ready: Promise<void>;
  version: Promise<string | undefined>;
  /** The flows named `flowNames`, those the server has. */
  flows: Promise<ServerFlow[]>;
  flowNames: Set<string>;
  /** Every deployment marked with the owner's project (other environments' too). */
  marked: Promise<ServerDeployment[]>;
  /** The automations marked as the owner's. */
  automations: Promise<Automations>;
}

type ServerFlow = { id: string; name: string };

/**
 * Sends the small reads before the listing, in one turn: Prefect's server has answered them by
 * the time it answers the listing, so a no-op asks nothing after its slowest answer (bench:sync,
 * no-op of 100 deployments: about 40 ms sooner). Sent in the middle of the listing, they would
 * delay it by more than they cost.
 */
export function startEarlyReads(
  client: PrefectClient,
  owner: Owner,
  flowNames: Iterable<string>,
  waitSeconds = 0,
  onWait?: (message: string) => void,
): EarlyReads {
  const names = new Set(flowNames);
  const ready = waitSeconds > 0 ? client.waitForHealth(waitSeconds, onWait) : Promise.resolve();
  const version = ready.then(() => client.checkServer());
  const flows = ready.then(() =>
    names.size
      ? client.filterAll<ServerFlow>("/flows/filter", {
        flows: { name: { any_: [...names] } },
      }, FLOW_SHAPE)
      : []
  );
  // Always read: a trigger removed from the manifests is an automation to delete.
  const automations = ready.then(() => readMarkedAutomations(client, automationMarks(owner)));
  // Always read, so plan can say what the project owns and no longer declares. It also holds
  // every declared deployment already written by this project, which a no-op is made of.
  const marked = ready.then(() =>
    client.filterAll<ServerDeployment>("/deployments/filter", {
      deployments: { tags: { all_: ownerTags(owner) } },
    }, DEPLOYMENT_SHAPE)
  );
  // Awaited later, or never when validation fails: no rejection is left unhandled meanwhile.
  [ready, version, flows, automations, marked].forEach((read) => read.catch(() => {}));
  return { ready, version, flows, flowNames: names, marked, automations };
}

/**
 * Reads everything the plan needs in a handful of filter requests. `started`: the early reads,
 * if they are under way already (each is used once).
 */
export async function readServerState(
  client: PrefectClient,
  entries: DeploymentEntry[],
  owner: Owner,
  started: EarlyReads = startEarlyReads(client, owner, entries.map((e) => e.flow)),
): Promise<ServerState> {
  const flowNames = [...new Set(entries.map((e) => e.flow))];
  const env = (name: string) => Deno.env.get(name);
  // Pool names may be templates: those resolve from the environment, or from a Prefect
  // variable or block once those are read.
  const poolNames = (values: TemplateValues, onlyEnv: boolean) =>
    new Set(entries.flatMap((e) => {
      const name = e.spec.work_pool?.name;
      if (typeof name !== "string") return [];
      const resolved = hasPlaceholder(name)
        ? new TemplateResolver(values).resolve(name, [], onlyEnv)
        : name;
      return typeof resolved === "string" && !hasPlaceholder(resolved) ? [resolved] : [];
    }));
  // Steps keep their Prefect variables and blocks for the worker: only the fields are resolved.
  const refs = templateReferences(
    entries.map(({ spec: { pull: _pull, build: _build, push: _push, ...fields } }) => fields),
  );
  // Its clearer message wins when it and the listing both fail.
  await Promise.allSettled([started.version, started.marked, started.flows, started.automations]);
  const version = await started.version;
  const marked = await started.marked;
  const flows = await started.flows;
  // A flow its decorator names otherwise than its function was not among the early names.
  const unguessed = flowNames.filter((name) => !started.flowNames.has(name));
  const [variables, more] = await Promise.all([
    refs.variables.length
      ? client.filterAll<{ name: string; value: unknown }>("/variables/filter", {
        variables: { name: { any_: refs.variables } },
      }, VARIABLE_SHAPE)
      : [],
    unguessed.length
      ? client.filterAll<ServerFlow>("/flows/filter", {
        flows: { name: { any_: unguessed } },
      }, FLOW_SHAPE)
      : [],
  ]);
  flows.push(...more);
  // The default environment's filter also matches other environments' deployments.
  const owned = marked.filter((d) => sameOwner(ownerOf(d.tags ?? []), owner));
  const flowIds = new Map(flows.map((f) => [f.name, f.id]));
  const flowNameById = new Map(flows.map((f) => [f.id, f.name]));
  // A flow and deployment name pair is unique on the server, so only the declared deployments
  // the marked ones do not include are read; none can exist for a flow the server lacks. Listing
  // deployments is the server's slowest answer: a no-op lists them once, not twice.
  const declared = new Set(entries.map((e) => `${e.flow}/${e.name}`));
  const keyOf = (d: ServerDeployment) => `${flowNameById.get(d.flow_id)}/${d.name}`;
  const deployments = marked.filter((d) => declared.has(keyOf(d)));
  const found = new Set(deployments.map(keyOf));
  const missing = entries.filter((e) => !found.has(`${e.flow}/${e.name}`) && flowIds.has(e.flow));
  if (missing.length) {
    const others = await client.filterAll<ServerDeployment>("/deployments/filter", {
      flows: { id: { any_: [...new Set(missing.map((e) => flowIds.get(e.flow)))] } },
      deployments: { name: { any_: [...new Set(missing.map((e) => e.name))] } },
    }, DEPLOYMENT_SHAPE);
    deployments.push(...others.filter((d) => declared.has(keyOf(d)) && !found.has(keyOf(d))));
  }
  const idOf = new Map(deployments.map((d) => [keyOf(d), d.id]));
  const automations = await withNamedAutomations(
    client,
    await started.automations,
    entries.flatMap((e) => {
      const deploymentId = idOf.get(`${e.flow}/${e.name}`);
      if (deploymentId === undefined) return [];
      return (e.spec.triggers ?? []).map((t, i) => automationName(e.name, i, t as Json))
        .filter((name) => !hasPlaceholder(name))
        .map((name) => ({ deploymentId, name }));
    }),
  );
  const { blocks, versions: blockVersions } = await readBlocks(client, refs.blocks);
  const values: TemplateValues = {
    env,
    variables: new Map(variables.map((v) => [v.name, v.value])),
    blocks,
  };
  // A pool a deployment is on exists (the server names it from the deployment's queue): only
  // the others are read, so a no-op apply reads no pool.
  const pools = new Set(
    [...deployments, ...marked].map((d) => d.work_pool_name).filter((n) => typeof n === "string"),
  ) as Set<string>;
  const unknownPools = [...poolNames(values, false)].filter((name) => !pools.has(name));
  if (unknownPools.length) {
    const found = await client.filterAll<{ name: string }>("/work_pools/filter", {
      work_pools: { name: { any_: unknownPools } },
    }, POOL_SHAPE);
    found.forEach((p) => pools.add(p.name));
  }

  const unknownFlowIds = [...new Set(owned.map((d) => d.flow_id))]
    .filter((id) => !flowNameById.has(id));
  if (unknownFlowIds.length) {
    const more = await client.filterAll<ServerFlow>("/flows/filter", {
      flows: { id: { any_: unknownFlowIds } },
    }, FLOW_SHAPE);
    more.forEach((f) => flowNameById.set(f.id, f.name));
  }
  const withFlow = (d: ServerDeployment) => ({ ...d, flow: flowNameById.get(d.flow_id) ?? "?" });
  return {
    version,
    owner,
    flowIds,
    deployments: new Map(deployments.map((d) => [`${withFlow(d).flow}/${d.name}`, withFlow(d)])),
    owned: owned.map(withFlow),
    pools,
    values,
    blockVersions,
    automations,
  };
}

/** Block documents' `data` by `type/name`, secrets included; missing ones are left out. */
async function readBlocks(
  client: PrefectClient,
  keys: string[],
): Promise<{ blocks: Map<string, unknown>; versions: string[] }> {
  const blocks = new Map<string, unknown>();
  const versions: string[] = [];
  await Promise.all(keys.map(async (key) => {
    const [type, name] = key.split("/");
    const { status, data } = await client.request<Json>(
      "GET",
      `/block_types/slug/${encodeURIComponent(type)}/block_documents/name/${
        encodeURIComponent(name)
      }?include_secrets=true`,
      undefined,
      { accept: [404], expect: BLOCK_DOCUMENT_SHAPE },
    );
    if (status !== 200) return;
    // Secret values fill templates; from here on, no output may show them.
    blockSecrets(data, type).forEach((secret) => client.redactor.addValue(secret));
    blocks.set(key, data.data);
    versions.push(`${key} ${data.id} ${data.updated}`);
  }));
  return { blocks, versions: versions.sort() };
}

// ─── Plan: comparing ─────────────────────────────────────────────────────────

export interface Change {
  field: string;
  before: unknown;
  after: unknown;
}

export type Action = "create" | "update" | "adopt" | "delete" | "noop";

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
  /** Update and adopt: the PATCH body, changed fields only. */
  patch: Json;
  schedules: ScheduleOps;
  /**
   * Update of a field the server's PATCH does not take (Prefect < 3.2): the deployment is sent
   * whole instead, with what the server keeps and the full list of schedule bodies.
   */
  repost?: { flowId: string; paused: boolean; schedules: Json[] };
  /** Adopt: the project and environment that owned it, if any did. */
  previousOwner?: Owner;
  /** Its triggers' automations, applied after the deployment (deleted before it). */
  automations: AutomationOp[];
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

/**
 * What to send so the server's schedule becomes the desired one, keeping unstated parts; no
 * slug or parameters where the server has none (Prefect < 3.2 answers 422 to them).
 */
function scheduleBody(
  desired: DesiredSchedule,
  actual: ServerSchedule | undefined,
  capabilities: ServerCapabilities,
): Json {
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
    ...(capabilities.scheduleSlugs ? { slug: desired.slug } : {}),
    schedule,
    active: desired.active ?? actual?.active ?? true,
    // Always sent: the schedule PATCH resets absent parameters to {}.
    ...(capabilities.scheduleSlugs ? { parameters: desired.parameters } : {}),
    ...(maxRuns ? { max_scheduled_runs: maxRuns } : {}),
  };
}

/**
 * Pairs manifest schedules with the server's: by slug, then `replaces`, then a slug-less one
 * with the same timing. A server without slugs (Prefect < 3.2) pairs by timing, then the rest
 * in order (manifest order against the server's creation order), so a cron edit keeps its ID.
 */
function planSchedules(
  desired: DesiredSchedule[],
  actual: ServerSchedule[],
  capabilities: ServerCapabilities,
): { ops: ScheduleOps; changes: Change[]; effects: string[]; bodies: Json[] } {
  const ops: ScheduleOps = { add: [], change: [], remove: [] };
  const changes: Change[] = [];
  const effects: string[] = [];
  const unclaimed = new Set(actual);
  const claim = (match: (a: ServerSchedule) => boolean) => {
    const found = [...unclaimed].find(match);
    if (found) unclaimed.delete(found);
    return found;
  };
  const slugs = capabilities.scheduleSlugs;
  const pairs: [DesiredSchedule, ServerSchedule | undefined][] = desired.map((d) => [
    d,
    slugs ? claim((a) => a.slug === d.slug) : undefined,
  ]);
  for (const pair of pairs) {
    const [d] = pair;
    // A renamed slug (`replaces`), then a slug-less schedule with the same timing, keep their IDs.
    pair[1] ??= (slugs && d.replaces ? claim((a) => a.slug === d.replaces) : undefined) ??
      claim((a) => !a.slug && sameSchedule(d.schedule, a.schedule));
  }
  if (!slugs) {
    const oldestFirst = [...unclaimed]
      .sort((a, b) => (a.created ?? "").localeCompare(b.created ?? ""));
    for (const pair of pairs) {
      if (pair[1] || !oldestFirst.length) continue;
      pair[1] = oldestFirst.shift();
      unclaimed.delete(pair[1]!);
    }
  }
  const bodies: Json[] = [];
  for (const [d, a] of pairs) {
    const label = `schedules[${d.slug}]`;
    const body = scheduleBody(d, a, capabilities);
    bodies.push(body);
    if (!a) {
      ops.add.push(d);
      changes.push({ field: label, before: null, after: body });
      continue;
    }
    const diffs: Change[] = [];
    if (slugs && a.slug !== d.slug) {
      diffs.push({ field: `${label}.slug`, before: a.slug, after: d.slug });
    }
    if (!sameSchedule(d.schedule, a.schedule)) {
      diffs.push(...fieldChanges(`${label}.schedule`, a.schedule, body.schedule));
    }
    if (d.active !== undefined && d.active !== a.active) {
      diffs.push({ field: `${label}.active`, before: a.active, after: d.active });
    }
    if (!sameJson(d.parameters, a.parameters ?? {})) {
      diffs.push(...fieldChanges(`${label}.parameters`, a.parameters, d.parameters));
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
    ops.remove.push({ id: a.id, slug: a.slug ?? null });
    changes.push({
      field: `schedules[${a.slug ?? a.id}]`,
      before: withoutNulls({ slug: a.slug, schedule: a.schedule, active: a.active }),
      after: null,
    });
    if (slugs && a.slug === null) {
      effects.push(
        `The slug-less schedule ${a.id} is deleted; its replacement gets a new ID.`,
      );
    }
  }
  return { ops, changes, effects, bodies };
}

/**
 * A changed value as the changes of its parts, mapping by mapping, so a plan reads
 * `parameters.batch_size: 500 → 600` rather than two whole objects. Lists change as a whole.
 */
export function fieldChanges(field: string, before: unknown, after: unknown): Change[] {
  if (!isMapping(before) || !isMapping(after)) return [{ field, before, after }];
  const keys = [...new Set([...Object.keys(after), ...Object.keys(before)])];
  const changes = keys.flatMap((key) =>
    sameJson(before[key], after[key])
      ? []
      : fieldChanges(`${field}${fieldKey(key)}`, before[key], after[key])
  );
  return changes.length ? changes : [{ field, before, after }];
}

/** `.name`, or `["prefect.resource.id"]` for a key that would read as a path. */
const fieldKey = (key: string) =>
  /^[A-Za-z_][\w-]*$/.test(key) ? `.${key}` : `[${JSON.stringify(key)}]`;

const RUNS_DELETED =
  "Prefect deletes this deployment's future auto-scheduled runs; its scheduler re-creates them.";

/** Fields `PATCH /deployments/{id}` takes only from Prefect 3.2 on. */
const PATCHED_SINCE_3_2 = ["pull_steps", "parameter_openapi_schema"];

/**
 * Declared deployments the server holds under another project's or environment's mark: never
 * taken over silently. Each is an error at the manifest's deployment unless `--adopt`.
 */
export function ownershipConflicts(
  desired: DesiredDeployment[],
  state: ServerState,
  owner: Owner,
): Diagnostic[] {
  return desired.flatMap((want) => {
    const have = state.deployments.get(`${want.flow}/${want.name}`);
    const theirs = have && ownerOf(have.tags ?? []);
    if (!theirs || sameOwner(theirs, owner)) return [];
    const legacy = owner.environment !== null && theirs.project === owner.project &&
        theirs.environment === null
      ? " Deployments that deploy.ts wrote with --env before environments had a mark carry only " +
        "the project's; if this is one, --adopt once claims it for this environment."
      : "";
    return [diagnosticAt(
      want.entry.file,
      ["deployments", want.entry.index, "name"],
      "owned-elsewhere",
      `Deployment "${want.flow}/${want.name}" on the server belongs to ${
        describeOwner(theirs)
      }, not to ${describeOwner(owner)}; deploy.ts does not take it over. Rename it here, ` +
        `or pass --adopt to take it over.${legacy}`,
    )];
  });
}

/** Deployments this project and environment own that the manifests no longer declare. */
export function undeclaredDeployments(
  desired: DesiredDeployment[],
  state: ServerState,
  selected: (d: { flow: string; name: string }) => boolean,
): (ServerDeployment & { flow: string })[] {
  const wanted = new Set(desired.map((d) => `${d.flow}/${d.name}`));
  return state.owned.filter((have) => !wanted.has(`${have.flow}/${have.name}`) && selected(have));
}

/** Compares the desired deployments with the server's: the plan, as pure data. */
export function planDeployments(
  desired: DesiredDeployment[],
  state: ServerState,
  owner: Owner,
  /** Which undeclared deployments to delete: those --prune selects; null without --prune. */
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
        automations: planAutomations(want.automations, state.automations, null),
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
      changes.push(...fieldChanges(field, actual[field], value));
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
    const capabilities = capabilitiesOf(state.version);
    const schedules = planSchedules(want.schedules, have.schedules ?? [], capabilities);
    changes.push(...schedules.changes);
    effects.push(...schedules.effects);
    const unpatchable = capabilities.patchesStepsAndSchema
      ? []
      : PATCHED_SINCE_3_2.filter((field) => field in patch);
    if (unpatchable.length) {
      effects.push(
        `Prefect ${state.version} cannot PATCH ${unpatchable.join(" or ")}: the deployment is ` +
          "sent whole (POST /deployments/, which keeps its ID) and its schedules get new IDs.",
      );
    }
    const deletesRuns = Object.keys(patch).length > 0 || schedules.ops.change.length > 0 ||
      schedules.ops.remove.length > 0;
    if (deletesRuns) effects.unshift(RUNS_DELETED);
    const automations = planAutomations(want.automations, state.automations, have.id);
    const changed = changes.length || automations.some((a) => a.action !== "noop");
    const theirs = ownerOf(have.tags ?? []);
    const adopt = !sameOwner(theirs, owner);
    if (adopt) {
      effects.unshift(
        theirs
          ? `Takes the deployment over from ${describeOwner(theirs)} (--adopt).`
          : "Nobody owns it yet (made by prefect deploy, the UI or the API): from now on " +
            `${describeOwner(owner)} does.`,
      );
    }
    return {
      ...base,
      id: have.id,
      action: adopt ? "adopt" : changed ? "update" : "noop",
      changes,
      effects,
      patch,
      schedules: schedules.ops,
      ...(unpatchable.length
        ? {
          repost: {
            flowId: have.flow_id,
            paused: want.paused ?? have.paused,
            schedules: schedules.bodies,
          },
        }
        : {}),
      ...(adopt ? { previousOwner: theirs } : {}),
      automations,
    };
  });
  if (prune) {
    for (const have of undeclaredDeployments(desired, state, prune.selected)) {
      planned.push({
        flow: have.flow,
        name: have.name,
        id: have.id,
        action: "delete",
        changes: [],
        effects: [
          "Deletes the deployment, every scheduled run of it that has not started, and the " +
          "automations it owns.",
        ],
        patch: {},
        schedules: { add: [], change: [], remove: [] },
        automations: pruneAutomations(state.automations, have.id),
      });
    }
  }
  return planned;
}

// ─── Apply ───────────────────────────────────────────────────────────────────

/** `skipped`: not started, because the server had become unreachable. */
export type Outcome =
  | "created"
  | "updated"
  | "adopted"
  | "unchanged"
  | "deleted"
  | "failed"
  | "skipped";

export interface AppliedDeployment extends PlannedDeployment {
  result: Outcome;
  error?: string;
  /**
   * After a failure, what the server holds, re-read: `update not applied`, `updated partly:
   * schedules not applied`, `create state unknown (…)`.
   */
  state?: string;
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
 * of one deployment does not stop the others; it is reported with what the server holds after
 * it. Once the server stays unreachable through a whole retry budget, no new write is started.
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
        client.request<{ id: string }>("POST", "/flows/", { name }, { expect: CREATED_SHAPE })
          .then((r) => r.data.id),
      );
    }
    return flowIds.get(name)!;
  };

  client.writeConcurrency = concurrency;
  const results: AppliedDeployment[] = new Array(plan.length);
  await inPool(
    plan.map((item, index) => async () => {
      let result: AppliedDeployment;
      if (client.unreachable && item.action !== "noop") {
        result = { ...item, result: "skipped", error: "not started: the server is unreachable" };
      } else {
        try {
          result = await applyOne(client, item, flowId);
        } catch (error) {
          result = await afterFailure(client, item, state, error);
        }
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

const CREATED_SHAPE = objectShape("an object with an id", { id: "string" });

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
      await deleteDeploymentAutomations(client, item.id!, item.automations);
      await client.request("DELETE", path, undefined, { accept: [404] });
      return { ...item, result: "deleted" };
    case "create": {
      const want = item.desired!;
      const id = await createDeployment(client, want, await flowId(want.flow));
      const automations = await applyAutomations(client, id, item.automations);
      return { ...item, id, automations, result: "created" };
    }
    case "update":
    case "adopt": {
      if (item.repost) {
        await createDeployment(client, item.desired!, item.repost.flowId, item.repost);
        return { ...item, result: item.action === "adopt" ? "adopted" : "updated" };
      }
      if (Object.keys(item.patch).length) await client.request("PATCH", path, item.patch);
      await applySchedules(client, item.id!, item.schedules);
      const automations = await applyAutomations(client, item.id!, item.automations);
      return { ...item, automations, result: item.action === "adopt" ? "adopted" : "updated" };
    }
  }
}

/**
 * A write failed, or its answer was lost: the deployment is re-read and compared with what was
 * planned, so the report says what the server holds — never "not applied" for a change that
 * landed, and a success when everything did.
 */
async function afterFailure(
  client: PrefectClient,
  item: PlannedDeployment,
  state: ServerState,
  error: unknown,
): Promise<AppliedDeployment> {
  const message = client.redact(
    error instanceof PrefectApiError || error instanceof UserError
      ? error.message
      : `unexpected error: ${(error as Error)?.message ?? error}`,
  );
  const failed = (found: string, id = item.id): AppliedDeployment => ({
    ...item,
    id,
    result: "failed",
    error: message,
    state: found,
  });
  let now: ServerDeployment | null;
  try {
    now = await readDeployment(client, item);
  } catch {
    return failed(`${item.action} state unknown: the deployment could not be re-read`);
  }
  if (item.action === "delete") {
    return now ? failed("delete not applied") : { ...item, result: "deleted" };
  }
  if (!now) {
    const timedOut = error instanceof ConnectionLost && /timed out/.test(error.message);
    return failed(
      item.action === "create"
        ? timedOut
          ? "create not applied yet: it timed out, and the server may still finish it"
          : "create not applied"
        : "update state unknown: the deployment is gone",
    );
  }
  const key = `${item.flow}/${item.name}`;
  const [remaining] = planDeployments(
    [item.desired!],
    { ...state, deployments: new Map([[key, { ...now, flow: item.flow }]]) },
    state.owner,
    null,
  );
  const done = item.action === "create"
    ? "created"
    : item.action === "adopt"
    ? "adopted"
    : "updated";
  if (remaining.action === "noop") return { ...item, id: now.id, result: done };
  const pending = new Set(remaining.changes.map((c) => c.field));
  if (item.action !== "create" && item.changes.every((c) => pending.has(c.field))) {
    return failed(`${item.action} not applied`);
  }
  // Schedule rows are one part ("schedules"), whichever of them is left.
  const left = new Set([...pending].map((field) => field.replace(/^schedules\[.*$/, "schedules")));
  return failed(`${done} partly: ${[...left].join(", ")} not applied`, now.id);
}

/** The deployment as the server holds it now, or null when it does not exist. */
async function readDeployment(
  client: PrefectClient,
  item: PlannedDeployment,
): Promise<ServerDeployment | null> {
  const path = item.id
    ? `/deployments/${item.id}`
    : `/deployments/name/${encodeURIComponent(item.flow)}/${encodeURIComponent(item.name)}`;
  const { status, data } = await client.request<ServerDeployment>("GET", path, undefined, {
    accept: [404],
    expect: DEPLOYMENT_SHAPE,
  });
  return status === 404 ? null : data;
}

async function applySchedules(client: PrefectClient, id: string, ops: ScheduleOps) {
  const path = `/deployments/${id}/schedules`;
  // Removals first, so a slug freed by one schedule can be taken by another.
  for (const r of ops.remove) {
    await client.request("DELETE", `${path}/${r.id}`, undefined, { accept: [404] });
  }
  for (const c of ops.change) await client.request("PATCH", `${path}/${c.id}`, c.body);
  if (ops.add.length) {
    const bodies = ops.add.map((s) => scheduleBody(s, undefined, client.capabilities));
    await client.request("POST", path, bodies, { resendAfterDrop: false });
  }
}

/**
 * Creates with one POST. The POST is an upsert that would replace schedules, so it is never
 * sent blindly twice: after a lost connection or a timeout the deployment is looked up first,
 * and sent again only when it is not there. `existing` re-sends a deployment whole (an update
 * Prefect < 3.2 cannot PATCH).
 */
async function createDeployment(
  client: PrefectClient,
  want: DesiredDeployment,
  flowId: string,
  existing?: { paused: boolean; schedules: Json[] },
): Promise<string> {
  const schedules = existing?.schedules ??
    want.schedules.map((s) => scheduleBody(s, undefined, client.capabilities));
  // POST /deployments/ drops max_scheduled_runs; such schedules go through the sub-resource.
  const inline = !schedules.some((s) => s.max_scheduled_runs !== undefined);
  const body = {
    name: want.name,
    flow_id: flowId,
    ...want.fields,
    paused: want.paused ?? existing?.paused ?? false,
    schedules: inline ? schedules : [],
  };
  const byName = `/deployments/name/${encodeURIComponent(want.flow)}/${
    encodeURIComponent(want.name)
  }`;
  let id: string | undefined;
  for (let attempt = 1; id === undefined; attempt++) {
    try {
      id = (await client.request<{ id: string }>("POST", "/deployments/", body, {
        // Re-sending an existing deployment whole is idempotent: it already exists either way.
        resendAfterDrop: existing !== undefined,
        expect: CREATED_SHAPE,
      })).data.id;
    } catch (error) {
      if (!(error instanceof ConnectionLost) || existing || attempt >= 3) throw error;
      const found = await client.request<{ id: string }>("GET", byName, undefined, {
        accept: [404],
        expect: CREATED_SHAPE,
      });
      if (found.status === 200) id = found.data.id;
    }
  }
  if (!inline) {
    await client.request("POST", `/deployments/${id}/schedules`, schedules, {
      resendAfterDrop: false,
    });
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
  const props = d.file ? [`file=${escapeProperty(d.file)}`] : [];
  if (d.line) props.push(`line=${d.line}`, `col=${d.column}`);
  props.push(`title=${escapeProperty(d.code)}`);
  return `::${d.severity} ${props.join(",")}::${escapeData(d.message)}`;
}

/** "1 write", "2 writes". */
const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? "" : "s"}`;

function summary(result: ValidationResult): string {
  const errors = result.diagnostics.filter((d) => d.severity === "error").length;
  const warnings = result.diagnostics.length - errors;
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
    diagnostics: result.diagnostics.map(diagnosticJson),
  };
}

function diagnosticJson(d: Diagnostic) {
  return {
    severity: d.severity,
    file: d.file,
    line: d.line || null,
    column: d.column || null,
    path: d.path,
    code: d.code,
    message: d.message,
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

/** One value of a plan diff, shortened after secrets are hidden (a cut would split one). */
/** One line of a plan's value; object keys sorted, so both sides of a change read alike. */
function compact(value: unknown): string {
  const text = value === undefined ? "(none)" : redact(canonicalJson(value));
  return text.length > 160 ? `${text.slice(0, 157)}...` : text;
}

const SYMBOLS: Record<Action, string> = {
  create: "+",
  update: "~",
  adopt: ">",
  delete: "-",
  noop: " ",
};

function countActions(items: { action: Action }[]) {
  const count = (a: Action) => items.filter((i) => i.action === a).length;
  return {
    create: count("create"),
    update: count("update"),
    adopt: count("adopt"),
    delete: count("delete"),
    unchanged: count("noop"),
  };
}

export function planSummary(plan: PlannedDeployment[]): string {
  const c = countActions(plan);
  return `Plan: ${c.create} to create, ${c.update} to update, ${
    c.adopt ? `${c.adopt} to adopt, ` : ""
  }${c.delete} to delete, ${c.unchanged} unchanged.`;
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
    for (const a of item.automations) {
      if (a.action === "noop") continue;
      lines.push(`      ${SYMBOLS[a.action]} automation ${a.name}`);
      for (const c of a.changes) {
        lines.push(`          ${c.field}: ${compact(c.before)} → ${compact(c.after)}`);
      }
      for (const e of a.effects) lines.push(`          ! ${e}`);
    }
  }
  if (!lines.length) lines.push("No changes: the server matches the manifests.");
  const kept = keptLines(plan);
  if (kept.length) lines.push("", ...kept);
  lines.push("", planSummary(plan));
  return lines;
}

/** The fields a plan took from the server because the steps filling them did not run. */
function keptLines(plan: PlannedDeployment[]): string[] {
  const rows = plan.flatMap((item) =>
    (item.desired?.kept ?? []).map((k) =>
      `  ${item.flow}/${item.name}  ${k.field} = ${compact(k.value)}`
    )
  );
  return rows.length
    ? [
      "Kept as on the server (filled by build or push steps that did not run; " +
      "--build-image and --push-image run them):",
      ...rows,
    ]
    : [];
}

export function applySummary(results: AppliedDeployment[]): string {
  const count = (o: Outcome) => results.filter((r) => r.result === o).length;
  const failed = count("failed");
  const adopted = count("adopted");
  const skipped = count("skipped");
  return `Apply: ${count("created")} created, ${count("updated")} updated, ${
    adopted ? `${adopted} adopted, ` : ""
  }${count("deleted")} deleted, ${count("unchanged")} unchanged${
    failed ? `, ${failed} failed` : ""
  }${skipped ? `, ${skipped} not started (the server stayed unreachable)` : ""}.`;
}

function resultLine(r: AppliedDeployment, width: number): string {
  const name = `${r.flow}/${r.name}`.padEnd(width);
  switch (r.result) {
    case "failed":
      return `${name}  ${r.id ?? "-"}  failed (${
        r.state ?? `${r.action} not applied`
      }): ${r.error}`;
    case "skipped":
      return `${name}  ${r.id ?? "-"}  ${r.error}`;
    default: {
      const past = { create: "created", update: "updated", delete: "deleted" } as const;
      const automations = r.automations.flatMap((a) =>
        a.action === "noop" ? [] : [`\n  automation ${a.name}  ${a.id ?? "-"}  ${past[a.action]}`]
      );
      return `${name}  ${r.id}  ${r.result}${automations.join("")}`;
    }
  }
}

/** What plan and apply found and did, whatever the outcome: the JSON document's content. */
interface SyncOutcome {
  items: (PlannedDeployment | AppliedDeployment)[];
  /** Owned, not declared, and not pruned: what --prune would delete. */
  undeclared: (ServerDeployment & { flow: string })[];
  diagnostics: Diagnostic[];
  failure?: { kind: FailureKind; message: string };
  client?: PrefectClient;
  owner?: Owner;
  lock?: { waited_ms: number };
  /** `plan --out`: where the plan was saved. */
  savedTo?: string;
}

function syncJson(outcome: SyncOutcome, started: number): unknown {
  const items = outcome.items;
  const applied = items.some((i) => "result" in i);
  const count = (o: Outcome) => items.filter((i) => (i as AppliedDeployment).result === o).length;
  const skipped = count("skipped");
  return {
    deployments: items.map((i) => ({
      flow: i.flow,
      name: i.name,
      id: i.id,
      action: i.action,
      changes: i.changes,
      effects: i.effects,
      ...(i.previousOwner ? { previous_owner: i.previousOwner } : {}),
      ...(i.desired?.kept.length ? { kept_from_server: i.desired.kept.map((k) => k.field) } : {}),
      automations: i.automations.map(({ name, id, action, changes, effects }) => ({
        name,
        id,
        action,
        changes,
        effects,
      })),
      ...("result" in i
        ? {
          result: i.result,
          ...(i.state ? { state: i.state } : {}),
          ...(i.error ? { error: i.error } : {}),
        }
        : {}),
    })),
    summary: {
      ...countActions(items),
      ...(applied ? { failed: count("failed") } : {}),
      ...(skipped ? { skipped } : {}),
    },
    undeclared: outcome.undeclared.map((d) => ({ flow: d.flow, name: d.name, id: d.id })),
    requests: { read: outcome.client?.reads ?? 0, write: outcome.client?.writes ?? 0 },
    ...(outcome.lock ? { lock: outcome.lock } : {}),
    ...(outcome.savedTo ? { saved_plan: outcome.savedTo } : {}),
    duration_ms: Math.round(performance.now() - started),
    diagnostics: outcome.diagnostics.map(diagnosticJson),
    ...(outcome.failure ? { error: outcome.failure } : {}),
  };
}

// ─── Plan and apply: the commands ────────────────────────────────────────────

/** Hides credentials in everything printed once the client knows them. */
let redact = (text: string) => text;

const progress = (text: string) => console.error(redact(text));

/** Why plan or apply stopped, for the JSON document's `error.kind`. */
type FailureKind =
  | "usage"
  | "user"
  | "validation"
  | "preflight"
  | "server"
  | "lock"
  | "stale-plan"
  | "internal";

/** A stop whose details were already reported (diagnostics), with the line that sums it up. */
class SyncFailure extends UserError {
  constructor(readonly kind: FailureKind, message: string) {
    super(message);
  }
}

function showDiagnostics(diagnostics: Diagnostic[], format: Format) {
  for (const d of diagnostics) {
    // Before formatting: annotations escape `%` and line breaks, which would hide a secret.
    const shown = { ...d, message: redact(d.message) };
    if (format === "github") console.log(redact(githubAnnotation(shown)));
    else console.error(redact(formatDiagnostic(shown)));
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

/**
 * Manifest parts `prefect deploy` acts on and deploy.ts does not here: said, never silent. SLAs
 * and, on a server without automations, triggers are said once, at the first that has them.
 */
function notSynced(
  entries: DeploymentEntry[],
  server: { cloud: boolean; automations: boolean },
): Diagnostic[] {
  const found: Diagnostic[] = [];
  const warn = (entry: DeploymentEntry, path: PathSegment[], code: string, message: string) =>
    found.push(diagnosticAt(entry.file, path, code, message, "warning", "key"));
  const once = (
    key: "sla" | "triggers",
    having: DeploymentEntry[],
    code: string,
    message: (count: number) => string,
  ) => {
    if (having.length) {
      warn(having[0], ["deployments", having[0].index, key], code, message(having.length));
    }
  };
  // `sla: []` counts: to `prefect deploy` it removes the deployment's SLAs.
  once(
    "sla",
    entries.filter((e) => Array.isArray(e.spec.sla)),
    "sla-not-synced",
    (n) =>
      `${n} deployment(s) declare \`sla\`; ${
        server.cloud
          ? "deploy.ts does not sync SLAs to Prefect Cloud yet"
          : "SLAs exist only on Prefect Cloud"
      }, so they were not synced.`,
  );
  if (!server.automations) {
    once(
      "triggers",
      entries.filter((e) => e.spec.triggers?.length),
      "automations-unavailable",
      (n) =>
        `The server has no automations API (404), so the triggers of ${n} deployment(s) were not synced.`,
    );
  }
  return found;
}

/**
 * Manifest parts the server's release cannot store, as errors at their place (pre-flight, so
 * before any write). Schedule slugs are not among them: without slugs, schedules are matched
 * by timing and order instead (planSchedules), and `onNote` says so once.
 */
function beyondServer(
  entries: DeploymentEntry[],
  version: string | undefined,
  capabilities: ServerCapabilities,
  onNote: (text: string) => void,
): Diagnostic[] {
  const found: Diagnostic[] = [];
  let hasSchedules = false;
  for (const entry of entries) {
    const here = ["deployments", entry.index];
    const { schedules, schedule, concurrency_limit: limit } = entry.spec;
    const located: [Schedule, PathSegment[]][] = schedules?.length
      ? schedules.map((s, i) => [s, [...here, "schedules", i]])
      : schedule && Object.keys(schedule).length
      ? [[schedule, [...here, "schedule"]]]
      : [];
    hasSchedules ||= located.length > 0;
    for (const [s, path] of located) {
      if (!capabilities.scheduleSlugs && s.parameters && Object.keys(s.parameters).length) {
        found.push(diagnosticAt(
          entry.file,
          [...path, "parameters"],
          "unsupported-by-server",
          `Prefect ${version} has no schedule parameters (they arrived in 3.2), so this ` +
            "schedule's runs would not get them. Move them to the deployment's `parameters` or " +
            "upgrade the server.",
          "error",
          "key",
        ));
      }
    }
    if (
      !capabilities.concurrencyGracePeriod && limit !== null && typeof limit === "object" &&
      limit.grace_period_seconds !== undefined
    ) {
      found.push(diagnosticAt(
        entry.file,
        [...here, "concurrency_limit", "grace_period_seconds"],
        "unsupported-by-server",
        `Prefect ${version} has no concurrency grace period (it arrived in 3.6.6). Remove ` +
          "`grace_period_seconds` or upgrade the server.",
        "error",
        "key",
      ));
    }
  }
  if (hasSchedules && !capabilities.scheduleSlugs) {
    onNote(
      `Prefect ${version} keeps no schedule slugs: schedules are matched by timing, then in ` +
        "order of creation.",
    );
  }
  return found;
}

/**
 * The PATH given as a single file, if any: then the invocation sees only part of the project.
 * A PATH that does not exist is validation's to report.
 */
function singleFilePath(options: Options): string | undefined {
  return options.paths.find((path) => {
    try {
      return Deno.statSync(path).isFile;
    } catch {
      return false;
    }
  });
}

/**
 * A prune may delete only what the invocation could see: every manifest of the project, so the
 * PATHs must be directories, not single files of it.
 */
function checkPruneScope(selected: DeploymentEntry[], owner: Owner, singleFile?: string) {
  if (selected.length === 0) {
    throw new UserError(
      `--prune refuses to run when the manifests declare no deployment: it would delete every ` +
        `deployment of ${describeOwner(owner)}.`,
    );
  }
  if (singleFile !== undefined) {
    throw new UserError(
      `--prune needs the manifest directory, not single files: with "${singleFile}" alone it ` +
        "would delete the deployments the project's other manifests declare. Give the directory " +
        "(e.g. prefect/) and narrow with --flow or -n.",
    );
  }
}

/** Plan given every input: the server's state, the desired state, and pre-flight problems. */
interface PreparedPlan {
  state: ServerState;
  plan: PlannedDeployment[];
  undeclared: (ServerDeployment & { flow: string })[];
}

/**
 * Reads the server and plans. Anything that would fail a write — a missing work pool, template
 * value or block, another owner's deployment — stops here, before the first write.
 */
async function preparePlan(
  client: PrefectClient,
  selected: DeploymentEntry[],
  owner: Owner,
  /**
   * `warn`: say what apply will not sync (the first time only: apply plans twice);
   * `stepOutputs`: what the build and push steps that ran gave each deployment.
   */
  options: Options & {
    seesWholeProject: boolean;
    warn: boolean;
    stepOutputs: Map<DeploymentEntry, Json>;
  },
  outcome: SyncOutcome,
  started?: EarlyReads,
): Promise<PreparedPlan> {
  const state = await readServerState(client, selected, owner, started);
  if (options.warn) {
    const warnings = notSynced(selected, {
      cloud: client.isCloud,
      automations: state.automations.supported,
    });
    outcome.diagnostics.push(...warnings);
    showDiagnostics(warnings, options.format);
  }
  const problems: Diagnostic[] = [];
  const desired = desiredDeployments(selected, owner, state.values, (d) => problems.push(d), {
    outputs: options.stepOutputs,
    server: state.deployments,
  });
  problems.push(
    ...beyondServer(
      selected,
      state.version,
      client.capabilities,
      options.warn ? progress : () => {},
    ),
  );
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
    if (client.isCloud) continue;
    const triggersAt = ["deployments", want.entry.index, "triggers"];
    for (const path of metricTriggerPaths(want.entry.spec.triggers ?? [], triggersAt)) {
      problems.push(diagnosticAt(
        want.entry.file,
        path,
        "cloud-only-trigger",
        `Metric triggers exist only on Prefect Cloud; ${client.displayUrl} would reject this ` +
          "automation.",
      ));
    }
  }
  if (!options.adopt) problems.push(...ownershipConflicts(desired, state, owner));
  if (problems.length) {
    outcome.diagnostics.push(...problems);
    showDiagnostics(problems, options.format);
    throw new SyncFailure(
      "preflight",
      `Stopped before any change: ${problems.length} error${problems.length === 1 ? "" : "s"}.`,
    );
  }
  // --prune deletes only within the selection, when there is one.
  const scope = selection(options.flows, options.names);
  const inScope = (d: { flow: string; name: string }) => scope.matches(d);
  return {
    state,
    plan: planDeployments(desired, state, owner, options.prune ? { selected: inScope } : null),
    // Undeclared means "in no manifest": only knowable when every manifest was read.
    undeclared: options.prune || !options.seesWholeProject
      ? []
      : undeclaredDeployments(desired, state, inScope),
  };
}

// ─── Plan and apply: saved plans ─────────────────────────────────────────────

/** A server deployment as far as a plan depends on it (not `updated`: worker polls move it). */
function serverFingerprint(have: ServerDeployment): unknown {
  const schedules = [...(have.schedules ?? [])].sort((a, b) => a.id.localeCompare(b.id));
  return {
    ...serverFields(have),
    paused: have.paused,
    schedules: schedules.map((s) => ({
      id: s.id,
      slug: s.slug,
      schedule: s.schedule,
      active: s.active,
      parameters: s.parameters,
      max_scheduled_runs: s.max_scheduled_runs,
    })),
  };
}

/** Everything apply would send for one planned deployment. */
function operationOf(item: PlannedDeployment): unknown {
  return {
    action: item.action,
    id: item.id,
    patch: item.patch,
    schedules: item.schedules,
    automations: item.automations.map(({ action, name, id, body, enabledOnly }) => ({
      action,
      name,
      id,
      body,
      enabledOnly,
    })),
    ...(item.action === "create"
      ? { fields: item.desired?.fields, paused: item.desired?.paused ?? false }
      : {}),
  };
}

async function savedPlanOf(
  prepared: PreparedPlan,
  validation: ValidationResult,
  options: Options,
  owner: Owner,
  client: PrefectClient,
  printed: unknown,
): Promise<SavedPlan> {
  // Digests of redacted text: a secret neither appears in the file nor can be tested against it.
  const hash = (value: unknown) => digest(client.redact(canonicalJson(value)));
  const server = new Map(
    [...prepared.state.deployments.values(), ...prepared.state.owned].map((d) => [d.id, d]),
  );
  return {
    format: PLAN_FORMAT,
    format_version: PLAN_FORMAT_VERSION,
    deploy_version: VERSION,
    created: new Date().toISOString(),
    project: owner.project,
    environment: owner.environment,
    api_url: client.displayUrl,
    invocation: {
      paths: options.paths,
      environment: options.env ?? null,
      flows: options.flows,
      names: options.names,
      prune: options.prune,
      adopt: options.adopt,
      strict: options.strict,
      codeChecks: options.codeChecks,
      directory: Deno.cwd(),
    },
    manifests: Object.fromEntries(
      await Promise.all(validation.manifests.map(async (f) => [f.path, await digest(f.text)])),
    ),
    blocks: prepared.state.blockVersions,
    deployments: await Promise.all(prepared.plan.map(async (item) => {
      const have = item.id ? server.get(item.id) : undefined;
      return {
        flow: item.flow,
        name: item.name,
        action: item.action,
        server: have ? await hash(serverFingerprint(have)) : null,
        operation: await hash(operationOf(item)),
      };
    })),
    plan: printed,
  };
}

/** `apply PLANFILE` or `apply --plan FILE`: the saved plan, or undefined for a normal apply. */
async function readSavedPlan(
  options: Options,
): Promise<{ path: string; plan: SavedPlan } | undefined> {
  if (options.command !== "apply") return undefined;
  let path = options.planFile;
  if (path === undefined && options.paths.length === 1) {
    const candidate = options.paths[0];
    const info = await Deno.stat(candidate).catch(() => undefined);
    if (info?.isFile && !/\.ya?ml$/i.test(candidate)) {
      const head = await Deno.readTextFile(candidate).catch(() => "");
      if (looksLikeSavedPlan(head)) path = candidate;
    }
  }
  if (path === undefined) return undefined;
  const given = [
    options.env !== undefined ? "--env" : "",
    options.flows.length ? "--flow" : "",
    options.names.length ? "--name" : "",
    options.prune ? "--prune" : "",
    options.adopt ? "--adopt" : "",
  ].filter(Boolean);
  if (given.length) {
    throw new UsageError(
      `apply: a saved plan brings its own manifests, selection and environment; drop ${
        given.join(", ")
      }.`,
    );
  }
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    throw new UserError(`Cannot read the saved plan "${path}": ${(error as Error).message}.`);
  }
  try {
    return { path, plan: parseSavedPlan(text, path, VERSION) };
  } catch (error) {
    if (error instanceof PlanFileError) throw new UserError(error.message);
    throw error;
  }
}

function invocationOptions(options: Options, saved: SavedPlan): Options {
  const i = saved.invocation;
  return {
    ...options,
    paths: i.paths,
    env: i.environment ?? undefined,
    flows: i.flows,
    names: i.names,
    prune: i.prune,
    adopt: i.adopt,
    strict: i.strict,
    codeChecks: i.codeChecks,
  };
}

function checkSavedPlan(path: string, saved: SavedPlan, now: SavedPlan) {
  const moved = planDifferences(saved, now);
  if (!moved.length) return;
  throw new SyncFailure(
    "stale-plan",
    `The saved plan "${path}" is out of date: ${moved[0]}${
      moved.length > 1 ? ` (and ${moved.length - 1} more change${moved.length > 2 ? "s" : ""})` : ""
    } since it was made. Nothing was written; make the plan again.`,
  );
}

/** Written whole or not at all: a plan cut short by a full disk must not look reviewable. */
async function writeSavedPlan(path: string, plan: SavedPlan) {
  const temporary = `${path}.${crypto.randomUUID().slice(0, 8)}.tmp`;
  try {
    await Deno.writeTextFile(temporary, redact(JSON.stringify(plan, null, 2)) + "\n");
    await Deno.rename(temporary, path);
  } catch (error) {
    await Deno.remove(temporary).catch(() => {});
    const reason = error instanceof Deno.errors.NotCapable
      ? "deploy writes only inside the directory it runs in"
      : (error as Error).message;
    throw new UserError(`Cannot write the plan to "${path}" (--out): ${reason}.`);
  }
}

// ─── Plan and apply: running them ────────────────────────────────────────────

async function runSync(options: Options): Promise<number> {
  const started = performance.now();
  const outcome: SyncOutcome = { items: [], undeclared: [], diagnostics: [] };
  let code: number;
  try {
    code = await sync(options, outcome);
  } catch (error) {
    outcome.failure = describeFailure(error);
    code = EXIT_FAILURE;
  }
  // Reads begun alongside a validation that then failed are still under way: they end here.
  outcome.client?.close();
  reportSync(options, outcome, started);
  return code;
}

async function sync(options: Options, outcome: SyncOutcome): Promise<number> {
  const saved = await readSavedPlan(options);
  if (saved) options = invocationOptions(options, saved.plan);
  const singleFile = singleFilePath(options);

  // Until validation passes, what the server's client says (retries, waiting) is held back: a
  // failed validation is the whole story then.
  let held: string[] | undefined = [];
  const say = (message: string) => held ? held.push(message) : progress(message);
  let connection: { settings: ClientSettings; client: PrefectClient } | undefined;
  const connect = () => {
    const settings = settingsFromEnvironment((name) => Deno.env.get(name), options.apiUrl);
    const client = outcome.client = new PrefectClient({ ...settings, onRetry: say });
    redact = (text) => client.redact(text);
    return connection = { settings, client };
  };
  // Listing what the project owns is the server's slowest answer, and needs only the project's
  // name: it starts as soon as the manifests are parsed, alongside checking them. Reads only;
  // nothing is written unless validation passes. Not when steps run first (they outlast
  // validation, and the plan reads the server as it is after them), nor when --prune is to be
  // refused for a single-file PATH whatever the manifests say.
  let early: EarlyReads | undefined;
  const readsEarly = !options.buildImage && !options.pushImage && !(options.prune && singleFile);
  const validation = await validate(options, (project, flowNames) => {
    if (!readsEarly) return false;
    let client: PrefectClient;
    try {
      ({ client } = connect());
    } catch {
      return false; // a bad setting: connect() says so again after validation, in its turn
    }
    const owner = { project: project.name, environment: options.env ?? null };
    early = startEarlyReads(client, owner, flowNames, options.wait, say);
    return true;
  });
  outcome.diagnostics.push(...validation.diagnostics);
  showDiagnostics(validation.diagnostics, options.format);
  if (!validation.valid) throw new SyncFailure("validation", summary(validation));
  held.forEach(progress);
  held = undefined;
  const selected = selectDeployments(validation.deployments, options.flows, options.names);
  const owner: Owner = { project: validation.project.name, environment: options.env ?? null };
  outcome.owner = owner;
  if (options.prune) checkPruneScope(selected, owner, singleFile);

  const { settings, client } = connection ?? connect();
  if (early) await early.ready;
  else if (options.wait > 0) await client.waitForHealth(options.wait, progress);
  const stepOutputs = await runSteps(selected, options, client, outcome);
  progress(
    `Reading ${client.displayUrl} for ${selected.length} deployment(s) of ${describeOwner(owner)}`,
  );
  const planning = {
    ...options,
    seesWholeProject: singleFile === undefined,
    warn: true,
    stepOutputs,
  };
  const prepared = await preparePlan(client, selected, owner, planning, outcome, early);
  outcome.items = prepared.plan;
  outcome.undeclared = prepared.undeclared;
  const savedNow = (p: PreparedPlan) =>
    savedPlanOf(p, validation, options, owner, client, syncJson(outcome, performance.now()));
  if (saved) checkSavedPlan(saved.path, saved.plan, await savedNow(prepared));

  if (options.command === "plan") {
    if (options.out) {
      outcome.savedTo = options.out;
      await writeSavedPlan(options.out, await savedNow(prepared));
    }
    const pending = prepared.plan.some((p) => p.action !== "noop");
    return options.detailedExitcode && pending ? EXIT_CHANGES : EXIT_OK;
  }

  if (options.format === "text") keptLines(prepared.plan).forEach((line) => progress(line));
  if (prepared.plan.every((p) => p.action === "noop")) {
    // Nothing to write, so nothing to guard: a no-op apply takes no lock and writes nothing.
    outcome.items = prepared.plan.map((p) => ({ ...p, result: "unchanged" }));
    return EXIT_OK;
  }
  // A saved plan was reviewed with its deletions: it is its own confirmation.
  if (!saved) confirmDeletions(prepared.plan, options);

  const waitStarted = performance.now();
  let lock: DeployLock;
  try {
    lock = await DeployLock.acquire(new PrefectClient({ ...settings, onRetry: progress }), {
      project: owner.project,
      environment: owner.environment,
      timeoutSeconds: options.lockTimeout,
      ttlSeconds: lockTtl(),
      onWait: progress,
    });
  } catch (error) {
    if (error instanceof LockError) throw new SyncFailure("lock", error.message);
    throw error;
  }
  outcome.lock = { waited_ms: Math.round(performance.now() - waitStarted) };
  try {
    // Under the lock the server cannot move: plan again from what it holds now.
    const fresh = await preparePlan(client, selected, owner, { ...planning, warn: false }, outcome);
    outcome.items = fresh.plan;
    outcome.undeclared = fresh.undeclared;
    if (saved) checkSavedPlan(saved.path, saved.plan, await savedNow(fresh));
    else {
      const confirmed = new Set(
        prepared.plan.filter((p) => p.action === "delete").map((p) => p.id),
      );
      const unconfirmed = fresh.plan.find((p) => p.action === "delete" && !confirmed.has(p.id));
      if (unconfirmed) {
        throw new SyncFailure(
          "lock",
          `While this apply waited for the lock, the server changed: it would now also delete ` +
            `${unconfirmed.flow}/${unconfirmed.name}, which was not confirmed. Nothing was ` +
            "written; run it again.",
        );
      }
    }
    const width = Math.max(0, ...fresh.plan.map((p) => `${p.flow}/${p.name}`.length));
    const results = await applyPlan(client, fresh.plan, fresh.state, options.concurrency, (r) => {
      if (options.format === "text") console.log(redact(resultLine(r, width)));
      else if (options.format === "github" && r.result === "failed") {
        console.log(redact(`::error title=apply failed::${r.flow}/${r.name}: ${r.error}`));
      }
    });
    outcome.items = results;
    if (lock.lost) {
      throw new SyncFailure(
        "lock",
        `The lock was lost while applying (${lock.lost}); another apply may have written too. ` +
          "Run plan to see where the server stands.",
      );
    }
    return results.some((r) => r.result === "failed") ? EXIT_FAILURE : EXIT_OK;
  } finally {
    await lock.release().catch((error) =>
      progress(
        `warning: could not release the lock (${(error as Error).message}); it expires by itself.`,
      )
    );
  }
}

/**
 * `--build-image` and `--push-image`: the selected deployments' steps, run before anything is
 * planned. A failed step stops everything, with its place and the last lines it printed.
 */
async function runSteps(
  selected: DeploymentEntry[],
  options: Options,
  client: PrefectClient,
  outcome: SyncOutcome,
): Promise<Map<DeploymentEntry, Json>> {
  const sections = [
    ...(options.buildImage ? ["build" as const] : []),
    ...(options.pushImage ? ["push" as const] : []),
  ];
  if (!sections.length) return new Map();
  const ran = await runDeploymentSteps(selected, sections, client, progress);
  if (!("diagnostics" in ran)) return ran.outputs;
  outcome.diagnostics.push(...ran.diagnostics);
  showDiagnostics(ran.diagnostics, options.format);
  if (ran.tail.length) {
    progress(["  Last lines of its output:", ...ran.tail.map((l) => `    ${l}`)].join("\n"));
  }
  throw new SyncFailure(
    "preflight",
    `Stopped before any change: ${ran.diagnostics.length} error${
      ran.diagnostics.length === 1 ? "" : "s"
    }.`,
  );
}

/** Seconds a lock outlives an apply that was killed (DEPLOY_LOCK_TTL, default 60). */
function lockTtl(): number {
  const raw = Deno.env.get("DEPLOY_LOCK_TTL");
  const seconds = raw === undefined || raw === "" ? 60 : Number(raw);
  if (!Number.isFinite(seconds) || seconds < 1) {
    throw new UserError(`DEPLOY_LOCK_TTL must be a number of seconds of at least 1, not "${raw}".`);
  }
  return seconds;
}

/** The results, last: stdout for results (one JSON document with --format json), stderr for the rest. */
function reportSync(options: Options, outcome: SyncOutcome, started: number) {
  const failure = outcome.failure;
  if (options.format === "json") {
    console.log(redact(JSON.stringify(syncJson(outcome, started), null, 2)));
    if (failure) console.error(redact(`error: ${failure.message}`));
    return;
  }
  const applied = outcome.items.some((i) => "result" in i);
  if (options.command === "plan" && !failure) {
    renderPlan(outcome.items).forEach((line) => console.log(redact(line)));
  } else if (options.command === "apply" && applied) {
    const client = outcome.client!;
    progress(
      `${plural(client.reads + client.writes, "request")} (${plural(client.reads, "read")}, ` +
        `${plural(client.writes, "write")}) in ${
          ((performance.now() - started) / 1000).toFixed(1)
        } s`,
    );
    console.log(redact(applySummary(outcome.items as AppliedDeployment[])));
  }
  if (outcome.savedTo && !failure) {
    progress(
      `Saved the plan to ${outcome.savedTo}; apply exactly it with: deploy apply ${outcome.savedTo}`,
    );
  }
  if (outcome.undeclared.length && !failure) {
    const n = outcome.undeclared.length;
    progress(
      `${n} deployment${n === 1 ? "" : "s"} of ${describeOwner(outcome.owner!)} ${
        n === 1 ? "is" : "are"
      } not in the manifests; --prune would delete ${n === 1 ? "it" : "them"}: ${
        outcome.undeclared.map((d) => `${d.flow}/${d.name}`).join(", ")
      }.`,
    );
  }
  if (failure) {
    if (options.format === "github") {
      console.log(redact(githubAnnotation({
        severity: "error",
        file: "",
        line: 0,
        column: 0,
        path: "",
        code: failure.kind,
        message: failure.message,
      })));
    }
    console.error(redact(`error: ${failure.message}`));
  }
}

// ─── Inspect ─────────────────────────────────────────────────────────────────

/** `deploy inspect`: one flow's name and parameter schema, read from its source. */
function runInspect(entrypoint: string, format: Format): number {
  if (!entrypoint.includes(":") && !entrypoint.includes(".")) {
    throw new UsageError(
      `inspect: "${entrypoint}" is not an entrypoint; write path/file.py:function.`,
      "inspect",
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
  if (found.kind === "inaccessible") {
    throw new UserError(`Cannot read "${found.file}": ${found.reason}.`);
  }
  const syntax = found.module.syntaxError;
  if (syntax) {
    console.error(formatDiagnostic(pythonSyntaxDiagnostic(found.file, syntax)));
    return EXIT_FAILURE;
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
    throw new UserError(notAFlowMessage(object, found.file, lookup));
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
  // Loaded by `init` and `export` only: with the `yaml` and `jsonc-parser` packages they need,
  // they cost every other command about 9 ms of start-up.
  const { init } = await import("./lib/init.ts");
  const sources = new FlowSources();
  await init({
    manifestDir: options.paths[0],
    project: options.project ?? directoryProjectName(),
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
  const project = options.project ?? existing?.project.name ?? directoryProjectName();
  const settings = settingsFromEnvironment((name) => Deno.env.get(name), options.apiUrl);
  const client = new PrefectClient({ ...settings, onRetry: progress });
  redact = (text) => client.redact(text);
  if (options.wait > 0) await client.waitForHealth(options.wait, progress);
  await client.checkServer();
  const wanted = selection([], options.names);
  const { exportManifests, readForExport } = await import("./lib/export.ts");
  const { writeFiles } = await import("./lib/init.ts");
  const found = await readForExport(client, (d) => !options.names.length || wanted.matches(d));
  if (wanted.unmatched().length) {
    throw new UserError(
      `No deployment on ${client.displayUrl} matches ${
        wanted.unmatched().map((u) => `${u.flag} "${u.pattern}"`).join(" or ")
      }.`,
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

/** One line for any failure, credentials hidden; a stack only with DEPLOY_DEBUG. */
function describeFailure(error: unknown): { kind: FailureKind; message: string } {
  if (error instanceof SyncFailure) return { kind: error.kind, message: redact(error.message) };
  if (error instanceof UsageError) return { kind: "usage", message: error.message };
  if (error instanceof PrefectApiError) return { kind: "server", message: redact(error.message) };
  if (error instanceof UserError || error instanceof SettingsError) {
    return { kind: "user", message: redact(error.message) };
  }
  if (error instanceof Deno.errors.NotCapable && /read access/.test(error.message)) {
    const path = error.message.match(/"([^"]+)"/)?.[1] ?? "a file";
    return { kind: "user", message: `Cannot read "${path}": ${READ_OUTSIDE}.` };
  }
  if (error instanceof Deno.errors.NotCapable) {
    return {
      kind: "user",
      message: `${sentence(error.message)} Run with the permissions in deno.json's tasks.`,
    };
  }
  const debug = Deno.permissions.querySync({ name: "env", variable: "DEPLOY_DEBUG" });
  if (debug.state === "granted" && Deno.env.get("DEPLOY_DEBUG")) {
    console.error((error as Error)?.stack);
  }
  return {
    kind: "internal",
    message: redact(`internal error: ${(error as Error)?.message ?? error}`),
  };
}

export async function main(argv: string[]): Promise<number> {
  try {
    const options = parseCommandLine(argv, callerDirectory());
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
    const { message } = describeFailure(error);
    const help = error instanceof UsageError
      ? `\nRun "${error.command ? `deploy ${error.command} --help` : "deploy --help"}" for usage.`
      : "";
    console.error(`error: ${message}${help}`);
    return EXIT_FAILURE;
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
