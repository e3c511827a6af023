#!/usr/bin/env bash
# Ack latency against a real Dovecot with IDLE: the time from a mail's
# APPEND (the server's OK) to its ack written by `baosong run` (the daemon,
# SQLite, file transport), measured by bench/ack_latency.py.
#
#   (a) idle: an idle daemon; FRESH mails APPENDed one a second.
#   (b) backlog: the daemon starts with N mails waiting in one mailbox
#       (INBOX) while fresh mails are APPENDed to another (folder Fresh),
#       one every 150 ms: a fresh mail must not wait for the backlog.
#
#   sudo bench/ack-latency.sh               # N=1000, FRESH=40
#   sudo N=2000 FRESH=60 bench/ack-latency.sh
#   sudo BAOSONG=/path/to/baosong bench/ack-latency.sh   # that build, not this tree
#
# Needs root (Dovecot's login processes drop to dovecot/dovenull) on Debian
# with dovecot-imapd and python3.
set -euo pipefail

N=${N:-1000}
FRESH=${FRESH:-40}
REPO=$(cd "$(dirname "$0")/.." && pwd)
USER_NAME=alice
PASSWORD=s3cret-Pa55
TEMPLATE="$REPO/tests/fixtures/mail/applemail_octet_stream_docx.eml" # a listed sender

die() { echo "ack-latency: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "run as root (Dovecot needs it)"
command -v dovecot >/dev/null || die "needs dovecot-imapd"

echo "== building baosong (release)"
if [ -z "${BAOSONG:-}" ]; then
  (cd "$REPO" && cargo build --release --quiet --bin baosong)
  BAOSONG="$REPO/target/release/baosong"
fi

TMP=$(mktemp -d /tmp/baosong-latency.XXXXXX)
. "$REPO/bench/scratch.sh"
scratch_mount "$TMP"
CONF="$TMP/dovecot.conf"
. "$REPO/bench/dovecot.sh"
. "$REPO/bench/example.sh"
DAEMON=
cleanup() {
  [ -n "$DAEMON" ] && kill -9 "$DAEMON" 2>/dev/null
  dovecot_stop
  scratch_umount
  if [ -n "${KEEP:-}" ]; then echo "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT INT TERM

dovecot_config
MD="$TMP/mail/$USER_NAME"
for d in "$MD" "$MD/.Fresh"; do mkdir -p "$d/new" "$d/cur" "$d/tmp"; done
chown -R mail:mail "$TMP/mail"
dovecot_start >/dev/null || die "dovecot did not start"

B="$TMP/baosong"
mkdir -p "$B"
imap_mailbox() { # name address folder: one mailbox on the private Dovecot
  cat <<EOF
[[mailbox]]
name = "$1"
address = "$2"
folder = "$3"
after = "keep"
[mailbox.imap]
host = "127.0.0.1"
port = $PORT
tls = "none"
username = "$USER_NAME"
password = { env = "BAOSONG_BENCH_PASSWORD" }
auth = "login"

EOF
}
{
  cat <<EOF
[store]
database = "sqlite://$B/baosong.db"
archive = "$B/archive"

EOF
  imap_mailbox backlog kjtrcc83236071@163.com INBOX
  imap_mailbox fresh jskxdxb@163.com Fresh
  cat <<EOF
[smtp]
transport = "file"
directory = "$B/outbox"
from = "江苏省科技活动周报送 <kjtrcc83236071@163.com>"
message_id_domain = "baosong.kjt.example.cn"
ack_per_recipient_per_hour = 1000000
ack_per_hour = 1000000

EOF
  example_sections '"backlog", "fresh"'
} >"$B/config.toml"
export BAOSONG_BENCH_PASSWORD=$PASSWORD

start_daemon() { # log
  NO_COLOR=1 BAOSONG_LOG=${BAOSONG_LOG:-info} "$BAOSONG" --config "$B/config.toml" run >"$B/$1.log" 2>&1 &
  DAEMON=$!
  # Ready when both mailboxes are being watched.
  for _ in $(seq 200); do
    [ "$(grep -c 'IMAP folder selected' "$B/$1.log" || true)" -ge 2 ] && return 0
    grep -q 'ERROR' "$B/$1.log" && { tail "$B/$1.log" >&2; die "baosong failed"; }
    sleep 0.1
  done
}
stop_daemon() {
  kill -TERM "$DAEMON"
  wait "$DAEMON" || true
  DAEMON=
}
stored() { grep -c 'message stored' "$1" || true; }
latency() { # count interval label
  LATENCY_DUMP="$B/$3.times" python3 "$REPO/bench/ack_latency.py" "$PORT" "$USER_NAME" "$PASSWORD" Fresh \
    "$B/outbox" "$TEMPLATE" "$1" "$2" "$3"
}

echo "== (a) idle daemon, $FRESH mails one a second"
start_daemon idle
IDLE_LINE=$(latency "$FRESH" 1.0 "idle")
stop_daemon

echo "== (b) $N mails waiting in INBOX, $FRESH fresh ones every 150 ms"
python3 "$REPO/bench/distinct.py" "$REPO/tests/fixtures/mail" "$N" "$MD/new"
chown -R mail:mail "$MD"
doveadm -c "$CONF" mailbox status -u "$USER_NAME" 'messages' INBOX >/dev/null
t0=$(date +%s.%N)
start_daemon backlog
BACKLOG_LINE=$(latency "$FRESH" 0.15 "backlog")
while [ "$(stored "$B/backlog.log")" -lt $((N + FRESH)) ]; do sleep 0.2; done
DRAINED=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
stop_daemon

echo
echo "$(nproc) cores; $(date -u +%Y-%m-%dT%H:%MZ); Dovecot $(dovecot --version | cut -d' ' -f1), IDLE"
echo "$IDLE_LINE"
echo "$BACKLOG_LINE"
echo "backlog of $N mails and $FRESH fresh ones all stored after $DRAINED s" \
  "($(grep -c ' WARN ' "$B/backlog.log" || true) WARN, $(grep -c ' ERROR ' "$B/backlog.log" || true) ERROR log lines)"
