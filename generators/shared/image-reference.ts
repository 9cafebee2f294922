/**
 * Image references as Docker, Podman and the kubelet accept them, or a container never starts
 * ("invalid reference format", InvalidImageName). The grammar is the distribution project's
 * (github.com/distribution/reference): an optional registry host, a lowercase path, an optional
 * tag and digest, at most 255 characters before the tag.
 */
const DOMAIN_COMPONENT = "(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])";
const DOMAIN = `(?:${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*|\\[[0-9A-Fa-f:]+\\])(?::[0-9]+)?`;
const PATH_COMPONENT = "[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*";
const NAME = `(?:${DOMAIN}/)?${PATH_COMPONENT}(?:/${PATH_COMPONENT})*`;
const REFERENCE = new RegExp(`^(${NAME})(?::[\\w][\\w.-]{0,127})?(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9A-Fa-f]{32,})?$`);

/** Why `image` is not an image reference Docker and Podman accept, or null. */
export function imageProblem(image: string): string | null {
  const m = REFERENCE.exec(image);
  if (m === null) return "is not an image reference (REGISTRY/PATH:TAG, lowercase path, no spaces)";
  if ((m[1] as string).length > 255) return "has a name longer than 255 characters";
  return null;
}
