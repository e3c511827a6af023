# Sourced by the bench scripts (needs $REPO).
#
#   example_sections '"a", "b"'
#
# prints config.example.toml without its [store], [smtp] and mailboxes (the
# script writes its own), with the organisations file as an absolute path
# and every campaign reading the mailboxes named.
example_sections() {
  awk -v orgs="$REPO/examples/organisations.csv" -v names="$1" '
    /^\[/ { skip = ($0 ~ /^\[(store|smtp|\[mailbox\]\]|mailbox\.imap)\]?/) }
    skip { next }
    /^file = "examples\/organisations.csv"/ { print "file = \"" orgs "\""; next }
    /^mailboxes = / { print "mailboxes = [" names "]"; next }
    { print }' "$REPO/config.example.toml"
}
