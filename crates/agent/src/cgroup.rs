//! cgroup v2 for the process executor. Each attempt runs in a cgroup of its
//! own, `<base>/<job>-<task>-<attempt>`, so that:
//!
//! - everything it started, daemons that left its process group included,
//!   dies with it (`cgroup.kill`, Linux 5.14+) and its cgroup is removed;
//! - its CPU time is measured (`cpu.stat`, there even without controllers);
//! - where the `cpu`, `pids` and `memory` controllers reach the base, its
//!   CPU share (`cpu.max`), its process count (`pids.max`) and, when the
//!   job asked for memory, its memory (`memory.max`) are limited. Over its
//!   memory an attempt is OOM-killed, not swapped out: `memory.swap.max` is
//!   0 where the kernel accounts swap (the file exists); where it does not,
//!   `memory.max` bounds only its RAM, and it may swap beyond.
//!
//! The base is `suanwang-<hash of the state directory>` (stable across
//! restarts, distinct for two agents on one host) below a parent: the
//! agent's own cgroup, or one the site file names. The agent enables the
//! controllers it can in the parent and the base, and uses what the base
//! then offers. It never moves itself, or any process it did not start, out
//! of the way: its cgroup may hold a login shell, a test harness or (in
//! `suanwang up`) the server. So, by the "no internal processes" rule, a
//! parent that holds the agent passes no controllers down unless it is the
//! root cgroup; the attempts then run with containment, kill and
//! accounting but without limits. To get limits under systemd, run the
//! agent with `Delegate=yes` and `DelegateSubgroup=agent`, and name the
//! service's cgroup (which then holds no process) as `cgroup` in the site
//! file.

use std::os::unix::ffi::OsStringExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `pids.max` of an attempt: a fork bomb stops here, while real work (a
/// `make -j` on 256 cores) stays far below.
pub const PIDS_MAX: u64 = 16_384;
/// The CFS period of `cpu.max`: the kernel's default, 100 ms.
const CPU_PERIOD_US: u64 = 100_000;
/// Tries, `REMOVE_PAUSE` apart, to empty and remove an ended attempt's
/// cgroup before it is logged and left: at most a second of one poll.
const REMOVE_TRIES: u32 = 100;
const REMOVE_PAUSE: Duration = Duration::from_millis(10);
/// Characters of the job id kept in a cgroup name (NAME_MAX is 255).
const JOB_NAME_CHARS_MAX: usize = 128;
/// The first step of the attempt's wrapper, and of the startup probe: the
/// shell moves itself into the cgroup `$1` before it runs anything else,
/// so all the attempt starts is born inside.
pub const ENTER: &str = r#"echo $$ > "$1/cgroup.procs""#;

/// The controllers the attempts' cgroups have.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Controllers {
    pub cpu: bool,
    pub pids: bool,
    pub memory: bool,
}

/// Where the attempts' cgroups are made, and what they may limit.
#[derive(Debug)]
pub struct Cgroups {
    base: PathBuf,
    controllers: Controllers,
}

/// The mount point of the cgroup2 hierarchy and the part of the hierarchy
/// mounted there (`/` but in some containers), from /proc/self/mountinfo.
fn parse_mountinfo(text: &str) -> Option<(PathBuf, PathBuf)> {
    text.lines().find_map(|line| {
        // `ID PARENT MAJ:MIN ROOT MOUNT OPTIONS [OPTIONAL...] - TYPE SOURCE SUPER`
        let (left, right) = line.split_once(" - ")?;
        if right.split(' ').next()? != "cgroup2" {
            return None;
        }
        let mut fields = left.split(' ').skip(3);
        let root = unescape(fields.next()?);
        let mount = unescape(fields.next()?);
        Some((mount, root))
    })
}

/// mountinfo writes space, tab, newline and backslash as `\ooo`.
fn unescape(field: &str) -> PathBuf {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).and_then(|digits| {
            let digits = std::str::from_utf8(digits).ok()?;
            u8::from_str_radix(digits, 8).ok()
        });
        match octal {
            Some(byte) if bytes[i] == b'\\' => {
                out.push(byte);
                i += 4;
            }
            _ => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    PathBuf::from(std::ffi::OsString::from_vec(out))
}

/// The directory of the agent's own cgroup, from mountinfo and
/// /proc/self/cgroup (whose `0::/PATH` line is the v2 membership).
fn own_dir(mountinfo: &str, proc_cgroup: &str) -> Result<PathBuf, &'static str> {
    let (mount, root) = parse_mountinfo(mountinfo).ok_or("no cgroup2 hierarchy is mounted")?;
    let own = proc_cgroup
        .lines()
        .find_map(|line| line.strip_prefix("0::"))
        .ok_or("the agent is in no cgroup v2 hierarchy")?;
    let relative = Path::new(own)
        .strip_prefix(&root)
        .map_err(|_| "the agent's cgroup is outside the mounted cgroup2 tree")?;
    Ok(mount.join(relative))
}

/// The controllers named in `cgroup.controllers` or `cgroup.subtree_control`.
fn parse_controllers(text: &str) -> Controllers {
    let has = |name: &str| text.split_whitespace().any(|c| c == name);
    Controllers {
        cpu: has("cpu"),
        pids: has("pids"),
        memory: has("memory"),
    }
}

/// CPU time in microseconds, from `cpu.stat`.
fn parse_usage_us(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|line| line.strip_prefix("usage_usec "))
        .and_then(|value| value.trim().parse().ok())
}

/// The `oom_kill` count of a `memory.events` file.
fn parse_oom_kills(text: &str) -> u64 {
    text.lines()
        .find_map(|line| line.strip_prefix("oom_kill "))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(0)
}

/// How many processes of the attempt the kernel killed for going over its
/// `memory.max` (0 without the memory controller).
pub fn oom_kills(path: &Path) -> u64 {
    std::fs::read_to_string(path.join("memory.events"))
        .map(|text| parse_oom_kills(&text))
        .unwrap_or(0)
}

/// The base's name for the agent whose state is in `state_dir`.
pub fn base_name(state_dir: &Path) -> String {
    let path = std::path::absolute(state_dir).unwrap_or_else(|_| state_dir.to_owned());
    // FNV-1a: a hash that stays the same across Rust versions, unlike std's.
    let hash = path
        .as_os_str()
        .as_encoded_bytes()
        .iter()
        .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
            (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
        });
    format!("suanwang-{hash:016x}")
}

/// An attempt's cgroup name: the job id kept to file-name-safe characters
/// and bounded, then the task and the attempt.
pub fn attempt_name(job: &str, task: u64, attempt: u32) -> String {
    let job: String = job
        .chars()
        .take(JOB_NAME_CHARS_MAX)
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '_' | '-' => c,
            _ => '_',
        })
        .collect();
    format!("{job}-{task}-{attempt}")
}

fn io_error(path: &Path, error: std::io::Error) -> std::io::Error {
    std::io::Error::new(error.kind(), format!("{}: {error}", path.display()))
}

/// Enables `cpu`, `pids` and `memory` below `dir`, each alone (a write
/// naming a controller the kernel cannot give fails as a whole). Failures
/// are expected (a parent with processes, a controller bound to cgroup v1)
/// and show in what `dir/cgroup.subtree_control` reads afterwards.
fn enable(dir: &Path) {
    for controller in ["+cpu", "+pids", "+memory"] {
        let _ = std::fs::write(dir.join("cgroup.subtree_control"), controller);
    }
}

/// Passes the base what controllers it can have, and checks that cgroup v2
/// works there as the attempts need it; the controllers the base offers.
fn prepare(parent: &Path, base: &Path) -> Result<Controllers, String> {
    enable(parent);
    enable(base);
    let subtree = base.join("cgroup.subtree_control");
    let controllers = parse_controllers(
        &std::fs::read_to_string(&subtree).map_err(|e| format!("{}: {e}", subtree.display()))?,
    );
    if !base.join("cgroup.kill").exists() {
        return Err("the kernel has no cgroup.kill (Linux 5.14 or later)".into());
    }
    // Moving a process needs write access up to the common ancestor of both
    // cgroups: try it once with a real child, as an attempt will.
    let probe = base.join("probe");
    std::fs::create_dir_all(&probe)
        .map_err(|e| format!("cannot create {}: {e}", probe.display()))?;
    let entered = std::process::Command::new("sh")
        .arg("-c")
        .arg(ENTER)
        .arg("sh")
        .arg(&probe)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
    let _ = std::fs::remove_dir(&probe);
    match entered {
        Ok(status) if status.success() => Ok(controllers),
        Ok(status) => Err(format!(
            "a child cannot enter {} ({status})",
            probe.display()
        )),
        Err(e) => Err(format!("sh cannot run: {e}")),
    }
}

impl Cgroups {
    /// Makes the base `<parent>/<name>` (`parent`: the agent's own cgroup
    /// when `None`), passes it what controllers it can, and checks that a
    /// child can enter a cgroup below it. The reason when cgroup v2 cannot
    /// be used.
    pub fn detect(parent: Option<&Path>, name: &str) -> Result<Cgroups, String> {
        let read = |path: &Path| {
            std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))
        };
        let mountinfo = read(Path::new("/proc/self/mountinfo"))?;
        let parent = match parent {
            Some(parent) => {
                let (mount, _) =
                    parse_mountinfo(&mountinfo).ok_or("no cgroup2 hierarchy is mounted")?;
                if !parent.starts_with(&mount) || !parent.join("cgroup.procs").exists() {
                    return Err(format!(
                        "{} is not a cgroup of the cgroup2 hierarchy at {}",
                        parent.display(),
                        mount.display()
                    ));
                }
                parent.to_owned()
            }
            None => own_dir(&mountinfo, &read(Path::new("/proc/self/cgroup"))?)?,
        };
        let base = parent.join(name);
        std::fs::create_dir_all(&base)
            .map_err(|e| format!("cannot create {}: {e}", base.display()))?;
        match prepare(&parent, &base) {
            Ok(controllers) => Ok(Cgroups { base, controllers }),
            Err(reason) => {
                // Not used after all: leave no trace (unless attempts of an
                // earlier life are still in it).
                let _ = std::fs::remove_dir(&base);
                Err(reason)
            }
        }
    }

    pub fn base(&self) -> &Path {
        &self.base
    }

    pub fn controllers(&self) -> Controllers {
        self.controllers
    }

    /// Makes the attempt's cgroup `name` with its limits, where the
    /// controllers are there: `cpu.max` of `cores` (CPU pools only),
    /// `pids.max`, and `memory.max` of `memory_bytes` (when the job asked
    /// for memory) with `memory.swap.max` 0 (where that file exists). A
    /// leftover of the same name is emptied first: an earlier life of the
    /// agent started the attempt and died before recording it, and an
    /// attempt runs once.
    pub async fn create(
        &self,
        name: &str,
        cores: Option<u64>,
        memory_bytes: Option<u64>,
    ) -> std::io::Result<PathBuf> {
        let path = self.base.join(name);
        if path.exists() {
            tracing::warn!(cgroup = %path.display(), "an unrecorded earlier start of this attempt; killing it");
            remove(&path).await;
        }
        // The base goes when its last attempt does (`remove`): make it
        // again. Twice at most: an attempt ending at this very moment may
        // remove the base between the two `create_dir`s.
        for try_index in 0..2 {
            match std::fs::create_dir(&self.base) {
                Ok(()) => enable(&self.base),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io_error(&self.base, e)),
            }
            match std::fs::create_dir(&path) {
                Ok(()) => break,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && try_index == 0 => {}
                Err(e) => return Err(io_error(&path, e)),
            }
        }
        let mut limits = Vec::new();
        if let (true, Some(cores)) = (self.controllers.cpu, cores) {
            let quota_us = cores.saturating_mul(CPU_PERIOD_US);
            limits.push(("cpu.max", format!("{quota_us} {CPU_PERIOD_US}")));
        }
        if self.controllers.pids {
            limits.push(("pids.max", PIDS_MAX.to_string()));
        }
        if let (true, Some(bytes)) = (self.controllers.memory, memory_bytes.filter(|&b| b > 0)) {
            limits.push(("memory.max", bytes.to_string()));
            // Absent without swap accounting (CONFIG_MEMCG_SWAP, `swapaccount`).
            if path.join("memory.swap.max").exists() {
                limits.push(("memory.swap.max", "0".to_owned()));
            }
        }
        for (file, value) in limits {
            let file = path.join(file);
            if let Err(e) = std::fs::write(&file, value) {
                remove(&path).await;
                return Err(io_error(&file, e));
            }
        }
        Ok(path)
    }
}

/// Kills every process in the cgroup at once, those that left the
/// attempt's process group included.
pub fn kill(path: &Path) {
    match std::fs::write(path.join("cgroup.kill"), "1") {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            tracing::warn!(cgroup = %path.display(), error = %e, "cannot kill the cgroup");
        }
        _ => {}
    }
}

/// Kills what is left in an ended attempt's cgroup and removes it, and the
/// base once it is empty; the attempt's CPU time in microseconds. Never
/// fails the attempt: a cgroup that will not go is logged and left.
pub async fn remove(path: &Path) -> Option<u64> {
    let mut usage_us = None;
    for try_index in 0..REMOVE_TRIES {
        // Read before each try: the last read before the cgroup goes is final.
        usage_us = std::fs::read_to_string(path.join("cpu.stat"))
            .ok()
            .and_then(|text| parse_usage_us(&text))
            .or(usage_us);
        match std::fs::remove_dir(path) {
            Ok(()) => {
                // Only a base of ours, and only when empty (else EBUSY).
                if let Some(base) = path.parent().filter(|base| {
                    base.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with("suanwang-"))
                }) {
                    let _ = std::fs::remove_dir(base);
                }
                return usage_us;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return usage_us,
            Err(_) => {
                if try_index == 0 {
                    tracing::info!(cgroup = %path.display(), "the attempt left processes behind; killing them");
                }
                kill(path);
                tokio::time::sleep(REMOVE_PAUSE).await;
            }
        }
    }
    tracing::warn!(cgroup = %path.display(), "cannot remove the attempt's cgroup; left in place");
    usage_us
}

#[cfg(test)]
mod tests {
    use super::*;

    const UNIFIED: &str = "\
22 1 0:21 / /sys rw,nosuid - sysfs sysfs rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    fn check(mountinfo: &str, proc_cgroup: &str, expect: Result<&str, &str>) {
        let got = own_dir(mountinfo, proc_cgroup);
        assert_eq!(got, expect.map(PathBuf::from), "{mountinfo}\n{proc_cgroup}");
    }

    #[test]
    fn own_cgroup() {
        // Hybrid (this CI machine): v1 controllers, v2 at .../unified.
        check(UNIFIED, "4:memory:/x\n0::/\n", Ok("/sys/fs/cgroup/unified"));
        // Unified, systemd; optional fields before the separator.
        check(
            "30 23 0:26 / /sys/fs/cgroup rw,nosuid shared:4 master:1 - cgroup2 cgroup2 rw,nsdelegate\n",
            "0::/system.slice/suanwang-agent.service\n",
            Ok("/sys/fs/cgroup/system.slice/suanwang-agent.service"),
        );
        // A bind mount of part of the tree (a container without cgroupns).
        check(
            "30 23 0:26 /docker/abc /sys/fs/cgroup ro - cgroup2 cgroup2 rw\n",
            "0::/docker/abc/app\n",
            Ok("/sys/fs/cgroup/app"),
        );
        check(
            "30 23 0:26 /docker/abc /sys/fs/cgroup ro - cgroup2 cgroup2 rw\n",
            "0::/elsewhere\n",
            Err("the agent's cgroup is outside the mounted cgroup2 tree"),
        );
        // Escaped spaces in the mount point.
        check(
            "30 23 0:26 / /mnt/cg\\040two rw - cgroup2 none rw\n",
            "0::/a\n",
            Ok("/mnt/cg two/a"),
        );
        check(
            "39 31 0:36 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids\n",
            "0::/\n",
            Err("no cgroup2 hierarchy is mounted"),
        );
        check(
            UNIFIED,
            "1:cpu:/\n",
            Err("the agent is in no cgroup v2 hierarchy"),
        );
    }

    #[test]
    fn controllers() {
        let check = |text: &str, cpu: bool, pids: bool, memory: bool| {
            assert_eq!(
                parse_controllers(text),
                Controllers { cpu, pids, memory },
                "{text:?}"
            );
        };
        check("hugetlb\n", false, false, false);
        check(
            "cpuset cpu io memory hugetlb pids rdma misc\n",
            true,
            true,
            true,
        );
        check("cpuset memory\n", false, false, true);
        check("cpu pids\n", true, true, false);
        // Whole names only.
        check("cpuset rdma misc\n", false, false, false);
        check("", false, false, false);
    }

    /// The limits `create` writes, in a plain directory standing in for a
    /// base that every controller reaches (the kernel's side is in
    /// tests/it/process.rs, where the machine has the controllers).
    #[tokio::test]
    async fn limits_written() {
        let dir = tempfile::tempdir().unwrap();
        let all = Controllers {
            cpu: true,
            pids: true,
            memory: true,
        };
        let cgroups = Cgroups {
            base: dir.path().to_owned(),
            controllers: all,
        };
        let read = |path: &Path, file: &str| std::fs::read_to_string(path.join(file)).ok();
        let path = cgroups.create("a", Some(2), Some(3 << 20)).await.unwrap();
        assert_eq!(read(&path, "cpu.max").as_deref(), Some("200000 100000"));
        assert_eq!(read(&path, "pids.max"), Some(PIDS_MAX.to_string()));
        assert_eq!(read(&path, "memory.max").as_deref(), Some("3145728"));
        // No swap accounting here (no memory.swap.max): none written.
        assert_eq!(read(&path, "memory.swap.max"), None);
        // No memory asked (or 0, which is not a limit): no memory.max.
        for (name, memory) in [("b", None), ("c", Some(0))] {
            let path = cgroups.create(name, None, memory).await.unwrap();
            assert_eq!(read(&path, "memory.max"), None, "{memory:?}");
            assert_eq!(read(&path, "cpu.max"), None);
        }
        // No memory controller: no memory.max, whatever the task asked.
        let cgroups = Cgroups {
            base: dir.path().to_owned(),
            controllers: Controllers {
                memory: false,
                ..all
            },
        };
        let path = cgroups.create("d", None, Some(1 << 30)).await.unwrap();
        assert_eq!(read(&path, "memory.max"), None);
        assert_eq!(read(&path, "pids.max"), Some(PIDS_MAX.to_string()));
    }

    #[test]
    fn usage() {
        let check = |text: &str, expect: Option<u64>| assert_eq!(parse_usage_us(text), expect);
        check(
            "usage_usec 9715\nuser_usec 6477\nsystem_usec 3238\n",
            Some(9715),
        );
        check("user_usec 1\n", None);
        check("usage_usec x\n", None);
    }

    #[test]
    fn oom_kill_count() {
        let check = |text: &str, expect: u64| assert_eq!(parse_oom_kills(text), expect);
        check(
            "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\noom_group_kill 0\n",
            1,
        );
        check("low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n", 0);
        check("", 0);
    }

    #[test]
    fn names() {
        let check = |job: &str, expect: &str| assert_eq!(attempt_name(job, 3, 2), expect);
        check("0192f1c2-7a3b", "0192f1c2-7a3b-3-2");
        check("../a b/c", "___a_b_c-3-2");
        check("作业", "__-3-2");
        assert_eq!(attempt_name(&"x".repeat(1_000), 0, 1).len(), 128 + 4);
        let base = base_name(Path::new("/var/lib/suanwang-agent"));
        assert_eq!(base, base_name(Path::new("/var/lib/suanwang-agent")));
        assert_ne!(base, base_name(Path::new("/var/lib/other")));
        assert_eq!(base.len(), "suanwang-".len() + 16);
    }
}
