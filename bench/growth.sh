#!/usr/bin/env bash
# Does a mail cost more when the store is big? Two measures, SQLite (or
# PostgreSQL), Maildir in, acks written as files (ack limits raised so that
# every ack is composed):
#
#  1. one `run --once` over N mails (21,000 by default): seconds per 1000
#     stored, from the log; the last 1000 should cost what the first did;
#  2. the 1000 mails that come next, from a fresh process, alternately into
#     a copy of that N-mail store and into an empty one (PAIRS times): what
#     a restart on a big store costs, robust to this VM's drift.
#
#   bench/growth.sh                  # N=21000, PAIRS=2
#   N=5000 PAIRS=3 bench/growth.sh
#   KEEP=1 ...                       # leave the temp dir for a look
#   BAOSONG=/path/to/baosong ...     # time that build instead of building this tree
#   DB=postgres://baosong:baosong@127.0.0.1/baosong_growth bench/growth.sh
#                                    # the same on PostgreSQL
#
# With DB, the role must be allowed to create databases: the script drops
# and creates DB's database for measure 1, and for measure 2 a database
# named after it with "_pair", copied from it (CREATE DATABASE … TEMPLATE)
# or empty. It connects to the `postgres` database to do so. Needs psql.
#
# The corpus mails are copied with their own Message-ID and attachment bytes
# (bench/distinct.py); the corpus has about 30 units, so a unit sends about
# N/30 mails: far more than real units do, which is what makes growth show.
set -euo pipefail

N=${N:-21000}
PAIRS=${PAIRS:-2}
REPO=$(cd "$(dirname "$0")/.." && pwd)

die() { echo "growth: $*" >&2; exit 1; }
[[ "$N" =~ ^[0-9]+$ ]] && [ "$N" -ge 2000 ] || die "N must be a number ≥ 2000, got '$N'"
command -v python3 >/dev/null || die "needs python3"
[ -x /usr/bin/time ] || die "needs /usr/bin/time (apt-get install time)"
if [ -n "${DB:-}" ]; then
  [[ "$DB" =~ ^postgres(ql)?://[^?]+/([A-Za-z_][A-Za-z0-9_]*)$ ]] \
    || die "DB must be postgres://user:pass@host[:port]/name, got '$DB'"
  PG_NAME=${BASH_REMATCH[2]}
  PG_BASE=${DB%/*}
  command -v psql >/dev/null || die "needs psql (postgresql-client)"
  pg_admin() {
    PGOPTIONS="-c client_min_messages=warning" psql "$PG_BASE/postgres" -XAtq -v ON_ERROR_STOP=1 -c "$1" >/dev/null
  }
  pg_admin 'SELECT 1' || die "cannot connect to $PG_BASE/postgres"
fi

if [ -z "${BAOSONG:-}" ]; then
  echo "== building baosong (release)"
  (cd "$REPO" && cargo build --release --quiet --bin baosong)
  BAOSONG="$REPO/target/release/baosong"
fi

TMP=$(mktemp -d /tmp/baosong-growth.XXXXXX)
. "$REPO/bench/scratch.sh"
scratch_mount "$TMP"
cleanup() {
  scratch_umount
  if [ -n "${KEEP:-}" ]; then echo "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT INT TERM
. "$REPO/bench/example.sh"

echo "== writing $N + 1000 mails"
mkdir -p "$TMP/big/new" "$TMP/big/cur" "$TMP/big/tmp" "$TMP/next/new" "$TMP/next/cur" "$TMP/next/tmp"
python3 "$REPO/bench/distinct.py" "$REPO/tests/fixtures/mail" "$N" "$TMP/big/new" 0
python3 "$REPO/bench/distinct.py" "$REPO/tests/fixtures/mail" 1000 "$TMP/next/new" "$N"

# config DIR MAILDIR [DATABASE]: the example's forms and campaigns, this
# run's store (SQLite in DIR unless DATABASE is given).
config() {
  {
    echo '[store]'
    echo "database = \"${3:-sqlite://$1/baosong.db}\""
    echo "archive = \"$1/archive\""
    echo '[[mailbox]]'
    echo 'name = "kjt"'
    echo 'address = "kjtrcc83236071@163.com"'
    echo "maildir = \"$2\""
    echo 'after = "keep"'
    echo '[smtp]'
    echo 'transport = "file"'
    echo "directory = \"$1/outbox\""
    echo 'ack_per_hour = 1000000'
    echo 'ack_per_recipient_per_hour = 1000000'
    example_sections '"kjt"'
  } >"$1/config.toml"
}

# per_thousand LOG: seconds between the 1st and the 1000th "message stored"
# of each thousand.
per_thousand() {
  python3 - "$1" <<'PYEOF'
import datetime, re, sys
ts = []
for line in open(sys.argv[1], errors="replace"):
    line = re.sub(r"\x1b\[[0-9;]*m", "", line)
    m = re.match(r"(\S+Z)", line)
    if m and "message stored" in line:
        ts.append(datetime.datetime.fromisoformat(m.group(1).replace("Z", "+00:00")))
print(f"{len(ts)} stored")
firsts = []
for i in range(1000, len(ts) + 1, 1000):
    s = (ts[i - 1] - ts[i - 1000]).total_seconds()
    firsts.append(s)
    print(f"  {i - 999:6d}–{i:6d}  {s:5.1f} s")
if len(firsts) >= 2:
    print(f"last / first: {firsts[-1] / firsts[0]:.2f}×, last / 2nd: {firsts[-1] / firsts[1]:.2f}×")
PYEOF
}

# timed DIR TAG: run --once, "wall user sys rss" and the span of its stores.
timed() {
  sync
  sleep 2
  BAOSONG_LOG=info /usr/bin/time -f "%e %U %S %M" -o "$1/$2.time" \
    "$BAOSONG" --config "$1/config.toml" run --once >"$1/$2.log" 2>&1 \
    || die "run --once failed, see $1/$2.log"
}

echo "== 1. $N mails in one run${DB:+ (PostgreSQL)}"
mkdir -p "$TMP/grow"
if [ -n "${DB:-}" ]; then
  pg_admin "DROP DATABASE IF EXISTS $PG_NAME"
  pg_admin "CREATE DATABASE $PG_NAME"
fi
config "$TMP/grow" "$TMP/big" "${DB:-}"
timed "$TMP/grow" run
read -r wall user sys rss <"$TMP/grow/run.time"
echo "whole run ${wall} s wall, ${user} s user, ${sys} s sys, peak RSS $((rss / 1024)) MB"
per_thousand "$TMP/grow/run.log"

echo "== 2. the next 1000, fresh process: on the $N-mail store vs an empty one"
for pair in $(seq 1 "$PAIRS"); do
  for where in big empty; do
    D="$TMP/pair-$pair-$where"
    mkdir -p "$D"
    cp -r "$TMP/next" "$D/mail"
    if [ -n "${DB:-}" ]; then
      pg_admin "DROP DATABASE IF EXISTS ${PG_NAME}_pair"
      if [ "$where" = big ]; then
        pg_admin "CREATE DATABASE ${PG_NAME}_pair TEMPLATE $PG_NAME"
      else
        pg_admin "CREATE DATABASE ${PG_NAME}_pair"
      fi
      config "$D" "$D/mail" "$PG_BASE/${PG_NAME}_pair"
    else
      config "$D" "$D/mail"
      [ "$where" = big ] && cp "$TMP/grow/baosong.db" "$D/baosong.db"
    fi
    [ "$where" = big ] && cp -al "$TMP/grow/archive" "$D/archive"
    timed "$D" run
    read -r wall user sys rss <"$D/run.time"
    span=$(python3 - "$D/run.log" <<'PYEOF'
import datetime, re, sys
ts = [datetime.datetime.fromisoformat(m.group(1).replace("Z", "+00:00"))
      for line in open(sys.argv[1], errors="replace")
      if "message stored" in line
      for m in [re.match(r"(\S+Z)", re.sub(r"\x1b\[[0-9;]*m", "", line))] if m]
print(f"{len(ts)} stored in {(ts[-1] - ts[0]).total_seconds():.2f} s" if ts else "none stored")
PYEOF
)
    printf '  pair %d  %-5s  %s; run %s s wall, %s s CPU, peak RSS %d MB\n' \
      "$pair" "$where" "$span" "$wall" "$(awk "BEGIN { print $user + $sys }")" $((rss / 1024))
    rm -rf "$D"
  done
done
[ -z "${DB:-}" ] || pg_admin "DROP DATABASE IF EXISTS ${PG_NAME}_pair"
