/**
 * The etcd gateway's transport over node:http and node:https: keep-alive connections, a timeout
 * for each exchange, TLS from the files MBC_REGISTRY_CA, MBC_REGISTRY_CERT and MBC_REGISTRY_KEY
 * name (config.ts reads them at start). Nothing beyond Node: the runtime is one bundled file.
 */
import { Agent as HttpAgent, request as httpRequest } from "node:http";
import { Agent as HttpsAgent, request as httpsRequest } from "node:https";
import type { Transport } from "./gateway.js";

export interface TlsFiles {
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
}

/** Largest answer taken from etcd: a system's every instance is far less. */
const MAX_ANSWER_BYTES = 64 * 1024 * 1024;

export function nodeTransport(tls: TlsFiles, timeoutMs: number): { transport: Transport; close(): void } {
  const http = new HttpAgent({ keepAlive: true, maxSockets: 4 });
  const https = new HttpsAgent({ keepAlive: true, maxSockets: 4, ...tls });
  const transport: Transport = (endpoint, path, body, headers) =>
    new Promise((resolve, reject) => {
      const url = new URL(path, endpoint);
      const secure = url.protocol === "https:";
      const text = JSON.stringify(body);
      const req = (secure ? httpsRequest : httpRequest)(url, {
        method: "POST",
        agent: secure ? https : http,
        headers: { ...headers, "content-type": "application/json", "content-length": Buffer.byteLength(text) },
        timeout: timeoutMs,
      });
      let settled = false;
      const fail = (err: Error) => {
        if (settled) return;
        settled = true;
        req.destroy();
        reject(err);
      };
      req.on("timeout", () => fail(new Error(`no answer within ${timeoutMs} ms`)));
      req.on("error", (err: NodeJS.ErrnoException) => fail(new Error(err.code ?? err.message)));
      req.on("response", (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on("data", (chunk: Buffer) => {
          size += chunk.length;
          if (size > MAX_ANSWER_BYTES) fail(new Error(`answer over ${MAX_ANSWER_BYTES} bytes`));
          else chunks.push(chunk);
        });
        res.on("error", (err) => fail(err));
        res.on("end", () => {
          if (settled) return;
          settled = true;
          const raw = Buffer.concat(chunks).toString("utf8");
          let parsed: unknown;
          try {
            parsed = raw === "" ? {} : JSON.parse(raw);
          } catch {
            // Not JSON: a proxy's error page, or etcd refusing in plain text (such as a client
            // certificate with a CommonName at the gateway): its first line says what happened.
            parsed = { error: raw.split("\n")[0]?.slice(0, 300) ?? "" };
          }
          resolve({ status: res.statusCode ?? 0, body: parsed });
        });
      });
      req.end(text);
    });
  return {
    transport,
    close() {
      http.destroy();
      https.destroy();
    },
  };
}
