import { svelte } from '@sveltejs/vite-plugin-svelte';
import { defineConfig } from 'vitest/config';

// The UI is served by Tauri from ui/dist (tauri.conf.json `frontendDist`), never from a server.
export default defineConfig({
  plugins: [svelte()],
  clearScreen: false,
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    // WebKitGTK, WebView2 and WKWebView are all recent enough for ES2022.
    target: 'es2022',
    // Keep every asset a file: the CSP allows only 'self' (no data: URLs).
    assetsInlineLimit: 0,
  },
  // Component tests run in jsdom with Svelte's browser build; Tauri's IPC is replaced per test
  // with @tauri-apps/api/mocks (the only thing that cannot run outside the real window).
  resolve: process.env.VITEST ? { conditions: ['browser'] } : undefined,
  test: {
    environment: 'jsdom',
    include: ['src/**/*.test.ts'],
    setupFiles: ['src/test-setup.ts'],
  },
});
