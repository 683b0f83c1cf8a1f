#!/usr/bin/env bash
# Install what EterneCluster's build and tests need on a fresh Debian machine, then build.
# Idempotent: packages already present are not installed again. Needs root for apt-get; as
# another user it only says what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the tests use (besides a Rust toolchain and a C compiler):
#   iproute2, nftables  network namespaces, addresses and partitions (root-only tests)
#   util-linux          losetup for loop-device shared disks, mount(8) for the filesystem agent,
#                       nsenter to reach a node's mount namespace (root-only tests)
#   procps              pkill/pgrep in test clean-up
#   resource-agents     real OCF agents (ocf:heartbeat:Dummy, IPaddr2) for the ocf agent's tests
#   e2fsprogs           mkfs.ext4 and fsck.ext4 for the filesystem agent's tests (root-only)
#   sg3-utils           sg_persist, run by the disk_lock agent's scsi_pr method (SCSI-3
#                       persistent reservations); also what a node needs to use that method
#   bind9, bind9-dnsutils  a real DNS server (named) and dig for the network_name agent's tests
#   python3             /usr/bin/python3 runs the namespace tests' application (a TCP server
#                       that answers with its node's name: tests/cluster/namespaces.rs)
#   samba, smbclient    smbd, net, smbcontrol and smbstatus for the share agent and its tests
#                       (each test runs an smbd of its own), smbclient as their client
packages=(iproute2 nftables util-linux procps resource-agents e2fsprogs sg3-utils bind9 bind9-dnsutils python3 samba smbclient)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then
    echo "setup: installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "setup: not root, cannot install ${missing[*]}; the root-only tests will skip"
  fi
fi

command -v cargo >/dev/null || { echo "setup: cargo not found: install a Rust toolchain (1.85 or newer)"; exit 1; }
