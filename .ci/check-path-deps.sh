#!/usr/bin/env bash
# Builds the README's quick start as a new user's crate would, from the README's path dependency
# lines taken verbatim (the TOML block between `<!-- path-deps:start -->` and
# `<!-- path-deps:end -->`) and the quick start's code (the first ```rust block after
# `## Quick start`). The crate is laid out as the README says: beside a checkout named
# `taskrow` (here a symlink to this workspace), with a `[workspace]` of its own so that it stands
# alone, and checked with `cargo check --offline` into this workspace's target directory, with
# this workspace's lock file and profiles, so that the dependencies already built are reused.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
readme="$root/README.md"

deps="$(awk '
    /<!-- path-deps:start -->/ { on = 1; next }
    /<!-- path-deps:end -->/   { on = 0 }
    on && /^```/               { fence = !fence; next }
    on && fence                { print }
' "$readme")"
if ! grep -q '^\[dependencies\]' <<<"$deps" || ! grep -q 'path = "\.\./taskrow/' <<<"$deps"; then
    echo "check-path-deps: no [dependencies] block with path lines between the path-deps markers in README.md" >&2
    exit 1
fi

# The quick start's code, with rustdoc's hidden lines (`# …`) shown, as rustdoc compiles them.
code="$(awk '
    /^## Quick start/     { on = 1; next }
    on && /^## /          { exit }
    on && !inside && /^```rust/ { inside = 1; next }
    inside && /^```/      { exit }
    inside                { print }
' "$readme" | sed -e 's/^\([[:space:]]*\)# /\1/' -e 's/^\([[:space:]]*\)#$/\1/')"
if ! grep -q 'fn main' <<<"$code"; then
    echo "check-path-deps: no \`\`\`rust block with a main function under \"## Quick start\" in README.md" >&2
    exit 1
fi

# The workspace's profiles, so that the shared dependencies' artifacts match.
profiles="$(awk '
    /^\[/ { on = ($0 ~ /^\[profile\./) }
    on    { print }
' "$root/Cargo.toml")"

# A fixed place, so that the path crates' artifacts are found again on the next run.
target="${CARGO_TARGET_DIR:-$root/target}"
tmp="$target/check-path-deps"
rm -rf "$tmp"
mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT
ln -s "$root" "$tmp/taskrow"
app="$tmp/my-app"
mkdir -p "$app/src"
cat >"$app/Cargo.toml" <<EOF
[package]
name = "my-app"
version = "0.1.0"
edition = "2024"
publish = false

$deps

# Not a member of any workspace above it.
[workspace]

# The quick start should compile cleanly as a user's own crate (this crate only).
[lints.rust]
warnings = "deny"

$profiles
EOF
printf '%s\n' "$code" >"$app/src/main.rs"
# The workspace's versions of the shared dependencies (cargo drops what this crate does not use).
cp "$root/Cargo.lock" "$app/Cargo.lock"

echo "check-path-deps: the README's path lines:"
sed 's/^/    /' <<<"$deps"
cd "$app"
CARGO_TARGET_DIR="$target" cargo check --offline
echo "check-path-deps: the README's quick start builds from its path lines"
