# syntax=docker/dockerfile:1.7
#
# Beaker's images, one file, named targets:
#
#   docker build --target runtime -t beaker .   the service (the default: last stage)
#   docker build --target debug   -t beaker:debug .   the same with symbols, gdb, strace, perf
#   docker build --target dev     -t beaker:dev .     the toolchain and tools (the devcontainer)
#
# Layers, cheapest to invalidate last:
#   toolchain   Rust, pinned, with the wasm32-wasip2 target
#   deps        every dependency compiled from the manifests alone (stub sources)
#   build       `make build` on the real sources: the host and the rules
#   runtime     a slim Debian with the binary, the rules, schemas, migrations
#
# Correct by construction: the only build commands are `make build` and the two
# cargo commands it runs (`make host`, `make rules`), the same ones CI runs
# before `make test`. `scripts/check-deploy.sh` checks that they still match
# the Makefile and that every workspace member's manifest is copied below.

ARG RUST_IMAGE=rust:1.95.0-bookworm
ARG GO_IMAGE=golang:1.26-bookworm
# Slim Debian of the same release as the build image, so the binary finds the
# glibc it was linked against. Rebuilding the image picks up Debian security
# updates.
ARG RUNTIME_IMAGE=debian:bookworm-slim

# ---------------------------------------------------------------- toolchain --
FROM ${RUST_IMAGE} AS toolchain
# rust-toolchain.toml says "stable"; use the toolchain this image ships
# instead of letting rustup download whatever stable is today.
ENV RUSTUP_TOOLCHAIN=1.95.0 \
    CARGO_TERM_COLOR=never
RUN rustup target add wasm32-wasip2
WORKDIR /src

# --------------------------------------------------------------------- deps --
# Only the manifests: this layer is rebuilt when a dependency changes, not
# when our code does (wasmtime alone takes ~13 minutes on 2 cores).
FROM toolchain AS deps
COPY Cargo.toml Cargo.lock rust-toolchain.toml ./
COPY host/Cargo.toml host/
COPY guest/Cargo.toml guest/
COPY testkit/Cargo.toml testkit/
COPY tests/Cargo.toml tests/
COPY bench/Cargo.toml bench/
COPY examples/rules-threshold/Cargo.toml examples/rules-threshold/
COPY tests/rules/hostile/Cargo.toml tests/rules/hostile/
COPY tests/rules/broken/Cargo.toml tests/rules/broken/
COPY tests/rules/incompatible/Cargo.toml tests/rules/incompatible/
# Empty crates behind the real manifests; then the commands of `make host` and
# `make rules`; then forget our own (stub) crates so that the next stage
# cannot mistake them for up to date.
RUN mkdir -p host/src guest/src testkit/src tests/tests/e2e bench/src bench/benches examples/rules-threshold/src \
        tests/rules/hostile/src tests/rules/broken/src tests/rules/incompatible/src \
    && echo 'fn main() {}' > host/src/main.rs \
    && echo 'fn main() {}' > bench/src/main.rs \
    && echo 'fn main() {}' > bench/benches/micro.rs \
    && echo 'fn main() {}' > tests/tests/e2e/main.rs \
    && touch host/src/lib.rs guest/src/lib.rs testkit/src/lib.rs examples/rules-threshold/src/lib.rs \
        tests/rules/hostile/src/lib.rs tests/rules/broken/src/lib.rs tests/rules/incompatible/src/lib.rs \
    && cargo build --release --workspace \
    && cargo build --release --target wasm32-wasip2 -p beaker-rules -p beaker-rules-threshold -p beaker-test-rules-hostile -p beaker-test-rules-broken -p beaker-test-rules-incompatible \
    && cargo clean --release -p beaker -p beaker-testkit -p beaker-tests -p beaker-bench -p beaker-rules -p beaker-rules-threshold -p beaker-test-rules-hostile -p beaker-test-rules-broken -p beaker-test-rules-incompatible \
    && cargo clean --release --target wasm32-wasip2 -p beaker-rules -p beaker-rules-threshold -p beaker-test-rules-hostile -p beaker-test-rules-broken -p beaker-test-rules-incompatible \
    && rm -rf host/src guest/src testkit/src tests/tests bench/src bench/benches examples/rules-threshold/src tests/rules/*/src

# -------------------------------------------------------------------- build --
FROM deps AS build
COPY . .
RUN make build

# The shipped binary without its DWARF line tables (they stay in `debug`);
# function names remain, so a panic's backtrace still reads.
FROM build AS artifacts
RUN mkdir -p /out \
    && strip --strip-debug -o /out/beaker target/release/beaker \
    && cp target/wasm32-wasip2/release/beaker_rules.wasm /out/beaker_rules.wasm

# ----------------------------------------------------------------- natscli --
# The `nats` CLI for the dev image, built from source (a static Go binary).
FROM ${GO_IMAGE} AS natscli
ARG NATSCLI_VERSION=v0.5.1
RUN CGO_ENABLED=0 go install "github.com/nats-io/natscli/nats@${NATSCLI_VERSION}"

# ---------------------------------------------------------------------- dev --
# The devcontainer's image: the toolchain, the tools `make` uses, debuggers,
# profilers and the NATS/Postgres clients. The source is mounted, not copied.
FROM toolchain AS dev
ARG DEV_UID=1000
# Debian's archive serves one version per package in a release: pinning one
# (DL3008) would break the build at the next point release.
# hadolint ignore=DL3008
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        gdb \
        inotify-tools \
        jq \
        less \
        linux-perf \
        lldb \
        nats-server \
        postgresql-client \
        shellcheck \
        strace \
        sudo \
    && rm -rf /var/lib/apt/lists/*
RUN rustup component add rustfmt clippy rust-src \
    && cargo install --locked cargo-nextest@0.9.143 inferno@0.12.8 cargo-deny@0.20.2 \
    && rm -rf "${CARGO_HOME}/registry" "${CARGO_HOME}/git"
COPY --from=natscli /go/bin/nats /usr/local/bin/nats
# A non-root user who owns the toolchain (cargo writes its registry cache
# there) and may use sudo for one-off apt installs.
RUN useradd --create-home --uid "${DEV_UID}" --shell /bin/bash "dev" \
    && echo "dev ALL=(root) NOPASSWD:ALL" > "/etc/sudoers.d/dev" \
    && chmod 0440 "/etc/sudoers.d/dev" \
    && chown -R "dev:dev" "${CARGO_HOME}" "${RUSTUP_HOME}"
USER ${DEV_UID}
WORKDIR /workspaces/beaker
CMD ["sleep", "infinity"]

# -------------------------------------------------------------------- debug --
# The runtime plus what a person needs to look inside a running service:
# the unstripped binary (file and line for every frame), gdb, strace, perf.
FROM ${RUNTIME_IMAGE} AS debug
# hadolint ignore=DL3008
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        ca-certificates \
        gdb \
        linux-perf \
        procps \
        strace \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --home-dir /nonexistent --shell /usr/sbin/nologin beaker
COPY --from=build /src/target/release/beaker /usr/local/bin/beaker
COPY --from=artifacts /out/beaker_rules.wasm /usr/share/beaker/rules/beaker_rules.wasm
COPY schemas/ /usr/share/beaker/schemas/
COPY migrations/ /usr/share/beaker/migrations/
COPY docker/beaker-healthcheck /usr/local/bin/
ENV BEAKER_RULES=/usr/share/beaker/rules/beaker_rules.wasm \
    BEAKER_METRICS_ADDR=0.0.0.0:9464 \
    RUST_BACKTRACE=1
USER 10001:10001
EXPOSE 9464
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 CMD ["beaker-healthcheck"]
ENTRYPOINT ["beaker"]
CMD ["serve"]

# ------------------------------------------------------------------ runtime --
# The service. Nothing listens for callers: requests arrive over the NATS
# connection the service opens. 9464 is for metrics and health (Prometheus).
FROM ${RUNTIME_IMAGE} AS runtime
# ca-certificates: TLS to NATS (rustls reads the system roots).
# hadolint ignore=DL3008
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --home-dir /nonexistent --shell /usr/sbin/nologin beaker
COPY --from=artifacts /out/beaker /usr/local/bin/beaker
COPY --from=artifacts /out/beaker_rules.wasm /usr/share/beaker/rules/beaker_rules.wasm
COPY schemas/ /usr/share/beaker/schemas/
COPY migrations/ /usr/share/beaker/migrations/
COPY docker/beaker-healthcheck /usr/local/bin/
ENV BEAKER_RULES=/usr/share/beaker/rules/beaker_rules.wasm \
    BEAKER_METRICS_ADDR=0.0.0.0:9464
USER 10001:10001
EXPOSE 9464
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 CMD ["beaker-healthcheck"]
ENTRYPOINT ["beaker"]
CMD ["serve"]
