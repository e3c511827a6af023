#!/usr/bin/env bash
# Several instances on one PostgreSQL database: 4 Maildir mailboxes of N
# distinct mails each (bench/distinct.py), read by
#   (a) one `baosong run` daemon,
#   (b) two daemons started together (they lease the mailboxes: 2 each),
#   (c) two daemons, one killed with SIGKILL once a third of the mail is
#       stored: the other must own all four mailboxes within 30 s and finish.
# For each: wall time until all 4×N mails are recorded, CPU, peak RSS, and
# the duplicates and losses (messages recorded vs. 4×N distinct mails; acks
# queued vs. written, and vs. the one-instance run). The time runs until
# every mail is recorded and every ack written.
#
#   DB=postgres://baosong:baosong@127.0.0.1/baosong_bench bench/instances.sh
#   N=500 (default) MAILBOXES=4 (default)
#   BAOSONG=/path/to/baosong  # time that build instead of building this tree
#
# DB must be a database this script may wipe: its `public` schema is
# dropped and made again before each run. Needs psql, python3 and
# /usr/bin/time; builds baosong in release unless BAOSONG is given.
set -euo pipefail

N=${N:-500}
M=${MAILBOXES:-4}
REPO=$(cd "$(dirname "$0")/.." && pwd)
die() { echo "instances: $*" >&2; exit 1; }
[ -n "${DB:-}" ] || die "set DB to a PostgreSQL database URL it may wipe"
command -v psql >/dev/null || die "needs psql (postgresql-client)"
[ -x /usr/bin/time ] || die "needs /usr/bin/time (time)"

echo "== building baosong (release)"
if [ -z "${BAOSONG:-}" ]; then
  (cd "$REPO" && cargo build --release --quiet --bin baosong)
  BAOSONG="$REPO/target/release/baosong"
fi
. "$REPO/bench/example.sh"

TMP=$(mktemp -d /tmp/baosong-instances.XXXXXX)
. "$REPO/bench/scratch.sh"
scratch_mount "$TMP"
PIDS=()
cleanup() {
  # baosong first (its wrapper's death would leave it running), then the
  # /usr/bin/time wrappers.
  for p in "${PIDS[@]}"; do pkill -9 -P "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  scratch_umount
  if [ -n "${KEEP:-}" ]; then echo "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT INT TERM

echo "== writing $M mailboxes × $N mails"
for ((m = 1; m <= M; m++)); do
  mkdir -p "$TMP/mail/m$m/new" "$TMP/mail/m$m/cur" "$TMP/mail/m$m/tmp"
  python3 "$REPO/bench/distinct.py" "$REPO/tests/fixtures/mail" "$N" "$TMP/mail/m$m/new" \
    $(((m - 1) * N))
done
TOTAL=$((M * N))

# The example's forms, campaigns, schedule and limits; M Maildir mailboxes
# (after = "keep": the Maildirs are read again by the next run), the file
# transport, every ack composed.
config() { # instance -> config file
  local c="$TMP/$1.toml"
  {
    cat <<EOF
[store]
database = "$DB"
archive = "$TMP/archive"
instance = "$1"

[smtp]
transport = "file"
directory = "$TMP/outbox-$1"
from = "江苏省科技活动周报送 <kjtrcc83236071@163.com>"
message_id_domain = "baosong.kjt.example.cn"
ack_per_recipient_per_hour = 1000000
ack_per_hour = 1000000

EOF
    for ((m = 1; m <= M; m++)); do
      cat <<EOF
[[mailbox]]
name = "m$m"
address = "kjtrcc83236071@163.com"
maildir = "$TMP/mail/m$m"
after = "keep"
poll_interval_secs = 1

EOF
    done
    local names
    names=$(seq -f '"m%g"' 1 "$M" | paste -sd, -)
    example_sections "$names"
  } >"$c"
  echo "$c"
}

sql() { psql "$DB" -XAtq -c "$1"; }
reset() {
  psql "$DB" -Xq -c 'DROP SCHEMA public CASCADE; CREATE SCHEMA public;' >/dev/null 2>&1
  rm -rf "$TMP"/archive "$TMP"/outbox-*
}
stored() { sql 'SELECT COUNT(*) FROM messages' 2>/dev/null || echo 0; }
now() { date +%s.%N; }

start() { # instance -> $STARTED (the /usr/bin/time wrapper's pid)
  local c
  c=$(config "$1")
  NO_COLOR=1 BAOSONG_LOG=info /usr/bin/time -v -o "$TMP/time.$1" \
    "$BAOSONG" --config "$c" run >"$TMP/$1.log" 2>&1 &
  STARTED=$!
  PIDS+=("$STARTED")
}
# The baosong process under /usr/bin/time.
child() { pgrep -P "$1" | head -n 1; }

wait_all() { # started_at -> seconds until TOTAL are stored and every ack sent
  while [ "$(stored)" -lt "$TOTAL" ]; do sleep 0.2; done
  while [ "$(sql "SELECT COUNT(*) FROM outbox WHERE status IN ('pending', 'sending')")" != 0 ]; do
    sleep 0.2
  done
  awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'
}
stop() { # wrapper pids
  for p in "$@"; do kill -TERM "$(child "$p")" 2>/dev/null || true; done
  for p in "$@"; do wait "$p" 2>/dev/null || true; done
}
cpu_rss() { # instance -> "cpu_s rss_mb"
  awk -F': ' '/User time/ { u = $2 } /System time/ { s = $2 }
    /Maximum resident/ { r = $2 } END { printf "%.2f %.1f\n", u + s, r / 1024 }' "$TMP/time.$1"
}
check() { # label
  local msgs distinct acks
  msgs=$(sql 'SELECT COUNT(*) FROM messages')
  distinct=$(sql 'SELECT COUNT(DISTINCT header_message_id) FROM messages')
  acks=$(sql "SELECT COUNT(*) FROM outbox WHERE kind = 'ack'")
  written=$(find "$TMP"/outbox-* -name '*.eml' 2>/dev/null | wc -l)
  echo "$1: $msgs recorded ($distinct distinct Message-IDs) of $TOTAL, $acks acks, $written written"
  [ "$msgs" = "$TOTAL" ] && [ "$distinct" = "$TOTAL" ] || echo "$1: LOST OR DOUBLED MAIL" >&2
  [ "$written" = "$acks" ] || echo "$1: AN ACK LOST OR SENT TWICE" >&2
}

echo "== (a) one instance"
reset
t0=$(now)
start one
a=$STARTED
ONE=$(wait_all "$t0")
stop "$a"
read -r ONE_CPU ONE_RSS < <(cpu_rss one)
check "one instance"
ONE_ACKS=$(sql "SELECT COUNT(*) FROM outbox WHERE kind = 'ack'")

echo "== (b) two instances"
reset
t0=$(now)
start a
a=$STARTED
start b
b=$STARTED
TWO=$(wait_all "$t0")
SPLIT=$(sql "SELECT owner || ':' || COUNT(*) FROM mailbox_leases GROUP BY owner ORDER BY owner" | paste -sd' ' -)
stop "$a" "$b"
read -r A_CPU A_RSS < <(cpu_rss a)
read -r B_CPU B_RSS < <(cpu_rss b)
check "two instances"
TWO_ACKS=$(sql "SELECT COUNT(*) FROM outbox WHERE kind = 'ack'")

echo "== (c) two instances, one killed"
reset
t0=$(now)
start a
a=$STARTED
start b
b=$STARTED
while [ "$(stored)" -lt $((TOTAL / 3)) ]; do sleep 0.1; done
kill -9 "$(child "$a")"
killed=$(now)
AT_KILL=$(stored)
until [ "$(sql "SELECT COUNT(*) FROM mailbox_leases WHERE owner = 'b' AND lease_until > extract(epoch from now())::bigint")" = "$M" ]; do
  sleep 0.2
  awk -v a="$killed" -v b="$(now)" 'BEGIN { exit !(b - a > 120) }' && die "b did not take every mailbox within 120 s"
done
TAKEOVER=$(awk -v a="$killed" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }')
KILLED=$(wait_all "$t0")
stop "$b"
check "one killed"
KILL_ACKS=$(sql "SELECT COUNT(*) FROM outbox WHERE kind = 'ack'")

echo
echo "$M mailboxes × $N mails = $TOTAL on PostgreSQL; $(nproc) cores; $(date -u +%Y-%m-%dT%H:%MZ)"
printf '%-34s %8s %8s %8s %s\n' run wall_s cpu_s rss_MB acks
printf '%-34s %8s %8s %8s %s\n' "one instance" "$ONE" "$ONE_CPU" "$ONE_RSS" "$ONE_ACKS"
printf '%-34s %8s %8s %8s %s\n' "two instances ($SPLIT)" "$TWO" \
  "$(awk -v a="$A_CPU" -v b="$B_CPU" 'BEGIN { print a + b }')" "$A_RSS+$B_RSS" "$TWO_ACKS"
printf '%-34s %8s %8s %8s %s\n' "two, one killed at $AT_KILL stored" "$KILLED" - - "$KILL_ACKS"
echo "two/one wall time: $(awk -v a="$TWO" -v b="$ONE" 'BEGIN { printf "%.2f", a / b }')"
echo "after the kill: b held all $M mailboxes in ${TAKEOVER} s"
