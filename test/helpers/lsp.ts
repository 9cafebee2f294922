/** A minimal LSP client for the real yaml-language-server over stdio. */
import { type ChildProcess, spawn } from "node:child_process";
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";
import { createMessageConnection, type MessageConnection, StreamMessageReader, StreamMessageWriter } from "vscode-jsonrpc/node.js";

export interface LspDiagnostic {
  range: { start: { line: number; character: number }; end: { line: number; character: number } };
  message: string;
  severity?: number;
}

export interface CompletionItem {
  label: string;
  /** LSP CompletionItemKind: 10 is Property, 12 Value, 15 Snippet. */
  kind?: number;
  insertText?: string;
  documentation?: unknown;
}

export function yamlLanguageServerPath(): string {
  return createRequire(import.meta.url).resolve("yaml-language-server/bin/yaml-language-server");
}

export class LspClient {
  private readonly proc: ChildProcess;
  private readonly conn: MessageConnection;
  private readonly diagnostics = new Map<string, LspDiagnostic[]>();
  private readonly waiters: { uri: string; resolve: (d: LspDiagnostic[]) => void }[] = [];
  private version = 0;

  /** `yamlSettings` is what the server gets when it asks for the `yaml` section. */
  constructor(private readonly yamlSettings: Record<string, unknown>) {
    this.proc = spawn(process.execPath, [yamlLanguageServerPath(), "--stdio"], { stdio: ["pipe", "pipe", "pipe"] });
    if (!this.proc.stdout || !this.proc.stdin) throw new Error("no stdio");
    this.conn = createMessageConnection(new StreamMessageReader(this.proc.stdout), new StreamMessageWriter(this.proc.stdin));
    // The server pulls its settings; pushed settings are ignored.
    this.conn.onRequest("workspace/configuration", (params: { items: { section?: string }[] }) =>
      params.items.map((i) => (i.section === "yaml" ? this.yamlSettings : i.section === "editor" ? { tabSize: 2 } : null)),
    );
    this.conn.onRequest("client/registerCapability", () => null);
    this.conn.onRequest("window/workDoneProgress/create", () => null);
    this.conn.onNotification("textDocument/publishDiagnostics", (p: { uri: string; diagnostics: LspDiagnostic[] }) => {
      this.diagnostics.set(p.uri, p.diagnostics);
      for (let i = this.waiters.length - 1; i >= 0; i--) {
        const w = this.waiters[i];
        if (w && w.uri === p.uri) {
          this.waiters.splice(i, 1);
          w.resolve(p.diagnostics);
        }
      }
    });
    // The server's pipes close when it exits; writes racing that are not failures of a test.
    this.proc.stdin.on("error", () => {});
    this.conn.onError(() => {});
    this.conn.listen();
  }

  /** Notifications return promises in vscode-jsonrpc 8: one that fails must not become an unhandled rejection. */
  private notify(method: string, params?: unknown): void {
    this.conn.sendNotification(method, params).catch(() => {});
  }

  async start(rootDir: string): Promise<void> {
    await this.conn.sendRequest("initialize", {
      processId: process.pid,
      rootUri: pathToFileURL(rootDir).href,
      workspaceFolders: [{ uri: pathToFileURL(rootDir).href, name: "root" }],
      capabilities: {
        workspace: { configuration: true, didChangeConfiguration: { dynamicRegistration: true } },
        textDocument: {
          completion: { completionItem: { snippetSupport: true, documentationFormat: ["markdown", "plaintext"] } },
          hover: { contentFormat: ["markdown", "plaintext"] },
          publishDiagnostics: {},
        },
      },
    });
    this.notify("initialized", {});
    // Makes the server pull the settings now.
    this.notify("workspace/didChangeConfiguration", { settings: null });
  }

  /** Opens a document and waits for its diagnostics. */
  open(path: string, text: string, timeoutMs = 20_000): Promise<LspDiagnostic[]> {
    const uri = pathToFileURL(path).href;
    const wait = new Promise<LspDiagnostic[]>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no diagnostics for ${uri} within ${timeoutMs} ms`)), timeoutMs);
      this.waiters.push({
        uri,
        resolve: (d) => {
          clearTimeout(timer);
          resolve(d);
        },
      });
    });
    this.notify("textDocument/didOpen", { textDocument: { uri, languageId: "yaml", version: ++this.version, text } });
    return wait;
  }

  async completion(path: string, line: number, character: number): Promise<CompletionItem[]> {
    const result = await this.conn.sendRequest<{ items: CompletionItem[] } | CompletionItem[] | null>("textDocument/completion", {
      textDocument: { uri: pathToFileURL(path).href },
      position: { line, character },
    });
    return Array.isArray(result) ? result : (result?.items ?? []);
  }

  async hover(path: string, line: number, character: number): Promise<string> {
    const result = await this.conn.sendRequest<{ contents: { value: string } | string } | null>("textDocument/hover", {
      textDocument: { uri: pathToFileURL(path).href },
      position: { line, character },
    });
    if (!result) return "";
    return typeof result.contents === "string" ? result.contents : result.contents.value;
  }

  async stop(): Promise<void> {
    try {
      await Promise.race([this.conn.sendRequest("shutdown"), new Promise((r) => setTimeout(r, 2000))]);
      await this.conn.sendNotification("exit").catch(() => {});
    } catch {
      // already gone
    }
    this.conn.dispose();
    this.proc.kill();
  }
}
