#!/usr/bin/env bash
# Reading disks over HTTPS, side by side in one run, printed as ratios (issue 27's benchmark).
#   benches/remote.sh [SIZE] [RATE] [ROUNDS] [TO]   SIZE of the test disk (default 2G); RATE
#       nginx's limit_rate per connection (default 25m = 25 MB/s); ROUNDS of the unthrottled
#       pair (default 5), alternating, compared by medians; TO the output (default raw, an
#       inflate; qcow2: `convert --to qcow2`, only the unthrottled pair, the remote run in the
#       resumable layout every run from a URL writes, the local one without a checkpoint;
#       import: an OVA of the disk imported to raw, read in place over 8 connections, against
#       `curl | ovf-disk import -` throttled and a local import unthrottled)
# nginx serves a monolithicSparse and a streamOptimized copy of the test disk over TLS on the
# loopback, once throttled per connection (as ESXi's /folder interface is) and once not. Cases:
#   throttled: ours with 8 connections and with 1; `curl | ovf-disk inflate -` (stream only);
#              qemu-img over nbdkit's curl plugin (what CDI runs; Debian's qemu-img 10 here
#              has no curl driver of its own: qemu-block-extra 10 is not packaged); 8 parallel
#              ranged curls downloading the file, then a local inflate (the reference ours is
#              held to: within 1.3x);
#   unthrottled: ours with 8 connections against a local inflate of the same file (medians).
# Every output is checked by sha256 against the source before its time counts; every run ends
# with its output flushed to disk (ours fsyncs; the peers' outputs are synced inside the time).
# Peak RSS of ours is printed from /usr/bin/time.
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/.."
. benches/testdisk.sh
SIZE=${1:-2G}
RATE=${2:-25m}
ROUNDS=${3:-5}
TO=${4:-raw}
root=$PWD
./scripts/setup.sh >/dev/null
cargo build --release -q -p ovf-disk
BIN=$root/target/release/ovf-disk
WORK=$(mktemp -d "${TMPDIR:-/tmp}/ovf-disk-remote.XXXXXX")
cleanup() { [ -f "$WORK/nginx.pid" ] && kill "$(cat "$WORK/nginx.pid")" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT
chmod 755 "$WORK"  # nginx workers run as nobody
cd "$WORK"
mkdir -p www logs tmp
bytes=$(numfmt --from=iec "$SIZE")
test_disk src.raw "$bytes"
want=$(sha256sum < src.raw | cut -d' ' -f1)
qemu-img convert -f raw -O vmdk -o subformat=monolithicSparse src.raw www/sparse.vmdk
"$BIN" convert -q src.raw www/stream.vmdk --to streamOptimized
kinds="sparse stream"
if [ "$TO" = import ]; then
    (cd www && "$BIN" export -q ../src.raw app.ova)
    kinds=ova
fi
rm src.raw

# A CA and a certificate for 127.0.0.1 signed by it.
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=bench CA" -keyout ca-key.pem -out ca.pem 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -keyout key.pem -out req.pem 2>/dev/null
printf 'basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1\n' > ext.cnf
openssl x509 -req -in req.pem -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 2 -extfile ext.cnf -out cert.pem 2>/dev/null
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
SLOW=$(port) FAST=$(port)
cat > nginx.conf <<CONF
daemon on; pid $WORK/nginx.pid; error_log $WORK/logs/error.log; worker_processes 2;
events { worker_connections 256; }
http {
  access_log off; sendfile on; keepalive_requests 100000;
  client_body_temp_path $WORK/tmp; proxy_temp_path $WORK/tmp; fastcgi_temp_path $WORK/tmp;
  uwsgi_temp_path $WORK/tmp; scgi_temp_path $WORK/tmp;
  ssl_certificate $WORK/cert.pem; ssl_certificate_key $WORK/key.pem;
  server { listen 127.0.0.1:$SLOW ssl; root $WORK/www; limit_rate $RATE; }
  server { listen 127.0.0.1:$FAST ssl; root $WORK/www; }
}
CONF
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
"$nginx_bin" -c "$WORK/nginx.conf" -p "$WORK"
sleep 0.5
slow=https://127.0.0.1:$SLOW fast=https://127.0.0.1:$FAST

now() { date +%s.%N; }
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
check() { [ "$(sha256sum < "$1" | cut -d' ' -f1)" = "$want" ] || { echo "remote.sh: $2: output differs from the source" >&2; exit 1; }; }
declare -A T
# timed NAME CMD...: runs CMD (which writes out.raw), checks out.raw, records the seconds.
timed() {
    local name=$1 t0 t1; shift
    rm -f out.raw out.qcow2 ./*.part-*; sync
    t0=$(now); "$@"; sync out.raw out.qcow2 2>/dev/null || sync; t1=$(now)
    # A qcow2 output is checked through qemu-img's reading of it, outside the time.
    [ -f out.qcow2 ] && qemu-img convert -f qcow2 -O raw out.qcow2 out.raw
    check out.raw "$name"
    T[$name]=$(echo "$t0 $t1" | awk '{printf "%.2f", $2 - $1}')
    printf '%-34s %8ss\n' "$name" "${T[$name]}" >&2
}
ours() { /usr/bin/time -f "%M" -o rss.txt "$BIN" inflate -q --ca-cert ca.pem "$@"; }
# ours_to SOURCE: the unthrottled pair's run, an inflate to out.raw or a convert to out.qcow2.
ours_to() {
    local remote=()
    [[ $1 == https://* ]] && remote=(--ca-cert ca.pem --connections 8)
    case $TO in
        raw) "$BIN" inflate -q "${remote[@]}" "$1" out.raw ;;
        import) import_to "$1" "${remote[@]}" ;;
        *) "$BIN" convert -q "${remote[@]}" --to "$TO" "$1" "out.$TO" ;;
    esac
}
import_to() { # PACKAGE [OPTIONS]: its disk imported to raw, moved to out.raw
    local from=$1; shift
    rm -rf imp && "$BIN" import -q --format raw "$@" "$from" imp && mv imp/*.raw out.raw && rm -rf imp
}
ranged_curls() { # URL FILE: 8 ranged curls in parallel into FILE
    local url=$1 file=$2 len n=8 i from to
    len=$(curl -s --cacert ca.pem -r 0-0 -D - -o /dev/null "$url" | tr -d '\r' | awk -F/ '/^[Cc]ontent-[Rr]ange/ {print $2}')
    truncate -s "$len" "$file"
    for ((i = 0; i < n; i++)); do
        from=$((len * i / n)); to=$((len * (i + 1) / n - 1))
        curl -s --cacert ca.pem -r "$from-$to" "$url" | dd of="$file" bs=1M seek="$from" oflag=seek_bytes conv=notrunc status=none &
    done
    wait
}
qemu_nbdkit() { # URL: qemu-img reading through nbdkit's curl plugin, as CDI runs it
    nbdkit -U - curl "$1" cainfo="$WORK/ca.pem" --run 'qemu-img convert -f vmdk -O raw "$uri" out.raw'
}
have_nbdkit=no
command -v nbdkit >/dev/null && nbdkit curl --version >/dev/null 2>&1 && have_nbdkit=yes

echo "disk: $SIZE (sparse $(du -h --apparent-size www/sparse.vmdk | cut -f1), stream $(du -h --apparent-size www/stream.vmdk | cut -f1)); throttle $RATE per connection" >&2
for kind in $kinds; do
  if [ "$TO" = import ]; then
    timed "ova: ours 8 conn (throttled)" import_to "$slow/app.ova" --ca-cert ca.pem --connections 8
    timed "ova: curl | import - (throttled)" bash -c "$(declare -f import_to); BIN='$BIN'; curl -s --cacert ca.pem '$slow/app.ova' | import_to -"
  fi
  if [ "$TO" = raw ]; then
    timed "$kind: ours 8 conn (throttled)" ours --connections 8 "$slow/$kind.vmdk" out.raw
    rss8=$(cat rss.txt)
    timed "$kind: ours 1 conn (throttled)" ours --connections 1 "$slow/$kind.vmdk" out.raw
    if [ "$kind" = stream ]; then
        timed "$kind: curl | inflate - (throttled)" bash -c "curl -s --cacert ca.pem '$slow/$kind.vmdk' | '$BIN' inflate -q - out.raw"
    fi
    if [ "$have_nbdkit" = yes ]; then
        timed "$kind: qemu-img/nbdkit curl (thr.)" qemu_nbdkit "$slow/$kind.vmdk"
    fi
    timed "$kind: 8 curls + local inflate (thr.)" bash -c "$(declare -f ranged_curls); ranged_curls '$slow/$kind.vmdk' dl.vmdk && '$BIN' inflate -q dl.vmdk out.raw && rm dl.vmdk"
  fi
    # Unthrottled, the two take about a second each and vary from run to run on a shared
    # machine: ROUNDS of each, alternating which goes first, compared by their medians.
    remote_t=() local_t=() file=$kind.vmdk
    [ "$TO" = import ] && file=app.ova
    for ((r = 1; r <= ROUNDS; r++)); do
        for which in $([ $((r % 2)) = 1 ] && echo "remote local" || echo "local remote"); do
            if [ "$which" = remote ]; then
                timed "$kind: ours 8 conn (unthrottled) #$r" ours_to "$fast/$file"
                remote_t+=("${T["$kind: ours 8 conn (unthrottled) #$r"]}")
            else
                timed "$kind: local to $TO #$r" ours_to "www/$file"
                local_t+=("${T["$kind: local to $TO #$r"]}")
            fi
        done
    done
    T["$kind: ours 8 conn (unthrottled)"]=$(median "${remote_t[@]}")
    T["$kind: local to $TO"]=$(median "${local_t[@]}")
    printf '%-34s %8ss (median of %d)\n' "$kind: ours 8 conn (unthrottled)" "${T["$kind: ours 8 conn (unthrottled)"]}" "$ROUNDS" >&2
    printf '%-34s %8ss (median of %d)\n' "$kind: local to $TO" "${T["$kind: local to $TO"]}" "$ROUNDS" >&2
    [ "$TO" = raw ] && echo "$kind: peak RSS of ours, 8 connections: $((rss8 / 1024)) MiB" >&2
done
[ "$have_nbdkit" = yes ] || echo "no nbdkit curl plugin here (Debian's nbdkit): its rows are left out" >&2

ratio() { echo "${T[$1]} ${T[$2]}" | awk '{printf "%.2f", $1 / $2}'; }
echo
printf '%-8s %-44s %6s\n' disk comparison ratio
for kind in $kinds; do
  [ "$TO" = import ] && printf '%-8s %-44s %6s\n' "$kind" "curl|import - / ours 8 conn (want >= 4)" "$(ratio "ova: curl | import - (throttled)" "ova: ours 8 conn (throttled)")"
  if [ "$TO" = raw ]; then
    printf '%-8s %-44s %6s\n' "$kind" "1 connection / 8 connections (want >= 4)" "$(ratio "$kind: ours 1 conn (throttled)" "$kind: ours 8 conn (throttled)")"
    [ "$kind" = stream ] && printf '%-8s %-44s %6s\n' "$kind" "curl|inflate - / ours 8 conn (want >= 4)" "$(ratio "$kind: curl | inflate - (throttled)" "$kind: ours 8 conn (throttled)")"
    [ "$have_nbdkit" = yes ] && printf '%-8s %-44s %6s\n' "$kind" "qemu-img over nbdkit curl / ours 8 conn" "$(ratio "$kind: qemu-img/nbdkit curl (thr.)" "$kind: ours 8 conn (throttled)")"
    printf '%-8s %-44s %6s\n' "$kind" "ours 8 conn / 8 curls + local (want <= 1.3)" "$(ratio "$kind: ours 8 conn (throttled)" "$kind: 8 curls + local inflate (thr.)")"
  fi
    printf '%-8s %-44s %6s\n' "$kind" "unthrottled remote / local to $TO, medians (<= 1.5)" "$(ratio "$kind: ours 8 conn (unthrottled)" "$kind: local to $TO")"
done
