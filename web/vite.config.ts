import { defineConfig } from "vite";

// `npm run dev` serves the app on :5173 with hot reload; the dev token path
// lives on the gateway's HTTP port, so it is proxied there. `npm run build`
// writes dist/, which the gateway serves on :8081.
export default defineConfig({
  server: {
    proxy: { "/dev": "http://127.0.0.1:8081" },
  },
  build: {
    target: "es2022",
    chunkSizeWarningLimit: 700,
  },
});
