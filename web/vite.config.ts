// Vite build for the Fusion web UI.  The output (web/dist) is embedded into
// the C binary by tools/embed.c, so it must be self-contained: no CDNs, no
// web fonts, content-hashed files under assets/ (served as immutable).
//
//   npm run build:web      -> web/dist
//   npm run typecheck:web  -> tsc --noEmit
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';
import react from '@vitejs/plugin-react';
import tailwindcss from '@tailwindcss/vite';

const root = fileURLToPath(new URL('.', import.meta.url));

export default defineConfig({
  root,
  base: '/',
  publicDir: false,
  plugins: [react(), tailwindcss()],
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    assetsDir: 'assets',
    // Everything is served from the binary; small assets stay inline.
    assetsInlineLimit: 4096,
    // No dynamic imports, so the modulepreload polyfill is dead weight.
    modulePreload: { polyfill: false },
    sourcemap: false,
    reportCompressedSize: false,
    chunkSizeWarningLimit: 250,
    rolldownOptions: {
      output: {
        entryFileNames: 'assets/[name]-[hash].js',
        chunkFileNames: 'assets/[name]-[hash].js',
        assetFileNames: 'assets/[name]-[hash][extname]',
      },
    },
  },
});
