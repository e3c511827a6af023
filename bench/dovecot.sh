# Sourced by the bench scripts: a private Dovecot on 127.0.0.1 in $TMP, set
# up exactly like tests/common/dovecot.rs (plain IMAP + LOGIN, no TLS), for
# the user $USER_NAME with password $PASSWORD; mail in $TMP/mail/$USER_NAME
# (Maildir++: a folder F is .F beside cur/new/tmp). Needs root.
#
#   dovecot_config        writes $CONF and picks $PORT
#   dovecot_start         starts it, waits for the port, indexes INBOX
#   dovecot_stop          (for the EXIT trap)

dovecot_config() {
chmod 755 "$TMP"
for sub in run state mail; do mkdir -m 755 "$TMP/$sub"; done
printf '%s:{PLAIN}%s\n' "$USER_NAME" "$PASSWORD" >"$TMP/passwd"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$CONF" <<EOF
base_dir = $TMP/run
state_dir = $TMP/state
log_path = $TMP/dovecot.log
protocols = imap
listen = 127.0.0.1
default_internal_user = dovecot
default_login_user = dovenull
first_valid_uid = 1
auth_mechanisms = plain login
disable_plaintext_auth = no
mail_location = maildir:$TMP/mail/%u
imap_id_log = *
ssl = no
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $PORT
  }
  inet_listener imaps {
    address = 127.0.0.1
    port = 0
  }
}
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u $TMP/passwd
}
userdb {
  driver = static
  args = uid=mail gid=mail home=$TMP/mail/%u
}
EOF

}

dovecot_start() {
  dovecot -c "$CONF" </dev/null >/dev/null 2>&1 || { cat "$TMP/dovecot.log" >&2; return 1; }
  for _ in $(seq 300); do
    (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
    sleep 0.05
  done
  # Build the index and uidlist now, so no client pays for the first scan.
  doveadm -c "$CONF" mailbox status -u "$USER_NAME" 'messages vsize' INBOX
}

dovecot_stop() {
  [ -f "${CONF:-}" ] || return 0
  doveadm -c "$CONF" stop >/dev/null 2>&1 || true
  for _ in $(seq 100); do [ -e "$TMP/run/master.pid" ] || break; sleep 0.05; done
}
