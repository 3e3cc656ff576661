//! kolla across real engines: the deploy fixture (eleven busybox services)
//! on 1 node against the same on 3 nodes in one run (target: at most 1.3x,
//! since nodes go in parallel), and kolla's own cost per extra node: a
//! no-op deploy on 1, 3 and 6 nodes (target: flat within 20%). The nodes
//! are the tests' (Docker-in-Docker, TLS, images copied from this engine).
//! Prints medians of BENCH_RUNS runs (default 3), each after a warm-up run,
//! and the ratios; the last line is
//!
//!     multinode ratio=R (target <=1.30) runs=N
//!
//! with R = the deploy on 3 nodes / the deploy on 1.
//!
//!     bench/multinode    (runs `cargo bench --bench multinode`)

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::{Cluster, Deployment, describe};

fn runs() -> usize {
    std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(3)
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// CPU time (user + system) of this process's waited-for children.
fn children_cpu() -> Duration {
    use nix::sys::resource::{UsageWho, getrusage};
    let Ok(usage) = getrusage(UsageWho::RUSAGE_CHILDREN) else {
        return Duration::ZERO;
    };
    let micros = |t: nix::sys::time::TimeVal| {
        Duration::from_secs(t.tv_sec().max(0) as u64)
            + Duration::from_micros(t.tv_usec().max(0) as u64)
    };
    micros(usage.user_time()) + micros(usage.system_time())
}

/// `kolla VERB` on `d`, which must succeed; how long it took, and the CPU
/// time kolla itself used (what it costs, whatever the engines do).
fn timed(d: &Deployment, verb: &str, args: &[&str]) -> (Duration, Duration) {
    let cpu = children_cpu();
    let started = Instant::now();
    let output = d.kolla(verb, args);
    let took = started.elapsed();
    assert!(output.status.success(), "{verb}: {}", describe(&output));
    (took, children_cpu().saturating_sub(cpu))
}

/// The fixture on a fresh cluster of `nodes`: the first deploy (images
/// copied), then, after a warm-up run, the medians of destroy + deploy
/// (images there), of a no-op deploy, and of kolla's own CPU time in that
/// no-op deploy.
fn measure(nodes: usize) -> (Duration, Duration, Duration, Duration) {
    let cluster = Cluster::start(&format!("bench{nodes}"), nodes);
    let mut d = Deployment::new(&format!("bench{nodes}"));
    d.inventory = cluster.write_inventory("inventory.yml", &|_| vec!["controller"]);
    let (first, _) = timed(&d, "deploy", &[]);
    let (mut fresh, mut noop, mut noop_cpu) = (Vec::new(), Vec::new(), Vec::new());
    // Run 0 is the warm-up: measured like the others, then dropped.
    for run in 0..=runs() {
        timed(&d, "destroy", &["--purge-data", "--yes-i-really-mean-it"]);
        let (deploy, _) = timed(&d, "deploy", &[]);
        let (took, cpu) = timed(&d, "deploy", &[]);
        if run > 0 {
            fresh.push(deploy);
            noop.push(took);
            noop_cpu.push(cpu);
        }
    }
    (first, median(fresh), median(noop), median(noop_cpu))
}

fn main() {
    // `cargo bench` passes --bench; nothing else is taken.
    let mut figures = Vec::new();
    for nodes in [1, 3, 6] {
        let (first, fresh, noop, cpu) = measure(nodes);
        println!(
            "{nodes} node(s): first deploy {:.2}s (images copied), deploy {:.2}s, no-op deploy {:.3}s (kolla CPU {:.3}s, {:.1}ms per node)",
            first.as_secs_f64(),
            fresh.as_secs_f64(),
            noop.as_secs_f64(),
            cpu.as_secs_f64(),
            cpu.as_secs_f64() * 1000.0 / nodes as f64
        );
        figures.push((nodes, fresh, noop, cpu));
    }
    let (_, fresh1, noop1, cpu1) = figures[0];
    for (nodes, fresh, noop, cpu) in &figures[1..] {
        println!(
            "{nodes} nodes vs 1: deploy {:.2}x (target <= 1.3x for 3), no-op deploy {:.2}x, kolla's CPU per node {:.2}x (target: flat within 20%)",
            fresh.as_secs_f64() / fresh1.as_secs_f64(),
            noop.as_secs_f64() / noop1.as_secs_f64(),
            (cpu.as_secs_f64() / *nodes as f64) / cpu1.as_secs_f64()
        );
    }
    let fresh3 = figures[1].1;
    println!(
        "multinode ratio={:.2} (target <=1.30) runs={}",
        fresh3.as_secs_f64() / fresh1.as_secs_f64(),
        runs()
    );
}
