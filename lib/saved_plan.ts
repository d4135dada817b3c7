/**
 * Saved plans: `plan --out FILE` writes one, `apply FILE` applies exactly it or refuses.
 *
 * A saved plan pins what the plan was computed from — the manifests' text, the invocation, the
 * server, the state of every deployment it plans for, the blocks its templates read — and the
 * operations it would send, each as a SHA-256 digest. `apply FILE` computes the plan again from
 * the same invocation and refuses, naming what moved, when any digest differs, so what runs is
 * what was reviewed. Digests are taken of redacted text and blocks are pinned by ID and update
 * time, never by value: a plan file holds no credential and no secret block value. The plan as
 * printed (`plan --format json`) rides along for the reviewer.
 */

export { canonicalJson } from "./json.ts";

export const PLAN_FORMAT = "deploy.ts plan";
export const PLAN_FORMAT_VERSION = 1;

/** What decides which deployments a plan covers and how. */
export interface SavedInvocation {
  paths: string[];
  environment: string | null;
  flows: string[];
  names: string[];
  prune: boolean;
  adopt: boolean;
  strict: boolean;
  codeChecks: boolean;
  /** The working directory: entrypoints and default pull steps resolve against it. */
  directory: string;
}

export interface SavedDeployment {
  flow: string;
  name: string;
  action: string;
  /** Digest of the server's deployment as the plan saw it; null when it did not exist. */
  server: string | null;
  /** Digest of what apply would send for it. */
  operation: string;
}

export interface SavedPlan {
  format: typeof PLAN_FORMAT;
  format_version: number;
  deploy_version: string;
  created: string;
  project: string;
  environment: string | null;
  /** The API URL without credentials. */
  api_url: string;
  invocation: SavedInvocation;
  /** Manifest (and overlay) path → digest of its text. */
  manifests: Record<string, string>;
  /** `type/name id updated` of each block the templates read. */
  blocks: string[];
  deployments: SavedDeployment[];
  /** The plan as `plan --format json` prints it, for people and scripts reviewing it. */
  plan: unknown;
}

/** A plan file that cannot be used: unreadable, not a plan, or from another version. */
export class PlanFileError extends Error {}

export async function digest(text: string): Promise<string> {
  const bytes = new Uint8Array(
    await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)),
  );
  return [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** Whether a file's text is a saved plan (a JSON object naming this format). */
export function looksLikeSavedPlan(text: string): boolean {
  return /^\s*\{/.test(text) && text.includes(`"${PLAN_FORMAT}"`);
}

export function parseSavedPlan(text: string, path: string, deployVersion: string): SavedPlan {
  let data: SavedPlan;
  try {
    data = JSON.parse(text);
  } catch {
    throw new PlanFileError(`"${path}" is not a saved plan: it is not JSON.`);
  }
  if (!data || typeof data !== "object" || data.format !== PLAN_FORMAT) {
    throw new PlanFileError(`"${path}" is not a saved plan (made by "deploy plan --out").`);
  }
  if (data.format_version !== PLAN_FORMAT_VERSION || data.deploy_version !== deployVersion) {
    throw new PlanFileError(
      `"${path}" was made by deploy ${data.deploy_version}; this is deploy ${deployVersion}. ` +
        "Make the plan again with this version.",
    );
  }
  const shapeOk = Array.isArray(data.deployments) && data.invocation &&
    Array.isArray(data.invocation.paths) && data.manifests && typeof data.manifests === "object" &&
    Array.isArray(data.blocks);
  if (!shapeOk) throw new PlanFileError(`"${path}" is not a complete saved plan.`);
  return data;
}

/**
 * What moved between a saved plan and the same plan computed now, as short phrases (empty:
 * nothing moved). The first one is the one worth a line; the count says how many more.
 */
export function planDifferences(saved: SavedPlan, now: SavedPlan): string[] {
  const moved: string[] = [];
  if (saved.api_url !== now.api_url) {
    moved.push(`it was made against ${saved.api_url}, not ${now.api_url}`);
  }
  if (saved.invocation.directory !== now.invocation.directory) {
    moved.push(
      `it was made in ${saved.invocation.directory}, and apply runs in ${now.invocation.directory}`,
    );
  }
  const paths = [...new Set([...Object.keys(saved.manifests), ...Object.keys(now.manifests)])];
  for (const path of paths.sort()) {
    const before = saved.manifests[path];
    const after = now.manifests[path];
    if (before === after) continue;
    moved.push(
      before === undefined
        ? `${path} is new`
        : after === undefined
        ? `${path} is gone`
        : `${path} changed`,
    );
  }
  const blocksBefore = new Set(saved.blocks);
  for (const block of now.blocks) {
    if (!blocksBefore.has(block)) moved.push(`block ${block.split(" ")[0]} changed on the server`);
  }
  const key = (d: SavedDeployment) => `${d.flow}/${d.name}`;
  const current = new Map(now.deployments.map((d) => [key(d), d]));
  for (const before of saved.deployments) {
    const after = current.get(key(before));
    current.delete(key(before));
    if (!after) moved.push(`${key(before)} is no longer in the plan`);
    else if (before.server !== after.server) moved.push(`${key(before)} changed on the server`);
    else if (before.action !== after.action || before.operation !== after.operation) {
      moved.push(`what the plan would do to ${key(before)} is different now`);
    }
  }
  for (const added of current.keys()) moved.push(`${added} is new in the plan`);
  return moved;
}
