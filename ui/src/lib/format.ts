// Times, durations and ids as the panels show them to people.

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

/** A span of time in the largest unit that fits: "40 s", "3 min", "2 h", "5 d". */
export function duration(ms: number): string {
  const abs = Math.abs(ms);
  if (abs < MINUTE) return `${Math.round(abs / SECOND)} s`;
  if (abs < HOUR) return `${Math.floor(abs / MINUTE)} min`;
  if (abs < DAY) return `${Math.floor(abs / HOUR)} h`;
  return `${Math.floor(abs / DAY)} d`;
}

/**
 * When something happened (or will), relative to `now`: "just now", "40 s ago", "3 min ago",
 * "2 h ago", "5 d ago", "in 40 s"; past 30 days, the date itself.
 */
export function relativeTime(ms: number, now: number = Date.now()): string {
  if (!Number.isFinite(ms)) return '';
  const delta = now - ms;
  if (Math.abs(delta) >= 30 * DAY) return absoluteDate(ms);
  if (delta >= 0) {
    if (delta < 10 * SECOND) return 'just now';
    return `${duration(delta)} ago`;
  }
  // A time to come, or a timestamp from a clock slightly ahead of this one.
  if (-delta < SECOND) return 'just now';
  return `in ${duration(delta)}`;
}

const dateTimeFormat = new Intl.DateTimeFormat(undefined, {
  dateStyle: 'medium',
  timeStyle: 'medium',
});
const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium' });

/** The exact local date and time, for a tooltip or a detail line. */
export function absoluteTime(ms: number): string {
  if (!Number.isFinite(ms)) return '';
  return dateTimeFormat.format(new Date(ms));
}

function absoluteDate(ms: number): string {
  return dateFormat.format(new Date(ms));
}

/** ISO 8601, for the `datetime` attribute of a <time>. */
export function isoTime(ms: number): string {
  return Number.isFinite(ms) ? new Date(ms).toISOString() : '';
}

/**
 * An id short enough for a table: a UUID's last group (the random part of a UUIDv7, whose
 * first groups are the creation time and alike for ids made together), as the CLI prints it.
 * Anything else (a preference key) is shown whole.
 */
export function shortId(id: string): string {
  const last = id.split('-').pop() ?? id;
  return /^[0-9a-f]{12}$/i.test(last) && id.length === 36 ? last : id;
}

/** A number of seconds in words for a setting: "45 s", "5 min", "1 min 30 s", "2 h", "1 h 30 min". */
export function formatSeconds(secs: number): string {
  if (!Number.isFinite(secs)) return '';
  const s = Math.max(0, Math.round(secs));
  if (s < 60) return `${s} s`;
  if (s < 3600) {
    const min = Math.floor(s / 60);
    const rest = s % 60;
    return rest ? `${min} min ${rest} s` : `${min} min`;
  }
  const h = Math.floor(s / 3600);
  const min = Math.round((s % 3600) / 60);
  if (min === 60) return `${h + 1} h`;
  return min ? `${h} h ${min} min` : `${h} h`;
}

/** A count with its noun: "1 record", "4 differences", "1,200 notes". */
export function plural(n: number, one: string, many = `${one}s`): string {
  return `${n.toLocaleString()} ${n === 1 ? one : many}`;
}

/** What a change in the outbox is to: "Note 1c2d3e4f5a6b", "Notebook …", "Setting theme". */
export function changeTarget(entry: { entity: string; entity_id: string }): string {
  const kind = entry.entity === 'note' ? 'Note' : entry.entity === 'notebook' ? 'Notebook' : 'Setting';
  return `${kind} ${shortId(entry.entity_id)}`;
}

/** The fields a change carries: "title, body"; "—" for none. */
export function changedFields(entry: { fields: object }): string {
  return Object.keys(entry.fields).join(', ') || '—';
}

/** A size as people read it: "812 bytes", "2.4 MB" (powers of 1000, as file managers show). */
export function bytes(n: number): string {
  if (n < 1000) return `${n} bytes`;
  const units = ['KB', 'MB', 'GB', 'TB'];
  let value = n / 1000;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit += 1;
  }
  return `${value.toFixed(1)} ${units[unit]}`;
}
