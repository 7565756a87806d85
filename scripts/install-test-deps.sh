#!/usr/bin/env bash
# OS packages the test suite uses, installed with apt-get when missing (CI and fresh machines).
#   setpriv (util-linux)   run a test client as another uid
#   python3                the sd_notify test's datagram receiver
#   openssl                the crypto benchmark's baseline
#   softhsm2               a real PKCS#11 token for the pkcs11 root tests (module /usr/lib/softhsm/libsofthsm2.so)
#   opensc                 pkcs11-tool: independent inspection of the token's objects in those tests
#   systemd                test/systemd: systemd-analyze (verify, security, syscall-filter),
#                          systemd-socket-activate, systemd-sysusers, systemd-tmpfiles, and /lib/systemd/systemd
#                          itself, booted as PID 1 in private namespaces by test/systemd/boot.sh (the host's
#                          own init is never used)
#   strace                 test/systemd: a daemon session's system calls against the unit's filter
#   golang-go, golang-github-minio-madmin-go-dev
#                          test/http/madmin.test.ts: a client built on MinIO's admin SDK (madmin-go 2.0.7,
#                          GOPATH mode over /usr/share/gocode; no module proxy needed)
set -euo pipefail

missing=()
command -v setpriv >/dev/null 2>&1 || missing+=(util-linux)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
command -v g++ >/dev/null 2>&1 || missing+=(g++)
command -v make >/dev/null 2>&1 || missing+=(make)
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v softhsm2-util >/dev/null 2>&1 || missing+=(softhsm2)
command -v pkcs11-tool >/dev/null 2>&1 || missing+=(opensc)
command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
command -v systemd-socket-activate >/dev/null 2>&1 || missing+=(systemd)
command -v strace >/dev/null 2>&1 || missing+=(strace)
command -v go >/dev/null 2>&1 || missing+=(golang-go)
[ -f /usr/share/gocode/src/github.com/minio/madmin-go/kms-commands.go ] || missing+=(golang-github-minio-madmin-go-dev)

if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing packages: ${missing[*]} (run as root, or install them)" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}"
fi
