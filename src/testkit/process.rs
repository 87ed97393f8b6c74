//! Child processes that never outlive the test that started them.
//!
//! Three layers, because each covers a way the others fail:
//! - [`Supervised`] kills and reaps its child on drop (normal end and panics);
//! - every child is spawned with `PR_SET_PDEATHSIG(SIGKILL)` (the test process
//!   was killed). The signal fires when the *thread* that forked exits, so all
//!   spawns go through one thread that lives as long as the process;
//! - every child's command line carries `zkbalance.testkit.owner=<pid>`, and
//!   [`sweep_orphans`] kills any whose owner is gone (belt and braces, and the
//!   check `scripts/test` runs at the end).

use std::io;
use std::process::{Child, Command};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::thread;

/// The marker every child of ours carries on its command line.
pub const OWNER_MARKER: &str = "zkbalance.testkit.owner=";

type SpawnRequest = (Command, mpsc::Sender<io::Result<Child>>);

fn spawner() -> &'static Mutex<mpsc::Sender<SpawnRequest>> {
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<SpawnRequest>>> = OnceLock::new();
    SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        thread::Builder::new()
            .name("testkit-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
            })
            .expect("spawning the testkit spawner thread");
        Mutex::new(tx)
    })
}

/// Spawns `cmd` so that it dies with this process.
pub(crate) fn spawn(mut cmd: Command) -> io::Result<Child> {
    use std::os::unix::process::CommandExt;
    sweep_orphans();
    // SAFETY: prctl and getppid are async-signal-safe; nothing else runs
    // between fork and exec.
    unsafe {
        let parent = libc::getpid();
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(io::Error::last_os_error());
            }
            // The parent may have died between fork and prctl.
            if libc::getppid() != parent {
                return Err(io::Error::other("parent exited during spawn"));
            }
            Ok(())
        });
    }
    let (tx, rx) = mpsc::channel();
    spawner()
        .lock()
        .map_err(|_| io::Error::other("testkit spawner poisoned"))?
        .send((cmd, tx))
        .map_err(|_| io::Error::other("testkit spawner thread is gone"))?;
    rx.recv().map_err(|_| io::Error::other("testkit spawner thread is gone"))?
}

/// The marker argument for this process.
pub(crate) fn owner_marker() -> String {
    format!("{OWNER_MARKER}{}", std::process::id())
}

/// A child that is killed and reaped when dropped.
#[derive(Debug)]
pub struct Supervised {
    child: Option<Child>,
    what: String,
}

impl Supervised {
    pub(crate) fn new(child: Child, what: impl Into<String>) -> Self {
        Self { child: Some(child), what: what.into() }
    }

    /// Starts `cmd` as a child that dies with this process (SIGKILL on our
    /// death) and is killed when dropped: for benches and tools that run
    /// member processes.
    ///
    /// # Errors
    /// The spawn's I/O error.
    pub fn spawn(cmd: Command, what: impl Into<String>) -> io::Result<Self> {
        Ok(Self::new(spawn(cmd)?, what))
    }

    /// Sends `signal` (e.g. `libc::SIGTERM`) to the child, if it runs.
    pub fn signal(&self, signal: libc::c_int) {
        if let Some(pid) = self.pid() {
            // SAFETY: kill(2) on our own, not yet reaped, child.
            unsafe {
                libc::kill(pid as libc::pid_t, signal);
            }
        }
    }

    /// The child's pid, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the child has exited (reaping it if so).
    pub fn has_exited(&mut self) -> bool {
        !matches!(self.child.as_mut().map(Child::try_wait), Some(Ok(None)))
    }

    /// SIGKILLs and reaps the child. Idempotent.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            if let Err(e) = child.wait() {
                tracing::warn!(what = %self.what, error = %e, "reaping a killed child failed");
            }
        }
    }

    pub(crate) fn child_mut(&mut self) -> Option<&mut Child> {
        self.child.as_mut()
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Processes of ours (by marker) whose owner process no longer exists:
/// `(pid, owner pid)`. Reads `/proc`; other users' processes are skipped.
pub fn orphans() -> Vec<(u32, u32)> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let owner = cmdline
                .split(|&b| b == 0)
                .filter_map(|arg| std::str::from_utf8(arg).ok())
                .find_map(|arg| arg.split_once(OWNER_MARKER).map(|(_, o)| o))?
                .parse::<u32>()
                .ok()?;
            (!process_exists(owner)).then_some((pid, owner))
        })
        .collect()
}

fn process_exists(pid: u32) -> bool {
    // A zombie owner counts as gone: it can no longer clean up.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// Kills every orphan of ours; returns how many there were.
pub fn sweep_orphans() -> usize {
    let found = orphans();
    for &(pid, owner) in &found {
        tracing::warn!(pid, owner, "killing an orphaned testkit process");
        // SAFETY: plain kill(2) on a pid we just identified by its marker.
        unsafe {
            libc::kill(pid as libc::pid_t, libc::SIGKILL);
        }
    }
    found.len()
}
