/**
 * The deepest nesting of mappings and lists a spec may have (a real one has under 10), aliases
 * expanded. On its own, without the parser's types, so that the API's declarations need no yaml.
 */
export const MAX_DEPTH = 100;
