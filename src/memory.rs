//! Giving memory back to the system after a burst of work.
//!
//! glibc's allocator keeps what a thread frees in that thread's arena for
//! reuse, and returns an arena's pages to the system only when the free
//! space sits at its very top. After a job run or a batch of sends, the
//! daemon holds megabytes it no longer uses (SQLite's page caches grow on
//! the connections' worker threads, the sends' buffers on tokio's), and a
//! daemon that runs for months at rest should not look as large as it was
//! at its busiest. `malloc_trim(0)` hands every free page of every arena
//! back (`MADV_DONTNEED`); what is still in use stays where it is.
//!
//! It is called when the scheduler has run a job and when the dispatcher
//! goes idle after sending, never in a loop; a walk over the arenas takes
//! well under a millisecond for a daemon of this size.

/// Return the allocator's free pages to the system (glibc on Linux; a no-op
/// elsewhere, where the allocator decides for itself).
pub fn release_freed() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim takes no pointers and locks each arena itself;
        // it is safe to call from any thread at any time.
        unsafe {
            libc::malloc_trim(0);
        }
    }
}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    use super::release_freed;

    fn rss_anon_kib() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("RssAnon:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("RssAnon in /proc/self/status")
    }

    #[test]
    fn freed_pages_below_memory_in_use_go_back_to_the_system() {
        // 32 MiB in 64 KiB pieces (below glibc's mmap threshold, so they come
        // from this thread's arena), every byte written.
        let mut pieces: Vec<Vec<u8>> = (0..512)
            .map(|i| vec![(i % 250) as u8 + 1; 64 << 10])
            .collect();
        // The last piece stays in use at the top of the arena, so freeing the
        // rest cannot shrink the arena from its top: only a trim returns them.
        let top = pieces.pop().expect("a piece");
        drop(pieces);
        let before = rss_anon_kib();
        release_freed();
        let after = rss_anon_kib();
        assert!(
            before.saturating_sub(after) >= 16 << 10,
            "RssAnon went from {before} KiB to {after} KiB after the trim"
        );
        assert!(
            top.iter().all(|&b| b == top[0]),
            "memory in use is untouched"
        );
    }
}
