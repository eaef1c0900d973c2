#!/bin/bash
# Rebuilds the real-package test layers in this directory (see
# PROVENANCE.md). Needs a Debian 12 machine with apt sources, npm with
# the npm registry, and git copies of the sources named there. Run from
# this directory; inputs are downloaded to $WORK (default ../../../.cache).
set -euo pipefail
WORK=${WORK:-../../../.cache}
HERE=$(pwd)
mkdir -p "$WORK/debs" "$WORK/npm"

# Layer 1, debian-base: a Debian 12 root's os-release and a dpkg status
# holding some of this machine's real records (as dpkg wrote them).
rm -rf debian-base debian-python npm-app whiteouts alpine-3.14
mkdir -p debian-base/etc debian-base/usr/lib debian-base/var/lib/dpkg
cp /usr/lib/os-release debian-base/usr/lib/os-release
ln -s ../usr/lib/os-release debian-base/etc/os-release
BASE="base-files bash coreutils dpkg libc6 libssl3 openssl zlib1g tar gzip sed grep perl-base libgnutls30 ncurses-base"
python3 - "$BASE" >debian-base/var/lib/dpkg/status <<'PY'
import sys
want = set(sys.argv[1].split())
paras = open("/var/lib/dpkg/status", encoding="utf-8").read().split("\n\n")
out = [p for p in paras if p.split("\n", 1)[0].split(": ", 1)[-1] in want]
sys.stdout.write("\n\n".join(out).rstrip("\n") + "\n\n")
PY

# Layer 2, debian-python: apt-get install of Debian's python3-* packages:
# the status gains their records, dpkg's info/*.list files, and the
# packages' metadata files (the Python code itself is left out).
(cd "$WORK/debs" && apt-get download python3-urllib3 python3-requests python3-jinja2 python3-idna python3-certifi python3-packaging)
mkdir -p debian-python/var/lib/dpkg/info
cp debian-base/var/lib/dpkg/status debian-python/var/lib/dpkg/status
for deb in "$WORK"/debs/python3-*.deb; do
  pkg=$(dpkg-deb -f "$deb" Package)
  dpkg-deb -f "$deb" | python3 -c '
import sys
lines = sys.stdin.read().rstrip("\n").split("\n")
lines.insert(1, "Status: install ok installed")
sys.stdout.write("\n".join(lines) + "\n\n")' >>debian-python/var/lib/dpkg/status
  { echo "/."; dpkg-deb -c "$deb" | awk '{print $6}' | sed -e 's|^\./|/|' -e 's|/$||' | grep -v '^/$' | grep -v '^$'; } \
    >"debian-python/var/lib/dpkg/info/$pkg.list"
  dpkg-deb --fsys-tarfile "$deb" >"$WORK/data.tar"
  tar -tf "$WORK/data.tar" | grep -E '\.egg-info/PKG-INFO$|\.dist-info/METADATA$' | xargs tar -xf "$WORK/data.tar" -C debian-python
done

# Layer 3, npm-app: packages at known versions as npm installs them
# (node_modules/NAME/package.json from npm pack), and a package-lock.json
# (lockfileVersion 3) of an application that is not installed.
mkdir -p npm-app/app/node_modules npm-app/app2/node_modules npm-app/lockapp
for p in lodash@4.17.20 lodash.trim@4.5.1 express@4.19.1 qs@6.5.2 minimist@1.2.5 semver@7.5.2 cookie@0.6.0 \
         path-to-regexp@0.1.7 chalk@5.6.0 @babel/traverse@7.23.0 express@5.0.0-beta.1; do
  tgz=$(cd "$WORK/npm" && npm pack --silent "$p" | tail -1)
  name=${p%@*}
  dest=npm-app/app/node_modules/$name
  [ "$p" = express@5.0.0-beta.1 ] && dest=npm-app/app2/node_modules/express
  mkdir -p "$dest"
  tar -xzf "$WORK/npm/$tgz" -C "$dest" --strip-components=1 package/package.json
done
mkdir -p "$WORK/lockapp"
cat >"$WORK/lockapp/package.json" <<'JSON'
{
  "name": "lockapp",
  "version": "1.0.0",
  "private": true,
  "dependencies": {
    "body-parser": "1.20.2",
    "send": "0.18.0",
    "serve-static": "1.15.0"
  }
}
JSON
(cd "$WORK/lockapp" && rm -f package-lock.json && npm install --package-lock-only --ignore-scripts --silent)
cp "$WORK/lockapp/package.json" "$WORK/lockapp/package-lock.json" npm-app/lockapp/

# Layer 4, whiteouts: apt-get remove python3-idna, rm -rf
# app/node_modules/qs, and app2/node_modules replaced by an empty
# directory (opaque), as a container build writes them.
mkdir -p whiteouts/var/lib/dpkg/info whiteouts/usr/lib/python3/dist-packages whiteouts/app/node_modules whiteouts/app2/node_modules
python3 - <<'PY'
paras = open("debian-python/var/lib/dpkg/status", encoding="utf-8").read().rstrip("\n").split("\n\n")
keep = [p for p in paras if not p.startswith("Package: python3-idna\n")]
open("whiteouts/var/lib/dpkg/status", "w", encoding="utf-8").write("\n\n".join(keep) + "\n\n")
PY
touch whiteouts/var/lib/dpkg/info/.wh.python3-idna.list whiteouts/usr/lib/python3/dist-packages/.wh.idna-3.3.egg-info \
  whiteouts/app/node_modules/.wh.qs whiteouts/app2/node_modules/.wh..wh..opq

# alpine-3.14: a real Alpine 3.14 minirootfs's package database and
# os-release, from git (see PROVENANCE.md).
mkdir -p alpine-3.14/etc alpine-3.14/lib/apk/db
git -C "${ALPINE_REPO:?set ALPINE_REPO to a clone of hizlbuzz/alpine-minirootfs-v3.14}" show 485d1959659a97344e51f16c9f2266187d15cb77:etc/os-release >alpine-3.14/etc/os-release
git -C "$ALPINE_REPO" show 485d1959659a97344e51f16c9f2266187d15cb77:lib/apk/db/installed >alpine-3.14/lib/apk/db/installed
