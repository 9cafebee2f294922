/** JSON Pointer (RFC 6901) helpers. */
export function encodeSegment(segment: string | number): string {
  return String(segment).replace(/~/g, "~0").replace(/\//g, "~1");
}

export function decodeSegment(segment: string): string {
  return segment.replace(/~1/g, "/").replace(/~0/g, "~");
}

export function toPointer(segments: readonly (string | number)[]): string {
  return segments.map((s) => `/${encodeSegment(s)}`).join("");
}

export function fromPointer(pointer: string): string[] {
  if (pointer === "") return [];
  return pointer.slice(1).split("/").map(decodeSegment);
}

export function joinPointer(base: string, ...segments: (string | number)[]): string {
  return base + toPointer(segments);
}
