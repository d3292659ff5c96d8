#!/usr/bin/env bash
# Regenerates crates/emulator/src/k8s-api.binpb: the protobuf descriptors (a
# FileDescriptorSet, no source info) of the stable built-in Kubernetes API
# groups, which crates/emulator/src/protobuf.rs uses to decode
# `application/vnd.kubernetes.protobuf` request bodies.
#
# The .proto files are Kubernetes' own go-to-protobuf output (generated.proto,
# Apache-2.0) as vendored by the k8s-rs-pb crate (src/v1_35: Kubernetes 1.35),
# with packages shortened the way k8s-pb does it (`k8s.io.api.apps.v1` ->
# `api.apps.v1`). Needs protoc (Debian: protobuf-compiler) and that crate's
# source, which `cargo info k8s-rs-pb@0.5.0` downloads and unpacks into the
# cargo registry.
set -euo pipefail
cd "$(dirname "$0")/../.."
out="$PWD/crates/emulator/src/k8s-api.binpb"
src=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/k8s-rs-pb-0.5.0/src/v1_35 2>/dev/null | head -1)
if [ -z "$src" ]; then
  cargo info k8s-rs-pb@0.5.0 >/dev/null
  src=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/k8s-rs-pb-0.5.0/src/v1_35 | head -1)
fi
cd "$src"
# Stable versions only (v1, v2): what kubectl's typed commands send.
mapfile -t files < <(find api -name generated.proto | grep -E '/v[0-9]+/generated.proto$' | sort)
protoc -I. --include_imports -o "$out" "${files[@]}" 2>/dev/null
echo "wrote $out ($(wc -c <"$out") bytes, ${#files[@]} API group versions)"
