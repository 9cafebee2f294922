/**
 * How deeply a document nests, found without recursion. yaml composes a document, and every later
 * stage walks the value, by recursion: nesting thousands deep (`[[[[…`) exhausts the stack, and
 * the user would read "Maximum call stack size exceeded". A spec nests a few levels; anything
 * deeper than MAX_DEPTH is reported, at the first collection past it, before anything recurses.
 */
import { type CST, type Document, isAlias, isMap, isPair, isSeq, type Node } from "yaml";
import { anchorResolver } from "./expansion.js";
import { MAX_DEPTH } from "./limits.js";

export { MAX_DEPTH };

export interface TokenDepth {
  /** The offset of the first collection nested deeper than the limit, if any. */
  tooDeepAt: number | undefined;
  /** Whether the text holds an alias (only then can the value nest deeper than the text). */
  aliases: boolean;
}

/** How deeply the parser's tokens nest, as written. */
export function measureTokens(tokens: readonly CST.Token[], max = MAX_DEPTH): TokenDepth {
  // Only collections go on the stack: scalars, the bulk of a spec, are looked at and left.
  const stack: [CST.BlockMap | CST.BlockSequence | CST.FlowCollection, number][] = [];
  let aliases = false;
  const visit = (token: CST.Token | undefined, depth: number) => {
    if (token === undefined) return;
    if (token.type === "block-map" || token.type === "block-seq" || token.type === "flow-collection") stack.push([token, depth]);
    else if (token.type === "alias") aliases = true;
    else if (token.type === "document") visit(token.value, depth);
  };
  for (const t of tokens) visit(t, 0);
  let tooDeepAt: number | undefined;
  while (stack.length > 0) {
    const [token, depth] = stack.pop() as [CST.BlockMap | CST.BlockSequence | CST.FlowCollection, number];
    if (depth + 1 > max) {
      // The first in the text, wherever the walk meets it; nothing below it is looked at.
      tooDeepAt = Math.min(tooDeepAt ?? token.offset, token.offset);
      continue;
    }
    for (const item of token.items) {
      if ("key" in item) visit(item.key ?? undefined, depth + 1);
      visit(item.value, depth + 1);
    }
  }
  return { tooDeepAt, aliases };
}

export type DepthProblem = { offset: number; kind: "deep" | "circular" };

/**
 * Nesting once aliases are expanded: each alias adds the depth of the node it names, so a chain
 * of aliases can nest far deeper than the text does; an alias inside the node it names makes a
 * structure that contains itself. Each node is measured once (aliases share their target's
 * measure), so this is linear in the document's size.
 */
export function tooDeepWithAliases(doc: Document, max = MAX_DEPTH): DepthProblem | undefined {
  const measured = new Map<unknown, number>();
  const open = new Set<unknown>();
  // yaml's Alias.resolve walks the document on every call: quadratic with many aliases.
  const resolve = anchorResolver(doc);
  const children = (node: unknown): unknown[] => {
    if (isMap(node)) return node.items.flatMap((p) => (isPair(p) ? [p.key, p.value] : []));
    if (isSeq(node)) return node.items;
    return [];
  };
  const offsetOf = (node: unknown) => (node as Node | null)?.range?.[0] ?? 0;
  // Post-order without recursion: a node is measured when all it holds is. `via` is what the
  // frame came from, the alias where there is one: that is where a problem is reported.
  type Frame = { node: unknown; via: unknown; expanded: boolean };
  const stack: Frame[] = [{ node: doc.contents, via: doc.contents, expanded: false }];
  while (stack.length > 0) {
    const frame = stack[stack.length - 1] as Frame;
    let node = frame.node;
    if (isAlias(node)) node = resolve(node);
    if (node === undefined || node === null || measured.has(node)) {
      stack.pop();
      continue;
    }
    if (!frame.expanded) {
      if (open.has(node)) return { offset: offsetOf(frame.via), kind: "circular" };
      open.add(node);
      frame.expanded = true;
      for (const child of children(node)) stack.push({ node: child, via: child, expanded: false });
      continue;
    }
    stack.pop();
    open.delete(node);
    const inner = children(node).reduce<number>((deepest, child) => {
      const target = isAlias(child) ? resolve(child) : child;
      return Math.max(deepest, measured.get(target) ?? 0);
    }, 0);
    const depth = isMap(node) || isSeq(node) ? inner + 1 : 0;
    if (depth > max) return { offset: offsetOf(frame.via), kind: "deep" };
    measured.set(node, depth);
  }
  return undefined;
}
