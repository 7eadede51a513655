//! What `/proc` says about a process: CPU time and resident memory, for the benchmarks;
//! and which sockets a server on a port holds open, for the slow-client tests.

/// Ticks per second of `/proc/*/stat` times (`getconf CLK_TCK`, 100 on Linux).
pub const TICKS_PER_SECOND: f64 = 100.0;

/// utime + stime of `pid` in clock ticks (its threads included, its children not);
/// 0 when the process is gone.
#[must_use]
pub fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // `pid (comm) state ppid ...`: fields after the `)`; utime and stime are 14 and 15.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let field = |i: usize| {
        fields
            .get(i - 3)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    field(14) + field(15)
}

/// CPU seconds of `pid` (see [`cpu_ticks`]).
#[must_use]
#[allow(clippy::cast_precision_loss)]
pub fn cpu_seconds(pid: u32) -> f64 {
    cpu_ticks(pid) as f64 / TICKS_PER_SECOND
}

/// Resident set size of `pid` in KiB (`VmRSS`), `None` when the process is gone.
#[must_use]
pub fn rss_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmRSS:")
}

/// The most resident memory process `pid` has had since it started (`VmHWM`), in KiB.
#[must_use]
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmHWM:")
}

fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

/// The processes whose `/proc/<pid>/stat` satisfies `keep` (given the text after the
/// command name's closing parenthesis: `state ppid ...`) and whose command name does:
/// `keep(comm, rest)`.
fn pids_where(keep: impl Fn(&str, &str) -> bool) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // `pid (comm) state ppid ...`
            let Some((head, rest)) = stat.rsplit_once(')') else {
                return false;
            };
            let comm = head.split_once('(').map_or("", |(_, comm)| comm);
            keep(comm, rest)
        })
        .collect()
}

/// The processes whose parent is `pid`.
#[must_use]
pub fn children_of(pid: u32) -> Vec<u32> {
    pids_where(|_, rest| {
        rest.split_whitespace()
            .nth(1)
            .and_then(|ppid| ppid.parse::<u32>().ok())
            == Some(pid)
    })
}

/// The processes whose command name is one of `names`.
#[must_use]
pub fn pids_named(names: &[&str]) -> Vec<u32> {
    pids_where(|comm, _| names.contains(&comm))
}

/// Connections a server listening on `port` holds open: the sockets in this network
/// namespace whose local port is `port`, other than the listening one, that belong to a
/// file descriptor. Connections still in the listen backlog (not accepted) and ones the
/// server has closed have no descriptor and are not counted.
///
/// The kernel writes the table in pages, so a socket can appear twice when sockets come
/// and go during the read: each is counted once, by inode.
#[must_use]
pub fn held_connections(port: u16) -> usize {
    let mut inodes = std::collections::HashSet::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        inodes.extend(text.lines().skip(1).filter_map(|row| held_inode(row, port)));
    }
    inodes.len()
}

/// The inode of a `/proc/net/tcp` row (`sl local rem st tx:rx tr:when retrnsmt uid
/// timeout inode ...`) if it is an accepted connection on `port` that a descriptor holds.
fn held_inode(row: &str, port: u16) -> Option<u64> {
    const LISTEN: &str = "0A";
    let fields: Vec<&str> = row.split_whitespace().collect();
    let local_port = fields
        .get(1)
        .and_then(|local| local.rsplit_once(':'))
        .and_then(|(_, hex)| u16::from_str_radix(hex, 16).ok());
    let state = fields.get(3).copied();
    let inode = fields.get(9).and_then(|inode| inode.parse::<u64>().ok());
    (local_port == Some(port) && state != Some(LISTEN))
        .then_some(inode)
        .flatten()
        .filter(|&inode| inode != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let me = std::process::id();
        let rss = rss_kib(me).expect("this process has a VmRSS");
        assert!(rss > 100, "{rss} KiB");
        // Burn a little CPU so the counter is non-zero.
        let mut x = 0u64;
        let start = std::time::Instant::now();
        while start.elapsed() < std::time::Duration::from_millis(50) {
            x = x.wrapping_add(std::hint::black_box(1));
        }
        assert!(x > 0 && cpu_ticks(me) > 0);
        assert_eq!(rss_kib(u32::MAX), None);
        let comm = std::fs::read_to_string(format!("/proc/{me}/comm")).unwrap();
        assert!(pids_named(&[comm.trim()]).contains(&me));
        let parent = std::os::unix::process::parent_id();
        assert!(children_of(parent).contains(&me));
        assert_eq!(cpu_ticks(u32::MAX), 0);
    }

    #[test]
    fn counts_accepted_connections_only() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        assert_eq!(
            held_connections(port),
            0,
            "the listening socket is not counted"
        );
        let clients: Vec<_> = (0..3)
            .map(|_| std::net::TcpStream::connect(("127.0.0.1", port)).unwrap())
            .collect();
        assert_eq!(
            held_connections(port),
            0,
            "backlog connections hold nothing"
        );
        let accepted: Vec<_> = (0..2).map(|_| listener.accept().unwrap().0).collect();
        assert_eq!(held_connections(port), 2);
        drop(accepted);
        assert_eq!(held_connections(port), 0, "closed ones are gone");
        drop(clients);
    }
}
