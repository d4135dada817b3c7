/**
 * `deploy export`: manifests for deployments that already exist on a Prefect server (made by
 * `prefect deploy`, the UI or Python's `flow.deploy()`), one file per flow, with every value as
 * the server holds it — which template produced a value cannot be known — so that `plan` on
 * them right after shows nothing but taking each deployment over. Fields equal to what deploy.ts
 * would send anyway (its defaults, what it reads from the flow's source) are left out. A value
 * that came from a secret block is written as a reference to that block, or refused. The
 * automations that run a deployment become its `triggers:`.
 */
import { Document, isScalar, visit, type YAMLMap } from "yaml";
import { PrefectApiError, type PrefectClient } from "./prefect_client.ts";
import { manifestTrigger, type ServerAutomation } from "./automations.ts";
import { fileStem, modeline } from "./init.ts";

type Json = Record<string, unknown>;

const SET_WORKING_DIRECTORY = "prefect.deployments.steps.set_working_directory";
const OWNER_TAG = /^(managed-by:deploy\.ts\/|deploy\.ts\/env:)/;
/** Secrets shorter than this are only recognised as a whole value, not inside a text. */
const MIN_EMBEDDED_SECRET = 4;

/** An automation as `/automations/filter` returns it. */
export type ExportedAutomation = ServerAutomation & { created?: string };

/**
 * A deployment as `/deployments/filter` returns it, with its flow's name and the automations
 * whose actions name it.
 */
export interface ExportedDeployment {
  flow: string;
  id: string;
  name: string;
  description?: string | null;
  version?: string | null;
  tags?: string[];
  parameters?: Json;
  parameter_openapi_schema?: Json | null;
  enforce_parameter_schema?: boolean;
  entrypoint?: string | null;
  pull_steps?: Json[] | null;
  work_pool_name?: string | null;
  work_queue_name?: string | null;
  job_variables?: Json | null;
  paused?: boolean;
  global_concurrency_limit?: { limit: number } | null;
  concurrency_options?:
    | { collision_strategy?: string; grace_period_seconds?: number | null }
    | null;
  schedules?: {
    slug: string | null;
    schedule: Json;
    active: boolean;
    parameters?: Json;
    max_scheduled_runs?: number | null;
  }[];
  /** Absent: the server has no automations API. */
  automations?: ExportedAutomation[];
}

/** A value held by a block's secret field, and how a manifest may refer to it. */
export interface SecretValue {
  value: unknown;
  /** `type/name` and the field, for messages; never the value. */
  block: string;
  /** `{{ prefect.blocks.type.name[.field] }}`; absent for an anonymous block. */
  reference?: string;
}

/**
 * Deployments the matcher selects, with their flows' names and automations, and the server's
 * secret values. Automations are one listing of them all: the server filters them by ID, name,
 * creation time and tags, not by what they act on, which is in their actions.
 */
export async function readForExport(
  client: PrefectClient,
  selected: (d: { flow: string; name: string }) => boolean,
): Promise<{ deployments: ExportedDeployment[]; secrets: SecretValue[] }> {
  const automations = client.filterAll<ExportedAutomation>("/automations/filter", {}).catch(
    (error) => {
      if (error instanceof PrefectApiError && error.status === 404) return undefined;
      throw error;
    },
  );
  const [deployments, blocks, allAutomations] = await Promise.all([
    client.filterAll<Omit<ExportedDeployment, "flow"> & { flow_id: string }>(
      "/deployments/filter",
      {},
    ),
    // Anonymous blocks too (the filter excludes them unless told): their values are secrets.
    client.filterAll<BlockDocument>("/block_documents/filter", {
      include_secrets: true,
      block_documents: { is_anonymous: null },
    }),
    automations,
  ]);
  const actingOn = new Map<string, ExportedAutomation[]>();
  for (const automation of allAutomations ?? []) {
    const named = [
      ...automation.actions ?? [],
      ...automation.actions_on_trigger ?? [],
      ...automation.actions_on_resolve ?? [],
    ].map((action) => action.deployment_id).filter((id): id is string => typeof id === "string");
    for (const id of new Set(named)) actingOn.set(id, [...actingOn.get(id) ?? [], automation]);
  }
  const flowIds = [...new Set(deployments.map((d) => d.flow_id))];
  const flows = flowIds.length
    ? await client.filterAll<{ id: string; name: string }>("/flows/filter", {
      flows: { id: { any_: flowIds } },
    })
    : [];
  const flowName = new Map(flows.map((f) => [f.id, f.name]));
  return {
    deployments: deployments
      .map(({ flow_id, ...d }) => ({
        ...d,
        flow: flowName.get(flow_id) ?? flow_id,
        ...(allAutomations ? { automations: actingOn.get(d.id) ?? [] } : {}),
      }))
      .filter(selected)
      .sort((a, b) => a.flow.localeCompare(b.flow) || a.name.localeCompare(b.name)),
    secrets: secretValues(blocks),
  };
}

interface BlockDocument {
  name: string | null;
  is_anonymous: boolean;
  data: Json;
  block_type: { slug: string };
  block_schema: { fields?: { secret_fields?: string[] } };
}

/** Every value in a secret field of a block (`a.b`, `a.*` as Prefect lists them). */
export function secretValues(blocks: BlockDocument[]): SecretValue[] {
  const found: SecretValue[] = [];
  for (const block of blocks) {
    const fields = [...new Set(block.block_schema?.fields?.secret_fields ?? [])];
    // Anonymous blocks carry generated names (anonymous-<uuid>) no manifest should rely on.
    const label = `${block.block_type.slug}/${
      block.is_anonymous || !block.name ? "(anonymous)" : block.name
    }`;
    for (const field of fields) {
      const walk = (value: unknown, path: string[], rest: string[]) => {
        if (value === undefined || value === null) return;
        if (rest.length === 0) {
          const wholeSecretBlock = path.length === 1 && path[0] === "value" &&
            Object.keys(block.data).length === 1;
          const reference = block.is_anonymous || !block.name
            ? undefined
            : `{{ prefect.blocks.${
              [block.block_type.slug, block.name, ...(wholeSecretBlock ? [] : path)].join(".")
            } }}`;
          found.push({ value, block: `${label} (${path.join(".")})`, reference });
          return;
        }
        const [head, ...tail] = rest;
        if (head === "*" && value && typeof value === "object") {
          for (const [key, inner] of Object.entries(value)) walk(inner, [...path, key], tail);
        } else if (value && typeof value === "object") {
          walk((value as Json)[head], [...path, head], tail);
        }
      };
      walk(block.data, [], field.split("."));
    }
  }
  // Longest first, so a secret that contains another is replaced whole.
  return found.sort((a, b) => String(b.value).length - String(a.value).length);
}

/** What deploy.ts would fill in for a deployment from the flow's source in this checkout. */
export interface LocalFlows {
  /** The flow name validate reads for an entrypoint. */
  flowName(entrypoint: string): string;
  /** The parameter schema and docstring, when the source is here. */
  inferred(entrypoint: string): { schema: Json; description: string | null } | undefined;
}

export interface ExportOptions {
  project: string;
  manifestDir: string;
  /** The directory apply would run in: the default pull step points here. */
  cwd: string;
  /** `flow/name` of deployments the manifests declare already: not exported again. */
  declared: Set<string>;
  /** Paths that exist: a file is never written over one. */
  exists(path: string): boolean;
  source: string;
}

export interface ExportResult {
  /** Path → YAML text, with the `flow/name`s it declares. */
  files: { path: string; content: string; deployments: string[] }[];
  /** Values that cannot be written without leaking a secret: export stops. */
  refused: string[];
  notes: string[];
}

/** One manifest per flow for the deployments given. Pure: writes nothing. */
export function exportManifests(
  deployments: ExportedDeployment[],
  secrets: SecretValue[],
  local: LocalFlows,
  options: ExportOptions,
): ExportResult {
  const refused: string[] = [];
  const notes: string[] = [];
  const byFlow = new Map<string, Json[]>();
  const paused: Set<Json> = new Set();
  /** Positions of the triggers whose automations are switched off, by entry. */
  const disabled = new Map<Json, number[]>();
  let automationsUnsupported = false;
  for (const d of deployments) {
    const key = `${d.flow}/${d.name}`;
    if (options.declared.has(key)) {
      notes.push(`Skipped ${key}: the manifests in ${options.manifestDir}/ declare it already.`);
      continue;
    }
    if (!d.entrypoint) {
      notes.push(`Skipped ${key}: it has no entrypoint (made by flow.serve() or an old client).`);
      continue;
    }
    const owners = (d.tags ?? []).filter((t) => t.startsWith("managed-by:deploy.ts/"))
      .map((t) => t.slice("managed-by:deploy.ts/".length)).filter((p) => p !== options.project);
    if (owners.length) {
      notes.push(
        `${key} is managed by project "${
          owners[0]
        }": plan and apply take it over only with --adopt.`,
      );
    }
    const stated = manifestEntry(d, local, options);
    if (!d.automations) automationsUnsupported = true;
    const triggers = d.automations ? manifestTriggers(d, key, notes) : [];
    if (triggers.length) stated.triggers = triggers.map((t) => t.trigger);
    const entry = hideSecrets(stated, secrets, key, refused);
    if (d.paused) paused.add(entry);
    const off = triggers.flatMap((t, i) => t.enabled ? [] : [i]);
    if (off.length) disabled.set(entry, off);
    byFlow.set(d.flow, [...byFlow.get(d.flow) ?? [], entry]);
  }
  if (automationsUnsupported) {
    notes.push("The server has no automations API (404): no triggers exported.");
  }
  const files: ExportResult["files"] = [];
  const taken = new Set<string>();
  for (const [flow, entries] of byFlow) {
    let path = `${options.manifestDir}/${fileStem(flow)}.yaml`;
    for (let n = 2; options.exists(path) || taken.has(path); n++) {
      path = `${options.manifestDir}/${fileStem(flow)}-${n}.yaml`;
    }
    taken.add(path);
    const doc = new Document({ name: options.project, deployments: entries });
    doc.commentBefore = `${modeline(options.manifestDir).slice(1)}\n Flow "${flow}", exported ` +
      `from ${options.source} by deploy export: every value as the server holds it.`;
    entries.forEach((entry, index) => {
      if (paused.has(entry)) {
        const node = doc.getIn(["deployments", index], true) as YAMLMap;
        node.commentBefore = " Paused on the server. Left out, paused stays as the UI sets it;\n" +
          " add `paused: true` to keep it paused.";
      }
      for (const position of disabled.get(entry) ?? []) {
        const node = doc.getIn(["deployments", index, "triggers", position], true) as YAMLMap;
        node.commentBefore = " Switched off on the server. Left out, enabled stays as the UI\n" +
          " sets it; add `enabled: false` to keep it off.";
      }
    });
    // validate refuses unquoted templates, which YAML may read as mappings.
    visit(doc, {
      Scalar(_, node) {
        if (isScalar(node) && typeof node.value === "string" && node.value.includes("{{")) {
          node.type = "QUOTE_DOUBLE";
        }
      },
    });
    files.push({
      path,
      content: doc.toString({ lineWidth: 0, flowCollectionPadding: false }),
      deployments: entries.map((e) => `${flow}/${e.name}`),
    });
  }
  return { files, refused, notes };
}

/** A deployment as a manifest states it: every field, except those equal to deploy.ts's own. */
function manifestEntry(d: ExportedDeployment, local: LocalFlows, options: ExportOptions): Json {
  const entrypoint = d.entrypoint!;
  const inferred = local.inferred(entrypoint);
  const entry: Json = { name: d.name, entrypoint };
  if (local.flowName(entrypoint) !== d.flow) entry.flow_name = d.flow;
  const description = d.description ?? null;
  if (description !== null && description !== inferred?.description) {
    entry.description = description;
  }
  if (d.version) entry.version = d.version;
  const tags = (d.tags ?? []).filter((t) => !OWNER_TAG.test(t));
  if (tags.length) entry.tags = tags;
  if (Object.keys(d.parameters ?? {}).length) entry.parameters = d.parameters;
  const schema = d.parameter_openapi_schema ?? { type: "object", properties: {} };
  const wouldSend = inferred?.schema ?? { type: "object", properties: {} };
  if (!sameJson(schema, wouldSend)) entry.parameter_openapi_schema = schema;
  if (d.enforce_parameter_schema === false) entry.enforce_parameter_schema = false;
  const defaultPull = [{ [SET_WORKING_DIRECTORY]: { directory: options.cwd } }];
  if (!sameJson(d.pull_steps ?? [], defaultPull)) entry.pull = d.pull_steps ?? [];
  if (d.work_pool_name) {
    const pool: Json = { name: d.work_pool_name };
    if (d.work_queue_name && d.work_queue_name !== "default") {
      pool.work_queue_name = d.work_queue_name;
    }
    if (Object.keys(d.job_variables ?? {}).length) pool.job_variables = d.job_variables;
    entry.work_pool = pool;
  }
  const limit = d.global_concurrency_limit?.limit;
  if (limit !== undefined && limit !== null) {
    const strategy = d.concurrency_options?.collision_strategy ?? "ENQUEUE";
    const grace = d.concurrency_options?.grace_period_seconds;
    entry.concurrency_limit = strategy === "ENQUEUE" && (grace === undefined || grace === null)
      ? limit
      : {
        limit,
        collision_strategy: strategy,
        ...(grace !== undefined && grace !== null ? { grace_period_seconds: grace } : {}),
      };
  }
  const schedules = d.schedules ?? [];
  if (schedules.length) {
    entry.schedules = schedules.map((s, index) => {
      const out: Json = { slug: s.slug ?? `schedule-${index + 1}` };
      const timing = s.schedule;
      if (timing.cron !== undefined) {
        out.cron = timing.cron;
        if (timing.day_or === false) out.day_or = false;
      } else if (timing.interval !== undefined) {
        out.interval = timing.interval;
        if (timing.anchor_date) out.anchor_date = timing.anchor_date;
      } else if (timing.rrule !== undefined) {
        out.rrule = timing.rrule;
      }
      if (timing.timezone) out.timezone = timing.timezone;
      out.active = s.active;
      if (Object.keys(s.parameters ?? {}).length) out.parameters = s.parameters;
      if (s.max_scheduled_runs) out.max_scheduled_runs = s.max_scheduled_runs;
      return out;
    });
  }
  return entry;
}

/**
 * The deployment's triggers, from the automations that run it, in the order they were made (so
 * positional names fall where `prefect deploy` put them). Automations that do something else,
 * and those whose name another one acting on the deployment has too (plan matches automations
 * by name), are noted and left out.
 */
function manifestTriggers(
  d: ExportedDeployment,
  key: string,
  notes: string[],
): { trigger: Json; enabled: boolean }[] {
  const made = [...d.automations ?? []].sort((a, b) =>
    (a.created ?? "").localeCompare(b.created ?? "") || a.name.localeCompare(b.name)
  );
  const triggers: { trigger: Json; enabled: boolean }[] = [];
  const uses = new Map<string, number>();
  for (const a of made) uses.set(a.name, (uses.get(a.name) ?? 0) + 1);
  for (const automation of made) {
    const leftOut = (reason: string) =>
      notes.push(
        `Not exported: automation "${automation.name}" of ${key} is not a trigger of the ` +
          `manifest (${reason}).`,
      );
    if (uses.get(automation.name)! > 1) {
      leftOut(`${uses.get(automation.name)} automations acting on the deployment have this name`);
      continue;
    }
    const found = manifestTrigger(
      automation,
      d.id,
      d.name,
      triggers.length,
      (tag) => OWNER_TAG.test(tag),
    );
    if ("reason" in found) {
      leftOut(found.reason);
      continue;
    }
    triggers.push(found);
  }
  return triggers;
}

/**
 * Replaces every secret value in a manifest entry by a reference to its block, which plan and
 * apply resolve to the same value; records a refusal where no reference can stand.
 */
function hideSecrets(entry: Json, secrets: SecretValue[], key: string, refused: string[]): Json {
  const refuse = (where: string, secret: SecretValue, why: string) =>
    refused.push(`${key}: ${where} holds the value of the secret block ${secret.block}; ${why}`);
  const replace = (value: unknown, where: string): unknown => {
    for (const secret of secrets) {
      if (!sameJson(value, secret.value)) continue;
      if (!secret.reference) {
        refuse(where, secret, "the block has no name to refer to, so it is not exported.");
        return value;
      }
      return secret.reference;
    }
    if (typeof value === "string") {
      let text = value;
      for (const secret of secrets) {
        if (typeof secret.value !== "string" || secret.value.length < MIN_EMBEDDED_SECRET) continue;
        if (!text.includes(secret.value)) continue;
        if (!secret.reference) {
          refuse(where, secret, "the block has no name to refer to, so it is not exported.");
          continue;
        }
        text = text.split(secret.value).join(secret.reference);
      }
      return text;
    }
    if (Array.isArray(value)) return value.map((v, i) => replace(v, `${where}[${i}]`));
    if (value && typeof value === "object") {
      return Object.fromEntries(
        Object.entries(value).map(([k, v]) => {
          if (containsSecret(k, secrets)) {
            refuse(
              `a key in ${where}`,
              containsSecret(k, secrets)!,
              "a key cannot be a reference.",
            );
          }
          return [k, replace(v, `${where}.${k}`)];
        }),
      );
    }
    return value;
  };
  const result: Json = {};
  for (const [field, value] of Object.entries(entry)) {
    if (field === "name" || field === "flow_name" || field === "entrypoint") {
      const secret = containsSecret(String(value), secrets);
      if (secret) refuse(field, secret, `the ${field} cannot be a reference.`);
      result[field] = value;
    } else {
      result[field] = replace(value, field);
    }
  }
  return result;
}

function containsSecret(text: string, secrets: SecretValue[]): SecretValue | undefined {
  return secrets.find((s) =>
    typeof s.value === "string" &&
    (text === s.value || (s.value.length >= MIN_EMBEDDED_SECRET && text.includes(s.value)))
  );
}

function sameJson(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== typeof b || a === null || b === null || typeof a !== "object") return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) {
    return a.length === (b as unknown[]).length &&
      a.every((v, i) => sameJson(v, (b as unknown[])[i]));
  }
  const ak = Object.keys(a as Json);
  const bk = Object.keys(b as Json);
  return ak.length === bk.length && ak.every((k) => sameJson((a as Json)[k], (b as Json)[k]));
}
