/**
 * A parsed YAML document as plain data, in time linear in the document, with every alias and
 * `<<` merge key resolved as the `yaml` package does it — and with what that package leaves to
 * chance made an explicit problem:
 *
 * - Each alias is resolved once, through one pass over the document (`Alias.resolve` scans the
 *   document again for every alias: 30,000 aliases took 75 s).
 * - Expansion is bounded by the number of values aliases add, counted with memoised sizes before
 *   anything is built, so a billion-laughs file is refused in milliseconds while 2,000
 *   deployments sharing `<<: *base` (which the package's alias *count* refuses) are fine.
 * - An integer JSON cannot carry exactly (beyond ±2^53 − 1) or a `.inf`/`.nan` is a located
 *   problem, never a silently rounded value: Prefect, reading the same file in Python, would
 *   keep it exact.
 */
import {
  type Alias,
  type Document,
  isAlias,
  isMap,
  isPair,
  isScalar,
  isSeq,
  type Node,
  type Pair,
  visit,
} from "yaml";

export type YamlProblem =
  | { kind: "collection-key"; offset: number }
  | { kind: "undefined-alias"; offset: number; name: string }
  | { kind: "recursive-alias"; offset: number; name: string }
  | { kind: "merge-source"; offset: number }
  | { kind: "too-many-values"; offset: number; limit: number }
  | { kind: "too-deep"; offset: number; limit: number }
  | { kind: "unsafe-integer"; offset: number; text: string }
  | { kind: "non-finite"; offset: number; text: string };

export interface YamlData {
  /** Undefined when a structural problem (anything but a number) made the document unusable. */
  data?: unknown;
  problems: YamlProblem[];
  /** The node each alias refers to, for locating values through aliases. */
  aliases: Map<Alias, Node>;
}

export interface Limits {
  /** Values that aliases and merges may add to the document. */
  maxAliasValues: number;
  /** Nesting depth of the resolved data. */
  maxDepth: number;
}

class Refused extends Error {
  constructor(readonly problem: YamlProblem) {
    super(problem.kind);
  }
}

const offsetOf = (node: unknown) => (node as Node | undefined)?.range?.[0] ?? 0;

/** Whether a map key is YAML's merge key `<<` (plain, not quoted). */
export function isMergeKey(key: unknown): boolean {
  if (!isScalar(key)) return false;
  const value = key.value;
  return typeof value === "symbol"
    ? value.description === "<<"
    : value === "<<" && (!key.type || key.type === "PLAIN");
}

/** Each alias's anchored node: the last node with that anchor before it, in document order. */
export function aliasTargets(doc: Document): { aliases: Map<Alias, Node>; problem?: YamlProblem } {
  const aliases = new Map<Alias, Node>();
  const anchors = new Map<string, Node>();
  let problem: YamlProblem | undefined;
  visit(doc, {
    Node(_, node) {
      if (isAlias(node)) {
        const target = anchors.get(node.source);
        if (target) aliases.set(node, target);
        else {
          problem ??= { kind: "undefined-alias", offset: offsetOf(node), name: node.source };
        }
      } else if (node.anchor) anchors.set(node.anchor, node);
    },
    Pair(_, pair) {
      if (isMap(pair.key) || isSeq(pair.key)) {
        problem ??= { kind: "collection-key", offset: offsetOf(pair.key) };
      }
    },
  });
  return { aliases, problem };
}

export function yamlData(doc: Document, text: string, limits: Limits): YamlData {
  const { aliases, problem } = aliasTargets(doc);
  if (problem) return { problems: [problem], aliases };
  const problems: YamlProblem[] = [];
  try {
    measure(doc.contents, aliases, limits);
    const data = new Converter(aliases, text, problems).value(doc.contents);
    return { data, problems, aliases };
  } catch (error) {
    if (error instanceof Refused) return { problems: [error.problem], aliases };
    throw error;
  }
}

/**
 * Counts what the document expands to without building it: each node's size and height once,
 * aliases by their target's. Refuses when aliases add too many values or nesting goes too deep.
 */
function measure(root: unknown, aliases: Map<Alias, Node>, limits: Limits) {
  const known = new Map<unknown, { size: number; height: number }>();
  const open = new Set<unknown>();
  let added = 0;
  const walk = (node: unknown, depth: number): { size: number; height: number } => {
    if (depth > limits.maxDepth) {
      throw new Refused({ kind: "too-deep", offset: offsetOf(node), limit: limits.maxDepth });
    }
    if (isAlias(node)) {
      const target = aliases.get(node)!;
      if (open.has(target)) {
        throw new Refused({ kind: "recursive-alias", offset: offsetOf(node), name: node.source });
      }
      const measured = known.get(target) ?? walk(target, depth);
      if (depth + measured.height > limits.maxDepth) {
        throw new Refused({ kind: "too-deep", offset: offsetOf(node), limit: limits.maxDepth });
      }
      added += measured.size;
      if (added > limits.maxAliasValues) {
        throw new Refused({
          kind: "too-many-values",
          offset: offsetOf(node),
          limit: limits.maxAliasValues,
        });
      }
      return measured;
    }
    const cached = known.get(node);
    if (cached) return cached;
    open.add(node);
    let size = 1;
    let height = 0;
    const children: unknown[] = isMap(node)
      ? node.items.flatMap((p: Pair) => [p.key, p.value])
      : isSeq(node)
      ? node.items
      : isPair(node)
      ? [node.key, node.value]
      : [];
    for (const child of children) {
      if (child === null || child === undefined) continue;
      const m = walk(child, depth + 1);
      size += m.size;
      height = Math.max(height, m.height + 1);
    }
    open.delete(node);
    const measured = { size, height };
    known.set(node, measured);
    return measured;
  };
  walk(root, 0);
}

/** Builds the data; anchored nodes are built once and shared by their aliases, as in `yaml`. */
class Converter {
  #built = new Map<Node, unknown>();

  constructor(
    private aliases: Map<Alias, Node>,
    private text: string,
    private problems: YamlProblem[],
  ) {}

  value(node: unknown): unknown {
    if (node === null || node === undefined) return null;
    if (isAlias(node)) return this.value(this.aliases.get(node));
    const n = node as Node;
    if (this.#built.has(n)) return this.#built.get(n);
    let result: unknown;
    if (isMap(n)) result = this.#map(n);
    else if (isSeq(n)) result = n.items.map((item) => this.value(item));
    else if (isScalar(n)) result = this.#scalar(n);
    else result = null;
    if (n.anchor) this.#built.set(n, result);
    return result;
  }

  #scalar(node: Node & { value: unknown }): unknown {
    const value = node.value;
    if (typeof value === "number") {
      const [start, end] = node.range ?? [0, 0];
      const source = this.text.slice(start, end).trim();
      if (!Number.isFinite(value)) {
        this.problems.push({ kind: "non-finite", offset: start, text: source });
      } else if (
        Number.isInteger(value) && !Number.isSafeInteger(value) &&
        /^[-+]?([0-9]+|0x[0-9a-fA-F]+|0o[0-7]+)$/.test(source)
      ) {
        this.problems.push({ kind: "unsafe-integer", offset: start, text: source });
      }
    }
    return value;
  }

  #map(node: Node & { items: Pair[] }): Record<string, unknown> {
    const result: Record<string, unknown> = {};
    for (const pair of node.items) {
      if (isMergeKey(pair.key)) {
        this.#merge(result, pair.value);
        continue;
      }
      const key = this.value(pair.key);
      if (key !== null && typeof key === "object") {
        throw new Refused({ kind: "collection-key", offset: offsetOf(pair.key) });
      }
      set(result, key === null ? "" : String(key), this.value(pair.value));
    }
    return result;
  }

  /** `<<: *a` or `<<: [*a, *b]`: keys not yet present are added, the first source winning. */
  #merge(into: Record<string, unknown>, value: unknown) {
    const source = isAlias(value) ? this.aliases.get(value) : value;
    const sources = isSeq(source) ? source.items : [source];
    for (const item of sources) {
      const map = isAlias(item) ? this.aliases.get(item) : item;
      if (!isMap(map)) throw new Refused({ kind: "merge-source", offset: offsetOf(item) });
      const merged = this.value(map) as Record<string, unknown>;
      for (const [k, v] of Object.entries(merged)) if (!Object.hasOwn(into, k)) set(into, k, v);
    }
  }
}

/** Assignment that treats `__proto__` as the plain key it is in YAML. */
function set(object: Record<string, unknown>, key: string, value: unknown) {
  Object.defineProperty(object, key, {
    value,
    writable: true,
    enumerable: true,
    configurable: true,
  });
}
