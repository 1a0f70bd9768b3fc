#!/usr/bin/env bash
# What the NBD server's parallel answers and TLS cost or give, side by side in one run, printed as
# ratios (issue 28), each copy synced in its time and checked by sha256 against the source:
# - one connection (`nbdcopy --connections=1`): ours answering its requests on 1 thread, on 4
#   (the default), and qemu-nbd;
# - TLS (nbdcopy's 4 connections, `nbds+unix://`): ours and qemu-nbd with the same certificate,
#   and ours in plain text.
#   benches/nbd-tls.sh [SIZE] [ROUNDS]   the test disk (benches/testdisk.sh) as a
#                                        monolithicSparse and a streamOptimized VMDK, default 2G, 3
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/testdisk.sh
SIZE=${1:-2G}
ROUNDS=${2:-3}
cargo build --release -q -p ovf-disk
BIN=$PWD/target/release/ovf-disk
W=$(mktemp -d "${TMPDIR:-/tmp}/ovf-disk-nbd-tls.XXXXXX")
pids=()
stop() {
    if [ ${#pids[@]} -gt 0 ]; then kill "${pids[@]}" 2>/dev/null || true; wait "${pids[@]}" 2>/dev/null || true; fi
    pids=()
    rm -f "$W"/*.sock
}
trap 'stop; rm -rf "$W"' EXIT
# A CA, the server's certificate (qemu-nbd's folder: ca-cert.pem, server-cert.pem,
# server-key.pem) and libnbd's folder (ca-cert.pem).
mkdir -p "$W/pki" "$W/client"
(
    cd "$W/pki"
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=bench CA" -keyout ca-key.pem -out ca-cert.pem 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout server-key.pem -out req.pem 2>/dev/null
    printf 'basicConstraints=CA:FALSE\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n' > ext.cnf
    openssl x509 -req -in req.pem -CA ca-cert.pem -CAkey ca-key.pem -CAcreateserial -days 2 -extfile ext.cnf -out server-cert.pem 2>/dev/null
)
cp "$W/pki/ca-cert.pem" "$W/client/"
test_disk "$W/src.raw" "$(numfmt --from=iec "$SIZE")"
want=$(sha256sum < "$W/src.raw" | cut -d' ' -f1)
qemu-img convert -f raw -O vmdk -o subformat=monolithicSparse "$W/src.raw" "$W/sparse.vmdk"
qemu-img convert -f raw -O vmdk -o subformat=streamOptimized "$W/src.raw" "$W/stream.vmdk"
rm "$W/src.raw"
now() { date +%s.%N; }
wait_socket() { for _ in $(seq 200); do [ -S "$1" ] && return; sleep 0.05; done; echo "nbd-tls.sh: no $1" >&2; exit 1; }
copy() { # copy URI [nbdcopy options]: seconds of nbdcopy to a file and its sync; checks the bytes
    rm -f "$W/out.raw"; sync
    local s e uri=$1; shift
    s=$(now); nbdcopy "$@" "$uri" "$W/out.raw"; sync -f "$W/out.raw"; e=$(now)
    [ "$(sha256sum < "$W/out.raw" | cut -d' ' -f1)" = "$want" ] || { echo "nbd-tls.sh: $uri read other bytes" >&2; exit 1; }
    echo "$e - $s" | bc
}
ratio() { echo "scale=2; $1 / $2" | bc; }
tls=(--tls-cert "$W/pki/server-cert.pem" --tls-key "$W/pki/server-key.pem")
qtls=(--object "tls-creds-x509,id=tls0,endpoint=server,verify-peer=off,dir=$W/pki" --tls-creds tls0)
echo "nbd-tls.sh: $SIZE test disk, $ROUNDS rounds, $(nproc) cores, $(date -u +%FT%TZ)"
for src in sparse stream; do
    "$BIN" serve --nbd "unix:$W/t1.sock" --threads-per-connection 1 "$W/$src.vmdk" 2>/dev/null & pids+=($!)
    "$BIN" serve --nbd "unix:$W/t4.sock" "$W/$src.vmdk" 2>/dev/null & pids+=($!)
    qemu-nbd --read-only --persistent --shared=8 -f vmdk --socket="$W/q.sock" "$W/$src.vmdk" & pids+=($!)
    for s in t1 t4 q; do wait_socket "$W/$s.sock"; done
    for r in $(seq "$ROUNDS"); do
        one=$(copy "nbd+unix:///?socket=$W/t1.sock" --connections=1)
        four=$(copy "nbd+unix:///?socket=$W/t4.sock" --connections=1)
        q=$(copy "nbd+unix:///?socket=$W/q.sock" --connections=1)
        printf '%-6s round %s, one connection: ours 1 thread %.2f s, 4 threads %.2f s (%sx), qemu-nbd %.2f s (%sx ours)\n' \
            "$src" "$r" "$one" "$four" "$(ratio "$one" "$four")" "$q" "$(ratio "$q" "$four")"
    done
    stop
    "$BIN" serve --nbd "unix:$W/tls.sock" "${tls[@]}" "$W/$src.vmdk" 2>/dev/null & pids+=($!)
    "$BIN" serve --nbd "unix:$W/plain.sock" "$W/$src.vmdk" 2>/dev/null & pids+=($!)
    qemu-nbd --read-only --persistent --shared=8 -f vmdk "${qtls[@]}" --socket="$W/qt.sock" "$W/$src.vmdk" & pids+=($!)
    for s in tls plain qt; do wait_socket "$W/$s.sock"; done
    for r in $(seq "$ROUNDS"); do
        ours=$(copy "nbds+unix:///?socket=$W/tls.sock&tls-certificates=$W/client")
        plain=$(copy "nbd+unix:///?socket=$W/plain.sock")
        q=$(copy "nbds+unix:///?socket=$W/qt.sock&tls-certificates=$W/client")
        printf '%-6s round %s, TLS: ours %.2f s, qemu-nbd %.2f s (%sx ours); ours in plain text %.2f s (TLS costs %sx)\n' \
            "$src" "$r" "$ours" "$q" "$(ratio "$q" "$ours")" "$plain" "$(ratio "$ours" "$plain")"
    done
    stop
done
