//! The gate's unit tests: caps, the token bucket, sweeping, the reserve's arithmetic, the
//! log limiter and refusal slots, on a clock the tests drive.

use super::*;

fn gate(max: u32, rate: u32) -> Arc<Gate> {
    Arc::new(Gate::new(ConnectionLimits {
        max_per_address: max,
        rate_per_address: rate,
        file_descriptor_reserve: 0,
    }))
}

const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 1));
const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));

#[test]
fn an_address_gets_its_cap_and_its_slots_back_when_connections_end() {
    let gate = gate(3, 0);
    let now = Instant::now();
    let held: Vec<_> = (0..3)
        .map(|_| gate.admit_address(A, now).unwrap())
        .collect();
    assert_eq!(
        gate.admit_address(A, now).unwrap_err(),
        Refusal::TooManyConnections
    );
    let other = gate.admit_address(B, now).unwrap();
    drop(held);
    assert!(gate.admit_address(A, now).is_ok());
    drop(other);
    assert_eq!(gate.tracked_addresses(), 0, "idle entries are removed");
}

#[test]
fn the_rate_is_a_token_bucket_as_large_as_the_cap() {
    let gate = gate(0, 2);
    let start = Instant::now();
    // No cap: the bucket holds one second's worth.
    let first: Vec<_> = (0..2)
        .map(|_| gate.admit_address(A, start).unwrap())
        .collect();
    assert_eq!(
        gate.admit_address(A, start).unwrap_err(),
        Refusal::TooManyNewConnections
    );
    assert!(gate.admit_address(B, start).is_ok());
    // Half a second earns one more.
    let later = start + Duration::from_millis(500);
    assert!(gate.admit_address(A, later).is_ok());
    assert!(gate.admit_address(A, later).is_err());
    drop(first);

    let capped = self::gate(5, 1);
    let held: Vec<_> = (0..5)
        .map(|_| capped.admit_address(A, start).unwrap())
        .collect();
    drop(held);
    assert_eq!(
        capped.admit_address(A, start).unwrap_err(),
        Refusal::TooManyNewConnections
    );
}

#[test]
fn zero_is_unlimited_and_tracks_nothing() {
    let gate = gate(0, 0);
    let now = Instant::now();
    let held: Vec<_> = (0..10_000)
        .map(|_| gate.admit_address(A, now).unwrap())
        .collect();
    assert_eq!(gate.tracked_addresses(), 0);
    drop(held);
}

#[test]
fn idle_entries_are_swept_as_the_table_grows() {
    let gate = gate(0, 1);
    let start = Instant::now();
    for n in 0..10_000u32 {
        let address = IpAddr::from(n.to_be_bytes());
        drop(gate.admit_address(address, start + Duration::from_millis(u64::from(n))));
    }
    // Each bucket refills within a second: only the last second's addresses remain.
    assert!(
        gate.tracked_addresses() < 2_000,
        "{}",
        gate.tracked_addresses()
    );
}

#[test]
fn the_reserve_counts_from_the_lowest_free_descriptor() {
    // Numbers 0..=959 taken leaves 64 of 1024: the reserve is whole.
    assert!(!past_reserve(10, 1024, 64));
    assert!(!past_reserve(959, 1024, 64));
    assert!(past_reserve(960, 1024, 64));
    // Without a reserve, the last descriptor may be used.
    assert!(!past_reserve(1023, 1024, 0));
    assert!(!past_reserve(5, u64::MAX, 64));
}

#[test]
fn one_line_per_interval_with_the_count_left_out() {
    let log = LogLimiter::new(Duration::from_secs(1));
    let start = Instant::now();
    assert_eq!(log.allow(start), Some(0));
    for _ in 0..5 {
        assert_eq!(log.allow(start + Duration::from_millis(10)), None);
    }
    assert_eq!(log.allow(start + Duration::from_secs(1)), Some(5));
    assert_eq!(log.allow(start + Duration::from_millis(1500)), None);
}

#[test]
fn refusal_slots_are_bounded_and_given_back() {
    let gate = gate(1, 0);
    let slots: Vec<_> = (0..MAX_REFUSALS_IN_PROGRESS)
        .map(|_| gate.refusal_slot().unwrap())
        .collect();
    assert!(gate.refusal_slot().is_none());
    drop(slots);
    assert!(gate.refusal_slot().is_some());
}
