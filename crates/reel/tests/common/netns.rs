//! A network of the test's own: a test that must run on a host with a real interface
//! address (a browser refuses loopback candidates) re-runs itself inside a network namespace
//! it creates, with loopback and one veth interface (10.251.x.1/24, the default route).
//! Every datagram stays in that namespace; the machine's own interfaces are never used.
//!
//! ```ignore
//! #[test]
//! fn a_browser_publishes() {
//!     if !netns::inside("a_browser_publishes") { return; }
//!     … the test, on a host whose one interface is 10.251.x.1 …
//! }
//! ```

use std::process::Command;

const MARK: &str = "REEL_TEST_NETNS";

fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .expect("ip (iproute2) is required");
    assert!(
        out.status.success(),
        "ip {}: {} (network namespaces need root)",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Removes the namespace when the test ends, however it ends.
struct Namespace(String);

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// True inside the namespace: run the test's body. Outside, creates the namespace, runs
/// `test` (the test's full name) there as a child of this test binary, fails if it
/// failed, and returns false.
pub fn inside(test: &str) -> bool {
    if std::env::var_os(MARK).is_some() {
        return true;
    }
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let id = format!("{}{}", std::process::id() % 100_000, n);
    let name = format!("reel-t{id}");
    ip(&["netns", "add", &name]);
    let ns = Namespace(name);
    let (a, b) = (format!("rt{id}a"), format!("rt{id}b"));
    let subnet = 1 + (std::process::id() + n) % 250;
    let exec = |args: &[&str]| {
        let mut all = vec!["netns", "exec", &ns.0, "ip"];
        all.extend_from_slice(args);
        ip(&all);
    };
    exec(&["link", "set", "lo", "up"]);
    exec(&["link", "add", &a, "type", "veth", "peer", "name", &b]);
    let address = format!("10.251.{subnet}.1/24");
    exec(&["addr", "add", &address, "dev", &a]);
    exec(&["link", "set", &a, "up"]);
    exec(&["link", "set", &b, "up"]);
    // A default route through it, as a user's machine has: Firefox gathers candidates only
    // on the default route's interface. What it routes ends at the peer end, which has no
    // address and is in this namespace too: nothing leaves.
    let gateway = format!("10.251.{subnet}.2");
    exec(&["route", "add", "default", "via", &gateway, "dev", &a]);
    let out = Command::new("ip")
        .args(["netns", "exec", &ns.0])
        .arg(std::env::current_exe().unwrap())
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(MARK, &ns.0)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stderr}");
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "{test} in network namespace {} ({address}) failed:\n{stdout}",
        ns.0
    );
    false
}
