// For the tests of the diagnostics panels only (never imported by the app): outbox entries and
// doctor checks as the core sends them.
import type { Diagnosis, OutboxEntry } from '../../api';

export const NOTE_ID = '0190a3c4-5b6d-7e8f-9a0b-1c2d3e4f5a6b';

export function entry(over: Partial<OutboxEntry>): OutboxEntry {
  return {
    seq: 1,
    mutation_id: '0190a3c4-0000-7000-8000-000000000001',
    mutation_number: 1,
    name: 'note.put',
    schema_version: 1,
    entity: 'note',
    entity_id: NOTE_ID,
    fields: {
      title: { value: 'Pump', stamp: 's1' },
      body: { value: 'text', stamp: 's1' },
    },
    base_version: 3,
    created_ms: Date.now() - 3 * 60_000,
    updated_ms: Date.now() - 3 * 60_000,
    attempts: 2,
    last_error: 'cannot reach the server',
    state: 'queued',
    sent: false,
    ...over,
  };
}

export const QUEUED = entry({});
export const SENT = entry({
  seq: 2,
  mutation_id: '0190a3c4-0000-7000-8000-000000000002',
  entity: 'notebook',
  entity_id: '0190a3c4-5b6d-7e8f-9a0b-bbbbbbbbbbbb',
  name: 'notebook.put',
  fields: { name: { value: 'Work', stamp: 's2' } },
  attempts: 1,
  last_error: null,
  sent: true,
});
export const REFUSED = entry({
  seq: 3,
  mutation_id: '0190a3c4-0000-7000-8000-000000000003',
  fields: { title: { value: '', stamp: 's3' } },
  last_error: 'title must not be empty',
  state: 'failed',
  sent: true,
});

export function diagnosis(over: Partial<Diagnosis> = {}): Diagnosis {
  const counts = { notes: 42, notes_in_trash: 1, notebooks: 3, prefs: 2, attachments: 0 };
  return {
    server_cursor: 10,
    device_cursor: 10,
    server: counts,
    device: counts,
    buckets_differing: 0,
    pending: 0,
    differences: [],
    ...over,
  };
}
