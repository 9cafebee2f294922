export default async function enrich(records) {
  return records;
}
