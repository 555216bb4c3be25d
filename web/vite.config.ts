import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";

// The portal is served by portal-api from web/dist: hashed file names under /assets (cached for a
// year), index.html for every client-side path. `npm run dev` proxies the API to a running
// portal-api (scripts/run.sh) on 127.0.0.1:8080.
const api = "http://127.0.0.1:8080";
export default defineConfig({
  plugins: [react()],
  build: { outDir: "dist", assetsDir: "assets", sourcemap: false },
  server: {
    proxy: Object.fromEntries(
      ["/partner-auth", "/partner", "/auth", "/app", "/classes", "/products", "/openapi.json"].map(
        (p) => [p, api],
      ),
    ),
  },
});
