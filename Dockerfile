# One image with all three binaries and the partner portal; docker-compose picks the command.
# The portal (web/) is built from its locked dependencies by Node.js; portal-api serves it at /.
FROM node:22-bookworm-slim AS web
WORKDIR /web
COPY web/package.json web/package-lock.json ./
RUN PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error
COPY web ./
RUN npm run build

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bins

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/portal-api /src/target/release/portal-worker /src/target/release/portal-admin /usr/local/bin/
COPY migrations /app/migrations
COPY clickhouse /app/clickhouse
COPY demo /app/demo
COPY --from=web /web/dist /app/web
WORKDIR /app
ENV PORTAL_BIND=0.0.0.0:8080 LOG_FORMAT=json WEB_DIR=/app/web
EXPOSE 8080
CMD ["portal-api"]
