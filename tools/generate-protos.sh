#!/usr/bin/env bash
# Regenerates Sources/TensorBoard/tensorboard.pb.swift from tensorboard.proto. Run it after
# changing the .proto and commit both: builds and CI use the committed Swift and need no protoc.
# Needs protoc (Debian: protobuf-compiler) and builds protoc-gen-swift from the swift-protobuf
# version Package.swift resolves, so the generated code matches the runtime it links against
# (the plugin takes minutes to build the first time; it is kept in .build-protoc-gen-swift).
set -euo pipefail
cd "$(dirname "$0")/.."

command -v protoc >/dev/null || { echo "generate-protos.sh: protoc not found (apt-get install protobuf-compiler)" >&2; exit 1; }
swift package resolve --scratch-path .build
checkout=.build/checkouts/swift-protobuf
[ -d "$checkout" ] || { echo "generate-protos.sh: $checkout missing after swift package resolve" >&2; exit 1; }

# A copy, so building the plugin writes nothing into the checkout SwiftPM owns.
plugin_build=$PWD/.build-protoc-gen-swift
mkdir -p "$plugin_build"
rm -rf "$plugin_build/src"
cp -a "$checkout" "$plugin_build/src"
swift build --package-path "$plugin_build/src" --scratch-path "$plugin_build/build" --product protoc-gen-swift
plugin=$plugin_build/build/debug/protoc-gen-swift

protoc --plugin=protoc-gen-swift="$plugin" --proto_path=Sources/TensorBoard \
    --swift_opt=Visibility=Public --swift_out=Sources/TensorBoard Sources/TensorBoard/tensorboard.proto
echo "wrote Sources/TensorBoard/tensorboard.pb.swift"
