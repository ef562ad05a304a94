//! The few libc calls the tool needs: file-descriptor limit, CPU pinning, signals,
//! `SO_LINGER`, the clock-tick rate and the tool's own CPU time.

use std::io;
use std::os::fd::RawFd;
use std::os::unix::process::CommandExt;
use std::process::Command;

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit. Children inherit it. Returns
/// `(soft, hard)` after the change.
pub fn raise_nofile() -> io::Result<(u64, u64)> {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `r` is a valid, writable rlimit.
    check(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) })?;
    r.rlim_cur = r.rlim_max;
    // SAFETY: `r` is a valid rlimit.
    check(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &r) })?;
    Ok((r.rlim_cur, r.rlim_max))
}

/// Pins the calling thread (and so every thread and child it starts later) to one CPU.
pub fn pin_current_thread(cpu: usize) -> io::Result<()> {
    // SAFETY: cpu_set_t is plain data; zeroed is the empty set; CPU_SET bounds-checks.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        check(libc::sched_setaffinity(
            0,
            std::mem::size_of::<libc::cpu_set_t>(),
            &set,
        ))
    }
}

/// Clock ticks per second for `/proc/<pid>/stat` times (normally 100).
pub fn clk_tck() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

pub fn signal(pid: u32, sig: libc::c_int) -> io::Result<()> {
    // SAFETY: kill has no memory preconditions.
    check(unsafe { libc::kill(pid as libc::pid_t, sig) })
}

/// User + system CPU seconds used by this process so far.
pub fn self_cpu_secs() -> f64 {
    rusage_cpu_secs(libc::RUSAGE_SELF)
}

/// User + system CPU seconds of the children this process has waited for (all of them,
/// so take a difference around one child's run).
pub fn children_cpu_secs() -> f64 {
    rusage_cpu_secs(libc::RUSAGE_CHILDREN)
}

fn rusage_cpu_secs(who: libc::c_int) -> f64 {
    // SAFETY: `u` is a valid, writable rusage.
    unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        if libc::getrusage(who, &mut u) != 0 {
            return 0.0;
        }
        let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        tv(u.ru_utime) + tv(u.ru_stime)
    }
}

/// `SO_LINGER` 0: closing the socket sends RST and leaves no TIME_WAIT behind, so tens of
/// thousands of benchmark connections do not exhaust the ephemeral port range.
pub fn set_linger_zero(fd: RawFd) {
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: `l` is a valid linger of the size passed.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&l as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

/// The child gets SIGTERM if this process dies, so no server outlives a crashed or killed
/// benchmark.
pub fn die_with_parent(cmd: &mut Command) {
    // SAFETY: prctl is async-signal-safe; the closure allocates nothing.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
}
