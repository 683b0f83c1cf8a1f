//! `eternectl ca init` and `eternectl cert issue NODE`: exit codes, files and error messages.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

fn eternectl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_eternectl"))
        .args(args)
        .output()
        .unwrap()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn ca_init_then_cert_issue() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("tls");
    let d = dir.to_str().unwrap();

    let out = eternectl(&["ca", "init", "--dir", d]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(mode(&dir.join("ca.key")), 0o600);
    assert!(dir.join("ca.crt").exists());

    // A second init refuses and names the file; --force replaces.
    let out = eternectl(&["ca", "init", "--dir", d]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("ca.crt") && err.contains("--force"), "{err}");
    assert!(eternectl(&["ca", "init", "--dir", d, "--force"])
        .status
        .success());

    let out = eternectl(&["cert", "issue", "alpha", "--dir", d]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(mode(&dir.join("alpha.key")), 0o600);
    assert!(dir.join("alpha.crt").exists());

    let out = eternectl(&["cert", "issue", "alpha", "--dir", d]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("alpha.crt"));
}

#[test]
fn cert_issue_without_a_ca_names_the_missing_key() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().to_str().unwrap();
    let out = eternectl(&["cert", "issue", "alpha", "--dir", d]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("ca.key") && err.contains("eternectl ca init"),
        "{err}"
    );
}
