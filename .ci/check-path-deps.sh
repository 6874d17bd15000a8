#!/usr/bin/env bash
# Builds the README's quick start as a new user's crate would, from the README's path dependency
# lines taken verbatim (the TOML block between `<!-- path-deps:start -->` and
# `<!-- path-deps:end -->`) and the quick start's code (the first ```rust block after
# `## Quick start`); then builds and runs the README's first program (its own marked blocks) on
# SQLite, and on MariaDB with the README's two MariaDB lines swapped in. Each crate is laid out as the README says: beside a checkout named
# `taskrow` (here a symlink to this workspace), with a `[workspace]` of its own so that it stands
# alone, and checked with `cargo check --offline` into this workspace's target directory, with
# this workspace's lock file and profiles, so that the dependencies already built are reused.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
readme="$root/README.md"

# The fenced lines between `<!-- $1:start -->` and `<!-- $1:end -->` in the README (every fence
# in between; rustdoc's hidden `# ` lines shown, as rustdoc compiles them).
block() {
    awk -v start="<!-- $1:start -->" -v end="<!-- $1:end -->" '
        $0 == start        { on = 1; next }
        $0 == end          { on = 0 }
        on && /^```/       { fence = !fence; next }
        on && fence        { print }
    ' "$readme" | sed -e 's/^\([[:space:]]*\)# /\1/' -e 's/^\([[:space:]]*\)#$/\1/'
}

deps="$(block path-deps)"
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
# A new user's crate at `$tmp/$1`: `[dependencies]` from $2, `src/main.rs` from $3.
new_crate() {
    local app="$tmp/$1"
    mkdir -p "$app/src"
    cat >"$app/Cargo.toml" <<EOF
[package]
name = "$1"
version = "0.1.0"
edition = "2024"
publish = false

$2

# Not a member of any workspace above it.
[workspace]

# The README's code should compile cleanly as a user's own crate (this crate only).
[lints.rust]
warnings = "deny"

$profiles
EOF
    printf '%s\n' "$3" >"$app/src/main.rs"
    # The workspace's versions of the shared dependencies (cargo drops what this crate does not use).
    cp "$root/Cargo.lock" "$app/Cargo.lock"
}

echo "check-path-deps: the README's path lines:"
sed 's/^/    /' <<<"$deps"
new_crate my-app "$deps" "$code"
(cd "$tmp/my-app" && CARGO_TARGET_DIR="$target" cargo check --offline)
echo "check-path-deps: the README's quick start builds from its path lines"

# The first program: built and run as the README gives it (SQLite), then with the README's two
# lines for MariaDB swapped in, against a database of its own on the test server.
first_deps="$(block first-program-deps)"
first_code="$(block first-program)"
swap="$(block first-program-mysql)"
mysql_dep="$(grep '^taskrow-mysql' <<<"$swap" || true)"
mysql_connect="$(grep 'taskrow_mysql::connect_and_migrate' <<<"$swap" || true)"
if [ -z "$first_code" ] || [ -z "$mysql_dep" ] || [ -z "$mysql_connect" ]; then
    echo "check-path-deps: the first program or its MariaDB lines are missing from README.md" >&2
    exit 1
fi

# Runs the crate $1 with DATABASE_URL=$2 and checks that each task ended as the README says.
run_first() {
    local out
    out="$(cd "$tmp/$1" && DATABASE_URL="$2" CARGO_TARGET_DIR="$target" cargo run --offline --quiet)"
    printf '%s\n' "$out" | sed "s/^/    [$1] /"
    for want in "shipment: succeeded" "attempt 1: retrying carrier busy" \
        "invoice: failed: no tax rate for DE" "invoice after the fix and a reset: succeeded" \
        "attempt 1: succeeded"; do
        if ! grep -qF "$want" <<<"$out"; then
            echo "check-path-deps: $1 did not print \"$want\"" >&2
            exit 1
        fi
    done
}

new_crate first-sqlite "$first_deps" "$first_code"
run_first first-sqlite "sqlite://$tmp/first.db?mode=rwc"
echo "check-path-deps: the README's first program runs on SQLite"

mysql_url="${TASKROW_MYSQL_URL:-}"
if [ -z "$mysql_url" ]; then
    if [ "${CI:-}" = true ]; then
        echo "check-path-deps: TASKROW_MYSQL_URL is not set: the first program cannot run on MariaDB" >&2
        exit 1
    fi
    echo "check-path-deps: skipped the first program on MariaDB: TASKROW_MYSQL_URL not set"
    exit 0
fi
db="taskrow_test_first_program_$$"
first_mysql_deps="$(sed "s|^taskrow-sqlite = .*|$mysql_dep|" <<<"$first_deps")"
first_mysql_code="$(awk -v line="$mysql_connect" '/taskrow_sqlite::connect_and_migrate/ { print line; next } { print }' <<<"$first_code")"
new_crate first-mysql "$first_mysql_deps" "$first_mysql_code"
mysql --user=root --host=127.0.0.1 -e "CREATE DATABASE \`$db\`"
run_first first-mysql "${mysql_url%/}/$db"
mysql --user=root --host=127.0.0.1 -e "DROP DATABASE \`$db\`"
echo "check-path-deps: the README's first program runs on MariaDB with the README's two lines swapped in"
