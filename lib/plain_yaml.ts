/**
 * A fast reader for the plain YAML that most manifests are written in: block mappings and
 * sequences, single-line flow collections, plain and quoted single-line scalars, comments.
 * It returns the same data as the `yaml` package (YAML 1.2, core schema) and where each key and
 * value starts, or `undefined` for anything outside that subset — anchors, aliases, tags, block
 * and multi-line scalars, multi-line flow collections, merge keys, duplicate or non-string
 * keys, tabs, CR line ends, several documents, numbers JSON cannot carry exactly, nesting deeper
 * than asked, anything malformed — which the caller then reads with the full parser, whose
 * errors and positions it reports. tests/plain_yaml_test.ts checks
 * the data and every position against the `yaml` package.
 */

/** Where a value is written (and its key, inside a mapping), as offsets into the text. */
export interface Spot {
  key?: number;
  value: number;
  /** A mapping's entries by key, or a sequence's items. */
  children?: Map<string, Spot> | Spot[];
}

export interface PlainYaml {
  data: unknown;
  spots: Spot;
}

/** Thrown inside the reader when the text leaves the subset; never escapes it. */
class OutsideSubset extends Error {}

const outside = (): never => {
  throw new OutsideSubset();
};

interface Line {
  /** Offset of the line's first character that is not a space. */
  start: number;
  /** Its column: the indentation, or where a node after `- ` begins. */
  indent: number;
  /** Offset of the line's end (its newline, or the end of the text). */
  end: number;
}

/** Reads `text`, or says it is outside the subset; `maxDepth` bounds nested collections. */
export function readPlainYaml(text: string, maxDepth = Infinity): PlainYaml | undefined {
  if (/[\t\r]/.test(text)) return undefined;
  try {
    return new Reader(text, maxDepth).document();
  } catch (error) {
    if (error instanceof OutsideSubset) return undefined;
    throw error;
  }
}

/** The first location a data path reaches, as `locate` in deploy.ts finds it in a YAML tree. */
export function locateSpot(root: Spot, path: (string | number)[]): Spot {
  let current = root;
  for (const segment of path) {
    const children = current.children;
    const next = Array.isArray(children)
      ? typeof segment === "number" ? children[segment] : undefined
      : children?.get(String(segment));
    if (!next) return current;
    current = next;
  }
  return current;
}

const NUMBER_LIKE = /^[-+.0-9]|^(?:~|[Nn]ull|NULL|[Tt]rue|TRUE|[Ff]alse|FALSE)$/;

/**
 * A plain scalar's value under YAML 1.2's core schema; outside the subset when it is a number
 * JSON cannot carry exactly (the full reader reports those).
 */
function resolvePlain(source: string): unknown {
  const value = resolveCore(source);
  if (typeof value === "number") {
    if (!Number.isFinite(value)) outside();
    if (Number.isInteger(value) && !Number.isSafeInteger(value)) outside();
  }
  return value;
}

function resolveCore(source: string): unknown {
  if (!NUMBER_LIKE.test(source)) return source;
  if (/^(?:~|[Nn]ull|NULL)$/.test(source)) return null;
  if (/^(?:[Tt]rue|TRUE)$/.test(source)) return true;
  if (/^(?:[Ff]alse|FALSE)$/.test(source)) return false;
  if (/^[-+]?[0-9]+$/.test(source)) return parseInt(source, 10);
  if (/^0o[0-7]+$/.test(source)) return parseInt(source.slice(2), 8);
  if (/^0x[0-9a-fA-F]+$/.test(source)) return parseInt(source.slice(2), 16);
  if (/^[-+]?\.(?:inf|Inf|INF)$/.test(source)) {
    return source.startsWith("-") ? -Infinity : Infinity;
  }
  if (/^\.(?:nan|NaN|NAN)$/.test(source)) return NaN;
  if (/^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$/.test(source)) {
    // Floats; "1" alone was an integer above, "1." and ".5" land here.
    if (/[.eE]/.test(source)) return parseFloat(source);
  }
  return source;
}

const ESCAPES: Record<string, string> = {
  "0": "\0",
  a: "\x07",
  b: "\b",
  t: "\t",
  n: "\n",
  v: "\v",
  f: "\f",
  r: "\r",
  e: "\x1b",
  " ": " ",
  '"': '"',
  "/": "/",
  "\\": "\\",
  N: "\x85",
  _: "\xa0",
  L: "\u2028",
  P: "\u2029",
};
const HEX_ESCAPE_LENGTH: Record<string, number> = { x: 2, u: 4, U: 8 };

/** Characters that may not start a plain scalar (YAML's indicators). */
const INDICATOR = /[,[\]{}#&*!|>'"%@`]/;

class Reader {
  readonly lines: Line[] = [];
  index = 0;
  /** Collections open around the current one. */
  depth = 0;

  constructor(readonly text: string, readonly maxDepth: number) {
    let lineStart = 0;
    let sawDocumentStart = false;
    while (lineStart <= text.length) {
      let end = text.indexOf("\n", lineStart);
      if (end < 0) end = text.length;
      let start = lineStart;
      while (start < end && text.charCodeAt(start) === 32) start++;
      const first = text[start];
      if (start < end && first !== "#") {
        // Only a line starting `---`, `...` or `%` at column 0 can be a document marker.
        const content = start === lineStart && "-.%".includes(first) ? text.slice(start, end) : "";
        if (/^(?:---|\.\.\.)(?:\s|$)/.test(content)) {
          // One `---` opening the document; anything else there is another document.
          if (sawDocumentStart || this.lines.length || !/^---\s*(?:#.*)?$/.test(content)) {
            outside();
          }
          sawDocumentStart = true;
        } else if (content.startsWith("%")) {
          outside();
        } else {
          this.lines.push({ start, indent: start - lineStart, end });
        }
      }
      lineStart = end + 1;
    }
  }

  document(): PlainYaml {
    if (!this.lines.length) outside();
    const [data, spots] = this.node(-1);
    if (this.index < this.lines.length) outside();
    return { data, spots };
  }

  peek(): Line | undefined {
    return this.lines[this.index];
  }

  /** The block node starting at the current line, indented more than `parent`. */
  node(parent: number): [unknown, Spot] {
    const line = this.peek()!;
    if (line.indent <= parent) outside();
    if (this.isSequenceItem(line)) return this.sequence(line.indent);
    if (this.keyOf(line)) return this.mapping(line.indent);
    // A value alone on its line(s): one line only.
    const [value, spot, after] = this.inline(line.start, line.end, false);
    this.expectLineEnd(after, line.end);
    this.index++;
    const next = this.peek();
    if (next && next.indent > parent) outside();
    return [value, spot];
  }

  isSequenceItem(line: Line): boolean {
    const text = this.text;
    return text[line.start] === "-" &&
      (line.start + 1 === line.end || text[line.start + 1] === " ");
  }

  /** Enters a collection; the data nests `depth` levels below the document's own. */
  enter() {
    if (++this.depth > this.maxDepth) outside();
  }

  mapping(indent: number): [unknown, Spot] {
    this.enter();
    const data: Record<string, unknown> = {};
    const children = new Map<string, Spot>();
    const spot: Spot = { value: this.peek()!.start, children };
    for (let line = this.peek(); line && line.indent === indent; line = this.peek()) {
      const key = this.keyOf(line) ?? outside();
      if (children.has(key.name) || key.name === "__proto__") outside();
      this.index++;
      let entry: [unknown, Spot];
      const valueStart = this.skipSpaces(key.after, line.end);
      if (valueStart === line.end || this.text[valueStart] === "#") {
        const next = this.peek();
        if (next && next.indent > indent) entry = this.node(indent);
        else if (next && next.indent === indent && this.isSequenceItem(next)) {
          // A sequence may sit at its key's own indentation.
          entry = this.sequence(indent);
        } else entry = [null, { value: valueStart }];
      } else {
        const [value, child, after] = this.inline(valueStart, line.end, false);
        this.expectLineEnd(after, line.end);
        const next = this.peek();
        if (next && next.indent > indent) outside();
        entry = [value, child];
      }
      data[key.name] = entry[0];
      entry[1].key = key.start;
      children.set(key.name, entry[1]);
    }
    const next = this.peek();
    if (next && next.indent > indent) outside();
    this.depth--;
    return [data, spot];
  }

  sequence(indent: number): [unknown, Spot] {
    this.enter();
    const data: unknown[] = [];
    const children: Spot[] = [];
    const spot: Spot = { value: this.peek()!.start, children };
    // A line at this indentation that is no item ends the sequence (its mapping goes on).
    for (
      let line = this.peek();
      line && line.indent === indent && this.isSequenceItem(line);
      line = this.peek()
    ) {
      const start = this.skipSpaces(line.start + 1, line.end);
      let item: [unknown, Spot];
      if (start === line.end || this.text[start] === "#") {
        this.index++;
        const next = this.peek();
        item = next && next.indent > indent ? this.node(indent) : [null, { value: start }];
      } else {
        // What follows `- ` on the same line is read as a line of its own at that column.
        const lineStart = line.start - line.indent;
        this.lines[this.index] = { start, indent: start - lineStart, end: line.end };
        item = this.node(indent);
      }
      data.push(item[0]);
      children.push(item[1]);
    }
    const next = this.peek();
    if (next && next.indent > indent) outside();
    this.depth--;
    return [data, spot];
  }

  /** A block mapping's key on this line: its name, where it starts, and the offset after `:`. */
  keyOf(line: Line): { name: string; start: number; after: number } | undefined {
    const text = this.text;
    const start = line.start;
    const first = text[start];
    let name: string;
    let end: number;
    if (first === '"' || first === "'") {
      const quoted = this.quoted(start, line.end);
      if (!quoted) return undefined;
      [name, end] = [quoted[0], this.skipSpaces(quoted[1], line.end)];
      if (text[end] !== ":") return undefined;
      if (name === "<<") outside();
    } else {
      end = start;
      while (end < line.end) {
        const colon = text.indexOf(":", end);
        if (colon < 0 || colon >= line.end) return undefined;
        if (colon + 1 === line.end || text[colon + 1] === " ") {
          end = colon;
          break;
        }
        end = colon + 1;
      }
      const source = text.slice(start, end).trimEnd();
      const comment = source.indexOf(" #");
      if (comment >= 0 || !source || this.startsWithIndicator(start, line.end)) return undefined;
      if (source === "<<" || resolvePlain(source) !== source) outside();
      name = source;
    }
    const after = end + 1;
    if (after < line.end && text[after] !== " ") return undefined;
    return { name, start, after };
  }

  startsWithIndicator(at: number, end: number): boolean {
    const text = this.text;
    const c = text[at];
    if (INDICATOR.test(c)) return true;
    // `-`, `?` and `:` are indicators when a space or the line's end follows.
    return (c === "-" || c === "?" || c === ":") && (at + 1 === end || text[at + 1] === " ");
  }

  skipSpaces(at: number, end: number): number {
    while (at < end && this.text.charCodeAt(at) === 32) at++;
    return at;
  }

  /** After a value: nothing but spaces and a comment. */
  expectLineEnd(at: number, end: number) {
    const rest = this.skipSpaces(at, end);
    if (rest < end && (this.text[rest] !== "#" || rest === at)) outside();
  }

  /** A value within one line: flow collection, quoted or plain scalar; and where it ends. */
  inline(at: number, end: number, inFlow: boolean): [unknown, Spot, number] {
    const text = this.text;
    const c = text[at];
    if (c === "[" || c === "{") return this.flow(at, end);
    if (c === '"' || c === "'") {
      const quoted = this.quoted(at, end) ?? outside();
      return [quoted[0], { value: at }, quoted[1]];
    }
    if (this.startsWithIndicator(at, end)) outside();
    let stop = at;
    while (stop < end) {
      const ch = text[stop];
      if (ch === "#" && text[stop - 1] === " ") break;
      if (ch === ":" && (stop + 1 === end || text[stop + 1] === " ")) outside();
      if (inFlow && (ch === "," || ch === "[" || ch === "]" || ch === "{" || ch === "}")) break;
      if (inFlow && ch === ":" && /[,[\]{}]/.test(text[stop + 1])) outside();
      stop++;
    }
    const source = text.slice(at, stop).trimEnd();
    return [resolvePlain(source), { value: at }, at + source.length];
  }

  /** A single- or double-quoted scalar closed on this line: its value and the offset after it. */
  quoted(at: number, end: number): [string, number] | undefined {
    const text = this.text;
    let value = "";
    let from = at + 1;
    if (text[at] === "'") {
      while (true) {
        const close = text.indexOf("'", from);
        if (close < 0 || close >= end) return undefined;
        value += text.slice(from, close);
        if (text[close + 1] !== "'") return [value, close + 1];
        value += "'";
        from = close + 2;
      }
    }
    for (let i = from; i < end; i++) {
      const ch = text[i];
      if (ch === '"') return [value + text.slice(from, i), i + 1];
      if (ch !== "\\") continue;
      value += text.slice(from, i);
      const code = text[i + 1];
      const length = HEX_ESCAPE_LENGTH[code];
      if (length) {
        const hex = text.slice(i + 2, i + 2 + length);
        if (hex.length !== length || !/^[0-9a-fA-F]+$/.test(hex)) return undefined;
        const point = parseInt(hex, 16);
        if (point > 0x10ffff) return undefined;
        value += String.fromCodePoint(point);
        i += 1 + length;
      } else {
        if (!(code in ESCAPES)) return undefined;
        value += ESCAPES[code];
        i += 1;
      }
      from = i + 1;
    }
    return undefined;
  }

  /** A flow collection that closes on this line. */
  flow(at: number, end: number): [unknown, Spot, number] {
    this.enter();
    const text = this.text;
    const isMap = text[at] === "{";
    const close = isMap ? "}" : "]";
    const mapData: Record<string, unknown> = {};
    const listData: unknown[] = [];
    const keyed = new Map<string, Spot>();
    const listed: Spot[] = [];
    let i = this.skipSpaces(at + 1, end);
    while (true) {
      if (i >= end || text[i] === "#") outside();
      if (text[i] === close) break;
      if (isMap) {
        const keyStart = i;
        let name: string;
        if (text[i] === '"' || text[i] === "'") {
          const quoted = this.quoted(i, end) ?? outside();
          [name, i] = quoted;
        } else {
          let stop = i;
          while (stop < end && !/[,[\]{}]/.test(text[stop])) {
            if (text[stop] === ":" && text[stop + 1] === " ") break;
            if (text[stop] === "#" && text[stop - 1] === " ") outside();
            stop++;
          }
          const source = text.slice(i, stop).trimEnd();
          if (!source || this.startsWithIndicator(i, end) || resolvePlain(source) !== source) {
            outside();
          }
          [name, i] = [source, i + source.length];
        }
        if (keyed.has(name) || name === "__proto__" || name === "<<") outside();
        i = this.skipSpaces(i, end);
        if (text[i] !== ":" || text[i + 1] !== " ") outside();
        i = this.skipSpaces(i + 1, end);
        if (text[i] === "," || text[i] === close) outside();
        const [value, spot, after] = this.inline(i, end, true);
        mapData[name] = value;
        spot.key = keyStart;
        keyed.set(name, spot);
        i = this.skipSpaces(after, end);
      } else {
        const [value, spot, after] = this.inline(i, end, true);
        i = this.skipSpaces(after, end);
        if (text[i] === ":") outside();
        listData.push(value);
        listed.push(spot);
      }
      if (text[i] === ",") i = this.skipSpaces(i + 1, end);
      else if (text[i] !== close) outside();
    }
    this.depth--;
    return isMap
      ? [mapData, { value: at, children: keyed }, i + 1]
      : [listData, { value: at, children: listed }, i + 1];
  }
}
