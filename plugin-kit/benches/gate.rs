//! Micro-benchmark of what the accept loop adds per connection (issue 19, item 4): the gate's
//! admission and release with the default limits, without address limits, from many
//! addresses, and the descriptor count it avoids (a `/proc/self/fd` walk) next to the one
//! syscall it makes (`getrlimit`).
//!
//! `cargo bench -p switchyard-plugin-kit --bench gate`. Prints figures; asserts nothing about
//! time.

use std::hint::black_box;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use switchyard_plugin_kit::gate::{open_file_limit, ConnectionLimits, Gate};

/// Runs `step` `rounds` times; the mean time per step.
fn time(rounds: u32, mut step: impl FnMut(u32)) -> Duration {
    let started = Instant::now();
    for round in 0..rounds {
        step(round);
    }
    started.elapsed() / rounds
}

fn report(what: &str, per_step: Duration) {
    println!("{what:<60} {:>9.1} ns", per_step.as_secs_f64() * 1e9);
}

fn main() {
    let socket = std::fs::File::open("/dev/null").expect("a descriptor");
    let loopback = IpAddr::from([127, 0, 0, 1]);
    let rounds = 1_000_000;

    let defaults = Arc::new(Gate::new(ConnectionLimits::default()));
    report(
        "admit + release, defaults (one address, reserve checked)",
        time(rounds, |_| {
            drop(black_box(defaults.admit(&socket, loopback)));
        }),
    );

    let no_reserve = Arc::new(Gate::new(ConnectionLimits {
        file_descriptor_reserve: 0,
        ..ConnectionLimits::default()
    }));
    report(
        "admit + release, address limits only",
        time(rounds, |_| {
            drop(black_box(no_reserve.admit(&socket, loopback)));
        }),
    );

    let many = Arc::new(Gate::new(ConnectionLimits {
        max_per_address: 0,
        file_descriptor_reserve: 0,
        ..ConnectionLimits::default()
    }));
    report(
        "admit + release, rate only, 65,536 addresses in turn",
        time(rounds, |round| {
            let address = IpAddr::from((0x0a00_0000 | (round & 0xffff)).to_be_bytes());
            drop(black_box(many.admit(&socket, address)));
        }),
    );

    let unlimited = Arc::new(Gate::new(ConnectionLimits::UNLIMITED));
    report(
        "admit + release, every limit 0",
        time(rounds, |_| {
            drop(black_box(unlimited.admit(&socket, loopback)));
        }),
    );

    report(
        "getrlimit(RLIMIT_NOFILE)",
        time(rounds, |_| {
            black_box(open_file_limit());
        }),
    );

    // What counting open descriptors by walking /proc would cost, at a few process sizes.
    let mut held = Vec::new();
    for open in [16usize, 1_000, 10_000] {
        let limit = open_file_limit();
        if (open as u64) + 64 > limit {
            println!("/proc/self/fd walk at {open} descriptors: skipped (RLIMIT_NOFILE {limit})");
            continue;
        }
        while held.len() < open {
            held.push(std::fs::File::open("/dev/null").expect("a descriptor"));
        }
        let walks = (100_000 / open as u32).max(20);
        report(
            &format!("/proc/self/fd walk, {open} descriptors open"),
            time(walks, |_| {
                let count = std::fs::read_dir("/proc/self/fd").map_or(0, |dir| dir.count());
                black_box(count);
            }),
        );
    }
}
