declare const __MBC_VERSION__: string | undefined;

/** Set from package.json when the CLI is bundled. */
export const VERSION: string = typeof __MBC_VERSION__ === "string" ? __MBC_VERSION__ : "0.0.0-dev";
