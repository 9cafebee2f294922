/** Types of package.mjs, for the TypeScript test that uses it. */
export declare const PACKAGE_BUDGET: { readonly tarballBytes: number };
export declare function npmEnv(home: string, extra?: Record<string, string>): Record<string, string>;
export declare function runNpm(
  args: readonly string[],
  options: { cwd: string; env: Record<string, string>; timeoutMs?: number },
): { status: number | null; stdout: string; stderr: string };
export declare function npmVersion(): { version: string; reason: null } | { version: null; reason: string };
export interface PackedPackage {
  /** The tarball's path. */
  file: string;
  name: string;
  version: string;
  /** The tarball's size in bytes. */
  size: number;
  unpackedSize: number;
  /** Sorted by path. */
  files: { path: string; size: number }[];
}
export declare function packPackage(dest: string): PackedPackage;
export declare function fileKind(path: string): string;
