# Sourced by the bench scripts: their temp dir on a fresh filesystem.
#
#   scratch_mount DIR     DIR (empty) becomes a new ext4 made with mkfs's
#                         defaults (a journal, as a server's ext4 has), in a
#                         sparse image of $SCRATCH_SIZE (default 8G) beside it
#   scratch_umount DIR    (for the EXIT trap; a no-op when nothing was mounted)
#
#   SCRATCH=tmp ...       keep DIR on the filesystem it is on
#
# Why: the VMs these figures come from have ext4 *without* a journal on /,
# and there the kernel's inode allocator looks up, and skips, every inode
# freed in the last minute or so (`recently_deleted`, checked only when
# there is no journal). A run that followed another run's cleanup spent
# 9–31 % of its CPU in `find_get_block_common` and `recently_deleted`,
# growing with each run, and none after 100 s of quiet (bench/RESULTS.md,
# 2026-12-02, fourth stop). A fresh filesystem per run measures the tools,
# not what was deleted before them. Needs root, mkfs.ext4 and a loop device;
# without them DIR stays where it is, with a warning.
SCRATCH_MOUNTED=

scratch_mount() {
  local dir=$1
  if [ "${SCRATCH:-fresh}" = tmp ]; then
    return 0
  fi
  if [ "$(id -u)" != 0 ] || ! command -v mkfs.ext4 >/dev/null; then
    echo "warning: not root or no mkfs.ext4: $dir stays on $(findmnt -no FSTYPE -T "$dir") (see bench/scratch.sh)" >&2
    return 0
  fi
  local image="$dir.img"
  truncate -s "${SCRATCH_SIZE:-8G}" "$image"
  if mkfs.ext4 -q -F "$image" && mount -o loop "$image" "$dir"; then
    SCRATCH_MOUNTED=$dir
    chmod 755 "$dir"
  else
    rm -f "$image"
    echo "warning: could not mount a fresh ext4 on $dir; it stays on $(findmnt -no FSTYPE -T "$dir")" >&2
  fi
}

scratch_umount() {
  [ -n "$SCRATCH_MOUNTED" ] || return 0
  if [ -n "${KEEP:-}" ]; then
    echo "kept $SCRATCH_MOUNTED mounted (umount it, then remove $SCRATCH_MOUNTED.img)"
    return 0
  fi
  umount "$SCRATCH_MOUNTED" 2>/dev/null || umount -l "$SCRATCH_MOUNTED" 2>/dev/null || true
  rm -f "$SCRATCH_MOUNTED.img"
}
