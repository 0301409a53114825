#!/usr/bin/env bash
# Builds the Debian package `tandem` from the dev-profile binaries (the ones the test suite
# builds: nothing is compiled again when they are fresh), with cargo-deb.
#
#   packaging/build-deb.sh [OUTPUT_DIR]      (default: target/debian)
#
# Man pages (tandemd --manpage, tandemctl manpages DIR) and completions (tandemctl
# completions bash|zsh|fish) are generated from the built binaries into
# target/debug/deb-gen/ (cargo-deb's `target/release/` in Cargo.toml names the profile's
# directory). Runs serialized by a lock in the target directory, so concurrent builds do not
# mix their generated files. Needs cargo-deb: cargo install --locked cargo-deb.
# TANDEM_DEB_PREBUILT=1 packages the binaries as they are, without `cargo build` (the package
# test sets it: the test suite has built them with the whole workspace's features, and a
# `cargo build -p` of three packages would build them again with other features).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
target=${CARGO_TARGET_DIR:-$root/target}
bin=$target/debug
gen=$bin/deb-gen
# The tandemctl that generates man pages and completions (the packaged one is always $bin's).
ctl=${TANDEMCTL:-$bin/tandemctl}
out=${1:-$target/debian}

fail() {
  echo "build-deb: $*" >&2
  exit 1
}

command -v cargo-deb >/dev/null || fail "cargo-deb is not installed: cargo install --locked cargo-deb"
mkdir -p "$bin" "$out"
exec 9>"$target/build-deb.lock"
flock 9

# A no-op when the test suite built them already.
if [ "${TANDEM_DEB_PREBUILT:-0}" = 1 ]; then
  for b in tandemd tandemctl tandem-gwm; do
    [ -x "$bin/$b" ] || fail "TANDEM_DEB_PREBUILT=1 but $bin/$b is not built (cargo build --workspace)"
  done
else
  cargo build --quiet -p tandemd -p tandemctl -p tandem-gwm
fi

rm -rf "$gen"
mkdir -p "$gen/man1" "$gen/man8" "$gen/completions"
"$bin/tandemd" --manpage >"$gen/man8/tandemd.8" || fail "tandemd --manpage failed"
"$ctl" manpages "$gen/man1" ||
  fail "'tandemctl manpages DIR' failed: the cli branch (tandemctl completions/manpages) is not merged?"
[ -s "$gen/man1/tandemctl.1" ] || fail "tandemctl manpages wrote no tandemctl.1 into $gen/man1"
for sh in bash zsh fish; do
  case $sh in
    bash) file=tandemctl ;;
    zsh) file=_tandemctl ;;
    fish) file=tandemctl.fish ;;
  esac
  "$ctl" completions "$sh" >"$gen/completions/$file" ||
    fail "'tandemctl completions $sh' failed: the cli branch is not merged?"
  [ -s "$gen/completions/$file" ] || fail "tandemctl completions $sh printed nothing"
done
# Debian installs man pages compressed.
gzip -9n "$gen"/man1/*.1 "$gen"/man8/*.8

# Dev profile, already built; stripped (the debug info would triple the package and the time
# to compress it; the package is for tests and labs, build a
# release package with: cargo deb -p tandemd after the same generation steps).
cargo deb -p tandemd --profile dev --no-build --strip --no-dbgsym --fast --quiet -o "$out"
