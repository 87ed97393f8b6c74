//! Running the built `zkbc` binary (tests with the `cli` feature).

use std::process::Output;
use std::time::Duration;

use super::within;

/// `zkbc ARGS`, killed with the test, without the caller's RUST_LOG.
pub fn zkbc(args: &[&str]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_zkbc"));
    cmd.args(args).kill_on_drop(true).env_remove("RUST_LOG");
    cmd
}

pub async fn run(args: &[&str]) -> Output {
    let what = format!("zkbc {}", args.join(" "));
    within(&what, Duration::from_secs(60), zkbc(args).output()).await.expect("run zkbc")
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Runs and expects success; returns stdout.
pub async fn ok(args: &[&str]) -> String {
    let out = run(args).await;
    assert!(out.status.success(), "zkbc {args:?} failed: {:?}\n{}", out.status, text(&out.stderr));
    text(&out.stdout)
}

/// Runs and expects exit `code` with one line on stderr mentioning `says`.
pub async fn fails(args: &[&str], code: i32, says: &str) {
    let out = run(args).await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "zkbc {args:?}: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line on stderr for {args:?}, got:\n{stderr}");
    assert!(stderr.starts_with("zkbc: ") && stderr.contains(says), "zkbc {args:?}: {stderr}");
    assert!(!stderr.contains("panicked") && !stderr.contains("backtrace"));
}

pub fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}):\n{s}"))
}
