import { describe, expect, it } from 'vitest';
import { OVERSCAN, PAGE_SIZE, ROW_HEIGHT, pagesFor, visibleRows } from './window';

describe('the virtual window', () => {
  it('draws only the rows on screen, plus a margin', () => {
    const range = visibleRows(0, 10 * ROW_HEIGHT, 100_000);
    expect(range).toEqual({ first: 0, end: 10 + OVERSCAN });
    const deep = visibleRows(50_000 * ROW_HEIGHT, 10 * ROW_HEIGHT, 100_000);
    expect(deep.first).toBe(50_000 - OVERSCAN);
    expect(deep.end - deep.first).toBeLessThan(40);
  });

  it('never runs past the end of the list', () => {
    expect(visibleRows(99_990 * ROW_HEIGHT, 50 * ROW_HEIGHT, 100_000).end).toBe(100_000);
    expect(visibleRows(0, 500, 0)).toEqual({ first: 0, end: 0 });
  });

  it('loads the pages that hold the visible rows, and no others', () => {
    expect(pagesFor({ first: 0, end: 20 })).toEqual([0]);
    expect(pagesFor({ first: PAGE_SIZE - 5, end: PAGE_SIZE + 5 })).toEqual([0, 1]);
    expect(pagesFor({ first: 3 * PAGE_SIZE, end: 3 * PAGE_SIZE })).toEqual([]);
  });
});
