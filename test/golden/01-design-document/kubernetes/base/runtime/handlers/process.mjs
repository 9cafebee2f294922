// The design documents' DataProcessingService: process each record and pass it on.
// ctx = { batchId, service, instance, config, log }
export default async function process(records, ctx) {
  return records.map((record) => ({ ...record, processedBy: `${ctx.service}/${ctx.instance}` }));
}
