# The `users` service as a container image.
#
#   DOCKER_BUILDKIT=1 docker build -t users .
#   docker run --rm -p 8000:8000 -v users-data:/data users
#
# The build needs BuildKit (the RUN --mount caches below): Docker 23 and later use it by
# default; Docker 20.10 (Debian 12's docker.io) needs DOCKER_BUILDKIT=1, and Compose v1
# (docker-compose) COMPOSE_DOCKER_CLI_BUILD=1 as well. It pulls no image but the two
# base images named below: there is no `# syntax=` line, so the Dockerfile frontend
# built into the engine reads this file instead of one fetched from a registry.
#
# Crates: downloaded from crates.io inside the build. If the build context has a folder
# vendor/ (`cargo vendor --locked vendor`, on a machine that reaches crates.io), they
# are read from it instead, and the build needs no network at all; the stack test
# (tests/stack, docs/compose.md) builds that way.
#
# With no configuration it serves on 0.0.0.0:8000 from a SQLite file in /data and
# writes mail as .eml files into /data/mail; mount a volume on /data to keep them.
# Configure it with the environment variables listed in .env.example (each may also be
# given as NAME_FILE, e.g. JWT_SECRET_FILE=/run/secrets/jwt_secret). Set PUBLIC_URL
# to the address clients use: its default, http://<BIND_ADDR>, is not reachable from
# outside. docker-compose.yml runs it with PostgreSQL and Mailpit.
#
# The first admin:
#   docker run --rm -v users-data:/data users create-user \
#     --email admin@example.com --password '…' --superuser --verified

ARG RUST_VERSION=1.95

# ---- build -----------------------------------------------------------------------
# SQLite, libpq and OpenSSL are compiled from source by cargo features (bundled /
# vendored), and so is AWS-LC (aws-lc-sys, with its C compiler builder: no cmake), which
# signs the asymmetric access tokens; the rust image already has the C toolchain, make
# and perl they need.
FROM rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src

# Only what the build reads: the manifests and lockfile, the crates (sources and
# compiled-in data) and the migrations (embedded at compile time). Tests stay out
# (.dockerignore lets in nothing else, but vendor/ when it is there).
COPY Cargo.toml Cargo.lock ./
COPY crates ./crates
COPY migrations ./migrations

# The registry and the target folder live in BuildKit cache mounts, so a rebuild after
# a source change recompiles only the workspace crates. The binary is copied out of the
# mount (which is not part of the image) in the same step. The build context is mounted
# on /context to look for vendor/ there (a COPY would fail without it).
RUN --mount=type=bind,target=/context \
    --mount=type=cache,id=users-cargo-registry,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,id=users-cargo-git,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,id=users-target,target=/src/target,sharing=locked \
    set -eu; \
    if [ -d /context/vendor ]; then \
      set -- --offline \
        --config 'source.crates-io.replace-with="vendored"' \
        --config 'source.vendored.directory="/context/vendor"'; \
    fi; \
    cargo build --release --locked -p users-server "$@"; \
    install -D -m 0755 target/release/users-server /out/users-server

# ---- runtime ---------------------------------------------------------------------
# Same Debian release as the build stage (glibc). Nothing is installed: the HEALTHCHECK
# is the binary's own `healthcheck` command (no curl), and the CA certificates for
# outgoing TLS (e.g. libpq with sslrootcert=system) are the build stage's bundle.
FROM debian:bookworm-slim AS runtime

# An unprivileged user; /data is its working directory (the default SQLite file
# users.db and the mail/ folder land there). A named volume mounted on /data takes this
# ownership; a bind-mounted host folder must be writable by uid 10001.
RUN groupadd --gid 10001 users-server \
 && useradd --uid 10001 --gid 10001 --home-dir /data --no-create-home \
      --shell /usr/sbin/nologin users \
 && mkdir -p /data \
 && chown 10001:10001 /data \
 && chmod 0750 /data

COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/users-server /usr/local/bin/users-server

LABEL org.opencontainers.image.title="users" \
      org.opencontainers.image.description="User-accounts HTTP service, wire-compatible with fastapi-users" \
      org.opencontainers.image.licenses="MIT"

USER 10001:10001
WORKDIR /data

ENV BIND_ADDR=0.0.0.0:8000 \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
EXPOSE 8000

# /healthz answers 200 while the process serves (it does not touch the database;
# /readyz does); `users-server healthcheck` asks it on BIND_ADDR's port. It is ready
# within a second of starting, so the first check runs 5 s after the start and every
# 5 s after that (Docker 25 and later could check often only while starting, with
# --start-interval; Docker 20.10 refuses that flag).
HEALTHCHECK --interval=5s --timeout=5s --start-period=20s --retries=3 \
  CMD ["users-server", "healthcheck"]

# SIGTERM: /readyz answers 503 for SHUTDOWN_DRAIN_SECONDS (default 5) while requests are
# still served, then requests in flight get up to 10 s and the outbox workers stop, then
# the process exits 0; give `docker stop` more than that (-t 30).
STOPSIGNAL SIGTERM

# No arguments: serve. Arguments are a command, e.g. `create-user --email … --superuser`.
ENTRYPOINT ["users-server"]
