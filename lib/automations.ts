/**
 * Deployment triggers as Prefect automations.
 *
 * `prefect deploy` turns each entry of a deployment's `triggers:` into an automation owned by the
 * deployment (`owner_resource: prefect.deployment.<id>`) whose one action runs it, and on every
 * run deletes and re-creates all of them: their IDs churn and an event that arrives in between
 * is missed. Here each trigger becomes the same automation — the same name, defaults and action
 * as Prefect's client sends (cli/deploy/_triggers.py, events/schemas/deployment_triggers.py) —
 * compared field by field with the server's and written only where it differs: PUT keeps the
 * automation's ID. Automations written here carry the project's marks in their tags; an unmarked
 * one with a trigger's name that runs the deployment (made by `prefect deploy`) is adopted.
 * Plans are plain data, so they can be saved and applied later.
 */
import { ConnectionLost, PrefectApiError, type PrefectClient } from "./prefect_client.ts";
import { canonicalJson } from "./json.ts";

type Json = Record<string, unknown>;
type PathSegment = string | number;

/** Seconds in a duration (number, ISO-8601, `HH:MM:SS`), or undefined when it is not one. */
export type Seconds = (value: number | string) => number | undefined;

export type TriggerKind = "event" | "metric" | "compound" | "sequence";

/** A manifest problem, located by its path inside the manifest. */
export interface TriggerProblem {
  path: PathSegment[];
  code: string;
  message: string;
  at: "key" | "value";
}

/** Keys of a deployment trigger that belong to the automation and its run, not the condition. */
const AUTOMATION_KEYS = [
  "type",
  "name",
  "description",
  "enabled",
  "parameters",
  "job_variables",
  "schedule_after",
];
const KIND_KEYS: Record<TriggerKind, string[]> = {
  event: [
    "match",
    "match_related",
    "after",
    "expect",
    "for_each",
    "posture",
    "threshold",
    "within",
  ],
  metric: ["match", "match_related", "posture", "metric"],
  compound: ["triggers", "require", "within"],
  sequence: ["triggers", "within"],
};
/** Event-trigger fields Prefect holds as sets: order and repeats mean nothing. */
const SET_KEYS = ["after", "expect", "for_each"];

/**
 * Names the server's Jinja knows when an automation fires (its template context), so
 * `{{ event.payload.x }}` and the like stay for the server.
 */
export const AUTOMATION_TEMPLATE_ROOTS = [
  "automation",
  "event",
  "events",
  "labels",
  "firing",
  "firings",
  "deployment",
  "flow",
  "flow_run",
  "task_run",
  "work_pool",
  "work_queue",
  "concurrency_limit",
  "variables",
];

/**
 * Which trigger Prefect reads a mapping as, by its discriminators: a deployment's own trigger
 * (`deployment_trigger_discriminator`) looks at `posture: Metric` first, a child trigger
 * (`trigger_discriminator`) at `triggers` first.
 */
export function triggerKind(spec: Json, topLevel: boolean): TriggerKind {
  if (typeof spec.type === "string") return spec.type as TriggerKind;
  const composite: TriggerKind | undefined = "triggers" in spec
    ? "require" in spec ? "compound" : "sequence"
    : undefined;
  const metric: TriggerKind | undefined = spec.posture === "Metric" ? "metric" : undefined;
  return (topLevel ? metric ?? composite : composite ?? metric) ?? "event";
}

/** The automation's name: the trigger's, else `<deployment>__automation_<position>` as Prefect. */
export function automationName(deploymentName: string, index: number, spec: Json): string {
  return typeof spec.name === "string" ? spec.name : `${deploymentName}__automation_${index + 1}`;
}

const hasPlaceholder = (value: unknown) => typeof value === "string" && value.includes("{{");

const ARTICLE: Record<TriggerKind, string> = {
  event: "an event",
  metric: "a metric",
  compound: "a compound",
  sequence: "a sequence",
};

/** Why Prefect reads a trigger as its kind, for messages. */
function whyKind(spec: Json, kind: TriggerKind): string {
  if (typeof spec.type === "string") return `it says \`type: ${kind}\``;
  return {
    metric: "it has `posture: Metric`",
    compound: "it has `triggers` and `require`",
    sequence: "it has `triggers` but no `require`",
    event: "it has no `type`",
  }[kind];
}

/** "compound triggers", "event, compound and sequence triggers". */
function kindsWith(key: string): string {
  const kinds = (Object.keys(KIND_KEYS) as TriggerKind[]).filter((k) => KIND_KEYS[k].includes(key));
  const last = kinds.pop();
  return `${kinds.length ? `${kinds.join(", ")} and ` : ""}${last} triggers`;
}

/**
 * What Prefect would reject or silently drop in a deployment's triggers, beyond the schema:
 * keys of another kind of trigger, postures, required parts, windows, durations, and automation
 * names used twice (automations are matched by name). Values still holding `{{ templates }}`
 * are checked once `plan` has resolved them.
 */
export function checkTriggers(
  deploymentName: string,
  triggers: unknown[],
  path: PathSegment[],
  seconds: Seconds,
): TriggerProblem[] {
  const problems: TriggerProblem[] = [];
  const names = new Map<string, number>();
  triggers.forEach((item, index) => {
    if (!item || typeof item !== "object") return;
    const spec = item as Json;
    const here = [...path, index];
    checkTrigger(spec, here, true, seconds, problems);
    const name = automationName(deploymentName, index, spec);
    if (hasPlaceholder(name)) return;
    const first = names.get(name);
    if (first === undefined) names.set(name, index);
    else {
      problems.push({
        path: typeof spec.name === "string" ? [...here, "name"] : here,
        at: typeof spec.name === "string" ? "value" : "key",
        code: "duplicate-trigger-name",
        message: `Automation name "${name}" is already used by trigger ${
          first + 1
        } of this deployment; automations are matched by name, so give each trigger its own \`name\`.`,
      });
    }
  });
  return problems;
}

function checkTrigger(
  spec: Json,
  path: PathSegment[],
  topLevel: boolean,
  seconds: Seconds,
  problems: TriggerProblem[],
) {
  const kind = triggerKind(spec, topLevel);
  const problem = (key: PathSegment[], code: string, message: string, at: "key" | "value") =>
    problems.push({ path: [...path, ...key], code, message, at });
  const allowed = new Set([...(topLevel ? AUTOMATION_KEYS : ["type"]), ...KIND_KEYS[kind]]);
  for (const key of Object.keys(spec)) {
    if (allowed.has(key)) continue;
    problem(
      [key],
      "trigger-key",
      `"${key}" belongs to ${kindsWith(key)}; this is ${ARTICLE[kind]} trigger (${
        whyKind(spec, kind)
      }), so Prefect would ignore it.`,
      "key",
    );
  }
  const posture = spec.posture;
  if (kind === "event" && posture === "Metric") {
    problem(
      ["posture"],
      "invalid-value",
      'Posture "Metric" makes a metric trigger, but this one is an event trigger (`type: event`).',
      "value",
    );
  }
  if (kind === "metric" && posture !== undefined && posture !== "Metric") {
    problem(
      ["posture"],
      "invalid-value",
      `A metric trigger's posture is "Metric", not ${JSON.stringify(posture)}.`,
      "value",
    );
  }
  if (kind === "metric" && spec.metric === undefined) {
    problem(
      [],
      "missing-key",
      "A metric trigger needs `metric` (name, threshold, operator).",
      "key",
    );
  }
  if ((kind === "compound" || kind === "sequence") && !Array.isArray(spec.triggers)) {
    problem(
      [],
      "missing-key",
      `A ${kind} trigger needs \`triggers\`, the triggers it combines.`,
      "key",
    );
  }
  if (kind === "compound" && spec.require === undefined) {
    problem(
      [],
      "missing-key",
      'A compound trigger needs `require`: how many of its triggers must fire (a number, "any" or "all").',
      "key",
    );
  }
  if (
    kind === "compound" && typeof spec.require === "number" && Array.isArray(spec.triggers) &&
    spec.require > spec.triggers.length
  ) {
    problem(
      ["require"],
      "invalid-value",
      `\`require: ${spec.require}\` is more than the ${spec.triggers.length} trigger(s) it combines; Prefect rejects it.`,
      "value",
    );
  }

  const duration = (key: string[], value: unknown, minimum = 0): number | undefined => {
    if (value === undefined || value === null || hasPlaceholder(value)) return undefined;
    const s = typeof value === "number" || typeof value === "string" ? seconds(value) : undefined;
    if (s === undefined) {
      problem(
        key,
        "invalid-duration",
        `Invalid duration ${
          JSON.stringify(value)
        }: give seconds, an ISO-8601 duration such as "PT10M", or "HH:MM:SS".`,
        "value",
      );
    } else if (s < minimum) {
      problem(
        key,
        "invalid-duration",
        minimum
          ? `\`${key.at(-1)}\` must be at least ${minimum} seconds, not ${s}.`
          : `A duration cannot be negative (${JSON.stringify(value)}).`,
        "value",
      );
    }
    return s;
  };
  const within = duration(["within"], spec.within);
  if (kind === "event" && posture === "Proactive" && within !== undefined) {
    if (typeof spec.within === "string") {
      // Prefect's own validator compares the text with a timedelta and fails.
      problem(
        ["within"],
        "invalid-duration",
        `A Proactive trigger's \`within\` must be a number of seconds (${within}): ` +
          `Prefect fails on text such as ${JSON.stringify(spec.within)}.`,
        "value",
      );
    } else if (within > 0 && within < 10) {
      problem(
        ["within"],
        "invalid-duration",
        `A Proactive trigger's window must be at least 10 seconds (0 means 10), not ${within}.`,
        "value",
      );
    }
  }
  if (topLevel) duration(["schedule_after"], spec.schedule_after);
  const metric = spec.metric as Json | undefined;
  if (kind === "metric" && metric && typeof metric === "object") {
    duration(["metric", "range"], metric.range, 300);
    duration(["metric", "firing_for"], metric.firing_for, 300);
  }
  if (topLevel && typeof spec.enabled === "string" && !hasPlaceholder(spec.enabled)) {
    if (!/^(true|false)$/i.test(spec.enabled.trim())) {
      problem(
        ["enabled"],
        "template-type",
        `Expected true or false, got ${JSON.stringify(spec.enabled)} after templating.`,
        "value",
      );
    }
  }
  if ((kind === "compound" || kind === "sequence") && Array.isArray(spec.triggers)) {
    spec.triggers.forEach((child, i) => {
      if (child && typeof child === "object") {
        checkTrigger(child as Json, [...path, "triggers", i], false, seconds, problems);
      }
    });
  }
}

/** Paths of the metric triggers among a deployment's triggers (Prefect Cloud has them). */
export function metricTriggerPaths(triggers: unknown[], path: PathSegment[]): PathSegment[][] {
  const found: PathSegment[][] = [];
  const walk = (spec: Json, here: PathSegment[], topLevel: boolean) => {
    const kind = triggerKind(spec, topLevel);
    if (kind === "metric") found.push(here);
    if (Array.isArray(spec.triggers) && (kind === "compound" || kind === "sequence")) {
      spec.triggers.forEach((c, i) => walk(c as Json, [...here, "triggers", i], false));
    }
  };
  triggers.forEach((t, i) => t && typeof t === "object" && walk(t as Json, [...path, i], true));
  return found;
}

// ─── The automation a trigger becomes ────────────────────────────────────────

export interface DesiredAutomation {
  name: string;
  /** Absent: the server's value stays (people switch automations off in the UI). */
  enabled?: boolean;
  /**
   * What Prefect's client sends, but `enabled` and `tags` (the plan adds the server's and the
   * project's marks); the action's `deployment_id` is set on apply.
   */
  body: Json;
}

const uniqueSorted = (values: unknown) =>
  [...new Set((values ?? []) as string[])].sort((a, b) => a < b ? -1 : a > b ? 1 : 0);

function asEnabled(value: unknown): boolean | undefined {
  if (typeof value === "boolean") return value;
  if (typeof value === "string") return value.trim().toLowerCase() === "true";
  return undefined;
}

/** A trigger condition with Prefect's defaults filled in, as its client serialises it. */
function triggerBody(spec: Json, topLevel: boolean, seconds: Seconds): Json {
  const span = (value: unknown, fallback: number) =>
    value === undefined || value === null
      ? fallback
      : seconds(value as number | string) ?? fallback;
  const kind = triggerKind(spec, topLevel);
  const resources = { match: spec.match ?? {}, match_related: spec.match_related ?? {} };
  switch (kind) {
    case "event": {
      const posture = spec.posture ?? "Reactive";
      const within = span(spec.within, 0);
      return {
        type: "event",
        ...resources,
        after: uniqueSorted(spec.after),
        expect: uniqueSorted(spec.expect),
        for_each: uniqueSorted(spec.for_each),
        posture,
        threshold: spec.threshold ?? 1,
        // Prefect's client widens a Proactive trigger's empty window to 10 seconds.
        within: posture === "Proactive" && within === 0 ? 10 : within,
      };
    }
    case "metric": {
      const metric = (spec.metric ?? {}) as Json;
      return {
        type: "metric",
        ...resources,
        posture: "Metric",
        metric: {
          name: metric.name,
          threshold: metric.threshold,
          operator: metric.operator,
          range: span(metric.range, 300),
          firing_for: span(metric.firing_for, 300),
        },
      };
    }
    default:
      return {
        type: kind,
        triggers: ((spec.triggers ?? []) as Json[]).map((t) => triggerBody(t, false, seconds)),
        within: spec.within === undefined || spec.within === null ? null : span(spec.within, 0),
        ...(kind === "compound" ? { require: spec.require } : {}),
      };
  }
}

/**
 * The automations a deployment's triggers become (their templates already resolved), as
 * `Trigger.as_automation()` builds them: the trigger's name, description and `enabled`; one
 * `run-deployment` action with its parameters, job variables and delay.
 */
export function desiredAutomations(
  deploymentName: string,
  triggers: unknown[],
  seconds: Seconds,
): DesiredAutomation[] {
  return triggers.map((item, index) => {
    const spec = item as Json;
    const name = automationName(deploymentName, index, spec);
    return {
      name,
      enabled: asEnabled(spec.enabled),
      body: {
        name,
        description: spec.description ?? "",
        trigger: triggerBody(spec, true, seconds),
        actions: [{
          type: "run-deployment",
          source: "selected",
          deployment_id: null,
          parameters: spec.parameters ?? null,
          job_variables: spec.job_variables ?? null,
          schedule_after: spec.schedule_after === undefined
            ? 0
            : seconds(spec.schedule_after as number | string) ?? 0,
        }],
        actions_on_trigger: [],
        actions_on_resolve: [],
      },
    };
  });
}

// ─── Reading the server ──────────────────────────────────────────────────────

export interface ServerAutomation {
  id: string;
  name: string;
  description?: string;
  enabled: boolean;
  tags?: string[];
  trigger: Json;
  actions: Json[];
  actions_on_trigger?: Json[];
  actions_on_resolve?: Json[];
}

export interface Automations {
  /** False when the server has no automations API (it answered 404). */
  supported: boolean;
  /**
   * The tags that mark an automation as this project's; none on a server whose automations have
   * no tags (Prefect before 3.5), where only names tie automations to triggers and every
   * automation read (by name) counts as the project's.
   */
  marks: string[];
  /** The project's automations, and unmarked ones named as a declared trigger. */
  list: ServerAutomation[];
}

/**
 * The automations carrying the project's marks: all a plan needs unless a trigger is to adopt
 * one (`withNamedAutomations`). It needs nothing from the checks, so it begins with the listing.
 * The server does not return an automation's owner, so the marks are the proof of ownership.
 * A server that refuses the tags filter (422: Prefect before 3.5) is read by names alone.
 */
export async function readMarkedAutomations(
  client: PrefectClient,
  marks: string[],
): Promise<Automations> {
  try {
    const list = await client.filterAll<ServerAutomation>("/automations/filter", {
      automations: { tags: { all_: marks } },
    });
    return { supported: true, marks, list };
  } catch (error) {
    if (!(error instanceof PrefectApiError)) throw error;
    if (error.status === 404) return { supported: false, marks: [], list: [] };
    if (error.status !== 422) throw error;
  }
  return { supported: true, marks: [], list: [] };
}

/**
 * Adds the unmarked automations a trigger of an existing deployment may adopt (made by `prefect
 * deploy`, or by hand): read by name, and only for the triggers that no marked automation of
 * their deployment answers — `planAutomations` claims a marked one first, so a no-op reads none.
 */
export async function withNamedAutomations(
  client: PrefectClient,
  state: Automations,
  triggers: { deploymentId: string; name: string }[],
): Promise<Automations> {
  if (!state.supported) return state;
  const key = (deploymentId: string | undefined, name: string) => `${deploymentId}\n${name}`;
  const marked = new Map<string, number>();
  for (const a of state.list) {
    if (!isMarked(a, state.marks)) continue;
    const k = key(deploymentOf(a), a.name);
    marked.set(k, (marked.get(k) ?? 0) + 1);
  }
  const names = new Set<string>();
  for (const { deploymentId, name } of triggers) {
    const k = key(deploymentId, name);
    const left = marked.get(k) ?? 0;
    if (left) marked.set(k, left - 1);
    else names.add(name);
  }
  if (!names.size) return state;
  const known = new Set(state.list.map((a) => a.id));
  const named = await client.filterAll<ServerAutomation>("/automations/filter", {
    automations: { name: { any_: [...names] } },
  });
  return { ...state, list: [...state.list, ...named.filter((a) => !known.has(a.id))] };
}

/** The deployment an automation runs: its `run-deployment` action's selected deployment. */
function deploymentOf(a: ServerAutomation): string | undefined {
  const action = a.actions?.find((x) => x.type === "run-deployment" && x.source === "selected");
  return action?.deployment_id as string | undefined;
}

const byDeployment = new WeakMap<ServerAutomation[], Map<string | undefined, ServerAutomation[]>>();

/** The automations that run a deployment: indexed once per list, as every deployment asks. */
function automationsOf(state: Automations, deploymentId: string): ServerAutomation[] {
  let index = byDeployment.get(state.list);
  if (!index) {
    index = new Map();
    for (const a of state.list) {
      const id = deploymentOf(a);
      const list = index.get(id);
      if (list) list.push(a);
      else index.set(id, [a]);
    }
    byDeployment.set(state.list, index);
  }
  return index.get(deploymentId) ?? [];
}

const isMarked = (a: ServerAutomation, marks: string[]) =>
  marks.every((m) => (a.tags ?? []).includes(m));

// ─── Comparing ───────────────────────────────────────────────────────────────

export interface AutomationChange {
  field: string;
  before: unknown;
  after: unknown;
}

export type AutomationAction = "create" | "update" | "delete" | "noop";

export interface AutomationOp {
  action: AutomationAction;
  name: string;
  id: string | null;
  /** Field by field, named as in the manifest (`expect`, `parameters`, `enabled`…). */
  changes: AutomationChange[];
  effects: string[];
  /** Create and update: the whole automation to send (its action's deployment set on apply). */
  body?: Json;
  /** An update of `enabled` alone: a PATCH, which keeps the trigger's state. */
  enabledOnly?: boolean;
}

const same = (a: unknown, b: unknown) => canonicalJson(a) === canonicalJson(b);

/** A server trigger in the shape of `triggerBody`: no IDs, sets sorted. */
function normalTrigger(trigger: Json): Json {
  const copy: Json = {};
  for (const [key, value] of Object.entries(trigger ?? {})) {
    if (key === "id") continue;
    if (SET_KEYS.includes(key)) copy[key] = uniqueSorted(value);
    else if (key === "triggers" && Array.isArray(value)) {
      copy[key] = value.map((t) => normalTrigger(t as Json));
    } else copy[key] = value;
  }
  return copy;
}

/** Whether a trigger counts events over time, which an update (new trigger IDs) starts over. */
function isStateful(trigger: Json): boolean {
  return trigger.type !== "event" || trigger.posture === "Proactive" ||
    Number(trigger.threshold) > 1 || Number(trigger.within) > 0;
}

/**
 * The fields that differ, named as in the manifest. Only what the server returns is compared:
 * keys it adds (IDs, fields of newer versions) are its own, and a key an older server does not
 * know (`schedule_after` before Prefect 3.4.20) cannot differ there.
 */
function compare(body: Json, have: ServerAutomation, deploymentId: string): AutomationChange[] {
  const changes: AutomationChange[] = [];
  const diff = (field: string, before: unknown, after: unknown, equal = same(before, after)) => {
    if (!equal) changes.push({ field, before, after });
  };
  diff("description", have.description ?? "", body.description);
  diff("enabled", have.enabled, body.enabled);
  if (body.tags && have.tags) diff("tags", uniqueSorted(have.tags), uniqueSorted(body.tags));
  const got = normalTrigger(have.trigger);
  for (const [key, value] of Object.entries(body.trigger as Json)) {
    if (key in got) diff(key, got[key], value);
  }
  const [action] = body.actions as Json[];
  const actions = have.actions ?? [];
  const run = actions[0];
  if (
    actions.length === 1 && run.type === "run-deployment" && run.source === "selected" &&
    run.deployment_id === deploymentId
  ) {
    // null and {} both mean "the deployment's own", in the server as in Prefect's client.
    for (const key of ["parameters", "job_variables"]) {
      diff(key, run[key] ?? null, action[key], same(run[key] ?? {}, action[key] ?? {}));
    }
    if ("schedule_after" in run) diff("schedule_after", run.schedule_after, action.schedule_after);
  } else {
    diff("actions", actions, [{ ...action, deployment_id: deploymentId }]);
  }
  diff("actions_on_trigger", have.actions_on_trigger ?? [], []);
  diff("actions_on_resolve", have.actions_on_resolve ?? [], []);
  return changes;
}

/**
 * The operations that make a deployment's automations the desired ones. A new deployment's
 * are all created. Otherwise each trigger is matched by name with an automation that runs the
 * deployment — a marked one first, else an unmarked one (adopted) — and updated in place when
 * any field differs; marked automations of the deployment that no trigger names are deleted.
 * Unmarked automations are never deleted: nothing proves they belong to this project.
 */
export function planAutomations(
  desired: DesiredAutomation[],
  state: Automations,
  deploymentId: string | null,
): AutomationOp[] {
  if (!state.supported) return [];
  const tags = state.marks.length ? { tags: state.marks } : {};
  const bodyOf = (d: DesiredAutomation, enabled: boolean) => ({ ...d.body, ...tags, enabled });
  const create = (d: DesiredAutomation): AutomationOp => ({
    action: "create",
    name: d.name,
    id: null,
    changes: [],
    effects: [],
    body: bodyOf(d, d.enabled ?? true),
  });
  if (deploymentId === null) return desired.map(create);
  const theirs = automationsOf(state, deploymentId);
  const claimed = new Set<ServerAutomation>();
  const claim = (match: (a: ServerAutomation) => boolean) => {
    const found = theirs.find((a) => !claimed.has(a) && match(a));
    if (found) claimed.add(found);
    return found;
  };
  const ops: AutomationOp[] = desired.map((d) => {
    const have = claim((a) => a.name === d.name && isMarked(a, state.marks)) ??
      claim((a) => a.name === d.name);
    if (!have) return create(d);
    const body = bodyOf(d, d.enabled ?? have.enabled);
    const changes = compare(body, have, deploymentId);
    const effects: string[] = [];
    const enabledOnly = changes.length === 1 && changes[0].field === "enabled";
    if (!isMarked(have, state.marks)) {
      effects.push(
        "Adopted: it runs this deployment, has this trigger's name and no deploy.ts mark " +
          "(made by prefect deploy or by hand); its ID stays.",
      );
    }
    if (changes.length && !enabledOnly && isStateful(normalTrigger(have.trigger))) {
      effects.push(
        "Prefect gives the updated trigger new IDs: events it has counted toward its " +
          "threshold or window start over.",
      );
    }
    return {
      action: changes.length ? "update" : "noop",
      name: d.name,
      id: have.id,
      changes,
      effects,
      ...(changes.length ? { body, ...(enabledOnly ? { enabledOnly } : {}) } : {}),
    };
  });
  for (const a of theirs) {
    if (!claimed.has(a) && isMarked(a, state.marks)) ops.push(deletion(a));
  }
  return ops;
}

function deletion(a: ServerAutomation): AutomationOp {
  return { action: "delete", name: a.name, id: a.id, changes: [], effects: [] };
}

/** A pruned deployment's automations: those marked as this project's are listed and deleted. */
export function pruneAutomations(state: Automations, deploymentId: string): AutomationOp[] {
  return automationsOf(state, deploymentId)
    .filter((a) => isMarked(a, state.marks))
    .map(deletion);
}

// ─── Applying ────────────────────────────────────────────────────────────────

const withDeployment = (body: Json, deploymentId: string): Json => ({
  ...body,
  actions: (body.actions as Json[]).map((a) => ({ ...a, deployment_id: deploymentId })),
});

/**
 * Carries out a deployment's automation operations: deletions first, then updates (PUT keeps
 * the ID; `enabled` alone is a PATCH), then creations. Returns the operations with the IDs of
 * the automations created.
 */
export async function applyAutomations(
  client: PrefectClient,
  deploymentId: string,
  ops: AutomationOp[],
): Promise<AutomationOp[]> {
  for (const op of ops.filter((o) => o.action === "delete")) {
    await client.request("DELETE", `/automations/${op.id}`, undefined, { accept: [404] });
  }
  for (const op of ops.filter((o) => o.action === "update")) {
    if (op.enabledOnly) {
      await client.request("PATCH", `/automations/${op.id}`, { enabled: op.body!.enabled });
    } else {
      await client.request("PUT", `/automations/${op.id}`, withDeployment(op.body!, deploymentId));
    }
  }
  const done: AutomationOp[] = [];
  for (const op of ops) {
    done.push(
      op.action === "create" ? { ...op, id: await createAutomation(client, deploymentId, op) } : op,
    );
  }
  return done;
}

/**
 * One POST, owned by the deployment as `prefect deploy` makes it. Never sent blindly twice:
 * after a lost connection the automation is looked up first.
 */
async function createAutomation(
  client: PrefectClient,
  deploymentId: string,
  op: AutomationOp,
): Promise<string> {
  const body = {
    ...withDeployment(op.body!, deploymentId),
    owner_resource: `prefect.deployment.${deploymentId}`,
  };
  for (let attempt = 1;; attempt++) {
    try {
      const created = await client.request<{ id: string }>("POST", "/automations/", body, {
        resendAfterDrop: false,
      });
      return created.data.id;
    } catch (error) {
      if (!(error instanceof ConnectionLost) || attempt >= 3) throw error;
      const found = (await client.filterAll<ServerAutomation>("/automations/filter", {
        automations: { name: { any_: [op.name] } },
      })).find((a) => deploymentOf(a) === deploymentId);
      if (found) return found.id;
    }
  }
}

/**
 * Deletes a pruned deployment's automations before the deployment itself, so a failure leaves
 * the deployment to prune again rather than automations that run nothing: the marked ones one
 * by one, then every other automation the server records as owned by the deployment (the ones
 * `prefect deploy` made). The server does not do it when a deployment is deleted.
 */
export async function deleteDeploymentAutomations(
  client: PrefectClient,
  deploymentId: string,
  ops: AutomationOp[],
): Promise<void> {
  for (const op of ops) {
    await client.request("DELETE", `/automations/${op.id}`, undefined, { accept: [404] });
  }
  await client.request(
    "DELETE",
    `/automations/owned-by/prefect.deployment.${deploymentId}`,
    undefined,
    { accept: [404] },
  );
}

// ─── Back to a manifest (deploy export) ──────────────────────────────────────

/** Why an automation is not a trigger a manifest could state. */
class NotATrigger extends Error {}

const isEmpty = (value: unknown) =>
  value === undefined || value === null ||
  (typeof value === "object" && Object.keys(value as object).length === 0);

/**
 * A server trigger as a manifest states it: the keys `triggerBody` would fill in with the same
 * value left out; `type` for every kind but event, the one Prefect assumes.
 */
function manifestCondition(trigger: Json, topLevel: boolean): Json {
  const out: Json = {};
  const kind = trigger.type;
  if (kind !== "event") out.type = kind;
  const resources = () => {
    if (!same(trigger.match ?? {}, {})) out.match = trigger.match;
    if (!same(trigger.match_related ?? {}, {})) out.match_related = trigger.match_related;
  };
  switch (kind) {
    case "event": {
      resources();
      for (const key of SET_KEYS) {
        if ((trigger[key] as unknown[] | undefined)?.length) out[key] = trigger[key];
      }
      const posture = trigger.posture ?? "Reactive";
      if (posture !== "Reactive") out.posture = posture;
      if ((trigger.threshold ?? 1) !== 1) out.threshold = trigger.threshold;
      const within = trigger.within ?? 0;
      if (within !== (posture === "Proactive" ? 10 : 0)) out.within = within;
      return out;
    }
    case "metric": {
      resources();
      const metric = (trigger.metric ?? {}) as Json;
      out.metric = {
        name: metric.name,
        threshold: metric.threshold,
        operator: metric.operator,
        ...(!isEmpty(metric.range) && metric.range !== 300 ? { range: metric.range } : {}),
        ...(!isEmpty(metric.firing_for) && metric.firing_for !== 300
          ? { firing_for: metric.firing_for }
          : {}),
      };
      return out;
    }
    case "compound":
    case "sequence":
      if (!Array.isArray(trigger.triggers)) {
        throw new NotATrigger(`its ${kind} trigger has no list of triggers`);
      }
      if (kind === "compound") out.require = trigger.require;
      if (trigger.within !== undefined && trigger.within !== null) out.within = trigger.within;
      out.triggers = trigger.triggers.map((child) => manifestCondition(child as Json, false));
      return out;
    default:
      throw new NotATrigger(
        `its ${topLevel ? "" : "child "}trigger is of a kind deploy.ts does not know (${
          JSON.stringify(kind)
        })`,
      );
  }
}

export type ManifestTrigger =
  | {
    /** The `triggers:` entry, `enabled` left out (the server's value stays). */
    trigger: Json;
    enabled: boolean;
  }
  | { reason: string };

/**
 * The `triggers:` entry an automation comes from — the reverse of `desiredAutomations` at the
 * trigger's position — or why it is none: a trigger's automation runs its deployment with one
 * `run-deployment` action and nothing else, and carries no tags but deploy.ts's marks.
 */
export function manifestTrigger(
  automation: ServerAutomation,
  deploymentId: string,
  deploymentName: string,
  index: number,
  isMark: (tag: string) => boolean,
): ManifestTrigger {
  const actions = automation.actions ?? [];
  const [run] = actions;
  if (actions.length !== 1) return { reason: `it has ${actions.length} actions` };
  if (run.type !== "run-deployment") return { reason: `its action is "${run.type}"` };
  if (run.source !== "selected" || run.deployment_id !== deploymentId) {
    return { reason: "its action runs another deployment" };
  }
  const more = [...automation.actions_on_trigger ?? [], ...automation.actions_on_resolve ?? []];
  if (more.length) return { reason: "it has actions on trigger or on resolve" };
  const tags = (automation.tags ?? []).filter((t) => !isMark(t));
  if (tags.length) {
    return { reason: `its tags (${tags.join(", ")}) have no place in a trigger` };
  }
  let condition: Json;
  try {
    condition = manifestCondition(automation.trigger ?? {}, true);
  } catch (error) {
    if (error instanceof NotATrigger) return { reason: error.message };
    throw error;
  }
  const trigger: Json = {};
  if (automation.name !== automationName(deploymentName, index, {})) {
    trigger.name = automation.name;
  }
  if (automation.description) trigger.description = automation.description;
  Object.assign(trigger, condition);
  if (!isEmpty(run.parameters)) trigger.parameters = run.parameters;
  if (!isEmpty(run.job_variables)) trigger.job_variables = run.job_variables;
  if (run.schedule_after) trigger.schedule_after = run.schedule_after;
  return { trigger, enabled: automation.enabled };
}
