# One image with all three binaries; docker-compose picks the command.
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
WORKDIR /app
ENV PORTAL_BIND=0.0.0.0:8080 LOG_FORMAT=json
EXPOSE 8080
CMD ["portal-api"]
