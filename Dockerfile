# syntax=docker/dockerfile:1
#
# kube-incident: both binaries (the operator `kube-incident` and the
# `kubectl-incident` plugin) built in release mode, on a distroless non-root
# runtime with no shell.
#
#   docker build -t kube-incident:dev .
#   docker run --rm kube-incident:dev --help

ARG RUST_VERSION=1.95

FROM docker.io/library/rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
# The workspace's other members must be present for cargo to load the
# workspace. `crates/rollout` is a dependency of the operator; the emulator
# and the test kit are not built: `-p kube-incident` without the `demo`
# feature leaves the emulator out of both binaries.
COPY crates ./crates
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p kube-incident --bins \
 && mkdir -p /out \
 && cp target/release/kube-incident target/release/kubectl-incident /out/

# glibc and libgcc (Rust's std needs them), CA certificates, /etc/passwd
# with the nonroot user (65532); no shell, no package manager.
FROM gcr.io/distroless/cc-debian12:nonroot
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="kube-incident" \
      org.opencontainers.image.description="The first responder of a Kubernetes cluster: detects trouble, opens Incidents, runs approved mitigations." \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.vendor="kube-incident" \
      org.opencontainers.image.documentation="README.md"
COPY --from=build /out/kube-incident /out/kubectl-incident /usr/local/bin/
# A fixed glibc mmap threshold: large transient buffers (watch list pages,
# a growing pod map's old table) go back to the system instead of being
# pinned in the heap by long-lived pod views. Measured with the release
# binary at 10k pods: steady RSS 52.1 -> 42.5 MiB (docs/benchmarks.md,
# "Memory: where the 10k RSS goes").
ENV MALLOC_MMAP_THRESHOLD_=131072
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/kube-incident"]
CMD ["run"]
