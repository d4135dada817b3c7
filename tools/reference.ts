/**
 * Writes docs/manifest-reference.md from the schema's titles and descriptions
 * (`deno task docs`), so the reference never drifts from what validate enforces; a test fails
 * when the committed file differs from what this produces.
 */
import schema from "../schema/deployments.schema.json" with { type: "json" };

export const REFERENCE_PATH = new URL("../docs/manifest-reference.md", import.meta.url);

type Node = {
  title?: string;
  description?: string;
  type?: string | string[];
  $ref?: string;
  anyOf?: Node[];
  enum?: unknown[];
  items?: Node;
  properties?: Record<string, Node>;
  required?: string[];
  default?: unknown;
  examples?: unknown[];
  deprecationMessage?: string;
};

const definitions = schema.definitions as unknown as Record<string, Node>;

function typeOf(node: Node): string {
  if (node.$ref) {
    const name = node.$ref.split("/").pop()!;
    if (name === "template") return "template";
    if (name === "steps") return "[steps](#steps)";
    const target = definitions[name];
    return target.properties
      ? `[${target.title ?? name}](#${anchor(target.title ?? name)})`
      : typeOf(target);
  }
  if (node.anyOf) return [...new Set(node.anyOf.map(typeOf))].join(" or ");
  if (node.enum) return node.enum.map((v) => `\`${JSON.stringify(v)}\``).join(", ");
  const type = Array.isArray(node.type) ? node.type.join(" or ") : node.type;
  if (type === "array" && node.items) return `list of ${typeOf(node.items)}`;
  if (type === "object" && node.properties) return "mapping (below)";
  return type ?? "any";
}

function anchor(title: string): string {
  return title.toLowerCase().replace(/[^\w\s-]/g, "").replace(/\s+/g, "-");
}

function escape(text: string): string {
  return text.replaceAll("|", "\\|").replaceAll("\n", " ");
}

/** Keys the schema marks as misplaced or removed are listed apart, not as keys to write. */
function validProperties(node: Node): [string, Node][] {
  return Object.entries(node.properties ?? {}).filter(([, p]) => !p.deprecationMessage);
}

function table(node: Node): string {
  const rows = validProperties(node).map(([key, property]) => {
    const required = node.required?.includes(key) ? " **(required)**" : "";
    return `| \`${key}\`${required} | ${escape(typeOf(property))} | ${
      escape(property.description ?? property.title ?? "")
    } |`;
  });
  return ["| key | type | meaning |", "| --- | --- | --- |", ...rows].join("\n");
}

function section(title: string, node: Node, level = "##"): string {
  return `${level} ${title}\n\n${node.description ?? ""}\n\n${table(node)}\n`;
}

export function generateReference(): string {
  const parts = [
    "# Manifest reference",
    "",
    "Generated from [schema/deployments.schema.json](../schema/deployments.schema.json) by " +
    "`deno task docs`; do not edit. Values marked *template* may be a `{{ … }}` placeholder " +
    "resolved by `plan` and `apply`.",
    "",
    section("Manifest file", schema as unknown as Node),
    section(definitions.deployment.title ?? "Deployment", definitions.deployment),
    section(definitions.schedule.title ?? "Schedule", definitions.schedule),
    section(definitions.work_pool.title ?? "Work pool", definitions.work_pool),
  ];
  const concurrency = definitions.concurrency_limit.anyOf?.find((b) => b.properties);
  if (concurrency) {
    parts.push(section("Concurrency limit", {
      ...concurrency,
      description: definitions.concurrency_limit.description,
    }));
  }
  for (const name of ["trigger", "child_trigger", "metric_query", "sla"]) {
    parts.push(section(definitions[name].title ?? name, definitions[name]));
  }
  parts.push(
    `## Steps\n\n${definitions.steps.description ?? ""}\n\n${
      Object.keys(definitions.step.properties ?? {}).map((name) => `- \`${name}\``).join("\n")
    }\n`,
    section(definitions.environment.title ?? "Environment overlay", definitions.environment),
    section(
      definitions.environment_change.title ?? "Environment change",
      definitions.environment_change,
    ),
    misplacedKeys(),
  );
  return parts.join("\n");
}

function misplacedKeys(): string {
  const places: [string, Node][] = [
    ["top level", schema as unknown as Node],
    ["deployment", definitions.deployment],
    ["schedule", definitions.schedule],
    ["`work_pool`", definitions.work_pool],
  ];
  const rows = places.flatMap(([place, node]) =>
    Object.entries(node.properties ?? {})
      .filter(([, p]) => p.deprecationMessage)
      .map(([key, p]) => `| \`${key}\` | ${place} | ${escape(p.deprecationMessage!)} |`)
  );
  return [
    "## Keys in the wrong place",
    "",
    "Known keys that Prefect ignores where they are written, and Prefect 2 keys. `validate` and " +
    "editors report each as an error with this message.",
    "",
    "| key | in | message |",
    "| --- | --- | --- |",
    ...rows,
    "",
  ].join("\n");
}

if (import.meta.main) {
  await Deno.writeTextFile(REFERENCE_PATH, generateReference());
  console.error(`Wrote ${REFERENCE_PATH.pathname}`);
}
