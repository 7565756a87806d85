#!/usr/bin/env bash
# Boots Debian's systemd as PID 1 in private namespaces, hermetically, to try the shipped units
# under a real service manager without touching the host:
#
#   test/systemd/boot.sh probe               can this kernel give us the namespaces? (exit 0/1, reason)
#   test/systemd/boot.sh start DIR           boot; prints the host PID of the namespace's systemd
#   test/systemd/boot.sh exec DIR CMD...     run CMD inside (e.g. systemctl status rustfs-kms.service)
#   test/systemd/boot.sh shell DIR           an interactive shell inside
#   test/systemd/boot.sh stop DIR [--keep]   SIGKILL the namespace's systemd, clean up, remove DIR
#
# DIR (absolute, not under /tmp, /var/tmp or /run: those are fresh tmpfs inside) holds the overlay
# upper layers, the unit directory and the console log. Needs root.
#
# Why each piece (a naive boot empties /tmp, writes /etc/passwd, changes the hostname, ...):
#   - PID, mount, UTS, IPC and cgroup namespaces; the host's network (Vault on loopback).
#   - fresh tmpfs on /tmp, /var/tmp, /run and /dev (device nodes bound in), so systemd and
#     journald write nothing there on the host.
#   - overlays (upper layers in DIR) on /etc, /usr/local and /var: systemd-sysusers replaces
#     /etc/passwd by rename, which a bind-mounted copy would not survive; users it makes vanish.
#   - /sys and /proc/sys read-only: no sysctl bumps of the shared machine.
#   - a cgroup subtree of our own, mounted as the namespace's whole cgroup2 tree.
#   - SYSTEMD_UNIT_PATH: /etc/systemd/system and /usr/local/lib/systemd/system (both fresh, for
#     "rustfs-kms install-systemd" and drop-ins) and DIR/units (stub targets, journald); generators
#     off. None of the machine's units run: no tmpfiles --remove, no logind, no dbus.
#   - container=rustfs-kms-test (systemd's container interface): no kmod loading, no clock or
#     hostname set-up by PID 1.
#   - the checkout appears at /usr/local/lib/node_modules/rustfs-kms with bin links in
#     /usr/local/bin, as after "npm install -g" (ProtectHome= would hide a checkout under /home).
#   - timeout -s KILL and unshare --kill-child: the boot dies on its own after BOOT_MAX_S (600).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
self="$here/boot.sh"
PKG=/usr/local/lib/node_modules/rustfs-kms
UNIT_PATH_INSIDE() { echo "/etc/systemd/system:/run/systemd/system:/usr/local/lib/systemd/system:$1/units"; }

die() { echo "boot.sh: $*" >&2; exit 1; }

check_dir() {
  local dir="$1"
  case "$dir" in
    /*) ;;
    *) die "DIR must be an absolute path, got '$dir'" ;;
  esac
  case "$dir/" in
    /tmp/*|/var/tmp/*|/run/*|/dev/*|/proc/*|/sys/*|/etc/*|/var/*|/usr/local/*) die "DIR $dir is hidden or overlaid inside the namespace; choose another place (e.g. under the checkout)" ;;
  esac
}

cgroup2_mount() { findmnt -n -t cgroup2 -o TARGET | head -n1; }

probe() {
  [ "$(id -u)" -eq 0 ] || { echo "needs root (namespaces, mounts, cgroups)"; return 1; }
  [ -x /lib/systemd/systemd ] || { echo "no /lib/systemd/systemd (install the systemd package)"; return 1; }
  local v; v="$(/lib/systemd/systemd --version | awk 'NR==1 {print $2}')"
  [ "${v:-0}" -ge 249 ] 2>/dev/null || { echo "systemd $v is too old (need 249 or newer)"; return 1; }
  for c in unshare nsenter timeout findmnt; do command -v "$c" >/dev/null || { echo "no $c (util-linux/coreutils)"; return 1; }; done
  [ -n "$(cgroup2_mount)" ] || { echo "no cgroup2 hierarchy mounted on this host"; return 1; }
  local out
  if ! out="$(unshare --pid --fork --mount --uts --ipc --cgroup --mount-proc --propagation private \
      sh -c 'mount -t tmpfs none /mnt && mount -t cgroup2 none /mnt && echo ok' 2>&1)"; then
    echo "the kernel refuses the namespaces or mounts: $out"; return 1
  fi
  [ "$out" = ok ] || { echo "unexpected probe output: $out"; return 1; }
}

write_units() {
  local units="$1/units"
  mkdir -p "$units" "$1/empty"
  # Stub targets: present so default dependencies resolve; they pull in nothing of the machine.
  for t in sysinit basic sockets paths timers slices local-fs remote-fs swap network network-online network-pre \
           nss-lookup nss-user-lookup time-set time-sync shutdown final umount emergency rescue multi-user \
           graphical getty cryptsetup integritysetup veritysetup; do
    printf '[Unit]\nDescription=%s (stub for the rustfs-kms boot)\n' "$t" >"$units/$t.target"
  done
  # journald, for "journalctl -u" and the status lines; without its audit socket.
  sed 's/ systemd-journald-audit.socket//' /lib/systemd/system/systemd-journald.service >"$units/systemd-journald.service"
  cp /lib/systemd/system/systemd-journald.socket /lib/systemd/system/systemd-journald-dev-log.socket "$units/"
  printf '[Unit]\nDescription=sockets (stub)\nWants=systemd-journald.socket systemd-journald-dev-log.socket\n' >"$units/sockets.target"
  printf '[Unit]\nDescription=sysinit (stub)\nWants=systemd-journald.service\n' >"$units/sysinit.target"
  printf '[Unit]\nDescription=basic (stub)\nWants=sysinit.target sockets.target\nAfter=sysinit.target sockets.target\n' >"$units/basic.target"
  printf '[Unit]\nDescription=multi-user (stub)\nWants=basic.target\nAfter=basic.target\n' >"$units/multi-user.target"
}

# Runs as PID 1 of the new PID namespace (bash), in the new mount namespace, then becomes systemd.
inner() {
  local dir="$1"
  mount --make-rprivate /
  # Fresh scratch and runtime directories: the host's /tmp, /var/tmp and /run stay untouched.
  mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /tmp
  mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs /run
  # Overlays, upper layers in DIR (work dirs on the same file system).
  local d
  for d in etc usr-local var; do mkdir -p "$dir/upper/$d" "$dir/work/$d"; done
  mount -t overlay overlay -o "lowerdir=/etc,upperdir=$dir/upper/etc,workdir=$dir/work/etc" /etc
  mount -t overlay overlay -o "lowerdir=/usr/local,upperdir=$dir/upper/usr-local,workdir=$dir/work/usr-local" /usr/local
  mount -t overlay overlay -o "lowerdir=/var,upperdir=$dir/upper/var,workdir=$dir/work/var" /var
  mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /var/tmp
  # Empty unit directories for what "install-systemd" and "systemctl enable/edit" write.
  mkdir -p /etc/systemd/system /usr/local/lib/systemd/system
  mount -t tmpfs -o mode=0755 tmpfs /etc/systemd/system
  mount -t tmpfs -o mode=0755 tmpfs /usr/local/lib/systemd/system
  # The checkout as a global npm install.
  mkdir -p "$PKG" /usr/local/bin
  mount --bind "$REPO" "$PKG"
  mount -o remount,bind,ro "$PKG"
  # Bin wrappers rather than npm's symlinks: tsc leaves main.js 0644 and the checkout is read-only here.
  printf '#!/bin/sh\nexec node %s "$@"\n' "$PKG/dist/src/daemon/main.js" >/usr/local/bin/rustfs-kmsd
  printf '#!/bin/sh\nexec node %s "$@"\n' "$PKG/dist/src/cli/main.js" >/usr/local/bin/rustfs-kms
  chmod 0755 /usr/local/bin/rustfs-kmsd /usr/local/bin/rustfs-kms
  # node where systemd's default PATH finds it (setup-node puts it elsewhere in CI).
  local node; node="$(readlink -f "$NODE_BIN")"
  case "$node" in /usr/bin/node|/usr/local/bin/node) ;; *) ln -sfn "$node" /usr/local/bin/node ;; esac
  # /dev: a fresh tmpfs with the usual nodes bound in, so nothing lands in the host's devtmpfs
  # (journald's /dev/log symlink, for one). /dev/console is a file in DIR: systemd's console log.
  mkdir /run/host-dev
  mount --bind /dev /run/host-dev
  mount -t tmpfs -o mode=0755,nosuid tmpfs /dev
  for d in null zero full random urandom tty; do touch "/dev/$d"; mount --bind "/run/host-dev/$d" "/dev/$d"; done
  umount /run/host-dev; rmdir /run/host-dev
  mkdir -p /dev/pts /dev/shm /dev/mqueue
  mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts /dev/pts
  ln -s pts/ptmx /dev/ptmx
  mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /dev/shm
  mount -t mqueue mqueue /dev/mqueue
  ln -s /proc/self/fd /dev/fd; ln -s fd/0 /dev/stdin; ln -s fd/1 /dev/stdout; ln -s fd/2 /dev/stderr
  touch /dev/console; mount --bind "$dir/console.log" /dev/console
  # Read-only kernel knobs; our own cgroup tree.
  mount --bind /proc/sys /proc/sys; mount -o remount,bind,ro /proc/sys
  mount -o remount,bind,ro /sys
  mount -t cgroup2 cgroup2 /sys/fs/cgroup
  # start() enters the namespace only after this: before it, /etc, /var and /proc/sys are the host's.
  touch "$dir/inner-ready"
  if [ -n "${BOOT_DRY:-}" ]; then exec sleep 600; fi
  exec env -i container=rustfs-kms-test \
    SYSTEMD_UNIT_PATH="$(UNIT_PATH_INSIDE "$dir")" \
    SYSTEMD_GENERATOR_PATH="$dir/empty" SYSTEMD_ENVIRONMENT_GENERATOR_PATH="$dir/empty" \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    /lib/systemd/systemd --system --unit=multi-user.target --log-target=journal --show-status=no
}

pid1_of() {
  local dir="$1" tpid upid
  tpid="$(cat "$dir/timeout.pid" 2>/dev/null)" || return 1
  upid="$(cat "/proc/$tpid/task/$tpid/children" 2>/dev/null | awk '{print $1}')"
  [ -n "$upid" ] || return 1
  awk '{print $1}' "/proc/$upid/task/$upid/children" 2>/dev/null | grep -E '^[0-9]+$'
}

in_ns() {
  local dir="$1"; shift
  local pid; pid="$(cat "$dir/pid1" 2>/dev/null)" || die "no boot in $dir"
  [ -d "/proc/$pid" ] || die "the boot in $dir is gone (pid $pid)"
  exec nsenter -t "$pid" -m -p -u -i -C -- env -i \
    SYSTEMD_UNIT_PATH="$(UNIT_PATH_INSIDE "$dir")" SYSTEMD_PAGER= SYSTEMD_COLORS=0 LANG=C.UTF-8 HOME=/root TERM="${TERM:-dumb}" \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$@"
}

start() {
  local dir="$1"
  check_dir "$dir"
  local why; why="$(probe)" || die "cannot boot here: $why"
  [ ! -e "$dir/pid1" ] || die "$dir already has a boot (stop it first)"
  mkdir -p "$dir"
  write_units "$dir"
  : >"$dir/console.log"
  # Our own cgroup, below the one we are in; it becomes the namespace's cgroup root.
  local cg; cg="$(cgroup2_mount)$(awk -F: '$1 == "0" {print $3}' /proc/self/cgroup)"
  cg="${cg%/}/rustfs-kms-boot.$$.$RANDOM"
  mkdir "$cg"
  echo "$cg" >"$dir/cgroup"
  (
    echo "$BASHPID" >"$cg/cgroup.procs"
    echo "$BASHPID" >"$dir/timeout.pid"
    exec setsid timeout -s KILL "${BOOT_MAX_S:-600}" \
      unshare --pid --fork --kill-child=SIGKILL --mount --uts --ipc --cgroup --mount-proc --propagation private \
      env REPO="$repo" BOOT_DRY="${BOOT_DRY:-}" NODE_BIN="$(command -v node || echo /usr/bin/node)" bash "$self" __inner "$dir"
  ) </dev/null >>"$dir/console.log" 2>&1 &
  local pid="" i
  rm -f "$dir/inner-ready"
  for i in $(seq 1 200); do
    [ -e "$dir/inner-ready" ] && pid="$(pid1_of "$dir" || true)"
    [ -n "$pid" ] && break
    sleep 0.05
  done
  [ -n "$pid" ] || { stop "$dir" --keep || true; die "the namespace did not come up; see $dir/console.log"; }
  echo "$pid" >"$dir/pid1"
  if [ -n "${BOOT_DRY:-}" ]; then echo "$pid"; return; fi
  # Up when the manager reports running (or degraded: a unit failed, which the caller will see).
  local state=""
  for i in $(seq 1 300); do
    state="$(nsenter -t "$pid" -m -p -u -i -C -- env SYSTEMD_UNIT_PATH="$(UNIT_PATH_INSIDE "$dir")" systemctl is-system-running 2>/dev/null || true)"
    case "$state" in running|degraded) break ;; esac
    [ -d "/proc/$pid" ] || break
    sleep 0.1
  done
  case "$state" in
    running|degraded) echo "$pid" ;;
    *) echo "boot.sh: systemd did not come up (state '$state'); console:" >&2; tail -n 40 "$dir/console.log" >&2; stop "$dir" --keep || true; exit 1 ;;
  esac
}

stop() {
  local dir="$1" keep="${2:-}"
  check_dir "$dir"
  local pid tpid
  pid="$(cat "$dir/pid1" 2>/dev/null || true)"
  tpid="$(cat "$dir/timeout.pid" 2>/dev/null || true)"
  # PID 1 of a namespace ignores SIGTERM; SIGKILL ends it and the kernel kills the rest of it.
  [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null || true
  [ -n "$tpid" ] && kill -KILL "$tpid" 2>/dev/null || true
  local i
  for i in $(seq 1 100); do
    { [ -z "$tpid" ] || [ ! -d "/proc/$tpid" ]; } && { [ -z "$pid" ] || [ ! -d "/proc/$pid" ]; } && break
    sleep 0.05
  done
  local cg; cg="$(cat "$dir/cgroup" 2>/dev/null || true)"
  if [ -n "$cg" ] && [ -d "$cg" ]; then
    case "$cg" in */rustfs-kms-boot.*) ;; *) die "refusing to remove cgroup $cg" ;; esac
    for i in $(seq 1 50); do
      find "$cg" -depth -type d -exec rmdir {} \; 2>/dev/null || true
      [ -d "$cg" ] || break
      sleep 0.1
    done
  fi
  rm -f "$dir/pid1" "$dir/timeout.pid"
  if [ "$keep" != --keep ]; then
    # Only what start() made: the layers, units and logs.
    rm -rf "$dir/upper" "$dir/work" "$dir/units" "$dir/empty" "$dir/console.log" "$dir/cgroup" "$dir/inner-ready"
    rmdir "$dir" 2>/dev/null || true
  fi
}

cmd="${1:-}"; shift || true
case "$cmd" in
  probe) probe ;;
  start) [ $# -eq 1 ] || die "usage: boot.sh start DIR"; start "$1" ;;
  stop) [ $# -ge 1 ] || die "usage: boot.sh stop DIR [--keep]"; stop "$@" ;;
  exec) [ $# -ge 2 ] || die "usage: boot.sh exec DIR CMD..."; d="$1"; shift; in_ns "$d" "$@" ;;
  shell) [ $# -eq 1 ] || die "usage: boot.sh shell DIR"; in_ns "$1" bash -i ;;
  __inner) inner "$1" ;;
  *) sed -n '2,10p' "$self" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
