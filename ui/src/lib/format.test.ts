import { describe, expect, it } from 'vitest';
import {
  absoluteTime,
  changedFields,
  changeTarget,
  duration,
  formatSeconds,
  isoTime,
  plural,
  relativeTime,
  shortId,
} from './format';

const NOW = Date.UTC(2025, 5, 15, 12, 0, 0);

describe('relativeTime', () => {
  it('says "just now" for the last few seconds', () => {
    expect(relativeTime(NOW, NOW)).toBe('just now');
    expect(relativeTime(NOW - 9_000, NOW)).toBe('just now');
    expect(relativeTime(NOW + 500, NOW)).toBe('just now');
  });

  it('counts seconds, minutes, hours and days ago', () => {
    expect(relativeTime(NOW - 40_000, NOW)).toBe('40 s ago');
    expect(relativeTime(NOW - 3 * 60_000 - 20_000, NOW)).toBe('3 min ago');
    expect(relativeTime(NOW - 2 * 3_600_000 - 59 * 60_000, NOW)).toBe('2 h ago');
    expect(relativeTime(NOW - 5 * 86_400_000, NOW)).toBe('5 d ago');
  });

  it('says "in …" for times to come', () => {
    expect(relativeTime(NOW + 40_000, NOW)).toBe('in 40 s');
    expect(relativeTime(NOW + 90_000, NOW)).toBe('in 1 min');
  });

  it('gives the date past 30 days', () => {
    const old = NOW - 45 * 86_400_000;
    const text = relativeTime(old, NOW);
    expect(text).toBe(new Intl.DateTimeFormat(undefined, { dateStyle: 'medium' }).format(old));
    expect(text).not.toContain('ago');
  });

  it('uses the clock when no "now" is given', () => {
    expect(relativeTime(Date.now() - 120_000)).toBe('2 min ago');
  });

  it('is empty for a time that is not a number', () => {
    expect(relativeTime(Number.NaN, NOW)).toBe('');
  });
});

describe('duration', () => {
  it('picks the largest unit that fits', () => {
    expect(duration(0)).toBe('0 s');
    expect(duration(40_400)).toBe('40 s');
    expect(duration(-40_000)).toBe('40 s');
    expect(duration(60_000)).toBe('1 min');
    expect(duration(3_600_000)).toBe('1 h');
    expect(duration(3 * 86_400_000)).toBe('3 d');
  });
});

describe('absoluteTime', () => {
  it('formats the local date and time', () => {
    const expected = new Intl.DateTimeFormat(undefined, {
      dateStyle: 'medium',
      timeStyle: 'medium',
    }).format(NOW);
    expect(absoluteTime(NOW)).toBe(expected);
    expect(absoluteTime(NOW)).toContain('2025');
  });

  it('is empty for a time that is not a number', () => {
    expect(absoluteTime(Number.POSITIVE_INFINITY)).toBe('');
    expect(isoTime(Number.NaN)).toBe('');
  });

  it('has an ISO form for <time datetime>', () => {
    expect(isoTime(NOW)).toBe('2025-06-15T12:00:00.000Z');
  });
});

describe('shortId', () => {
  it('keeps the last group of a UUID, as the CLI does', () => {
    expect(shortId('0190a3c4-5b6d-7e8f-9a0b-1c2d3e4f5a6b')).toBe('1c2d3e4f5a6b');
  });

  it('keeps other ids whole', () => {
    expect(shortId('theme')).toBe('theme');
    expect(shortId('editor.font_size')).toBe('editor.font_size');
    expect(shortId('a-b')).toBe('a-b');
  });
});

describe('formatSeconds', () => {
  it('reads as seconds, minutes and hours', () => {
    expect(formatSeconds(15)).toBe('15 s');
    expect(formatSeconds(60)).toBe('1 min');
    expect(formatSeconds(90)).toBe('1 min 30 s');
    expect(formatSeconds(300)).toBe('5 min');
    expect(formatSeconds(3600)).toBe('1 h');
    expect(formatSeconds(5400)).toBe('1 h 30 min');
    expect(formatSeconds(7199)).toBe('2 h');
    expect(formatSeconds(86_400)).toBe('24 h');
  });

  it('is empty for what is not a number', () => {
    expect(formatSeconds(Number.NaN)).toBe('');
  });
});

describe('plural', () => {
  it('counts with the right noun', () => {
    expect(plural(1, 'record')).toBe('1 record');
    expect(plural(0, 'record')).toBe('0 records');
    expect(plural(1200, 'note')).toBe('1,200 notes');
    expect(plural(2, 'entry', 'entries')).toBe('2 entries');
  });
});

describe('changeTarget and changedFields', () => {
  it('name what a change is to and what it carries', () => {
    const id = '0190a3c4-5b6d-7e8f-9a0b-1c2d3e4f5a6b';
    expect(changeTarget({ entity: 'note', entity_id: id })).toBe('Note 1c2d3e4f5a6b');
    expect(changeTarget({ entity: 'notebook', entity_id: id })).toBe('Notebook 1c2d3e4f5a6b');
    expect(changeTarget({ entity: 'pref', entity_id: 'theme' })).toBe('Setting theme');
    expect(changedFields({ fields: { title: 1, body: 2 } })).toBe('title, body');
    expect(changedFields({ fields: {} })).toBe('—');
  });
});
