// Reading a preference as the core sends it: its value, and the limits of the values it takes
// (a number's bounds, a list's choices). The core checks every value against the same limits,
// so the window offers only what it would accept, without a copy of them.
import type { Pref, PrefLimits } from '../api';

export type IntLimits = Extract<PrefLimits, { kind: 'int' }>;

/** The bounds of a whole-number preference; null for one of another kind. */
export function intLimits(pref: Pref | undefined): IntLimits | null {
  return pref?.limits.kind === 'int' ? pref.limits : null;
}

/** The values a preference of a list takes, in the order to offer them. */
export function choices(pref: Pref | undefined): string[] {
  return pref?.limits.kind === 'one_of' ? pref.limits.options : [];
}

// The core sends a value within the limits; the fallbacks only keep the types honest.

export function stringValue(pref: Pref, fallback: string): string {
  return typeof pref.value === 'string' ? pref.value : fallback;
}

export function numberValue(pref: Pref, fallback: number): number {
  return typeof pref.value === 'number' ? pref.value : fallback;
}

export function boolValue(pref: Pref, fallback: boolean): boolean {
  return typeof pref.value === 'boolean' ? pref.value : fallback;
}

/** What Preferences gives the control of each preference. */
export type PrefControl = {
  pref: Pref;
  /** The control's data-testid; its row, scope badge and error add -row, -scope and -error. */
  testid: string;
  label: string;
  saving: boolean;
  /** The core's reason for refusing the last value, if it refused it. */
  error: string | undefined;
  /** Sends a value to the core; true when it took it. */
  save: (value: string | number | boolean) => Promise<boolean>;
};
