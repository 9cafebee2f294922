/**
 * How large a YAML document is with its aliases expanded, before anything expands them: yaml's
 * `maxAliasCount` counts aliases, not what they repeat, so 900 aliases of a 20,000-key map pass
 * it and make hundreds of MB. Sizes are in bytes of source text: a scalar counts its own text,
 * a collection its items plus a little for the punctuation, and an alias the size of the node it
 * refers to. Each node is measured once (iteratively: a deep document cannot overflow the stack),
 * so the cost is linear in the document, however much it would expand.
 *
 * An alias inside the node it refers to (`&a [*a]`) would expand for ever: toJS makes a circular
 * object of it, which no later stage can serialise. It is reported as a cycle.
 */
import { type Alias, type Document, isAlias, isMap, isPair, isScalar, isSeq, type Node, visit } from "yaml";

/**
 * What each alias of `doc` refers to: the node of the last anchor of its name before it. yaml's
 * own Alias.resolve walks the whole document for every call, which is quadratic in a document
 * with many aliases; this walks it once.
 */
export function anchorResolver(doc: Document): (alias: Alias) => Node | undefined {
  const anchors = new Map<string, { offset: number; node: Node }[]>();
  visit(doc, (_, node) => {
    const anchor = (node as { anchor?: string } | null)?.anchor;
    if (!anchor || isAlias(node)) return;
    const n = node as Node;
    anchors.set(anchor, [...(anchors.get(anchor) ?? []), { offset: n.range?.[0] ?? 0, node: n }]);
  });
  return (alias) => {
    const at = alias.range?.[0] ?? Number.POSITIVE_INFINITY;
    let found: Node | undefined;
    for (const a of anchors.get(alias.source) ?? []) if (a.offset < at) found = a.node;
    return found;
  };
}

export interface Expansion {
  /** Bytes of the document with every alias expanded (a float: it may be far beyond 2⁵³). */
  size: number;
  /** The alias whose node is the largest, where there is an alias. */
  largest: { offset: number; name: string; size: number } | null;
  /** An alias inside the node it refers to. */
  cycle: { offset: number; name: string } | null;
}

interface Frame {
  node: Node;
  children: unknown[];
  next: number;
  size: number;
}

function childrenOf(node: Node): unknown[] {
  if (isMap(node)) return node.items.flatMap((pair) => [pair.key, pair.value]);
  // A flow sequence may hold pairs (`[a: 1]`): each is a one-key mapping.
  if (isSeq(node)) return node.items.flatMap((item) => (isPair(item) ? [item.key, item.value] : [item]));
  return [];
}

function ownSize(node: unknown): number {
  if (isScalar(node)) {
    const range = node.range;
    return Math.max(1, range ? range[1] - range[0] : String(node.value).length);
  }
  return 2;
}

export function measureExpansion(doc: Document, resolve: (alias: Alias) => Node | undefined = anchorResolver(doc)): Expansion {
  const done = new Map<Node, number>();
  const open = new Set<Node>();
  const pendingAlias = new Map<Node, { offset: number; name: string }[]>();
  let largest: Expansion["largest"] = null;
  const root = doc.contents as Node | null;
  if (root === null || root === undefined) return { size: 0, largest, cycle: null };
  if (!isMap(root) && !isSeq(root) && !isAlias(root)) return { size: ownSize(root), largest, cycle: null };

  const stack: Frame[] = [];
  const enter = (node: Node) => {
    open.add(node);
    stack.push({ node, children: childrenOf(node), next: 0, size: ownSize(node) });
  };
  const start = isAlias(root) ? resolve(root) : root;
  if (!start) return { size: 0, largest, cycle: null };
  if (!isMap(start) && !isSeq(start)) return { size: ownSize(start), largest, cycle: null };
  enter(start);
  let total = 0;
  while (stack.length > 0) {
    const top = stack[stack.length - 1] as Frame;
    if (top.next < top.children.length) {
      const child = top.children[top.next++];
      if (child === null || child === undefined) {
        top.size += 1;
        continue;
      }
      let target = child as Node;
      if (isAlias(child)) {
        const resolved = resolve(child);
        // An unresolved alias is reported by the caller when toJS fails on it.
        if (!resolved) {
          top.size += 1;
          continue;
        }
        if (open.has(resolved)) return { size: total, largest, cycle: { offset: child.range?.[0] ?? 0, name: child.source } };
        target = resolved;
        const known = done.get(resolved);
        const measured = known ?? (isMap(resolved) || isSeq(resolved) ? undefined : ownSize(resolved));
        if (measured !== undefined) {
          if (largest === null || measured > largest.size) largest = { offset: child.range?.[0] ?? 0, name: child.source, size: measured };
          top.size += measured + 1;
          continue;
        }
        // Not measured yet (only when the document itself is an alias): measure it now, and count
        // it for this alias when it is done.
        pendingAlias.set(resolved, [...(pendingAlias.get(resolved) ?? []), { offset: child.range?.[0] ?? 0, name: child.source }]);
      } else if (!isMap(child) && !isSeq(child)) {
        top.size += ownSize(child) + 1;
        continue;
      } else {
        const known = done.get(child);
        if (known !== undefined) {
          top.size += known + 1;
          continue;
        }
      }
      enter(target);
      continue;
    }
    stack.pop();
    open.delete(top.node);
    done.set(top.node, top.size);
    for (const alias of pendingAlias.get(top.node) ?? []) if (largest === null || top.size > largest.size) largest = { ...alias, size: top.size };
    pendingAlias.delete(top.node);
    const parent = stack[stack.length - 1];
    if (parent) parent.size += top.size + 1;
    else total = top.size;
  }
  return { size: total, largest, cycle: null };
}
