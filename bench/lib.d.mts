/** Types of lib.mjs, for the TypeScript test that uses it. */
import type { Agent } from "node:http";

export declare const RUNTIME_ENV_VARS: readonly string[];
export declare function median(xs: readonly number[]): number;
export declare function sleep(ms: number): Promise<void>;
export declare function table(rows: readonly (readonly (string | number)[])[]): string;
export declare function met(ok: boolean): string;
export declare function grouped(x: number, digits?: number): string;
export declare function freePorts(count: number): Promise<number>;
export declare function waitUntil(condition: () => boolean | Promise<boolean>, what: string, timeoutMs?: number, intervalMs?: number): Promise<void>;
export declare function keepAliveAgent(maxSockets?: number): Agent;
export declare function httpRequest(
  agent: Agent,
  method: string,
  url: string,
  body?: string,
  timeoutMs?: number,
  contentType?: string,
): Promise<{ status: number; body: string; headers: Record<string, string | string[] | undefined> }>;
export declare function killChildren(): Promise<void>;
export declare function alive(pid: number): boolean;
export declare function rssBytes(pid: number): number | null;
export declare function canSampleRss(): boolean;
