//! The connection pool's idle count never wraps below zero, nor drifts.
//!
//! sqlx 0.9.0's `PoolInner::release` made a returned connection poppable
//! before it counted it idle, so a `try_acquire` on another thread could pop
//! it and decrement first: `num_idle` wrapped to `usize::MAX` until the
//! release caught up. The pool's maintenance task sweeps
//! `for _ in 0..num_idle()` without awaiting, so one such read spun a core
//! for good (transact-rs/sqlx#3645; an `outreach logs` process spun for 18
//! minutes here). `vendor/sqlx-core` carries the fix; this test drives
//! pops on two threads against releases on the runtime's two workers, and
//! reads the count right after each pop and once the releases are done.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};

const MAX_CONNECTIONS: u32 = 2;
/// 40,000 to 90,000 pops and releases in a debug build on two cores. With
/// sqlx 0.9.0's order the count wrapped within that time in each of 6 tries;
/// with only the saturating decrement, it drifted in each of 2.
const RACE_FOR: Duration = Duration::from_secs(2);

#[test]
fn the_idle_count_stays_true_while_pops_race_releases() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");

    let pool = runtime.block_on(async {
        let pool = SqlitePoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .min_connections(0)
            .connect_lazy_with(SqliteConnectOptions::new().in_memory(true));
        // Open both connections, then hand them back: from here on every
        // acquire pops an idle one and every drop releases it.
        let a = pool.acquire().await.expect("first connection");
        let b = pool.acquire().await.expect("second connection");
        drop((a, b));
        pool
    });
    settle(&pool);

    let highest = Arc::new(AtomicUsize::new(0));
    // Two threads pop in a tight loop; each drop spawns the release onto the
    // runtime's two workers, so pops and releases meet on every core.
    let deadline = Instant::now() + RACE_FOR;
    let poppers: Vec<_> = (0..2)
        .map(|_| {
            let (pool, highest) = (pool.clone(), highest.clone());
            let runtime = runtime.handle().clone();
            std::thread::spawn(move || {
                let _runtime = runtime.enter();
                let mut cycles = 0_u64;
                while Instant::now() < deadline {
                    if let Some(conn) = pool.try_acquire() {
                        // Right after a pop is when a release that has not
                        // counted its connection yet shows.
                        highest.fetch_max(pool.num_idle(), Ordering::Relaxed);
                        drop(conn);
                        cycles += 1;
                    }
                }
                cycles
            })
        })
        .collect();
    let cycles: u64 = poppers
        .into_iter()
        .map(|popper| popper.join().expect("popper"))
        .sum();

    assert!(cycles > 1000, "the workers hardly ran: {cycles} cycles");
    let highest = highest.load(Ordering::Relaxed);
    assert!(
        highest <= MAX_CONNECTIONS as usize,
        "the pool counted {highest} idle connections of at most {MAX_CONNECTIONS} \
         ({cycles} acquire/release cycles): the count wrapped below zero"
    );
    // Nor may it drift: once the releases have run, both are idle again.
    settle(&pool);
}

/// Releases finish on the runtime after the drop: give them a moment to
/// bring the count to both connections idle.
fn settle(pool: &sqlx::SqlitePool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while pool.num_idle() != MAX_CONNECTIONS as usize {
        assert!(
            Instant::now() < deadline,
            "the pool counts {} idle connections, but {MAX_CONNECTIONS} are idle",
            pool.num_idle()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}
