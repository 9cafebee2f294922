/**
 * Pieces of a batch. When a batch is poison (core/failure.ts) its source splits it in halves of
 * its records, and those again, until the records that fail are alone. A piece keeps the
 * batch's id and names its records by their offsets in the batch: `X@FROM-TO` holds records
 * FROM to TO-1 of batch X (source names cannot hold `@`, so the id splits one way only). A sink
 * that stored a batch, or a piece, has stored every piece inside it: it skips them.
 */

export interface PieceRange {
  /** The whole batch's id. */
  batch: string;
  /** Offsets in the batch, TO exclusive; null for the whole batch. */
  range: { from: number; to: number } | null;
}

const PIECE = /^(.+)@(\d{1,9})-(\d{1,9})$/;

/** The id of records `from` to `to - 1` of batch `batch`. */
export function pieceId(batch: string, from: number, to: number): string {
  return `${batch}@${from}-${to}`;
}

/** The batch and range an id names (a plain batch id: the whole batch). */
export function parsePieceId(id: string): PieceRange {
  const m = PIECE.exec(id);
  if (m === null) return { batch: id, range: null };
  const from = Number(m[2]);
  const to = Number(m[3]);
  if (!(from < to)) return { batch: id, range: null };
  return { batch: m[1] as string, range: { from, to } };
}

/** Whether `outer` holds every record of `inner` (a whole batch holds all its pieces). */
export function covers(outer: PieceRange["range"], inner: PieceRange["range"]): boolean {
  if (outer === null) return true;
  if (inner === null) return false;
  return outer.from <= inner.from && inner.to <= outer.to;
}
