//! Memory figures of this process from `/proc/self/status`: the peak and current resident
//! set, for the soak run and the adversarial tests' reports.

/// A `Vm*` line of `/proc/self/status` in KiB (`VmHWM`: peak resident set, `VmRSS`: now).
/// `None` where the file does not exist (not Linux) or lacks the field.
pub fn proc_status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status.lines().find_map(|line| {
        let rest = line.strip_prefix(field)?.strip_prefix(':')?;
        rest.trim().trim_end_matches("kB").trim().parse().ok()
    })
}

/// The peak resident set of this process so far, in KiB (`VmHWM`).
pub fn peak_rss_kib() -> Option<u64> {
    proc_status_kib("VmHWM")
}

/// The resident set of this process now, in KiB (`VmRSS`).
pub fn rss_kib() -> Option<u64> {
    proc_status_kib("VmRSS")
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_the_peak_on_linux() {
        if cfg!(target_os = "linux") {
            // The peak read after the current size is at least that size.
            let now = super::rss_kib().expect("VmRSS on Linux");
            let peak = super::peak_rss_kib().expect("VmHWM on Linux");
            assert!(peak >= now && now > 0, "peak {peak} KiB, now {now} KiB");
        } else {
            assert_eq!(super::peak_rss_kib(), None);
        }
    }
}
