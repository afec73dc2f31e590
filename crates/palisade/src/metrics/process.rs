//! The process's own CPU time, memory and file descriptors, read from /proc (Linux).

/// Clock ticks per second of /proc/self/stat times: 100 on every Linux architecture Palisade targets
/// (USER_HZ is fixed by the kernel ABI, whatever CONFIG_HZ is).
const USER_HZ: f64 = 100.0;

#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct ProcessStats {
    pub cpu_seconds: f64,
    pub resident_bytes: u64,
    pub virtual_bytes: u64,
    pub open_fds: u64,
    pub threads: u64,
}

/// Reads the current process's figures; a missing /proc gives zeros.
pub fn read() -> ProcessStats {
    let mut s = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .map(|t| parse_stat(&t))
        .unwrap_or_default();
    if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
        s.resident_bytes = status_kb(&status, "VmRSS:").unwrap_or(0) * 1024;
        s.virtual_bytes = status_kb(&status, "VmSize:").unwrap_or(0) * 1024;
    }
    s.open_fds = std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count() as u64)
        .unwrap_or(0);
    s
}

/// CPU seconds (utime + stime) and threads from /proc/self/stat. The command name (field 2) may hold spaces and
/// parentheses, so the fields are counted from the last ')'.
fn parse_stat(text: &str) -> ProcessStats {
    let Some(after) = text.rfind(')').map(|i| &text[i + 1..]) else {
        return ProcessStats::default();
    };
    // After ')': field 3 (state) is index 0; utime (14) is 11, stime (15) is 12, num_threads (20) is 17.
    let fields: Vec<&str> = after.split_whitespace().collect();
    let num = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    ProcessStats {
        cpu_seconds: (num(11) + num(12)) as f64 / USER_HZ,
        threads: num(17),
        ..ProcessStats::default()
    }
}

fn status_kb(status: &str, key: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_from_the_last_parenthesis() {
        let line = "4242 (pali sade) (x) S 1 4242 4242 0 -1 4194560 500 0 0 0 250 50 0 0 20 0 7 0 1234 \
                    100000 300 18446744073709551615";
        let s = parse_stat(line);
        assert_eq!(s.cpu_seconds, 3.0);
        assert_eq!(s.threads, 7);
    }

    #[test]
    fn this_process_has_memory_and_files() {
        let s = read();
        assert!(
            s.resident_bytes > 0 && s.open_fds > 0 && s.threads > 0,
            "{s:?}"
        );
    }
}
