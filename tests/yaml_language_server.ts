/**
 * A real `yaml-language-server` (the server VS Code's YAML extension runs), pinned in deno.lock
 * as `npm:yaml-language-server`, started over stdio and driven with LSP JSON-RPC the way the
 * extension's client drives it: `initialize` with the repository as the workspace folder and
 * VS Code's client capabilities (Markdown hovers, snippets), the extension's notifications
 * (schema selection, content requests), `workspace/configuration` answered from the extension's
 * defaults overlaid with a `.vscode/settings.json`, `http(s)` schemas served through
 * `vscode/content` as VS Code does, then `didOpen`, `publishDiagnostics`, completion and hover.
 * SchemaStore's catalog, which the server fetches itself, comes from a local stand-in (the test
 * machines reach no other host), so a test decides what SchemaStore maps.
 */

/** The server's version; the import map entry `yaml-language-server` pins the same. */
export const YAML_LANGUAGE_SERVER = "npm:yaml-language-server@1.25.0";

/**
 * The defaults VS Code's YAML extension (redhat.vscode-yaml 1.25) contributes; a workspace's
 * `.vscode/settings.json` is laid over them, as VS Code does before answering the server.
 */
const EXTENSION_DEFAULTS: Record<string, unknown> = {
  "yaml.yamlVersion": "1.2",
  "yaml.schemas": {},
  "yaml.disableSchemaDetection": [],
  "yaml.kubernetesCRDStore.enable": true,
  "yaml.format.enable": true,
  "yaml.format.singleQuote": false,
  "yaml.format.bracketSpacing": true,
  "yaml.format.proseWrap": "preserve",
  "yaml.format.printWidth": 80,
  "yaml.format.trailingComma": true,
  "yaml.validate": true,
  "yaml.hover": true,
  "yaml.hoverAnchor": true,
  "yaml.completion": true,
  "yaml.customTags": [],
  "yaml.schemaStore.enable": true,
  "yaml.schemaStore.url": "https://www.schemastore.org/api/json/catalog.json",
  "yaml.disableAdditionalProperties": false,
  "yaml.disableDefaultProperties": false,
  "yaml.maxItemsComputed": 5000,
  "yaml.suggest.parentSkeletonSelectedFirst": false,
  "yaml.style.flowMapping": "allow",
  "yaml.style.flowSequence": "allow",
  "yaml.keyOrdering": false,
  "yaml.hoverSchemaSource": true,
  "[yaml]": {
    "editor.insertSpaces": true,
    "editor.tabSize": 2,
    "editor.quickSuggestions": { other: true, comments: false, strings: true },
    "editor.autoIndent": "keep",
  },
  "editor.detectIndentation": true,
  "editor.tabSize": 4,
  "files.associations": {},
};

export interface Position {
  line: number;
  character: number;
}

export interface Diagnostic {
  range: { start: Position; end: Position };
  severity?: number;
  message: string;
  source?: string;
}

export interface CompletionItem {
  label: string;
  kind?: number;
  insertText?: string;
  textEdit?: { newText: string };
  documentation?: string | { kind: string; value: string };
}

export interface Hover {
  contents: { kind: string; value: string } | string;
}

interface Message {
  jsonrpc: "2.0";
  id?: number | string;
  method?: string;
  params?: unknown;
  result?: unknown;
  error?: { code: number; message: string };
}

export interface StartOptions {
  /** The workspace folder (a directory path). */
  root: string;
  /** Settings as in `.vscode/settings.json` (flat dotted keys), laid over the defaults. */
  settings: Record<string, unknown>;
  /** What VS Code would fetch for an `http(s)` schema URL (`vscode/content`); else an error. */
  content?: (uri: string) => string | undefined;
  /** SchemaStore's catalog (`{schemas: [{name, fileMatch, url}]}`); none by default. */
  schemaStore?: { schemas: { name: string; fileMatch: string[]; url: string }[] };
}

/** Turns flat settings (`yaml.schemas`) into the object VS Code returns for a section. */
function section(settings: Record<string, unknown>, name: string): unknown {
  if (name.startsWith("[")) return settings[name];
  const result: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(settings)) {
    if (!key.startsWith(`${name}.`)) continue;
    const parts = key.slice(name.length + 1).split(".");
    let node = result;
    for (const part of parts.slice(0, -1)) {
      node = (node[part] ??= {}) as Record<string, unknown>;
    }
    node[parts[parts.length - 1]] = value;
  }
  return result;
}

export class YamlLanguageServer {
  #process: Deno.ChildProcess;
  #writer: WritableStreamDefaultWriter<Uint8Array>;
  #nextId = 1;
  #pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  #diagnostics = new Map<string, (d: Diagnostic[]) => void>();
  #configurations = 0;
  #configured?: () => void;
  #catalog: Deno.HttpServer<Deno.NetAddr>;
  #reading: Promise<void>;
  #stderr: Promise<string>;
  #settings: Record<string, unknown>;
  #content: StartOptions["content"];
  /** `http(s)` schema URLs the server asked the editor for. */
  readonly contentRequests: string[] = [];
  /** The version the server reports in its `initialize` result. */
  version = "";

  private constructor(options: StartOptions) {
    const catalog = options.schemaStore ?? { schemas: [] };
    this.#catalog = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen() {} },
      () => Response.json(catalog),
    );
    this.#settings = {
      ...EXTENSION_DEFAULTS,
      "yaml.schemaStore.url": `http://127.0.0.1:${this.#catalog.addr.port}/api/json/catalog.json`,
      ...options.settings,
    };
    this.#content = options.content;
    this.#process = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--frozen",
        "--allow-read",
        "--allow-env",
        "--allow-sys",
        "--allow-net",
        // The server polls the editor's process (`processId`) with `process.kill(pid, 0)`.
        "--allow-run",
        YAML_LANGUAGE_SERVER,
        "--stdio",
      ],
      cwd: options.root,
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#writer = this.#process.stdin.getWriter();
    this.#reading = this.#read(this.#process.stdout);
    this.#stderr = new Response(this.#process.stderr).text();
  }

  /** Starts the server and brings it to where VS Code has it once a workspace is open. */
  static async start(options: StartOptions): Promise<YamlLanguageServer> {
    const server = new YamlLanguageServer(options);
    const rootUri = new URL(`file://${options.root.replace(/\/?$/, "/")}`).href.replace(/\/$/, "");
    // The server announces the end of each configuration it applies: the one it pulls after
    // `initialized`, and the one our `didChangeConfiguration` asks for.
    const configured = new Promise<void>((resolve) => server.#configured = resolve);
    const initialized = await server.request<{ serverInfo?: { version?: string } }>("initialize", {
      processId: Deno.pid,
      clientInfo: { name: "Visual Studio Code", version: "1.100.0" },
      locale: "en",
      rootPath: options.root,
      rootUri,
      workspaceFolders: [{ uri: rootUri, name: options.root.split("/").filter(Boolean).pop() }],
      initializationOptions: {},
      capabilities: {
        workspace: {
          configuration: true,
          workspaceFolders: true,
          didChangeConfiguration: { dynamicRegistration: true },
          didChangeWatchedFiles: { dynamicRegistration: true },
        },
        textDocument: {
          synchronization: { dynamicRegistration: true, didSave: true },
          publishDiagnostics: { relatedInformation: true, versionSupport: false },
          completion: {
            dynamicRegistration: true,
            contextSupport: true,
            completionItem: {
              snippetSupport: true,
              commitCharactersSupport: true,
              documentationFormat: ["markdown", "plaintext"],
              deprecatedSupport: true,
              insertReplaceSupport: true,
              labelDetailsSupport: true,
            },
          },
          hover: { dynamicRegistration: true, contentFormat: ["markdown", "plaintext"] },
          formatting: { dynamicRegistration: true },
          documentSymbol: { hierarchicalDocumentSymbolSupport: true },
        },
      },
    });
    server.version = initialized.serverInfo?.version ?? "";
    server.notify("initialized", {});
    // What vscode-yaml's client sends once the server is ready.
    server.notify("json/schemaAssociations", {});
    server.notify("yaml/registerCustomSchemaRequest", null);
    server.notify("yaml/registerContentRequest", null);
    server.notify("yaml/supportSchemaSelection", null);
    server.notify("workspace/didChangeConfiguration", { settings: null });
    await configured;
    return server;
  }

  async #read(stream: ReadableStream<Uint8Array>) {
    try {
      await this.#readMessages(stream);
    } finally {
      for (const waiting of this.#pending.values()) {
        waiting.reject(new Error("yaml-language-server exited"));
      }
      this.#pending.clear();
    }
  }

  async #readMessages(stream: ReadableStream<Uint8Array>) {
    let buffer = new Uint8Array(0);
    const decoder = new TextDecoder();
    for await (const chunk of stream) {
      const joined = new Uint8Array(buffer.length + chunk.length);
      joined.set(buffer);
      joined.set(chunk, buffer.length);
      buffer = joined;
      while (true) {
        const text = decoder.decode(buffer.subarray(0, Math.min(buffer.length, 256)));
        const headerEnd = text.indexOf("\r\n\r\n");
        if (headerEnd < 0) break;
        const length = Number(text.slice(0, headerEnd).match(/Content-Length: (\d+)/i)?.[1]);
        const start = headerEnd + 4;
        if (buffer.length < start + length) break;
        const message = JSON.parse(decoder.decode(buffer.subarray(start, start + length)));
        buffer = buffer.slice(start + length);
        this.#dispatch(message);
      }
    }
  }

  #dispatch(message: Message) {
    if (message.method && message.id !== undefined) {
      this.#answer(message.id, message.method, message.params);
    } else if (message.method) {
      if (message.method === "textDocument/publishDiagnostics") {
        const { uri, diagnostics } = message.params as { uri: string; diagnostics: Diagnostic[] };
        this.#diagnostics.get(uri)?.(diagnostics);
      } else if (message.method === "yaml/schema/store/initialized") {
        if (++this.#configurations === 2) this.#configured?.();
      }
    } else if (typeof message.id === "number") {
      const waiting = this.#pending.get(message.id);
      this.#pending.delete(message.id);
      if (message.error) waiting?.reject(new Error(message.error.message));
      else waiting?.resolve(message.result);
    }
  }

  /** Answers the server's requests as VS Code and the YAML extension do. */
  #answer(id: number | string, method: string, params: unknown) {
    switch (method) {
      case "workspace/configuration": {
        const items = (params as { items: { section: string }[] }).items;
        return this.#send({
          jsonrpc: "2.0",
          id,
          result: items.map((item) => section(this.#settings, item.section)),
        });
      }
      case "vscode/content": {
        const uri = String(params);
        this.contentRequests.push(uri);
        const text = this.#content?.(uri);
        return this.#send(
          text === undefined
            ? { jsonrpc: "2.0", id, error: { code: -32603, message: `Unable to load ${uri}` } }
            : { jsonrpc: "2.0", id, result: text },
        );
      }
      case "custom/schema/request":
        // No other extension contributes schemas.
        return this.#send({ jsonrpc: "2.0", id, result: [] });
      default:
        // client/registerCapability, window/workDoneProgress/create, codeLens refresh …
        return this.#send({ jsonrpc: "2.0", id, result: null });
    }
  }

  #send(message: Message) {
    const body = new TextEncoder().encode(JSON.stringify(message));
    const header = new TextEncoder().encode(`Content-Length: ${body.length}\r\n\r\n`);
    const frame = new Uint8Array(header.length + body.length);
    frame.set(header);
    frame.set(body, header.length);
    // Writes are queued by the writer in order.
    this.#writer.write(frame).catch(() => {});
  }

  request<T = unknown>(method: string, params: unknown): Promise<T> {
    const id = this.#nextId++;
    const result = new Promise<T>((resolve, reject) => {
      this.#pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
    });
    this.#send({ jsonrpc: "2.0", id, method, params });
    return result;
  }

  notify(method: string, params: unknown) {
    this.#send({ jsonrpc: "2.0", method, params });
  }

  /** Opens a document as the editor does and returns the diagnostics the server publishes. */
  open(uri: string, text: string): Promise<Diagnostic[]> {
    const published = new Promise<Diagnostic[]>((resolve) => {
      this.#diagnostics.set(uri, (diagnostics) => {
        this.#diagnostics.delete(uri);
        resolve(diagnostics);
      });
    });
    this.notify("textDocument/didOpen", {
      textDocument: { uri, languageId: "yaml", version: 1, text },
    });
    return published;
  }

  close(uri: string) {
    this.notify("textDocument/didClose", { textDocument: { uri } });
  }

  async completion(uri: string, position: Position): Promise<CompletionItem[]> {
    const result = await this.request<{ items: CompletionItem[] } | CompletionItem[] | null>(
      "textDocument/completion",
      { textDocument: { uri }, position, context: { triggerKind: 1 } },
    );
    return Array.isArray(result) ? result : result?.items ?? [];
  }

  hover(uri: string, position: Position): Promise<Hover | null> {
    return this.request("textDocument/hover", { textDocument: { uri }, position });
  }

  /** The schemas the server applies to a document (the extension's status bar asks the same). */
  schemasOf(uri: string): Promise<{ uri: string; name?: string }[]> {
    return this.request("yaml/get/jsonSchema", uri);
  }

  async stop(): Promise<string> {
    await this.request("shutdown", null);
    this.notify("exit", null);
    await this.#writer.close().catch(() => {});
    await this.#process.status;
    await this.#reading;
    await this.#catalog.shutdown();
    return await this.#stderr;
  }

  async [Symbol.asyncDispose]() {
    await this.stop();
  }
}
