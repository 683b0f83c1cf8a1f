//! A network namespace of one test ([`Netns`]), deleted when dropped, and [`Ns::run`] to run
//! async code on a thread inside it (a current-thread tokio runtime, so every socket that
//! code opens lands in the namespace). Every wait is bounded by [`LIMIT`].

use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The bound of every wait.
pub const LIMIT: Duration = Duration::from_secs(20);

/// A network namespace of one test, deleted when dropped.
pub struct Netns(pub Ns);

impl std::ops::Deref for Netns {
    type Target = Ns;
    fn deref(&self) -> &Ns {
        &self.0
    }
}

/// The name of a namespace, to run commands in it (cloned into the namespace's thread).
#[derive(Clone)]
pub struct Ns(pub String);

impl Netns {
    /// A new namespace named `{prefix}-{pid}-{n}-{test}`.
    pub fn new(prefix: &str, test: &str) -> Netns {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "{prefix}-{}-{}-{test}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        run(&["ip", "netns", "add", &name]);
        Netns(Ns(name))
    }
}

impl Ns {
    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.0
    }

    /// `ip -n NS <args>`, which must succeed.
    pub fn ip(&self, args: &[&str]) -> String {
        let mut all = vec!["ip", "-n", &self.0];
        all.extend_from_slice(args);
        run(&all)
    }

    /// Two veth pairs, all up, with carrier; `a0`/`a1` get the given primary addresses.
    pub fn two_nics(&self, a0: &str, a1: &str) {
        for i in ["0", "1"] {
            let (a, b) = (format!("a{i}"), format!("b{i}"));
            self.ip(&["link", "add", &a, "type", "veth", "peer", "name", &b]);
            self.ip(&["link", "set", &a, "up"]);
            self.ip(&["link", "set", &b, "up"]);
        }
        self.ip(&["addr", "add", a0, "dev", "a0", "nodad"]);
        self.ip(&["addr", "add", a1, "dev", "a1", "nodad"]);
        for nic in ["a0", "a1"] {
            self.wait_for(&format!("carrier on {nic}"), || {
                self.ip(&["link", "show", "dev", nic]).contains("LOWER_UP")
            });
        }
    }

    pub fn addrs(&self, nic: &str) -> String {
        self.ip(&["addr", "show", "dev", nic])
    }

    /// Polls `cond` until it holds (bounded by [`LIMIT`]).
    pub fn wait_for(&self, what: &str, mut cond: impl FnMut() -> bool) {
        let deadline = Instant::now() + LIMIT;
        while !cond() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Runs `f` on a thread inside the namespace, with a current-thread runtime.
    pub fn run<T, F, Fut>(&self, f: F) -> T
    where
        T: Send + 'static,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = T>,
    {
        let path = format!("/run/netns/{}", self.0);
        std::thread::spawn(move || {
            let ns = std::fs::File::open(&path).expect("open the namespace");
            // SAFETY: setns(2) on a namespace fd; only this thread changes namespace.
            let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(f())
        })
        .join()
        .expect("the test thread in the namespace panicked")
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.0 .0])
            .output();
    }
}

/// Runs a command, which must succeed; its stdout.
pub fn run(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .expect("run a command");
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
