// Generated from deployments.schema.json by `deno task types`. Do not edit.

/**
 * Default build steps for every deployment. `prefect deploy` runs them; deploy.ts does not (build images before `apply`) and says so.
 */
export type Steps = (Step[] | null)
/**
 * Clones a Git repository; outputs `directory`.
 */
export type GitClone = ({
/**
 * Names this step so later steps and deployment fields can use its outputs as `{{ <id>.<output> }}`.
 */
id?: string
/**
 * pip requirement(s) installed before the step runs when its module cannot be imported, e.g. `prefect-docker>=0.6`.
 */
requires?: (string | string[])
/**
 * HTTPS or SSH URL of the repository to clone.
 */
repository: string
/**
 * Branch to check out; the remote's default branch when omitted.
 */
branch?: (string | null)
/**
 * Exact commit to check out.
 */
commit_sha?: (string | null)
/**
 * Also clone the repository's submodules.
 */
include_submodules?: (boolean | Template)
/**
 * Token for private repositories; use a `{{ prefect.blocks.secret.name }}` reference, never a literal.
 */
access_token?: (string | null)
/**
 * A credentials block reference such as `{{ prefect.blocks.github-credentials.name }}`.
 */
credentials?: (string | {
[k: string]: unknown | undefined
} | null)
/**
 * Sparse checkout: only these directories are cloned.
 */
directories?: (string[] | null)
/**
 * Name of the directory the repository is cloned into.
 */
clone_directory_name?: (string | null)
} | null)
/**
 * A string holding a `{{ placeholder }}`, resolved by `plan`/`apply`: `{{ $ENV_VAR }}`, `{{ prefect.variables.name }}`, `{{ prefect.blocks.type.name }}` or a step output `{{ step-id.key }}`.
 */
export type Template = string
/**
 * Changes the working directory of the flow run; outputs `directory`.
 */
export type SetWorkingDirectory = ({
/**
 * Names this step so later steps and deployment fields can use its outputs as `{{ <id>.<output> }}`.
 */
id?: string
/**
 * pip requirement(s) installed before the step runs when its module cannot be imported, e.g. `prefect-docker>=0.6`.
 */
requires?: (string | string[])
/**
 * Absolute path, or a path relative to where the pull steps started.
 */
directory: string
} | null)
/**
 * Runs a shell command; outputs `stdout` and `stderr`.
 */
export type RunShellScript = ({
/**
 * Names this step so later steps and deployment fields can use its outputs as `{{ <id>.<output> }}`.
 */
id?: string
/**
 * pip requirement(s) installed before the step runs when its module cannot be imported, e.g. `prefect-docker>=0.6`.
 */
requires?: (string | string[])
/**
 * The command to run.
 */
script: string
/**
 * Working directory of the command.
 */
directory?: (string | null)
/**
 * Extra environment variables for the command.
 */
env?: ({
[k: string]: string | undefined
} | null)
/**
 * Print the command's output as it runs.
 */
stream_output?: (boolean | Template)
/**
 * Expand `$VAR` in the script before running it.
 */
expand_env_vars?: (boolean | Template)
/**
 * Run the script through the system shell.
 */
shell?: (boolean | Template)
} | null)
/**
 * Installs a requirements file with pip; outputs `stdout` and `stderr`.
 */
export type PipInstallRequirements = ({
/**
 * Names this step so later steps and deployment fields can use its outputs as `{{ <id>.<output> }}`.
 */
id?: string
/**
 * pip requirement(s) installed before the step runs when its module cannot be imported, e.g. `prefect-docker>=0.6`.
 */
requires?: (string | string[])
/**
 * Directory holding the requirements file.
 */
directory?: (string | null)
/**
 * File name, `requirements.txt` by default.
 */
requirements_file?: string
/**
 * Print pip's output as it runs.
 */
stream_output?: (boolean | Template)
} | null)
/**
 * Copies files from an fsspec URL; outputs `directory`. Extra keys are passed to the filesystem.
 */
export type PullFromRemoteStorage = ({
/**
 * Names this step so later steps and deployment fields can use its outputs as `{{ <id>.<output> }}`.
 */
id?: string
/**
 * pip requirement(s) installed before the step runs when its module cannot be imported, e.g. `prefect-docker>=0.6`.
 */
requires?: (string | string[])
/**
 * fsspec URL to copy from, e.g. `s3://bucket/folder`.
 */
url: string
[k: string]: unknown | undefined
} | null)
/**
 * Copies files with a storage block; outputs `directory`.
 */
export type PullWithBlock = ({
/**
 * Names this step so later steps and deployment fields can use its outputs as `{{ <id>.<output> }}`.
 */
id?: string
/**
 * pip requirement(s) installed before the step runs when its module cannot be imported, e.g. `prefect-docker>=0.6`.
 */
requires?: (string | string[])
/**
 * Name of the storage block document.
 */
block_document_name: string
/**
 * Slug of the storage block's type, e.g. `s3-bucket`.
 */
block_type_slug: string
} | null)
/**
 * Builds a Docker image (prefect-docker); outputs `image_name`, `tag`, `image`, `image_id`, `additional_tags`. Other keys are docker-py build() keywords (`buildargs`, `target`, `nocache`, …).
 */
export type BuildDockerImage = ({
/**
 * Names this step so later steps and deployment fields can use its outputs as `{{ <id>.<output> }}`.
 */
id?: string
/**
 * pip requirement(s) installed before the step runs when its module cannot be imported, e.g. `prefect-docker>=0.6`.
 */
requires?: (string | string[])
/**
 * Repository of the image, e.g. `ghcr.io/acme/flows`; a bare name gets `PREFECT_DEFAULT_DOCKER_BUILD_NAMESPACE` in front when that is set.
 */
image_name: string
/**
 * Image tag; when omitted, the build's UTC time (`2026-01-02t03-04-05-123000-00-00`), as prefect-docker does.
 */
tag?: string
/**
 * A Dockerfile inside the build context (`Dockerfile` by default), or `auto`: the Dockerfile prefect-docker writes, `FROM prefecthq/prefect:<prefect-version>-python<Python>` with the project copied to `/opt/prefect/<directory>/` (Python from `DEPLOY_PYTHON_VERSION` or `.python-version`).
 */
dockerfile?: string
/**
 * More tags for the same image, e.g. `[latest]`; or a template such as `"{{ build-image.additional_tags }}"`.
 */
additional_tags?: (string[] | Template)
/**
 * Run this build again even when an identical one already ran in this invocation (prefect-docker's step cache; not Docker's layer cache, which `nocache` turns off).
 */
ignore_cache?: (boolean | Template)
/**
 * Target platform, e.g. `linux/amd64`.
 */
platform?: string
/**
 * With `dockerfile: auto`, also save the generated Dockerfile (to `dockerfile_output_path`).
 */
persist_dockerfile?: (boolean | Template)
/**
 * Where `persist_dockerfile` saves the generated Dockerfile; `Dockerfile.generated` by default.
 */
dockerfile_output_path?: string
/**
 * The build context directory; the working directory by default. A relative `dockerfile` is read inside it.
 */
path?: string
/**
 * Pull the base image before building (docker-py's default, true); `false` builds from local images only.
 */
pull?: (boolean | Template)
/**
 * `docker-py` (default; `docker build`). deploy.ts does not run `buildx`, which needs python-on-whales.
 */
build_backend?: ("docker-py" | "buildx")
[k: string]: unknown | undefined
} | null)
/**
 * Pushes a Docker image (prefect-docker); outputs `image_name`, `tag`, `image`, `additional_tags`.
 */
export type PushDockerImage = ({
/**
 * Names this step so later steps and deployment fields can use its outputs as `{{ <id>.<output> }}`.
 */
id?: string
/**
 * pip requirement(s) installed before the step runs when its module cannot be imported, e.g. `prefect-docker>=0.6`.
 */
requires?: (string | string[])
/**
 * Repository of the image.
 */
image_name: string
/**
 * Tag to push; when empty, every tag of the repository (as docker-py does).
 */
tag?: string
/**
 * A docker-registry-credentials block, `"{{ prefect.blocks.docker-registry-credentials.NAME }}"` (username, password, registry_url): logged in for this push only.
 */
credentials?: (string | {
[k: string]: unknown | undefined
})
/**
 * More tags to push, e.g. `"{{ build-image.additional_tags }}"`.
 */
additional_tags?: (string[] | Template)
/**
 * Push again even when an identical push already ran in this invocation.
 */
ignore_cache?: (boolean | Template)
/**
 * `docker-py` (default; `docker push`). deploy.ts does not run `buildx`.
 */
build_backend?: ("docker-py" | "buildx")
[k: string]: unknown | undefined
} | null)
/**
 * Uploads the project to S3 (prefect-aws); outputs `bucket` and `folder`.
 */
export type PushToS3 = ({
/**
 * Names this step so later steps and deployment fields can use its outputs as `{{ <id>.<output> }}`.
 */
id?: string
/**
 * pip requirement(s) installed before the step runs when its module cannot be imported, e.g. `prefect-docker>=0.6`.
 */
requires?: (string | string[])
/**
 * S3 bucket.
 */
bucket: string
/**
 * Key prefix.
 */
folder: string
[k: string]: unknown | undefined
} | null)
/**
 * Downloads the project from S3 (prefect-aws); outputs `bucket`, `folder` and `directory`.
 */
export type PullFromS3 = ({
/**
 * Names this step so later steps and deployment fields can use its outputs as `{{ <id>.<output> }}`.
 */
id?: string
/**
 * pip requirement(s) installed before the step runs when its module cannot be imported, e.g. `prefect-docker>=0.6`.
 */
requires?: (string | string[])
/**
 * S3 bucket.
 */
bucket: string
/**
 * Key prefix.
 */
folder: string
[k: string]: unknown | undefined
} | null)
/**
 * Uploads the project to Google Cloud Storage (prefect-gcp).
 */
export type PushToGcs = ({
/**
 * Names this step so later steps and deployment fields can use its outputs as `{{ <id>.<output> }}`.
 */
id?: string
/**
 * pip requirement(s) installed before the step runs when its module cannot be imported, e.g. `prefect-docker>=0.6`.
 */
requires?: (string | string[])
/**
 * GCS bucket.
 */
bucket: string
/**
 * Object prefix.
 */
folder: string
[k: string]: unknown | undefined
} | null)
/**
 * Downloads the project from Google Cloud Storage (prefect-gcp).
 */
export type PullFromGcs = ({
/**
 * Names this step so later steps and deployment fields can use its outputs as `{{ <id>.<output> }}`.
 */
id?: string
/**
 * pip requirement(s) installed before the step runs when its module cannot be imported, e.g. `prefect-docker>=0.6`.
 */
requires?: (string | string[])
/**
 * GCS bucket.
 */
bucket: string
/**
 * Object prefix.
 */
folder: string
[k: string]: unknown | undefined
} | null)
/**
 * Uploads the project to Azure Blob Storage (prefect-azure).
 */
export type PushToAzureBlobStorage = ({
/**
 * Names this step so later steps and deployment fields can use its outputs as `{{ <id>.<output> }}`.
 */
id?: string
/**
 * pip requirement(s) installed before the step runs when its module cannot be imported, e.g. `prefect-docker>=0.6`.
 */
requires?: (string | string[])
/**
 * Blob container.
 */
container: string
/**
 * Blob prefix.
 */
folder: string
[k: string]: unknown | undefined
} | null)
/**
 * Downloads the project from Azure Blob Storage (prefect-azure).
 */
export type PullFromAzureBlobStorage = ({
/**
 * Names this step so later steps and deployment fields can use its outputs as `{{ <id>.<output> }}`.
 */
id?: string
/**
 * pip requirement(s) installed before the step runs when its module cannot be imported, e.g. `prefect-docker>=0.6`.
 */
requires?: (string | string[])
/**
 * Blob container.
 */
container: string
/**
 * Blob prefix.
 */
folder: string
[k: string]: unknown | undefined
} | null)
/**
 * Arguments of a step function from another package; `id` and `requires` are reserved.
 * 
 * This interface was referenced by `Step`'s JSON-Schema definition
 * via the `patternProperty` "^(?!prefect\.(deployments|projects)\.steps\.|(prefect_docker\.deployments\.steps\.build_docker_image|prefect_docker\.deployments\.steps\.push_docker_image|prefect_aws\.deployments\.steps\.push_to_s3|prefect_aws\.deployments\.steps\.pull_from_s3|prefect_gcp\.deployments\.steps\.push_to_gcs|prefect_gcp\.deployments\.steps\.pull_from_gcs|prefect_azure\.deployments\.steps\.push_to_azure_blob_storage|prefect_azure\.deployments\.steps\.pull_from_azure_blob_storage)$)[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$".
 */
export type CustomStep = ({
id?: StepId
requires?: RequiredPackages
[k: string]: unknown | undefined
} | null)
/**
 * Names this step so later steps and deployment fields can use its outputs as `{{ <id>.<output> }}`.
 */
export type StepId = string
/**
 * pip requirement(s) installed before the step runs when its module cannot be imported, e.g. `prefect-docker>=0.6`.
 */
export type RequiredPackages = (string | string[])
/**
 * Default push steps for every deployment. `prefect deploy` runs them; deploy.ts does not (push images before `apply`) and says so.
 */
export type Steps1 = (Step[] | null)
/**
 * Default steps a worker runs before each flow run, e.g. `git_clone` or `set_working_directory`.
 */
export type Steps2 = (Step[] | null)
/**
 * Exactly one of `cron`, `interval` or `rrule`. `validate` checks the same itself (`schedule-kind`); this rule lets editors show it.
 */
export type ScheduleKind = ({
cron: unknown
[k: string]: unknown | undefined
} | {
interval: unknown
[k: string]: unknown | undefined
} | {
rrule: unknown
[k: string]: unknown | undefined
})
/**
 * Maximum concurrent runs: an integer, or `{limit, collision_strategy, grace_period_seconds}`.
 */
export type ConcurrencyLimit = (number | {
/**
 * Maximum concurrent runs.
 */
limit: (number | Template)
/**
 * What happens to a run over the limit: `ENQUEUE` waits, `CANCEL_NEW` cancels it.
 */
collision_strategy?: ("ENQUEUE" | "CANCEL_NEW")
/**
 * Seconds a crashed run's slot is held before it is released (60 to 86400; Prefect 3.7+).
 */
grace_period_seconds?: number
} | Template | null)
/**
 * Steps a worker runs before the flow (replaces the top-level `pull`).
 */
export type Steps3 = (Step[] | null)
/**
 * Build steps of this deployment (replace the top-level `build`); deploy.ts does not run them.
 */
export type Steps4 = (Step[] | null)
/**
 * Push steps of this deployment (replace the top-level `push`); deploy.ts does not run them.
 */
export type Steps5 = (Step[] | null)
/**
 * Delay before the run starts: seconds, an ISO-8601 duration (`PT10M`) or `HH:MM:SS`. Default 0.
 */
export type Duration = (number | string)
/**
 * Window the events must fall in: seconds, an ISO-8601 duration (`PT10M`) or `HH:MM:SS`. Default 0 (at once); at least 10 s for Proactive triggers (0 means 10). For `compound` and `sequence`: the window for all of their triggers.
 */
export type Duration1 = (number | string)
/**
 * History the metric covers: at least 300 seconds (the default).
 */
export type Duration2 = (number | string)
/**
 * How long the condition must hold before the automation fires: at least 300 seconds (the default).
 */
export type Duration3 = (number | string)
/**
 * Window the events must fall in: seconds, an ISO-8601 duration (`PT10M`) or `HH:MM:SS`. Default 0 (at once); at least 10 s for Proactive triggers (0 means 10). For `compound` and `sequence`: the window for all of their triggers.
 */
export type Duration4 = (number | string)
/**
 * Frequency: the longest time without a completed run.
 */
export type Duration5 = (number | string)
/**
 * Lateness: how late a run may start.
 */
export type Duration6 = (number | string)

/**
 * Prefect deployments managed by deploy.ts. The shape of Prefect's prefect.yaml, closed: unknown keys are errors.
 */
export interface DeployTsManifest {
/**
 * Names the project, which owns what `apply` writes: the tag `managed-by:deploy.ts/<name>` (plus `deploy.ts/env:<env>` with `--env`). `--prune` deletes only deployments with this project's and environment's marks. Every manifest of a project gives the same name; without one, the repository's directory names it.
 */
name?: string
/**
 * The Prefect version the project was written for, as a string.
 */
"prefect-version"?: string
/**
 * A home for YAML anchors (`&name`) reused with aliases (`*name`) and merge keys (`<<: *name`); not read otherwise.
 */
definitions?: {
[k: string]: unknown | undefined
}
build?: Steps
push?: Steps1
pull?: Steps2
/**
 * The deployments this file declares.
 */
deployments: Deployment[]
}
/**
 * One step: `- module.path.function: {arguments}`. `id` names its outputs; `requires` installs packages first.
 */
export interface Step {
/**
 * Clones a Git repository; outputs `directory`.
 */
"prefect.deployments.steps.git_clone"?: GitClone
/**
 * Changes the working directory of the flow run; outputs `directory`.
 */
"prefect.deployments.steps.set_working_directory"?: SetWorkingDirectory
/**
 * Runs a shell command; outputs `stdout` and `stderr`.
 */
"prefect.deployments.steps.run_shell_script"?: RunShellScript
/**
 * Installs a requirements file with pip; outputs `stdout` and `stderr`.
 */
"prefect.deployments.steps.pip_install_requirements"?: PipInstallRequirements
/**
 * Copies files from an fsspec URL; outputs `directory`. Extra keys are passed to the filesystem.
 */
"prefect.deployments.steps.pull_from_remote_storage"?: PullFromRemoteStorage
/**
 * Copies files with a storage block; outputs `directory`.
 */
"prefect.deployments.steps.pull_with_block"?: PullWithBlock
/**
 * Builds a Docker image (prefect-docker); outputs `image_name`, `tag`, `image`, `image_id`, `additional_tags`.
 */
"prefect_docker.deployments.steps.build_docker_image"?: BuildDockerImage
/**
 * Pushes a Docker image (prefect-docker); outputs `image_name`, `tag`, `image`, `additional_tags`.
 */
"prefect_docker.deployments.steps.push_docker_image"?: PushDockerImage
/**
 * Uploads the project to S3 (prefect-aws); outputs `bucket` and `folder`.
 */
"prefect_aws.deployments.steps.push_to_s3"?: PushToS3
/**
 * Downloads the project from S3 (prefect-aws); outputs `bucket`, `folder` and `directory`.
 */
"prefect_aws.deployments.steps.pull_from_s3"?: PullFromS3
/**
 * Uploads the project to Google Cloud Storage (prefect-gcp).
 */
"prefect_gcp.deployments.steps.push_to_gcs"?: PushToGcs
/**
 * Downloads the project from Google Cloud Storage (prefect-gcp).
 */
"prefect_gcp.deployments.steps.pull_from_gcs"?: PullFromGcs
/**
 * Uploads the project to Azure Blob Storage (prefect-azure).
 */
"prefect_azure.deployments.steps.push_to_azure_blob_storage"?: PushToAzureBlobStorage
/**
 * Downloads the project from Azure Blob Storage (prefect-azure).
 */
"prefect_azure.deployments.steps.pull_from_azure_blob_storage"?: PullFromAzureBlobStorage
/**
 * Clones a Git repository; outputs `directory`.
 */
"prefect.deployments.steps.pull.git_clone"?: GitClone
/**
 * Changes the working directory of the flow run; outputs `directory`.
 */
"prefect.deployments.steps.pull.set_working_directory"?: SetWorkingDirectory
/**
 * Copies files from an fsspec URL; outputs `directory`. Extra keys are passed to the filesystem.
 */
"prefect.deployments.steps.pull.pull_from_remote_storage"?: PullFromRemoteStorage
/**
 * Copies files with a storage block; outputs `directory`.
 */
"prefect.deployments.steps.pull.pull_with_block"?: PullWithBlock
/**
 * Runs a shell command; outputs `stdout` and `stderr`.
 */
"prefect.deployments.steps.utility.run_shell_script"?: RunShellScript
/**
 * Installs a requirements file with pip; outputs `stdout` and `stderr`.
 */
"prefect.deployments.steps.utility.pip_install_requirements"?: PipInstallRequirements
[k: string]: RemovedStep | UnknownPrefectStep | CustomStep | GitClone | SetWorkingDirectory | RunShellScript | PipInstallRequirements | PullFromRemoteStorage | PullWithBlock | BuildDockerImage | PushDockerImage | PushToS3 | PullFromS3 | PushToGcs | PullFromGcs | PushToAzureBlobStorage | PullFromAzureBlobStorage | undefined
}
/**
 * The `prefect.projects.steps` namespace was removed in Prefect 2.11; its steps live in `prefect.deployments.steps`.
 * 
 * This interface was referenced by `Step`'s JSON-Schema definition
 * via the `patternProperty` "^prefect\.projects\.steps\.".
 */
export interface RemovedStep {
[k: string]: unknown | undefined
}
/**
 * Prefect has no step of this name.
 * 
 * This interface was referenced by `Step`'s JSON-Schema definition
 * via the `patternProperty` "^prefect\.deployments\.steps\.(?!(git_clone|set_working_directory|run_shell_script|pip_install_requirements|pull_from_remote_storage|pull_with_block|pull\.git_clone|pull\.set_working_directory|pull\.pull_from_remote_storage|pull\.pull_with_block|utility\.run_shell_script|utility\.pip_install_requirements)$)".
 */
export interface UnknownPrefectStep {
[k: string]: unknown | undefined
}
/**
 * One Prefect deployment: which flow, where it runs, when, and with what parameters.
 */
export interface Deployment {
/**
 * Deployment name, unique per flow. Cannot contain `/`, `%`, `&`, `>` or `<`.
 */
name: string
/**
 * The flow function: `path/to/file.py:function` relative to the project root, or an importable `package.module:function` (also written `package.module.function`).
 */
entrypoint: string
/**
 * Name of the flow; read from `@flow(name=...)` in the source when omitted, else the function name with `_` as `-`. Cannot contain `/`, `%`, `&`, `>` or `<`.
 */
flow_name?: (string | null)
/**
 * Shown in the Prefect UI; the flow's docstring when omitted.
 */
description?: (string | null)
/**
 * A version label for the deployment, as a string (quote numbers: `"1.0"`).
 */
version?: (string | null)
/**
 * How Prefect derives version information.
 */
version_type?: ("prefect:simple" | "vcs:git" | "vcs:github" | "vcs:gitlab" | "vcs:bitbucket" | "vcs:azuredevops")
/**
 * Tags for filtering in the UI. `apply` adds the ownership marks `managed-by:deploy.ts/<project>` (and `deploy.ts/env:<env>` with `--env`), which a manifest may not set itself.
 */
tags?: (string[] | Template)
/**
 * Default parameter values for the flow's runs.
 */
parameters?: {
[k: string]: unknown | undefined
}
/**
 * Reject runs whose parameters do not match the flow's signature (Prefect's default is true).
 */
enforce_parameter_schema?: (boolean | Template)
/**
 * JSON schema of the flow's parameters; inferred from the Python signature when omitted.
 */
parameter_openapi_schema?: {
[k: string]: unknown | undefined
}
work_pool?: WorkPool
/**
 * When the deployment runs. Give each a `slug` to keep its identity across renames.
 */
schedules?: ((Schedule & ScheduleKind)[] | null)
/**
 * Deprecated single schedule; use `schedules:` with one item.
 */
schedule?: (Schedule | null)
concurrency_limit?: ConcurrencyLimit
/**
 * Pause the deployment. When omitted, `apply` leaves the server's value alone.
 */
paused?: (boolean | Template | null)
pull?: Steps3
build?: Steps4
push?: Steps5
/**
 * Automations that run this deployment: one per trigger, owned by the deployment. `apply` creates, updates (keeping IDs) and deletes them to match.
 */
triggers?: Trigger[]
/**
 * Service level agreements (Prefect Cloud only): validated here, not synced by `apply`.
 */
sla?: SLA[]
}
/**
 * Where the deployment's runs execute: the pool, its queue, and job variables.
 */
export interface WorkPool {
/**
 * Name of an existing work pool. `apply` checks it exists before writing anything.
 */
name?: (string | null)
/**
 * Queue within the pool; the pool's `default` queue when omitted. Created by the server when missing.
 */
work_queue_name?: (string | null)
/**
 * Overrides of the pool's base job template. Process pools take `command`, `env`, `labels`, `name`, `stream_output`, `working_dir`; Docker and Kubernetes pools add `image` and more.
 */
job_variables?: {
[k: string]: unknown | undefined
}
}
/**
 * One schedule: exactly one of `cron`, `interval` or `rrule`, plus options. State `timezone` and `active` explicitly.
 */
export interface Schedule {
/**
 * A cron expression (5 fields, or 6 with seconds last), or a macro such as `@daily`. Read in `timezone`.
 */
cron?: string
/**
 * Time between runs: seconds, an ISO-8601 duration (`PT15M`) or `HH:MM:SS`; at most 999,999,999 days, Python's longest duration.
 */
interval?: (number | string)
/**
 * An iCalendar recurrence rule (RFC 5545), e.g. `FREQ=WEEKLY;BYDAY=MO`. May start with a `DTSTART:` line.
 */
rrule?: string
/**
 * IANA timezone the schedule is read in, e.g. `Europe/Berlin`. Prefect stores no timezone for a cron schedule that omits it, which means UTC.
 */
timezone?: (string | null)
/**
 * Whether the schedule creates runs. When omitted, `apply` leaves the server's value alone (people pause schedules in the UI).
 */
active?: (boolean | Template)
/**
 * Stable name of this schedule within the deployment; `apply` updates schedules in place by slug. Lowercase letters, digits and `-`.
 */
slug?: string
/**
 * Slug of an existing schedule this one renames (Prefect 3.7+).
 */
replaces?: string
/**
 * Parameter values for runs of this schedule, merged over the deployment's.
 */
parameters?: {
[k: string]: unknown | undefined
}
/**
 * ISO-8601 date-time the interval grid starts from; Prefect uses the time of the deploy when omitted, so state it for a stable plan.
 */
anchor_date?: string
/**
 * Cron only: `true` (default) runs when day-of-month OR day-of-week matches; `false` needs both.
 */
day_or?: (boolean | Template)
/**
 * Upper bound on future runs the scheduler keeps for this schedule (honoured by Prefect Cloud).
 */
max_scheduled_runs?: number
}
/**
 * An automation that runs this deployment when events arrive (`event`), a metric crosses a threshold (`metric`, Prefect Cloud only), or other triggers fire (`compound`, `sequence`). `apply` keeps each as one automation, matched by `name`, and updates it in place.
 */
export interface Trigger {
/**
 * Kind of trigger. When omitted, Prefect infers it: `metric` with `posture: Metric`, `compound` with `triggers` and `require`, `sequence` with `triggers` alone, else `event`.
 */
type?: ("event" | "metric" | "compound" | "sequence")
/**
 * Name of the automation; `<deployment>__automation_<n>` (its position, from 1) when omitted, as `prefect deploy` names it. Automations are matched by name.
 */
name?: string
/**
 * Longer description of the automation.
 */
description?: string
/**
 * Whether the automation is evaluated. When omitted, `apply` leaves the server's value alone (new automations start enabled).
 */
enabled?: (boolean | Template)
/**
 * Parameters of the run the automation starts; Jinja such as `{{ event.payload.x }}` is rendered by the server when it fires.
 */
parameters?: {
[k: string]: unknown | undefined
}
/**
 * Job variables of the run the automation starts.
 */
job_variables?: {
[k: string]: unknown | undefined
}
schedule_after?: Duration
match?: ResourceSpecification
/**
 * Labels a related resource must have: one mapping, or a list of mappings that must all match.
 */
match_related?: (ResourceSpecification1 | ResourceSpecification1[])
/**
 * Events that must be seen first (event triggers).
 */
after?: string[]
/**
 * Events the trigger waits for; trailing wildcards allowed, e.g. `prefect.flow-run.*` (event triggers).
 */
expect?: string[]
/**
 * Evaluate separately for each value of these labels, e.g. `prefect.resource.id` (event triggers).
 */
for_each?: string[]
/**
 * `Reactive` (default) fires on the expected events, `Proactive` on their absence; `Metric` makes a metric trigger.
 */
posture?: ("Reactive" | "Proactive" | "Metric")
/**
 * Events needed (Reactive) or expected (Proactive) within the window; default 1.
 */
threshold?: number
within?: Duration1
metric?: MetricQuery
/**
 * The triggers a `compound` or `sequence` trigger combines.
 * 
 * @minItems 1
 */
triggers?: [ChildTrigger, ...(ChildTrigger)[]]
/**
 * How many of a `compound` trigger's triggers must fire: a number, `any` or `all`.
 */
require?: (number | ("any" | "all"))
}
/**
 * Labels the event's resource must have, e.g. `prefect.resource.id: prefect.flow-run.*` (a value or a list of values; trailing `*` wildcards).
 */
export interface ResourceSpecification {
[k: string]: string | string[] | undefined
}
/**
 * Resource labels to match: each value a string or a list of strings, with trailing `*` wildcards.
 */
export interface ResourceSpecification1 {
[k: string]: string | string[] | undefined
}
/**
 * The query of a `metric` trigger (Prefect Cloud only).
 */
export interface MetricQuery {
/**
 * The metric: `lateness`, `duration` or `successes`.
 */
name: ("lateness" | "duration" | "successes")
/**
 * Value compared with the metric.
 */
threshold: number
/**
 * Comparison of the metric with the threshold.
 */
operator: ("<" | "<=" | ">" | ">=")
range?: Duration2
firing_for?: Duration3
}
/**
 * One of the triggers a `compound` or `sequence` trigger combines: an event, metric, compound or sequence trigger without the automation's keys (`name`, `enabled`, `parameters`… belong on the outer trigger).
 */
export interface ChildTrigger {
/**
 * Kind of trigger. When omitted, Prefect infers it: `metric` with `posture: Metric`, `compound` with `triggers` and `require`, `sequence` with `triggers` alone, else `event`.
 */
type?: ("event" | "metric" | "compound" | "sequence")
match?: ResourceSpecification2
/**
 * Labels a related resource must have: one mapping, or a list of mappings that must all match.
 */
match_related?: (ResourceSpecification1 | ResourceSpecification1[])
/**
 * Events that must be seen first (event triggers).
 */
after?: string[]
/**
 * Events the trigger waits for; trailing wildcards allowed, e.g. `prefect.flow-run.*` (event triggers).
 */
expect?: string[]
/**
 * Evaluate separately for each value of these labels, e.g. `prefect.resource.id` (event triggers).
 */
for_each?: string[]
/**
 * `Reactive` (default) fires on the expected events, `Proactive` on their absence; `Metric` makes a metric trigger.
 */
posture?: ("Reactive" | "Proactive" | "Metric")
/**
 * Events needed (Reactive) or expected (Proactive) within the window; default 1.
 */
threshold?: number
within?: Duration4
metric?: MetricQuery1
/**
 * The triggers a `compound` or `sequence` trigger combines.
 * 
 * @minItems 1
 */
triggers?: [ChildTrigger, ...(ChildTrigger)[]]
/**
 * How many of a `compound` trigger's triggers must fire: a number, `any` or `all`.
 */
require?: (number | ("any" | "all"))
}
/**
 * Resource labels to match: each value a string or a list of strings, with trailing `*` wildcards.
 */
export interface ResourceSpecification2 {
[k: string]: string | string[] | undefined
}
/**
 * The query of a `metric` trigger (Prefect Cloud only).
 */
export interface MetricQuery1 {
/**
 * The metric: `lateness`, `duration` or `successes`.
 */
name: ("lateness" | "duration" | "successes")
/**
 * Value compared with the metric.
 */
threshold: number
/**
 * Comparison of the metric with the threshold.
 */
operator: ("<" | "<=" | ">" | ">=")
range?: Duration2
firing_for?: Duration3
}
/**
 * A service level agreement on the deployment's runs (Prefect Cloud only). Exactly one of `duration`, `stale_after` or `within`. Validated, not synced: `apply` says so.
 */
export interface SLA {
/**
 * Name of the SLA, unique per deployment.
 */
name: string
/**
 * How serious a violation is; default `moderate`.
 */
severity?: ("minor" | "low" | "moderate" | "high" | "critical")
/**
 * Whether the SLA is evaluated; default true.
 */
enabled?: boolean
/**
 * Time to completion: the longest a run may take, in seconds.
 */
duration?: number
stale_after?: Duration5
within?: Duration6
}
