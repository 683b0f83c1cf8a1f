//! A share fails over with its group (design.md §10.4): three `eterned` in three node
//! namespaces (the harness of `tests/cluster/namespaces.rs`), each node with an smbd of its
//! own, and group "web" holding a `disk_lock`, an ext4 `filesystem` on a loop device the
//! nodes share, the application, the floating address and a `share` of the filesystem. A
//! client in the client namespace writes a file through `\\192.0.2.10\files`; node 1 crashes;
//! the client reads the same file back through the same address, now served by node 2.
//!
//! Each node has its own Samba, as separate machines have: its smb.conf, registry, lock and
//! pid directories under `/tmp/share-<prefix>/nK`. The config is one file for every node, so
//! the share's `smb_conf` names one path, `/tmp/share-<prefix>/node/smb.conf`, and each node
//! finds its own there: the node's `eterned` is started through a small script that, inside
//! the node's namespaces (the harness gives each daemon a mount namespace of its own),
//! bind-mounts `nK` on `node`, starts that node's smbd, waits for it to answer, then execs
//! `eterned`. smbd thus shares the daemon's mount namespace and sees the filesystem it
//! mounts; a node crash kills it with everything else in the node.
//!
//! Root only; without root, a tool or Samba the test prints one line and returns. Every wait
//! is bounded; nothing asserts how long something took.

mod cluster;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cluster::namespaces::{sh, skip, unix_us, GroupOpts, LoopDisk, Net, FLOATING};
use cluster::support::samba::{self, Listen};
use cluster::{one_at_a_time, Cluster};

/// The share's name, as the client maps it.
const SHARE: &str = "files";

/// Removes the test's Samba directories when it ends (after the cluster: declared first).
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What each node's `eterned` is started as: its node's Samba first (see the module docs).
fn wrapper(scratch: &Path, eterned: &Path) -> String {
    let s = scratch.display();
    format!(
        "#!/bin/sh\n\
         # Inside the node's network and mount namespaces: this node's Samba, then eterned.\n\
         set -e\n\
         mount --bind \"{s}/$ETERNE_TEST_NODE\" \"{s}/node\"\n\
         smbd -D -s \"{s}/node/smb.conf\"\n\
         i=0\n\
         until smbcontrol -s \"{s}/node/smb.conf\" smbd ping >/dev/null 2>&1; do\n\
         \x20 i=$((i + 1)); [ \"$i\" -lt 200 ] || {{ echo \"smbd of $ETERNE_TEST_NODE does not answer\" >&2; exit 1; }}\n\
         \x20 sleep 0.05\n\
         done\n\
         exec \"{}\" \"$@\"\n",
        eterned.display()
    )
}

/// `smbclient //FLOATING/files -N -c CMDS` from the client namespace, retried (bounded) until
/// it succeeds: right after a failover the first tries may meet no one.
fn from_client(c: &Cluster, cmds: &str, tries: usize) -> (bool, String) {
    let mut last = (false, String::new());
    for _ in 0..tries {
        last = samba::smbclient(&c.net().client, FLOATING, SHARE, cmds);
        if last.0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    last
}

#[test]
fn a_file_written_through_the_floating_share_is_read_back_from_the_next_node_after_a_crash() {
    let test =
        "a_file_written_through_the_floating_share_is_read_back_from_the_next_node_after_a_crash";
    if skip(test) {
        return;
    }
    if let Some(why) = samba::unavailable() {
        println!("SKIPPED {test}: {why}");
        return;
    }
    let _turn = one_at_a_time();
    let prefix = format!("sh{}-fo", std::process::id() % 1000);
    let scratch = PathBuf::from(format!("/tmp/share-{prefix}"));
    let _ = std::fs::remove_dir_all(&scratch);
    let _scratch = Scratch(scratch.clone());
    std::fs::create_dir_all(scratch.join("node")).expect("scratch");
    let confs: Vec<PathBuf> = (1..=3)
        .map(|k| {
            samba::write_smb_conf(
                &scratch.join(format!("n{k}")),
                &format!("ETERNE-N{k}"),
                &Listen::Any,
                true,
            )
        })
        .collect();
    let script = scratch.join("eterned-with-smbd");
    let eterned = PathBuf::from(env!("CARGO_BIN_EXE_eterned"));
    std::fs::write(&script, wrapper(&scratch, &eterned)).expect("wrapper");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");

    let net = Net::with_prefix(prefix.clone(), 3, false);
    let lock = LoopDisk::new(scratch.with_extension("lock.img"), 1).expect("lock disk");
    let data = LoopDisk::new(scratch.with_extension("data.img"), 64).expect("data disk");
    // Its root owned by nobody: the share's guests write as nobody.
    sh(&[
        "mkfs.ext4",
        "-q",
        "-F",
        "-E",
        "root_owner=65534:65534",
        &data.dev,
    ])
    .expect("mkfs.ext4");
    // A stop budget the share's stop fits in (two or three tenths of a second of Samba's
    // commands), hence a longer lease and slower detection: otherwise a lease lapse on the
    // loaded machine leaves the stop to the monitor's hard stop.
    let g = GroupOpts {
        disk: Some((lock.dev.clone(), data.dev.clone())),
        long_lease: true,
        ..GroupOpts::default()
    };
    let node_conf = scratch.join("node/smb.conf");
    let mut c = Cluster::namespaces_with(script, net, &g, |dir| {
        format!(
            "  [[group.resource]]\n  name = \"web-share\"\n  type = \"share\"\n  params = {{ name = \"{SHARE}\", path = \"{}\", guest_ok = \"true\", comment = \"web's files\", smb_conf = \"{}\" }}\n  depends_on = [\"web-fs\"]\n  quick = {{ interval_ms = 2000, timeout_ms = 1500 }}\n",
            dir.join("mnt").display(),
            node_conf.display()
        )
    });
    c.start_all();
    c.wait_for("the cluster forms", |c| c.formed());
    c.wait_for("web runs on its preferred node n1", |c| {
        c.on("web").as_deref() == Some("n1")
    });
    let mnt = c.mnt.display().to_string();
    let defined: Vec<bool> = confs
        .iter()
        .map(|f| samba::registry_has(f, SHARE))
        .collect();
    if defined != [true, false, false] {
        c.dump();
        panic!("the share must be in n1's registry only while n1 runs web: {defined:?}");
    }

    // Written through the floating address: n1's smbd, onto the shared disk.
    let payload = format!("written through {FLOATING} at {} µs\n", unix_us());
    let src = scratch.join("payload-src.txt");
    std::fs::write(&src, &payload).expect("payload");
    let (ok, out) = from_client(&c, &format!("put {} payload.txt", src.display()), 20);
    if !ok {
        c.dump();
        panic!("the client cannot write through the share on n1: {out}");
    }
    let pid1 = c.daemon_pid(0).expect("n1 runs").to_string();
    let on_n1 = sh(&[
        "nsenter",
        "-t",
        &pid1,
        "-m",
        "cat",
        &format!("{mnt}/payload.txt"),
    ]);
    assert_eq!(
        on_n1.as_deref(),
        Ok(payload.as_str()),
        "the file is on n1's mount"
    );

    c.crash(0);
    c.wait_for("web runs on n2", |c| c.on("web").as_deref() == Some("n2"));
    let (ok, out) = from_client(&c, "get payload.txt /dev/stdout", 40);
    if !ok {
        c.dump();
        panic!("the client cannot read through the share after the failover: {out}");
    }
    assert!(
        out.contains(payload.trim_end()),
        "the same file, read back through {FLOATING} from n2: {out}"
    );
    // n2's own registry serves it (n1's, left as the crash left it, is not consulted), and
    // n3 has none.
    let (ok, shown) = samba::net_conf(&confs[1], &["showshare", SHARE]);
    assert!(ok, "n2's registry has the share: {shown}");
    assert!(shown.contains(&format!("path = {mnt}")), "{shown}");
    assert!(!samba::registry_has(&confs[2], SHARE), "n3 has no share");
    let (ok, list) = samba::in_ns(
        &c.net().client,
        &["smbclient", "-L", &format!("//{FLOATING}"), "-N"],
        None,
    );
    assert!(
        ok && list.contains("web's files"),
        "the floating address lists the share: {list}"
    );

    // n1 reboots with the stale definition its crash left: it is removed there (by the
    // monitor's hard stop of what the crashed daemon held, or by a probe and a stop), since
    // web runs on n2.
    assert!(
        samba::registry_has(&confs[0], SHARE),
        "a crash stops nothing"
    );
    c.reboot(0);
    c.wait_for("n1 rejoins", |c| c.formed());
    c.wait_for("n1's stale share is stopped", |_| {
        !samba::registry_has(&confs[0], SHARE)
    });
    assert_eq!(c.on("web").as_deref(), Some("n2"), "web stays on n2");
    assert!(samba::registry_has(&confs[1], SHARE), "n2 keeps serving it");
    drop(c);
    drop((lock, data));
}
