/**
 * Reads what deploy.ts needs from a flow's Python source — the module's top-level functions,
 * their decorators, parameters and docstrings, and its string constants — with a real Python
 * parser (@lezer/python), without running Python.
 */
import { parser } from "@lezer/python";
import type { SyntaxNode } from "@lezer/common";

export type ParameterKind =
  | "positional_only"
  | "positional_or_keyword"
  | "var_positional"
  | "keyword_only"
  | "var_keyword";

export interface PythonParameter {
  name: string;
  kind: ParameterKind;
  /** The annotation's syntax node and source text, if any. */
  annotation?: SyntaxNode;
  annotationText?: string;
  /** The default value's syntax node, if any. */
  default?: SyntaxNode;
}

export interface PythonDecorator {
  /** Dotted name of what is applied: `flow`, `prefect.flow`, `task`. */
  callee: string;
  /** Keyword arguments of a call form (`@flow(name=...)`); absent for a bare decorator. */
  keywords?: Map<string, SyntaxNode>;
}

export interface PythonFunction {
  name: string;
  isAsync: boolean;
  decorators: PythonDecorator[];
  parameters: PythonParameter[];
  docstring?: string;
  /** 1-based line of `def`. */
  line: number;
}

export interface PythonModule {
  source: string;
  functions: Map<string, PythonFunction>;
  /** Top-level classes and their bases' dotted names (for enums and pydantic models). */
  classes: Map<string, { node: SyntaxNode; bases: string[] }>;
  /** Top-level `NAME = <literal>` assignments, as Python literal nodes. */
  assignments: Map<string, SyntaxNode>;
  /** `import x as y` / `from m import a as b`: local name → dotted origin. */
  imports: Map<string, string>;
  /** The first syntax error, 1-based, and what the parser found there. */
  syntaxError?: PythonSyntaxError;
}

export interface PythonSyntaxError {
  line: number;
  column: number;
  /** `"b"`, `the end of the line`, `the end of the file`. */
  found: string;
}

export function parsePythonModule(source: string): PythonModule {
  const tree = parser.parse(source);
  const module: PythonModule = {
    source,
    functions: new Map(),
    classes: new Map(),
    assignments: new Map(),
    imports: new Map(),
  };
  const text = (node: SyntaxNode) => source.slice(node.from, node.to);

  tree.iterate({
    enter(ref) {
      if (ref.type.isError && !module.syntaxError) {
        module.syntaxError = syntaxError(source, ref.from, ref.node);
      }
      return !module.syntaxError;
    },
  });

  for (let node = tree.topNode.firstChild; node; node = node.nextSibling) {
    let statement = node;
    const decorators: PythonDecorator[] = [];
    if (node.name === "DecoratedStatement") {
      for (let child = node.firstChild; child; child = child.nextSibling) {
        if (child.name === "Decorator") decorators.push(readDecorator(child, text));
        else statement = child;
      }
    }
    if (statement.name === "FunctionDefinition") {
      const fn = readFunction(statement, decorators, source, text);
      if (fn) module.functions.set(fn.name, fn);
    } else if (statement.name === "ClassDefinition") {
      const name = statement.getChild("VariableName");
      const args = statement.getChild("ArgList");
      const bases: string[] = [];
      for (let a = args?.firstChild; a; a = a.nextSibling) {
        if (a.name === "VariableName" || a.name === "MemberExpression") bases.push(text(a));
      }
      if (name) module.classes.set(text(name), { node: statement, bases });
    } else if (statement.name === "AssignStatement") {
      // `NAME = value` or `NAME: hint = value`; chained and tuple targets are not constants.
      const target = statement.firstChild;
      const assign = statement.getChildren("AssignOp");
      const value = assign[0]?.nextSibling;
      if (target?.name === "VariableName" && assign.length === 1 && value) {
        module.assignments.set(text(target), value);
      }
    } else if (statement.name === "ImportStatement") {
      readImport(statement, text, module.imports);
    }
  }
  return module;
}

const CLOSING: Record<string, string> = { "(": ")", "[": "]", "{": "}" };

/** Where the parser stopped making sense of the source, at the token it found there. */
function syntaxError(source: string, offset: number, node: SyntaxNode): PythonSyntaxError {
  const start = offset + (/^[ \t]*/.exec(source.slice(offset))?.[0].length ?? 0);
  const rest = source.slice(start, start + 200);
  let unclosed = "";
  for (let p = node.parent; p; p = p.parent) {
    const bracket = source[p.from];
    if (CLOSING[bracket] && source[p.to - 1] !== CLOSING[bracket]) {
      const { line, column } = position(source, p.from);
      unclosed = ` ("${bracket}" at ${line}:${column} is never closed)`;
      break;
    }
  }
  if (!rest.trim()) return { ...position(source, offset), found: `the end of the file${unclosed}` };
  if (/^(\r?\n|#)/.test(rest)) {
    return { ...position(source, offset), found: `the end of the line${unclosed}` };
  }
  const token = /^([A-Za-z_][A-Za-z0-9_]*|\d[\w.]*|\*\*|\/\/|[=!<>]=|->|\S)/.exec(rest)![0];
  return { ...position(source, start), found: `"${token}"${unclosed}` };
}

/** Offsets where lines start, so positions cost a binary search, not a scan of the file. */
const lineStarts = new Map<string, number[]>();

function position(source: string, offset: number): { line: number; column: number } {
  let starts = lineStarts.get(source);
  if (!starts) {
    starts = [0];
    for (let i = source.indexOf("\n"); i !== -1; i = source.indexOf("\n", i + 1)) {
      starts.push(i + 1);
    }
    lineStarts.clear();
    lineStarts.set(source, starts);
  }
  let low = 0;
  let high = starts.length - 1;
  while (low < high) {
    const middle = (low + high + 1) >> 1;
    if (starts[middle] <= offset) low = middle;
    else high = middle - 1;
  }
  return { line: low + 1, column: offset - starts[low] + 1 };
}

function readDecorator(node: SyntaxNode, text: (n: SyntaxNode) => string): PythonDecorator {
  const parts: string[] = [];
  let args: SyntaxNode | null = null;
  for (let child = node.firstChild; child; child = child.nextSibling) {
    if (child.name === "VariableName" || child.name === "PropertyName") parts.push(text(child));
    if (child.name === "ArgList") args = child;
  }
  if (!args) return { callee: parts.join(".") };
  const keywords = new Map<string, SyntaxNode>();
  const items: SyntaxNode[] = [];
  for (let c = args.firstChild; c; c = c.nextSibling) if (c.name !== "Comment") items.push(c);
  items.forEach((item, i) => {
    if (item.name === "VariableName" && items[i + 1]?.name === "AssignOp" && items[i + 2]) {
      keywords.set(text(item), items[i + 2]);
    }
  });
  return { callee: parts.join("."), keywords };
}

function readImport(
  node: SyntaxNode,
  text: (n: SyntaxNode) => string,
  imports: Map<string, string>,
) {
  const children: SyntaxNode[] = [];
  for (let c = node.firstChild; c; c = c.nextSibling) children.push(c);
  const from = children[0]?.name === "from";
  let origin = "";
  let i = from ? 1 : 0;
  if (from) {
    const parts: string[] = [];
    for (; i < children.length && children[i].name !== "import"; i++) parts.push(text(children[i]));
    origin = parts.join("");
    i++;
  } else i = 1;
  let current: string[] = [];
  const flush = (alias?: string) => {
    if (!current.length) return;
    const dotted = current.join("");
    const full = from ? `${origin}.${dotted}` : dotted;
    imports.set(alias ?? (from ? dotted : dotted.split(".")[0]), from || alias ? full : dotted);
    current = [];
  };
  for (; i < children.length; i++) {
    const c = children[i];
    if (c.name === "as") {
      const alias = children[++i];
      flush(alias ? text(alias) : undefined);
    } else if (c.name === ",") flush();
    else if (c.name === "VariableName" || c.name === ".") current.push(text(c));
  }
  flush();
}

function readFunction(
  node: SyntaxNode,
  decorators: PythonDecorator[],
  source: string,
  text: (n: SyntaxNode) => string,
): PythonFunction | undefined {
  const nameNode = node.getChild("VariableName");
  const params = node.getChild("ParamList");
  if (!nameNode || !params) return undefined;
  const parameters: PythonParameter[] = [];
  let kind: ParameterKind = "positional_or_keyword";
  let pending: PythonParameter | undefined;
  let expect: "annotation" | "default" | undefined;
  let prefix: "*" | "**" | undefined;
  let previousEnd = params.from;
  for (let c = params.firstChild; c; c = c.nextSibling) {
    if (c.name === "Comment") continue;
    // The parser keeps no node for the positional-only marker `/`; it sits between commas.
    const gap = source.slice(previousEnd, c.from).replace(/#[^\n]*/g, "");
    if ((c.name === "," || c.name === ")") && gap.includes("/")) {
      parameters.forEach((p) => p.kind = "positional_only");
    }
    switch (c.name) {
      case "(":
      case ")":
        break;
      case "VariableName":
        if (expect === "default" && pending) {
          pending.default = c;
          expect = undefined;
          break;
        }
        pending = {
          name: text(c),
          kind: prefix === "**" ? "var_keyword" : prefix === "*" ? "var_positional" : kind,
        };
        if (prefix === "*") kind = "keyword_only";
        prefix = undefined;
        parameters.push(pending);
        break;
      case "TypeDef": {
        const annotation = c.lastChild;
        if (pending && annotation && annotation.name !== ":") {
          pending.annotation = annotation;
          pending.annotationText = text(annotation);
        }
        break;
      }
      case "AssignOp":
        expect = "default";
        break;
      case ",":
        if (prefix === "*") kind = "keyword_only"; // a bare `*,`
        prefix = undefined;
        expect = undefined;
        pending = undefined;
        break;
      default:
        if (c.name === "*" || text(c) === "*") {
          prefix = "*";
        } else if (c.name === "**" || text(c) === "**") {
          prefix = "**";
        } else if (expect === "default" && pending) {
          pending.default = c;
          expect = undefined;
        }
    }
    previousEnd = c.to;
  }
  const body = node.getChild("Body");
  let docstring: string | undefined;
  const first = body?.firstChild?.nextSibling; // after ":"
  if (first?.name === "ExpressionStatement" && first.firstChild?.name === "String") {
    const value = pythonString(text(first.firstChild));
    if (value !== undefined) docstring = value;
  }
  return {
    name: text(nameNode),
    isAsync: node.firstChild?.name === "async",
    decorators,
    parameters,
    docstring,
    line: position(source, node.from).line,
  };
}

/** The value of one Python string literal (no f-strings), or undefined. */
export function pythonString(literal: string): string | undefined {
  const match = literal.match(/^([rRbBuU]{0,2})('''|"""|'|")([\s\S]*)\2$/);
  if (!match || /[fFbB]/.test(match[1])) return undefined;
  const body = match[3];
  if (/r/i.test(match[1])) return body;
  return body.replace(
    /\\(\n|\\|'|"|n|t|r|0|x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|.)/g,
    (_, escape: string) => {
      switch (escape[0]) {
        case "\n":
          return "";
        case "n":
          return "\n";
        case "t":
          return "\t";
        case "r":
          return "\r";
        case "0":
          return "\0";
        case "x":
        case "u":
        case "U":
          return String.fromCodePoint(parseInt(escape.slice(1), 16));
        case "\\":
        case "'":
        case '"':
          return escape;
        default:
          return `\\${escape}`;
      }
    },
  );
}

/** A string literal node's value; implicit concatenation ("a" "b") included. */
export function stringValue(node: SyntaxNode, source: string): string | undefined {
  if (node.name === "String") return pythonString(source.slice(node.from, node.to));
  if (node.name === "ContinuedString" || node.name === "FormatString") {
    let result = "";
    for (let c = node.firstChild; c; c = c.nextSibling) {
      const part = stringValue(c, source);
      if (part === undefined) return undefined;
      result += part;
    }
    return result;
  }
  return undefined;
}

export type FlowLookup =
  | { kind: "flow"; fn: PythonFunction; flowName: string; nameSource: "decorator" | "function" }
  | { kind: "dynamic-name"; fn: PythonFunction }
  | { kind: "not-a-flow"; fn: PythonFunction; isTask: boolean }
  | { kind: "missing" };

/** `@flow`, `@prefect.flow`, or either under an import alias (and the same for `task`). */
function isPrefectDecorator(
  d: PythonDecorator,
  module: PythonModule,
  kind: "flow" | "task",
): boolean {
  const [head, ...rest] = d.callee.split(".");
  const origin = module.imports.get(head) ?? (head === kind ? `prefect.${kind}` : head);
  return [origin, ...rest].join(".") === `prefect.${kind}`;
}

/**
 * Prefect's flow name for a function, read as `prefect deploy` would after importing it: the
 * decorator's literal `name=` (or a module-level string constant it names), else the function
 * name with `_` as `-`.
 */
export function findFlow(module: PythonModule, functionName: string): FlowLookup {
  const fn = module.functions.get(functionName);
  if (!fn) return { kind: "missing" };
  const decorator = fn.decorators.find((d) => isPrefectDecorator(d, module, "flow"));
  if (!decorator) {
    const isTask = fn.decorators.some((d) => isPrefectDecorator(d, module, "task"));
    return { kind: "not-a-flow", fn, isTask };
  }
  const nameNode = decorator.keywords?.get("name");
  if (!nameNode) {
    return { kind: "flow", fn, flowName: fn.name.replaceAll("_", "-"), nameSource: "function" };
  }
  let value = stringValue(nameNode, module.source);
  if (value === undefined && nameNode.name === "VariableName") {
    const constant = module.assignments.get(module.source.slice(nameNode.from, nameNode.to));
    if (constant) value = stringValue(constant, module.source);
  }
  if (value === undefined) return { kind: "dynamic-name", fn };
  return { kind: "flow", fn, flowName: value, nameSource: "decorator" };
}
