/** What `mbc init` writes: a commented starter spec and a handler, which validate clean. */

export function starterSpec(name: string, schemaRef: string): string {
  return `# yaml-language-server: $schema=${schemaRef}
#
# A microbatch system: records enter at sources, are grouped into batches, pass through
# services and end in sinks. Check it with \`mbc validate\`; the reference is docs/spec.md.
mbc: 1
name: ${name}
description: Orders in over HTTP, enriched, stored as JSON lines.

defaults:
  timeout: 2s            # per attempt
  retry:
    maxRetries: 2        # retries after the first attempt
    interval: 100ms      # base wait, doubled each retry (exponential backoff, full jitter)

sources:
  orders:
    type: http           # POST a JSON array or NDJSON to http://127.0.0.1:8080/records
    port: 8080
    rate: 1000/s         # expected peak: the capacity checks use it
    batch:
      maxRecords: 500    # a batch closes at 500 records,
      maxWait: 200ms     # or 200ms after its first record, whichever comes first
    to: enrich

services:
  enrich:
    handler: ./handlers/enrich.mjs
    instances: 2
    capacity: 800/s      # records/s one instance sustains
    timeout: 10s         # covers the worst case of "store": 2s × 3 attempts + waits
    to: store

  store:
    handler: builtin:jsonl-sink
    config:
      path: ./data/orders.jsonl
    capacity: 5000/s
`;
}

export const starterHandler = `// A handler: takes a batch of records, returns the batch passed on to the next stages.
// ctx = { batchId, service, instance, config, log }
export default async function enrich(records, ctx) {
  return records.map((record) => ({ ...record, enrichedBy: \`\${ctx.service}/\${ctx.instance}\` }));
}
`;
