//! A server's resources, read from `/proc`: resident memory and CPU time.

use std::io;

/// `VmRSS` of `/proc/<pid>/status`, in bytes.
pub fn rss_bytes(pid: u32) -> io::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .ok_or_else(|| io::Error::other(format!("no VmRSS for pid {pid}")))
}

/// The fields of `/proc/<pid>/stat` after the command name (field 3 is index 0).
fn stat_fields(pid: u32) -> io::Result<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| io::Error::other("malformed stat"))?;
    Ok(rest.split_whitespace().map(str::to_owned).collect())
}

/// utime + stime (fields 14 and 15) of the process, all threads, in seconds.
pub fn cpu_secs(pid: u32, clk_tck: f64) -> io::Result<f64> {
    let f = stat_fields(pid)?;
    let field = |n: usize| -> io::Result<u64> {
        f.get(n - 3)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| io::Error::other(format!("no stat field {n} for pid {pid}")))
    };
    Ok((field(14)? + field(15)?) as f64 / clk_tck)
}

/// Processes whose parent is `pid` (field 4 of their stat).
pub fn children(pid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&p| {
            stat_fields(p)
                .ok()
                .and_then(|f| f.get(1).and_then(|v| v.parse::<u32>().ok()))
                == Some(pid)
        })
        .collect()
}
