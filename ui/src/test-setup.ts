// Runs before every component test file.
import { clearMocks } from '@tauri-apps/api/mocks';
import { afterEach } from 'vitest';
import { cleanup } from '@testing-library/svelte';

afterEach(() => {
  cleanup();
  clearMocks();
});
