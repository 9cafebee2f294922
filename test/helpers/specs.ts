/**
 * Specs the runtime tests share. Each takes a base port: the registry listens on it, the source
 * on port + 1, the services from port + 2 up (a port a piece, instances in turn).
 */

/** Two weighted instances with a capacity, a sink with its own retry, env and memory. */
export function processSpec(port: number, registry = "heartbeat: 100ms\n  ttl: 10s"): string {
  return `mbc: 1
name: proc-test
registry:
  port: ${port}
  ${registry}
sources:
  in:
    type: http
    port: ${port + 1}
    to: work
services:
  work:
    handler: builtin:passthrough
    instances:
      - weight: 2
        capacity: 100/s
      - weight: 1
    port: ${port + 2}
    timeout: 1s
    retry:
      maxRetries: 2
      interval: 100ms
      multiplier: 2
    to: sink
  sink:
    handler: builtin:jsonl-sink
    config:
      path: ./out.jsonl
    port: ${port + 4}
    timeout: 500ms
    retry:
      maxRetries: 1
      interval: 200ms
    env:
      GREETING: hello
    resources:
      memory: 256Mi
`;
}

/** A supervised system with a short TTL, exponential and constant back-off. */
export function supervisedSpec(port: number): string {
  return `mbc: 1
name: sup-test
registry:
  port: ${port}
  heartbeat: 100ms
  ttl: 500ms
sources:
  in:
    type: http
    port: ${port + 1}
    to: work
services:
  work:
    handler: builtin:passthrough
    instances: 2
    port: ${port + 2}
    timeout: 300ms
    retry:
      maxRetries: 1
      interval: 100ms
      multiplier: 3
      maxInterval: 1s
    to: sink
  sink:
    handler: builtin:jsonl-sink
    config:
      path: ./out.jsonl
    port: ${port + 4}
    timeout: 300ms
    retry:
      backoff: constant
      interval: 150ms
    env:
      GREETING: hello
    resources:
      memory: 256Mi
`;
}
