// Runs before every component test file.
import { clearMocks } from '@tauri-apps/api/mocks';
import { afterEach } from 'vitest';
import { cleanup } from '@testing-library/svelte';

// jsdom has no layout: CodeMirror (the editor, the merge view) measures text through ranges.
Range.prototype.getClientRects ??= () => Object.assign([], { item: () => null }) as unknown as DOMRectList;
Range.prototype.getBoundingClientRect ??= () => new DOMRect(0, 0, 0, 0);

// Nor does it observe sizes: the note list asks to be told when its height changes.
globalThis.ResizeObserver ??= class {
  observe() {}
  unobserve() {}
  disconnect() {}
};

afterEach(async () => {
  cleanup();
  // Unmounting unsubscribes from events a moment later (App's unlisten promises): let that
  // happen while the fake event bus is still there.
  await new Promise((resolve) => setTimeout(resolve, 0));
  clearMocks();
});
