// The note list's virtual window: which rows are on screen, which pages hold them. Pure
// functions, so the arithmetic is tested without a DOM.

export const ROW_HEIGHT = 62;
export const PAGE_SIZE = 200;
/** Rows drawn above and below the visible ones, so a fast scroll does not show blanks. */
export const OVERSCAN = 8;

export interface RowRange {
  first: number;
  /** Exclusive. */
  end: number;
}

export function visibleRows(scrollTop: number, height: number, count: number): RowRange {
  const first = Math.max(0, Math.floor(scrollTop / ROW_HEIGHT) - OVERSCAN);
  const end = Math.min(count, Math.ceil((scrollTop + height) / ROW_HEIGHT) + OVERSCAN);
  return { first, end: Math.max(first, end) };
}

/** The pages (of PAGE_SIZE rows) that hold the rows of `range`. */
export function pagesFor(range: RowRange): number[] {
  if (range.end <= range.first) return [];
  const pages = [];
  for (let p = Math.floor(range.first / PAGE_SIZE); p <= Math.floor((range.end - 1) / PAGE_SIZE); p++) {
    pages.push(p);
  }
  return pages;
}
