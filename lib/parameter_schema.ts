/**
 * The `parameter_openapi_schema` Prefect generates for a flow, computed from its source.
 *
 * Prefect builds a pydantic model from the signature (title = parameter name, `position`,
 * docstring `Args:` as descriptions, no default = required), with unschemable hints as `Any`,
 * and dumps its JSON Schema with `#/definitions/` refs. This module maps Python hints to the
 * same JSON Schema pydantic 2 emits, evaluates literal defaults as pydantic serialises them, and
 * reads enums and pydantic models defined in the same file. What it cannot know without running
 * Python — hints and defaults from other modules — becomes an untyped property or no default.
 */
import type { SyntaxNode } from "@lezer/common";
import { parser } from "@lezer/python";
import {
  type PythonFunction,
  type PythonModule,
  pythonString,
  stringValue,
} from "./python_source.ts";

export type Json = Record<string, unknown>;

/** A value with no JSON form we can compute (a call we do not know, an import). */
const UNKNOWN = Symbol("unknown");
type Value = unknown | typeof UNKNOWN;

const BUILTINS: Record<string, string> = {
  int: "builtins.int",
  float: "builtins.float",
  str: "builtins.str",
  bool: "builtins.bool",
  bytes: "builtins.bytes",
  list: "builtins.list",
  dict: "builtins.dict",
  set: "builtins.set",
  frozenset: "builtins.frozenset",
  tuple: "builtins.tuple",
  object: "builtins.object",
};

const SCALARS: Record<string, Json> = {
  "builtins.int": { type: "integer" },
  "builtins.float": { type: "number" },
  "builtins.str": { type: "string" },
  "builtins.bool": { type: "boolean" },
  "builtins.bytes": { type: "string", format: "binary" },
  "datetime.datetime": { type: "string", format: "date-time" },
  "datetime.date": { type: "string", format: "date" },
  "datetime.time": { type: "string", format: "time" },
  "datetime.timedelta": { type: "string", format: "duration" },
  "uuid.UUID": { type: "string", format: "uuid" },
  "pathlib.Path": { type: "string", format: "path" },
  "pathlib.PurePath": { type: "string", format: "path" },
  "decimal.Decimal": { anyOf: [{ type: "number" }, { type: "string" }] },
};

const ANY = new Set(["typing.Any", "builtins.object"]);
const LISTS = new Set([
  "builtins.list",
  "typing.List",
  "typing.Sequence",
  "collections.abc.Sequence",
]);
const SETS = new Set([
  "builtins.set",
  "builtins.frozenset",
  "typing.Set",
  "typing.FrozenSet",
  "typing.AbstractSet",
]);
const TUPLES = new Set(["builtins.tuple", "typing.Tuple"]);
const DICTS = new Set([
  "builtins.dict",
  "typing.Dict",
  "typing.Mapping",
  "collections.abc.Mapping",
]);
const ENUM_BASES = new Set(["enum.Enum", "enum.IntEnum", "enum.StrEnum"]);
const MODEL_BASES = new Set(["pydantic.BaseModel", "pydantic.main.BaseModel"]);

/** Marks a type the schema cannot express: the parameter becomes untyped, as in Prefect. */
class Unschemable extends Error {}

interface Context {
  module: PythonModule;
  definitions: Map<string, Json>;
}

const computed = new WeakMap<PythonFunction, Json>();

/** Prefect's parameter schema for `fn` of `module`, computed once per parsed function. */
export function parameterSchema(module: PythonModule, fn: PythonFunction): Json {
  let schema = computed.get(fn);
  if (!schema) {
    schema = computeParameterSchema(module, fn);
    computed.set(fn, schema);
  }
  return schema;
}

function computeParameterSchema(module: PythonModule, fn: PythonFunction): Json {
  const ctx: Context = { module, definitions: new Map() };
  const descriptions = docstringArguments(fn.docstring);
  const properties: Json = {};
  const required: string[] = [];
  fn.parameters.forEach((param, position) => {
    if (param.name === "self" || param.name === "cls") return;
    let property: Json;
    const definitionsBefore = new Map(ctx.definitions);
    try {
      property = param.annotation ? typeSchema(param.annotation, ctx) : {};
    } catch (error) {
      if (!(error instanceof Unschemable)) throw error;
      property = {};
      ctx.definitions = definitionsBefore;
    }
    property = { ...property, title: param.name, position };
    if (descriptions.has(param.name)) property.description = descriptions.get(param.name);
    if (param.default) {
      const value = evaluate(param.default, ctx);
      if (value !== UNKNOWN) property.default = value;
    } else {
      required.push(param.name);
    }
    properties[param.name] = property;
  });
  const schema: Json = { title: "Parameters", type: "object", properties };
  if (required.length) schema.required = required;
  if (ctx.definitions.size) schema.definitions = Object.fromEntries(ctx.definitions);
  return schema;
}

const text = (node: SyntaxNode, ctx: Context) => ctx.module.source.slice(node.from, node.to);

/** The dotted origin of a name as written: `Optional` → `typing.Optional`. */
function qualify(node: SyntaxNode, ctx: Context): string | undefined {
  if (node.name === "VariableName") {
    const name = text(node, ctx);
    if (ctx.module.classes.has(name)) return `local.${name}`;
    return ctx.module.imports.get(name) ?? BUILTINS[name];
  }
  if (node.name === "MemberExpression" && !node.getChild("[")) {
    const object = node.firstChild!;
    const property = node.lastChild!;
    const base = qualify(object, ctx) ??
      (object.name === "VariableName" ? text(object, ctx) : undefined);
    return base ? `${base}.${text(property, ctx)}` : undefined;
  }
  return undefined;
}

/** The children of a subscript `base[a, b]`: the base and the arguments. */
function subscript(node: SyntaxNode): { base: SyntaxNode; args: SyntaxNode[] } | undefined {
  if (node.name !== "MemberExpression" || !node.getChild("[")) return undefined;
  const args: SyntaxNode[] = [];
  let inside = false;
  for (let c = node.firstChild; c; c = c.nextSibling) {
    if (c.name === "[") inside = true;
    else if (c.name === "]") inside = false;
    else if (inside && c.name !== "," && c.name !== "Comment") args.push(c);
  }
  return { base: node.firstChild!, args };
}

function parseExpression(source: string): { node: SyntaxNode; source: string } | undefined {
  const wrapped = `_ = ${source}\n`;
  const tree = parser.parse(wrapped);
  const statement = tree.topNode.firstChild;
  const value = statement?.lastChild;
  if (!value || statement?.name !== "AssignStatement") return undefined;
  let error = false;
  tree.iterate({ enter: (n) => !(error ||= n.type.isError) });
  return error ? undefined : { node: value, source: wrapped };
}

function typeSchema(node: SyntaxNode, ctx: Context): Json {
  switch (node.name) {
    case "None":
      return { type: "null" };
    case "String": {
      // A string annotation is evaluated as an expression, as Prefect does with eval_str.
      const inner = stringValue(node, ctx.module.source);
      const parsed = inner === undefined ? undefined : parseExpression(inner);
      if (!parsed) throw new Unschemable();
      const shadow: Context = {
        module: { ...ctx.module, source: parsed.source },
        definitions: ctx.definitions,
      };
      return typeSchema(parsed.node, shadow);
    }
    case "ParenthesizedExpression":
      return typeSchema(children(node, ["(", ")"])[0], ctx);
    case "BinaryExpression": {
      const [left, op, right] = [node.firstChild!, node.firstChild!.nextSibling!, node.lastChild!];
      if (text(op, ctx) !== "|") throw new Unschemable();
      return union([...unionMembers(left, ctx), ...unionMembers(right, ctx)], ctx);
    }
  }
  const sub = subscript(node);
  if (sub) return genericSchema(qualify(sub.base, ctx), sub.args, ctx);
  const origin = qualify(node, ctx);
  if (origin === undefined) throw new Unschemable();
  if (ANY.has(origin)) return {};
  if (SCALARS[origin]) return structuredClone(SCALARS[origin]);
  if (LISTS.has(origin) || TUPLES.has(origin)) return { type: "array", items: {} };
  if (SETS.has(origin)) return { type: "array", items: {}, uniqueItems: true };
  if (DICTS.has(origin)) return { type: "object", additionalProperties: true };
  if (origin === "typing.Optional" || origin === "typing.Union") throw new Unschemable();
  if (origin.startsWith("local.")) return classSchema(origin.slice(6), ctx);
  throw new Unschemable();
}

function unionMembers(node: SyntaxNode, ctx: Context): SyntaxNode[] {
  if (node.name === "BinaryExpression" && text(node.firstChild!.nextSibling!, ctx) === "|") {
    return [...unionMembers(node.firstChild!, ctx), ...unionMembers(node.lastChild!, ctx)];
  }
  return [node];
}

/** pydantic's union: members in order, duplicates dropped; one member is itself. */
function union(members: SyntaxNode[], ctx: Context): Json {
  return unionOf(members.map((m) => typeSchema(m, ctx)));
}

const NONE_NODE = { name: "None" } as SyntaxNode;

/** `None` among the members makes the rest nullable: its branch always comes last. */
function unionOf(members: Json[]): Json {
  const isNull = (s: Json) => s.type === "null" && Object.keys(s).length === 1;
  // pydantic also flattens a member that is itself only an anyOf (Decimal, nested unions).
  const flat = members.flatMap((m) =>
    Object.keys(m).length === 1 && Array.isArray(m.anyOf) ? m.anyOf as Json[] : [m]
  );
  const schemas: Json[] = [];
  for (const schema of flat.filter((m) => !isNull(m))) {
    if (!schemas.some((s) => JSON.stringify(s) === JSON.stringify(schema))) schemas.push(schema);
  }
  const nullable = members.some(isNull);
  if (schemas.length === 0) return { type: "null" };
  if (!nullable) return schemas.length === 1 ? schemas[0] : { anyOf: schemas };
  return { anyOf: [...schemas, { type: "null" }] };
}

function genericSchema(origin: string | undefined, args: SyntaxNode[], ctx: Context): Json {
  if (origin === undefined) throw new Unschemable();
  if (origin === "typing.Optional") return union([...args.slice(0, 1), NONE_NODE], ctx);
  if (origin === "typing.Union") return union(args, ctx);
  if (origin === "typing.Annotated" || origin === "typing_extensions.Annotated") {
    return typeSchema(args[0], ctx);
  }
  if (origin === "typing.Literal" || origin === "typing_extensions.Literal") {
    return literalSchema(args, ctx);
  }
  if (LISTS.has(origin)) return { type: "array", items: typeSchema(args[0], ctx) };
  if (SETS.has(origin)) {
    return { type: "array", items: typeSchema(args[0], ctx), uniqueItems: true };
  }
  if (TUPLES.has(origin)) {
    if (args.length === 2 && args[1].name === "Ellipsis") {
      return { type: "array", items: typeSchema(args[0], ctx) };
    }
    const prefixItems = args.map((a) => typeSchema(a, ctx));
    return {
      type: "array",
      prefixItems,
      minItems: prefixItems.length,
      maxItems: prefixItems.length,
    };
  }
  if (DICTS.has(origin)) {
    const value = args[1] ? typeSchema(args[1], ctx) : {};
    return {
      type: "object",
      additionalProperties: Object.keys(value).length ? value : true,
    };
  }
  throw new Unschemable();
}

function literalSchema(args: SyntaxNode[], ctx: Context): Json {
  const values = args.map((a) => evaluate(a, ctx));
  if (values.some((v) => v === UNKNOWN)) throw new Unschemable();
  const types = new Set(values.map(jsonType));
  const type = types.size === 1 ? [...types][0] : undefined;
  const schema: Json = values.length === 1 ? { const: values[0] } : { enum: values };
  if (type && type !== "null") schema.type = type;
  return schema;
}

function jsonType(value: unknown): string {
  if (value === null) return "null";
  if (typeof value === "boolean") return "boolean";
  if (typeof value === "string") return "string";
  if (typeof value === "number") return Number.isInteger(value) ? "integer" : "number";
  return Array.isArray(value) ? "array" : "object";
}

// ─── Classes in the same file: enums and pydantic models ────────────────────

function classKind(
  name: string,
  ctx: Context,
  seen = new Set<string>(),
): "enum" | "model" | "other" {
  const cls = ctx.module.classes.get(name);
  if (!cls || seen.has(name)) return "other";
  seen.add(name);
  for (const base of cls.bases) {
    const origin = ctx.module.imports.get(base.split(".")[0])
      ? [ctx.module.imports.get(base.split(".")[0]), ...base.split(".").slice(1)].join(".")
      : base;
    if (ENUM_BASES.has(origin)) return "enum";
    if (MODEL_BASES.has(origin)) return "model";
    if (ctx.module.classes.has(base)) {
      const inherited = classKind(base, ctx, seen);
      if (inherited !== "other") return inherited;
    }
  }
  return "other";
}

function classBody(name: string, ctx: Context): SyntaxNode[] {
  const body = ctx.module.classes.get(name)!.node.getChild("Body");
  const statements: SyntaxNode[] = [];
  for (let c = body?.firstChild; c; c = c.nextSibling) statements.push(c);
  return statements;
}

function classDocstring(name: string, ctx: Context): string | undefined {
  const first = classBody(name, ctx).find((s) => s.name !== ":");
  if (first?.name === "ExpressionStatement" && first.firstChild?.name === "String") {
    const doc = stringValue(first.firstChild, ctx.module.source);
    return doc === undefined ? undefined : cleandoc(doc);
  }
  return undefined;
}

/** `$ref` to a definition of a local enum or model; any other class is untyped, as in Prefect. */
function classSchema(name: string, ctx: Context): Json {
  const kind = classKind(name, ctx);
  if (kind === "other") return {};
  if (!ctx.definitions.has(name)) {
    ctx.definitions.set(name, {}); // placeholder: a model may refer to itself
    ctx.definitions.set(
      name,
      kind === "enum" ? enumDefinition(name, ctx) : modelDefinition(name, ctx),
    );
  }
  return { $ref: `#/definitions/${name}` };
}

function enumMembers(name: string, ctx: Context): Map<string, Value> {
  const members = new Map<string, Value>();
  for (const statement of classBody(name, ctx)) {
    if (statement.name !== "AssignStatement" || statement.getChild("TypeDef")) continue;
    const target = statement.firstChild!;
    const value = statement.lastChild!;
    if (target.name !== "VariableName" || target === value) continue;
    members.set(text(target, ctx), evaluate(value, ctx));
  }
  return members;
}

function enumDefinition(name: string, ctx: Context): Json {
  const values = [...enumMembers(name, ctx).values()];
  if (values.some((v) => v === UNKNOWN)) throw new Unschemable();
  const types = new Set(values.map(jsonType));
  const definition: Json = { enum: values, title: name };
  const description = classDocstring(name, ctx);
  if (description) definition.description = description;
  if (types.size === 1) definition.type = [...types][0];
  return definition;
}

/** pydantic titles a model field "Field Name". */
function fieldTitle(name: string): string {
  return name.split("_").filter(Boolean).map((w) => w[0].toUpperCase() + w.slice(1)).join(" ");
}

function modelDefinition(name: string, ctx: Context): Json {
  const properties: Json = {};
  const required: string[] = [];
  const cls = ctx.module.classes.get(name)!;
  // Fields of local model bases come first, as in pydantic.
  for (const base of cls.bases) {
    if (ctx.module.classes.has(base) && classKind(base, ctx) === "model") {
      const inherited = modelDefinition(base, ctx);
      Object.assign(properties, inherited.properties);
      required.push(...((inherited.required as string[]) ?? []));
    }
  }
  for (const statement of classBody(name, ctx)) {
    if (statement.name !== "AssignStatement") continue;
    const target = statement.firstChild!;
    const typeDef = statement.getChild("TypeDef");
    if (!typeDef || target.name !== "VariableName") continue;
    const field = text(target, ctx);
    if (field.startsWith("_") || field === "model_config") continue;
    const annotation = typeDef.lastChild!;
    if (qualify(annotation, ctx) === "typing.ClassVar") continue;
    let property = typeSchema(annotation, ctx);
    const assign = statement.getChild("AssignOp");
    let description: string | undefined;
    let hasDefault = false;
    let defaultValue: Value = UNKNOWN;
    if (assign?.nextSibling) {
      const value = assign.nextSibling;
      const call = value.name === "CallExpression" ? value : undefined;
      if (call && qualify(call.firstChild!, ctx)?.endsWith("pydantic.Field")) {
        const args = callArguments(call, ctx);
        const given = args.keywords.get("default") ?? args.positional[0];
        if (given && text(given, ctx) !== "...") {
          hasDefault = true;
          defaultValue = evaluate(given, ctx);
        }
        const describe = args.keywords.get("description");
        if (describe) description = stringValue(describe, ctx.module.source);
      } else {
        hasDefault = true;
        defaultValue = evaluate(value, ctx);
      }
    }
    if (titleFits(property)) property = { ...property, title: fieldTitle(field) };
    if (description) property.description = description;
    if (hasDefault && defaultValue !== UNKNOWN) property.default = defaultValue;
    if (!hasDefault) required.push(field);
    delete properties[field];
    properties[field] = property;
  }
  const definition: Json = { properties, title: name, type: "object" };
  const description = classDocstring(name, ctx);
  if (description) definition.description = description;
  if (required.length) definition.required = required;
  return definition;
}

/** pydantic leaves the title off fields whose schema is a model or enum (nullable or not). */
function titleFits(property: Json): boolean {
  if (property.$ref) return false;
  const branches = property.anyOf as Json[] | undefined;
  if (branches?.length === 2 && branches.some((b) => b.type === "null" && !b.$ref)) {
    return !branches.some((b) => b.$ref);
  }
  return true;
}

// ─── Defaults: Python literals as pydantic serialises them ───────────────────

function callArguments(call: SyntaxNode, ctx: Context) {
  const positional: SyntaxNode[] = [];
  const keywords = new Map<string, SyntaxNode>();
  const args = call.getChild("ArgList");
  const items = args ? children(args, ["(", ")", ","]) : [];
  for (let i = 0; i < items.length; i++) {
    if (items[i].name === "VariableName" && items[i + 1]?.name === "AssignOp" && items[i + 2]) {
      keywords.set(text(items[i], ctx), items[i + 2]);
      i += 2;
    } else positional.push(items[i]);
  }
  return { positional, keywords };
}

/** A node's children but punctuation in `skip` and comments (literals may span lines). */
function children(node: SyntaxNode, skip: string[]): SyntaxNode[] {
  const result: SyntaxNode[] = [];
  for (let c = node.firstChild; c; c = c.nextSibling) {
    if (!skip.includes(c.name) && c.name !== "Comment") result.push(c);
  }
  return result;
}

function evaluate(node: SyntaxNode, ctx: Context, depth = 0): Value {
  if (depth > 20) return UNKNOWN;
  const source = text(node, ctx);
  switch (node.name) {
    case "Number": {
      const clean = source.replaceAll("_", "").toLowerCase();
      if (/[jl]$/.test(clean)) return UNKNOWN;
      if (/^0[box]/.test(clean)) return Number(clean);
      if (/^0\d/.test(clean)) return UNKNOWN;
      const value = Number(clean);
      return Number.isFinite(value) ? value : UNKNOWN;
    }
    case "String":
    case "ContinuedString": {
      // pydantic writes bytes defaults as text.
      const bytes = node.name === "String" && /^[bB][rR]?['"]|^[rR][bB]['"]/.test(source);
      const value = bytes
        ? pythonString(source.replace(/[bB]/, ""))
        : stringValue(node, ctx.module.source);
      return value ?? UNKNOWN;
    }
    case "Boolean":
      return source === "True";
    case "None":
      return null;
    case "UnaryExpression": {
      const value = evaluate(node.lastChild!, ctx, depth + 1);
      if (typeof value !== "number") return UNKNOWN;
      return source.trim().startsWith("-") ? -value : value;
    }
    case "ParenthesizedExpression":
      return evaluate(children(node, ["(", ")"])[0], ctx, depth + 1);
    case "ArrayExpression":
    case "TupleExpression":
    case "SetExpression": {
      const items = children(node, ["[", "]", "(", ")", "{", "}", ","]).map((c) =>
        evaluate(c, ctx, depth + 1)
      );
      return items.includes(UNKNOWN) ? UNKNOWN : items;
    }
    case "DictionaryExpression": {
      const parts = children(node, ["{", "}", ",", ":"]);
      const result: Json = {};
      for (let i = 0; i + 1 < parts.length; i += 2) {
        const key = evaluate(parts[i], ctx, depth + 1);
        const value = evaluate(parts[i + 1], ctx, depth + 1);
        if (key === UNKNOWN || value === UNKNOWN || (key !== null && typeof key === "object")) {
          return UNKNOWN;
        }
        result[typeof key === "boolean" ? (key ? "True" : "False") : String(key)] = value;
      }
      return result;
    }
    case "VariableName": {
      const assigned = ctx.module.assignments.get(source);
      return assigned ? evaluate(assigned, ctx, depth + 1) : UNKNOWN;
    }
    case "MemberExpression": {
      // An enum member: its value.
      const object = node.firstChild!;
      const property = node.lastChild!;
      if (object.name === "VariableName" && ctx.module.classes.has(text(object, ctx))) {
        const members = enumMembers(text(object, ctx), ctx);
        const member = text(property, ctx);
        if (members.has(member)) return members.get(member)!;
      }
      return UNKNOWN;
    }
    case "CallExpression":
      return evaluateCall(node, ctx, depth);
  }
  return UNKNOWN;
}

const pad = (n: number, width = 2) => String(n).padStart(width, "0");

function evaluateCall(node: SyntaxNode, ctx: Context, depth: number): Value {
  const origin = qualify(node.firstChild!, ctx);
  const args = callArguments(node, ctx);
  const number = (n?: SyntaxNode) => {
    if (!n) return 0;
    const v = evaluate(n, ctx, depth + 1);
    return typeof v === "number" ? v : NaN;
  };
  const named = (name: string, index: number) =>
    number(args.keywords.get(name) ?? args.positional[index]);
  switch (origin) {
    case "datetime.date": {
      const [y, m, d] = [named("year", 0), named("month", 1), named("day", 2)];
      return [y, m, d].some(Number.isNaN) ? UNKNOWN : `${pad(y, 4)}-${pad(m)}-${pad(d)}`;
    }
    case "datetime.datetime": {
      const parts = ["year", "month", "day", "hour", "minute", "second", "microsecond"].map((
        n,
        i,
      ) => named(n, i));
      if (parts.some(Number.isNaN) || args.keywords.has("tzinfo") || args.positional.length > 7) {
        return UNKNOWN;
      }
      const [y, mo, d, h, mi, s, us] = parts;
      return `${pad(y, 4)}-${pad(mo)}-${pad(d)}T${pad(h)}:${pad(mi)}:${pad(s)}${
        us ? `.${pad(us, 6)}` : ""
      }`;
    }
    case "datetime.timedelta": {
      const units = [
        "days",
        "seconds",
        "microseconds",
        "milliseconds",
        "minutes",
        "hours",
        "weeks",
      ];
      const factors = [86400, 1, 1e-6, 1e-3, 60, 3600, 604800];
      let total = 0;
      for (const [i, unit] of units.entries()) total += named(unit, i) * factors[i];
      return Number.isNaN(total) ? UNKNOWN : isoDuration(total);
    }
    case "decimal.Decimal": {
      const value = args.positional[0] ? evaluate(args.positional[0], ctx, depth + 1) : "0";
      return typeof value === "string" || typeof value === "number" ? String(value) : UNKNOWN;
    }
    case "builtins.list":
    case "builtins.tuple":
    case "builtins.set":
    case "builtins.frozenset":
      if (args.positional.length === 0) return [];
      return evaluate(args.positional[0], ctx, depth + 1);
    case "builtins.dict":
      return args.positional.length === 0 && args.keywords.size === 0 ? {} : UNKNOWN;
  }
  return UNKNOWN;
}

/** pydantic's ISO 8601 form of a timedelta: P1DT2H, PT5M, PT0.5S, PT0S. */
function isoDuration(totalSeconds: number): string {
  const negative = totalSeconds < 0;
  let rest = Math.abs(totalSeconds);
  const days = Math.floor(rest / 86400);
  rest -= days * 86400;
  const hours = Math.floor(rest / 3600);
  rest -= hours * 3600;
  const minutes = Math.floor(rest / 60);
  const seconds = Math.round((rest - minutes * 60) * 1e6) / 1e6;
  let time = "";
  if (hours) time += `${hours}H`;
  if (minutes) time += `${minutes}M`;
  if (seconds) time += `${seconds}S`;
  const date = days ? `${days}D` : "";
  if (!date && !time) return "PT0S";
  return `${negative ? "-" : ""}P${date}${time ? `T${time}` : ""}`;
}

// ─── Docstrings ──────────────────────────────────────────────────────────────

/** Python's inspect.cleandoc: strip the common indentation of all lines but the first. */
export function cleandoc(doc: string): string {
  const lines = doc.replaceAll("\t", "        ").split("\n");
  const indents = lines.slice(1).filter((l) => l.trim()).map((l) =>
    l.length - l.trimStart().length
  );
  const margin = indents.length ? Math.min(...indents) : 0;
  const cleaned = [lines[0].trim(), ...lines.slice(1).map((l) => l.slice(margin).trimEnd())];
  while (cleaned.length && !cleaned[0]) cleaned.shift();
  while (cleaned.length && !cleaned.at(-1)) cleaned.pop();
  return cleaned.join("\n");
}

const ARGS_HEADINGS =
  /^(args|arguments|params|parameters|keyword args|keyword arguments|other params|other parameters):\s*$/i;

/** Descriptions of a Google-style docstring's `Args:` items, as griffe reads them. */
export function docstringArguments(doc: string | undefined): Map<string, string> {
  const result = new Map<string, string>();
  if (!doc) return result;
  const lines = cleandoc(doc).split("\n");
  for (let i = 0; i < lines.length; i++) {
    if (!ARGS_HEADINGS.test(lines[i].trim()) || /^\s/.test(lines[i])) continue;
    let itemIndent = -1;
    let current: { name: string; lines: string[] } | undefined;
    const finish = () => {
      if (!current) return;
      const [first, ...more] = current.lines;
      const indents = more.filter((l) => l.trim()).map((l) => l.length - l.trimStart().length);
      const margin = indents.length ? Math.min(...indents) : 0;
      const text = [first, ...more.map((l) => l.slice(margin))].join("\n").trim();
      result.set(current.name, text);
      current = undefined;
    };
    for (i++; i < lines.length; i++) {
      const line = lines[i];
      if (!line.trim()) {
        current?.lines.push("");
        continue;
      }
      const indent = line.length - line.trimStart().length;
      if (indent === 0) {
        i--;
        break;
      }
      if (itemIndent < 0) itemIndent = indent;
      if (indent === itemIndent) {
        finish();
        const match = line.trim().match(/^\*{0,2}([\w]+)\s*(?:\([^)]*\))?\s*:\s*(.*)$/);
        if (match) current = { name: match[1], lines: [match[2]] };
      } else if (current) {
        current.lines.push(line);
      }
    }
    finish();
  }
  return result;
}
