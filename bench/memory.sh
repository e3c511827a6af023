#!/usr/bin/env bash
# The two memory goals of the performance issue, SQLite, Maildir in, acks
# written as files:
#
#  1. one large mail (bench/bigscan.py: a unit's stamped 推荐表 as an
#     18-page, 47 MB scan PDF, 64 MB as mail) through `run --once`: wall
#     time, CPU, and peak RSS sampled every 20 ms, of the daemon alone and
#     of the daemon and its extraction workers together (goal: ≤ 3 × the
#     mail's size + 64 MB);
#  2. 10 idle mailboxes under the `run` daemon (poll 60 s): its CPU over
#     IDLE_SECS seconds after it has settled, and its RSS with its warm
#     worker's (goal: ≤ 1 % CPU, ≤ 40 MB); then SIGTERM, which it must
#     obey with exit status 0.
#
#   bench/memory.sh
#   IDLE_SECS=120 bench/memory.sh
#   KEEP=1 ...                       # leave the temp dir for a look
#   BAOSONG=/path/to/baosong ...     # time that build instead of building this tree
#
# Needs Pillow for Debian's python3 (python3-pil; installed when run as root).
set -euo pipefail

IDLE_SECS=${IDLE_SECS:-60}
REPO=$(cd "$(dirname "$0")/.." && pwd)

die() { echo "memory: $*" >&2; exit 1; }
[[ "$IDLE_SECS" =~ ^[0-9]+$ ]] && [ "$IDLE_SECS" -ge 10 ] || die "IDLE_SECS must be ≥ 10, got '$IDLE_SECS'"
[ -x /usr/bin/time ] || die "needs /usr/bin/time (apt-get install time)"
if ! /usr/bin/python3 -c 'import PIL' 2>/dev/null; then
  [ "$(id -u)" = 0 ] || die "needs Pillow for /usr/bin/python3 (apt-get install python3-pil)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-pil >/dev/null
fi

if [ -z "${BAOSONG:-}" ]; then
  echo "== building baosong (release)"
  (cd "$REPO" && cargo build --release --quiet --bin baosong)
  BAOSONG="$REPO/target/release/baosong"
fi

TMP=$(mktemp -d /tmp/baosong-memory.XXXXXX)
. "$REPO/bench/scratch.sh"
scratch_mount "$TMP"
DAEMON=
cleanup() {
  [ -n "$DAEMON" ] && kill "$DAEMON" 2>/dev/null || true
  scratch_umount
  if [ -n "${KEEP:-}" ]; then echo "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT INT TERM
. "$REPO/bench/example.sh"

# config DIR NAMES MAILBOX_LINES: the example's forms and campaigns reading
# the mailboxes NAMES, this run's store, the file transport.
config() {
  {
    echo '[store]'
    echo "database = \"sqlite://$1/baosong.db\""
    echo "archive = \"$1/archive\""
    echo
    printf '%s\n' "$3"
    echo '[smtp]'
    echo 'transport = "file"'
    echo "directory = \"$1/outbox\""
    echo 'from = "江苏省科技活动周报送 <kjtrcc83236071@163.com>"'
    echo 'message_id_domain = "baosong.kjt.example.cn"'
    echo
    example_sections "$2"
  } >"$1/config.toml"
}

# rss_of PID: its RSS in KiB; 0 once it has exited (a zombie has no VmRSS).
rss_of() {
  local r
  r=$(awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null | head -n 1 || true)
  echo "${r:-0}"
}

# rss_tree PID: the daemon's RSS and that of it with its children, in KiB.
rss_tree() {
  local self sum=0 pid
  self=$(rss_of "$1")
  for pid in $(cat /proc/"$1"/task/*/children 2>/dev/null || true); do
    sum=$((sum + $(rss_of "$pid")))
  done
  echo "$self $((self + sum))"
}

# ticks_tree PID: user + system clock ticks of the daemon and its live
# children so far.
ticks_tree() {
  local total=0 pid t
  for pid in "$1" $(cat /proc/"$1"/task/*/children 2>/dev/null || true); do
    t=$(awk '{ print $14 + $15 }' "/proc/$pid/stat" 2>/dev/null | head -n 1 || true)
    total=$((total + ${t:-0}))
  done
  echo "$total"
}

# ------------------------------------------------------------ 1. large mail
echo "== 1. one large mail"
D="$TMP/big"
mkdir -p "$D/mail/new" "$D/mail/cur" "$D/mail/tmp"
/usr/bin/python3 "$REPO/bench/bigscan.py" "$D/mail/new/1746407564.bigscan.bench"
MAIL_BYTES=$(stat -c %s "$D"/mail/new/*)
config "$D" '"kjt"' "$(printf '[[mailbox]]\nname = "kjt"\naddress = "kjtrcc83236071@163.com"\nmaildir = "%s"\nafter = "keep"\n' "$D/mail")"
sync
BAOSONG_LOG=info /usr/bin/time -f "%e %U %S %M" -o "$D/time" \
  "$BAOSONG" --config "$D/config.toml" run --once >"$D/log" 2>&1 &
TIMED=$!
# /usr/bin/time's child is baosong; sample it and its workers.
PEAK_SELF=0
PEAK_TREE=0
while kill -0 "$TIMED" 2>/dev/null; do
  B=$(cat /proc/"$TIMED"/task/*/children 2>/dev/null | awk '{ print $1 }')
  if [ -n "$B" ]; then
    read -r self tree < <(rss_tree "$B")
    [ "$self" -gt "$PEAK_SELF" ] && PEAK_SELF=$self
    [ "$tree" -gt "$PEAK_TREE" ] && PEAK_TREE=$tree
  fi
  sleep 0.02
done
wait "$TIMED" || die "run --once failed, see $D/log"
read -r wall user sys maxrss <"$D/time"
grep -q "message stored" "$D/log" || die "the large mail was not stored, see $D/log"
ACK=$(grep -l -i '^To:.*njkjjrcc@nanjing.gov.cn' "$D"/outbox/*.eml 2>/dev/null | head -n 1 || true)
[ -n "$ACK" ] || die "no ack written, see $D/log"
GOAL_KB=$(( (3 * MAIL_BYTES + 64 * 1000 * 1000) / 1024 ))
awk -v b="$MAIL_BYTES" -v w="$wall" -v u="$user" -v s="$sys" -v self="$PEAK_SELF" -v tree="$PEAK_TREE" \
  -v m="$maxrss" -v g="$GOAL_KB" 'BEGIN {
  printf "mail %.1f MB: %.2f s wall, %.2f s user + %.2f s sys\n", b / 1e6, w, u, s
  printf "peak RSS: daemon %.0f MB, daemon + workers %.0f MB (sampled every 20 ms); largest single process %.0f MB (/usr/bin/time)\n", self / 1024, tree / 1024, m / 1024
  printf "goal: 3 × %.1f + 64 = %.0f MB: %s\n", b / 1e6, g * 1024 / 1e6, (tree <= g ? "met" : "NOT met") }'
echo "log: $(grep -c ' WARN ' "$D/log" || true) WARN, $(grep -c ' ERROR ' "$D/log" || true) ERROR lines; ack:"
/usr/bin/python3 - "$ACK" <<'PYEOF'
import email, email.policy, sys
msg = email.message_from_binary_file(open(sys.argv[1], "rb"), policy=email.policy.default)
print("  Subject:", msg["subject"])
body = msg.get_body(("plain",)).get_content()
for line in body.splitlines()[:14]:
    if line.strip():
        print("  " + line)
PYEOF

# ------------------------------------------------------------ 2. idle
echo "== 2. 10 idle mailboxes, ${IDLE_SECS} s"
D="$TMP/idle"
LINES=
NAMES=
for i in $(seq -w 1 10); do
  mkdir -p "$D/mb$i/new" "$D/mb$i/cur" "$D/mb$i/tmp"
  LINES+=$(printf '[[mailbox]]\nname = "mb%s"\naddress = "mb%s@bench.example.cn"\nmaildir = "%s"\nafter = "keep"\npoll_interval_secs = 60\n\n' "$i" "$i" "$D/mb$i")
  LINES+=$'\n'
  NAMES+="${NAMES:+, }\"mb$i\""
done
config "$D" "$NAMES" "$LINES"
BAOSONG_LOG=info "$BAOSONG" --config "$D/config.toml" run >"$D/log" 2>&1 &
DAEMON=$!
sleep 10
kill -0 "$DAEMON" 2>/dev/null || die "the daemon exited, see $D/log"
HZ=$(getconf CLK_TCK)
T0=$(ticks_tree "$DAEMON")
sleep "$IDLE_SECS"
T1=$(ticks_tree "$DAEMON")
read -r self tree < <(rss_tree "$DAEMON")
awk -v t=$((T1 - T0)) -v hz="$HZ" -v secs="$IDLE_SECS" -v self="$self" -v tree="$tree" 'BEGIN {
  printf "CPU: %d ticks (%.2f s) in %d s = %.2f %%; RSS: daemon %.1f MB, with its workers %.1f MB\n", t, t / hz, secs, 100 * t / hz / secs, self / 1024, tree / 1024
  printf "goal: ≤ 1 %% CPU, ≤ 40 MB: %s\n", ((100 * t / hz / secs <= 1 && tree / 1024 <= 40) ? "met" : "NOT met") }'
START=$(date +%s.%N)
kill -TERM "$DAEMON"
RC=0
wait "$DAEMON" || RC=$?
DAEMON=
awk -v a="$START" -v b="$(date +%s.%N)" -v rc="$RC" 'BEGIN { printf "SIGTERM: exit status %d after %.2f s\n", rc, b - a }'
[ "$RC" = 0 ] || die "the daemon did not exit cleanly on SIGTERM, see $D/log"
