#!/usr/bin/env bash
# End-to-end IMAP ingest: `baosong run --once` against `mbsync` (isync)
# copying the same Dovecot INBOX, side by side in one run; wall time, CPU,
# peak RSS and bytes for each, and the whole machine's busy CPU while each
# ran (Dovecot's and PostgreSQL's included): spread over the cores, that is
# the least wall time the machine allows, which the last line compares.
#
#   sudo bench/imap-vs-mbsync.sh            # N=500 mails
#   sudo N=2000 bench/imap-vs-mbsync.sh
#   sudo DB=postgres://u:p@127.0.0.1/empty_db bench/imap-vs-mbsync.sh
#   AFTER=keep ...                           # leave the mail unflagged (default: seen,
#                                            # as the example config; figures before
#                                            # 2026-12-01's archive syncfs used keep)
#   KEEP=1 ...                               # leave the temp dir for a look
#   BAOSONG=/path/to/baosong ...             # time that build instead of building this tree
#   WRAP="perf record -g -o /tmp/b.data" ... # run the first baosong under that command
#
# Needs root (Dovecot's login processes drop to dovecot/dovenull) on Debian
# with dovecot-imapd, isync and time; missing packages are installed.
# A private Dovecot listens on 127.0.0.1 only, plain IMAP with LOGIN (no TLS,
# for both tools), configured exactly like tests/common/dovecot.rs.
set -euo pipefail

N=${N:-500}
AFTER=${AFTER:-seen}
REPO=$(cd "$(dirname "$0")/.." && pwd)
USER_NAME=alice
PASSWORD=s3cret-Pa55

die() { echo "imap-vs-mbsync: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "run as root (Dovecot needs it)"
[[ "$N" =~ ^[0-9]+$ ]] && [ "$N" -gt 0 ] || die "N must be a positive number, got '$N'"
[[ "$AFTER" =~ ^(keep|seen)$ ]] || die "AFTER must be keep or seen, got '$AFTER'"

need=()
command -v dovecot >/dev/null || need+=(dovecot-imapd)
command -v mbsync >/dev/null || need+=(isync)
[ -x /usr/bin/time ] || need+=(time)
command -v python3 >/dev/null || need+=(python3)
if [ ${#need[@]} -gt 0 ]; then
  command -v apt-get >/dev/null || die "missing ${need[*]} and no apt-get"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

echo "== building baosong (release)"
if [ -z "${BAOSONG:-}" ]; then
  (cd "$REPO" && cargo build --release --quiet --bin baosong)
  BAOSONG="$REPO/target/release/baosong"
fi

TMP=$(mktemp -d /tmp/baosong-bench.XXXXXX)
. "$REPO/bench/scratch.sh"
scratch_mount "$TMP"
CONF="$TMP/dovecot.conf"
. "$REPO/bench/dovecot.sh"
. "$REPO/bench/example.sh"
cleanup() {
  dovecot_stop
  scratch_umount
  if [ -n "${KEEP:-}" ]; then echo "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT INT TERM

# ---------------------------------------------------------------- Dovecot
dovecot_config

# ---------------------------------------------------------------- the mail
# N messages written straight into the maildir's new/ before Dovecot starts:
# the corpus in turn, each copy with an X-Bench-Seq header first, its
# Message-ID made unique and its attachments given distinct bytes (a JPEG
# comment, a zip comment, a PDF comment line…; see bench/distinct.py), so
# every message and every file in it is new to both tools: no cache keyed on
# content can help.
echo "== writing $N mails into $TMP/mail/$USER_NAME"
MD="$TMP/mail/$USER_NAME"
mkdir -p "$MD/new" "$MD/cur" "$MD/tmp"
python3 "$REPO/bench/distinct.py" "$REPO/tests/fixtures/mail" "$N" "$MD/new" \
  || die "could not write the bench mails"
chown -R mail:mail "$TMP/mail"
MAIL_BYTES=$(cat "$MD"/new/* | wc -c)

dovecot_start || die "dovecot did not start"

# ---------------------------------------------------------------- helpers
# parse_time FILE -> "wall_s cpu_s maxrss_kb"
parse_time() {
  awk -F': ' '
    /Elapsed \(wall clock\)/ {
      n = split($2, p, ":"); w = 0
      for (i = 1; i <= n; i++) w = w * 60 + p[i]
    }
    /User time \(seconds\)/   { u = $2 }
    /System time \(seconds\)/ { s = $2 }
    /Maximum resident set size/ { r = $2 }
    END { printf "%.2f %.2f %d\n", w, u + s, r }' "$1"
}
# The whole machine's busy CPU seconds so far (user, nice, system, irq,
# softirq of every core, from /proc/stat): taken before and after a tool,
# it counts Dovecot serving that tool too, which the tool's own CPU does not.
machine_busy() {
  awk -v hz="$(getconf CLK_TCK)" '/^cpu / { printf "%.2f\n", ($2 + $3 + $4 + $7 + $8) / hz }' /proc/stat
}
ROWS=()
FLOORS=()
add_row() { # tool mails timefile bytes_written machine_busy_before machine_busy_after
  read -r wall cpu rss < <(parse_time "$3")
  local machine
  machine=$(awk -v a="$5" -v b="$6" 'BEGIN { printf "%.2f", b - a }')
  ROWS+=("$(awk -v t="$1" -v n="$2" -v w="$wall" -v c="$cpu" -v r="$rss" -v b="$4" -v m="$machine" 'BEGIN {
    printf "%-22s %6d %8.2f %8.2f %10.2f %9.1f %9.1f %10.1f", t, n, w, c, m, (w > 0 ? n / w : 0), r / 1024, b / 1e6 }')")
  FLOORS+=("$wall $machine")
}
count_files() { find "$1" -type f 2>/dev/null | wc -l; }
bytes_of() { du -sb "$@" 2>/dev/null | awk '{ s += $1 } END { print s + 0 }'; }

# ---------------------------------------------------------------- (a) mbsync
echo "== mbsync"
mkdir -p "$TMP/mbsync/maildir"
cat >"$TMP/mbsync/mbsyncrc" <<EOF
IMAPAccount bench
Host 127.0.0.1
Port $PORT
User $USER_NAME
Pass $PASSWORD
SSLType None
AuthMechs LOGIN

IMAPStore bench-far
Account bench

MaildirStore bench-near
Path $TMP/mbsync/maildir/
Inbox $TMP/mbsync/maildir/INBOX
SubFolders Verbatim

Channel bench
Far :bench-far:
Near :bench-near:
Patterns INBOX
Sync Pull
Create Near
SyncState *
EOF
M0=$(machine_busy)
/usr/bin/time -v -o "$TMP/mbsync/time" \
  mbsync -q -c "$TMP/mbsync/mbsyncrc" bench >"$TMP/mbsync/log" 2>&1 \
  || { cat "$TMP/mbsync/log" >&2; die "mbsync failed"; }
M1=$(machine_busy)
MB_MAILS=$(count_files "$TMP/mbsync/maildir/INBOX/cur"; )
MB_MAILS=$((MB_MAILS + $(count_files "$TMP/mbsync/maildir/INBOX/new")))
[ "$MB_MAILS" = "$N" ] || echo "warning: mbsync copied $MB_MAILS of $N mails" >&2
add_row "mbsync (isync $(mbsync --version | awk '{print $2}'))" "$MB_MAILS" "$TMP/mbsync/time" \
  "$(bytes_of "$TMP/mbsync/maildir")" "$M0" "$M1"

# ---------------------------------------------------------------- (b) baosong
echo "== baosong run --once"
B="$TMP/baosong"
mkdir -p "$B"
# DB=postgres://user:pass@host/db runs on PostgreSQL instead (an empty
# database: baosong creates its tables).
DB_URL=${DB:-sqlite://$B/baosong.db}
# The example config's forms, campaigns, schedule and limits; our own store,
# one IMAP mailbox (kjt, so the 江苏 campaign applies) and the file transport.
{
  cat <<EOF
[store]
database = "$DB_URL"
archive = "$B/archive"

[[mailbox]]
name = "kjt"
address = "kjtrcc83236071@163.com"
after = "$AFTER"

[mailbox.imap]
host = "127.0.0.1"
port = $PORT
tls = "none"
username = "$USER_NAME"
password = { env = "BAOSONG_BENCH_PASSWORD" }
auth = "login"

[smtp]
transport = "file"
directory = "$B/outbox"
from = "江苏省科技活动周报送 <kjtrcc83236071@163.com>"
message_id_domain = "baosong.kjt.example.cn"
# Every message gets its acknowledgement composed and written (the example's
# 5 per recipient per hour would skip most: the corpus has ~30 senders).
ack_per_recipient_per_hour = 1000000
ack_per_hour = 1000000

EOF
  # Drop [store], every [[mailbox]] (and its [mailbox.imap]) and [smtp];
  # point [organisations] at the repo's CSV; both campaigns read the one
  # mailbox (the corpus has mail for each).
  example_sections '"kjt"'
} >"$B/config.toml"
export BAOSONG_BENCH_PASSWORD=$PASSWORD
"$BAOSONG" --config "$B/config.toml" check-config >"$B/check-config.txt" 2>&1 \
  || { cat "$B/check-config.txt" >&2; die "baosong check-config failed"; }
rm -f "$B/baosong.db"* # check-config may have created the database

run_baosong() { # label [wrapper...]
  local label=$1
  shift
  NO_COLOR=1 BAOSONG_LOG=info /usr/bin/time -v -o "$B/time.$label" \
    "$@" "$BAOSONG" --config "$B/config.toml" run --once >"$B/$label.log" 2>&1 \
    || { tail -n 30 "$B/$label.log" >&2; die "baosong run --once failed ($label)"; }
}
# shellcheck disable=SC2086 # WRAP is a command line, split on purpose
M0=$(machine_busy)
run_baosong first ${WRAP:-}
M1=$(machine_busy)
STORED=$(grep -c 'message stored' "$B/first.log" || true)
[ "$STORED" = "$N" ] || echo "warning: baosong stored $STORED of $N mails" >&2
add_row "baosong run --once" "$STORED" "$B/time.first" \
  "$(bytes_of "$B/archive" "$B/outbox" "$B"/baosong.db*)" "$M0" "$M1"

# ---------------------------------------------------------------- (c) again
echo "== baosong run --once again (nothing new)"
M0=$(machine_busy)
run_baosong second
M1=$(machine_busy)
AGAIN=$(grep -c 'message stored' "$B/second.log" || true)
add_row "baosong again (no-op)" "$AGAIN" "$B/time.second" 0 "$M0" "$M1"

# ---------------------------------------------------------------- report
lines() { grep -cE "$1" "$2" || true; }
echo
echo "N=$N mails, $(awk -v b="$MAIL_BYTES" 'BEGIN { printf "%.1f MB", b / 1e6 }') in the Dovecot INBOX;" \
  "$(nproc) cores; $(date -u +%Y-%m-%dT%H:%MZ)"
printf '%-22s %6s %8s %8s %10s %9s %9s %10s\n' tool mails wall_s cpu_s machine_s mails/s maxrss_MB written_MB
for r in "${ROWS[@]}"; do echo "$r"; done
# No run can take less wall time than the machine's busy CPU spread over
# every core; with Dovecot on the same cores that bounds the ratio to mbsync
# from below, whatever baosong's own pipeline does.
read -r mb_wall _ <<<"${FLOORS[0]}"
read -r b_wall b_machine <<<"${FLOORS[1]}"
awk -v c="$(nproc)" -v mw="$mb_wall" -v bw="$b_wall" -v bm="$b_machine" 'BEGIN {
  f = bm / c
  printf "baosong: %.2f s wall against a floor of %.2f s (machine CPU / %d cores): %.2f× the floor;", bw, f, c, (f > 0 ? bw / f : 0)
  printf " %.2f× mbsync, and at least %.2f× on this machine at this CPU\n", (mw > 0 ? bw / mw : 0), (mw > 0 ? f / mw : 0) }'
echo
echo "baosong first run: $(lines ' WARN ' "$B/first.log") WARN, $(lines ' ERROR ' "$B/first.log") ERROR log lines;" \
  "$(count_files "$B/archive") archived, $(count_files "$B/outbox") acks written"
grep -E ' (WARN|ERROR) ' "$B/first.log" | sed -E 's/^[^ ]+ +//' | cut -c1-160 | sort | uniq -c | sort -rn | head -n 8 || true
echo "baosong second run: $(lines ' WARN ' "$B/second.log") WARN, $(lines ' ERROR ' "$B/second.log") ERROR log lines"
echo "dovecot log: $(lines -i 'error|fatal|panic' "$TMP/dovecot.log") error lines"
