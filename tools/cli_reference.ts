/**
 * Writes docs/cli.md from each command's own help text (`deno task docs`), so the reference is
 * what `deploy <command> --help` prints; a test fails when the committed file differs.
 */
import { HELP } from "../deploy.ts";

export const CLI_REFERENCE_PATH = new URL("../docs/cli.md", import.meta.url);

/** The commands in the order `deploy --help` lists them, each with its help text verbatim. */
export function generateCliReference(): string {
  const commands = Object.keys(HELP).filter((topic) => topic !== "main");
  const first = (topic: string) => HELP[topic].split("\n")[0].replace(/^deploy \S+ — /, "");
  return [
    "# CLI reference",
    "",
    "Generated from each command's `--help` by `deno task docs`; do not edit. The manifests' keys",
    "are in the [manifest reference](manifest-reference.md).",
    "",
    ...commands.map((topic) => `- [\`deploy ${topic}\`](#deploy-${topic}): ${first(topic)}`),
    "",
    "## deploy",
    "",
    "```text",
    HELP.main.trimEnd(),
    "```",
    "",
    ...commands.flatMap((topic) => [
      `## deploy ${topic}`,
      "",
      "```text",
      HELP[topic].trimEnd(),
      "```",
      "",
    ]),
  ].join("\n");
}

if (import.meta.main) {
  await Deno.writeTextFile(CLI_REFERENCE_PATH, generateCliReference());
  console.error(`Wrote ${CLI_REFERENCE_PATH.pathname}`);
}
