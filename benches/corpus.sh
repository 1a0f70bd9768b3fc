#!/usr/bin/env bash
# Builds the benchmark corpus of real contents into DIR (default target/corpus), from what a
# Debian machine has, each a raw disk image:
#   usr.img     ext4 (mkfs.ext4 -d, no mount) holding /usr/lib/x86_64-linux-gnu, /usr/share and
#               /usr/include: binaries, libraries, text, compressed docs
#   text.img    ext4 of text: /usr/share/doc, /usr/include, /usr/share/perl*, python sources,
#               and system logs (journalctl, dpkg.log) when readable
#   db.img      a SQLite database of ~300 MB (rows of text and numbers)
#   random.img  512 MiB from /dev/urandom (incompressible)
#   empty.img   a fresh 2 GiB ext4 (mostly empty)
# Images are built once; delete one to rebuild it.
set -euo pipefail
dir=${1:-$(cd "$(dirname "$0")/.." && pwd)/target/corpus}
mkdir -p "$dir"
cd "$dir"

need() { command -v "$1" >/dev/null || { echo "corpus: $1 is needed (apt-get install $2)" >&2; exit 1; }; }
need mkfs.ext4 e2fsprogs
need sqlite3 sqlite3

# An ext4 image of the folder $2, sized to its contents plus a quarter.
ext4_of() {
    local img=$1 src=$2
    local kib
    kib=$(du -sk "$src" | cut -f1)
    local size=$(( (kib * 5 / 4 + 65536) / 1024 ))M
    mkfs.ext4 -q -F -d "$src" -L corpus "$img" "$size" >/dev/null
}

if [ ! -f usr.img ]; then
    stage=$(mktemp -d)
    mkdir -p "$stage/lib" "$stage/share"
    cp -a /usr/lib/x86_64-linux-gnu "$stage/lib/" 2>/dev/null || true
    cp -a /usr/share/. "$stage/share/" 2>/dev/null || true
    cp -a /usr/include "$stage/" 2>/dev/null || true
    ext4_of usr.img "$stage"
    rm -rf "$stage"
fi

if [ ! -f text.img ]; then
    stage=$(mktemp -d)
    cp -a /usr/share/doc "$stage/" 2>/dev/null || true
    cp -a /usr/include "$stage/" 2>/dev/null || true
    cp -a /usr/share/perl* "$stage/" 2>/dev/null || true
    cp -a /usr/lib/python3* "$stage/" 2>/dev/null || true
    find "$stage" -name '*.gz' -delete
    mkdir -p "$stage/logs"
    cp -a /var/log/dpkg.log* /var/log/apt "$stage/logs/" 2>/dev/null || true
    journalctl --no-pager -o verbose > "$stage/logs/journal.txt" 2>/dev/null || true
    ext4_of text.img "$stage"
    rm -rf "$stage"
fi

if [ ! -f db.img ]; then
    rm -f db.sqlite
    sqlite3 db.sqlite <<'SQL'
PRAGMA page_size = 4096;
CREATE TABLE events(id INTEGER PRIMARY KEY, at INTEGER, host TEXT, level TEXT, message TEXT, value REAL);
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2500000)
INSERT INTO events(at, host, level, message, value)
SELECT 1700000000 + i * 7,
       'host-' || (i % 97),
       CASE i % 5 WHEN 0 THEN 'error' WHEN 1 THEN 'warn' ELSE 'info' END,
       'request ' || hex(randomblob(6)) || ' took ' || (abs(random()) % 5000) || ' ms on /api/v' || (i % 3) || '/items/' || (i % 1000),
       abs(random() % 100000) / 100.0
FROM n;
CREATE INDEX events_at ON events(at);
CREATE INDEX events_host ON events(host, level);
SQL
    # A whole number of 64 KiB grains.
    len=$(stat -c %s db.sqlite)
    truncate -s $(( (len + 65535) / 65536 * 65536 )) db.sqlite
    mv db.sqlite db.img
fi

[ -f random.img ] || head -c 512M /dev/urandom > random.img
[ -f empty.img ] || mkfs.ext4 -q -F -L empty empty.img 2G >/dev/null

ls -l "$dir"/*.img
