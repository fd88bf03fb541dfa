import { defineConfig } from 'vite';

// The UI is served by Tauri from ui/dist (tauri.conf.json `frontendDist`), never from a server.
export default defineConfig({
  clearScreen: false,
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    // WebKitGTK, WebView2 and WKWebView are all recent enough for ES2022.
    target: 'es2022',
    // Keep every asset a file: the CSP allows only 'self' (no data: URLs).
    assetsInlineLimit: 0,
  },
});
