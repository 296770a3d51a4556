//! Per-user rate limits across the cluster (`[cluster] rateLimitInterval`, README "Cluster"):
//! two nodes sharing Redis and PostgreSQL; a user with a profile's `rateLimit` who has used it
//! up on one node is refused on the other within the same second.
//!
//! Deterministic without sleeping: the test waits for each node's count of completed shares
//! (`serverInfo.kuzzle.cluster.rateLimits.shares`) to move past the requests, and reads the
//! second each request was admitted in from `server:now`'s answer; an attempt that straddles
//! two seconds (the windows are whole seconds) is started again.
//!
//! Skipped, with a message, only when `redis-server` or PostgreSQL is missing.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use switchyard_tests::redis::Redis;
use switchyard_tests::{postgres, protocol_section, LineClient, Server};

const WAIT: Duration = Duration::from_secs(15);
/// The profile's `rateLimit` (requests per second).
const LIMIT: usize = 10;

fn node(database: &str, redis: &str, name: &str) -> Server {
    Server::start(&format!(
        "[server]\n{}[storage]\nbackend = \"postgres\"\nurl = \"{database}\"\npoolSize = 4\n\
         [cluster]\nredis = \"{redis}\"\nnodeName = \"{name}\"\nretryInterval = 100\n\
         heartbeatInterval = 100\nrateLimitInterval = 20\n",
        protocol_section("line", "fixture_line", ""),
    ))
}

fn ask(client: &mut LineClient, request: &Value) -> (u16, Value) {
    let (_, status, content) = client.request(&request.to_string());
    (status, content)
}

fn call(client: &mut LineClient, request: Value) -> Value {
    let (status, content) = ask(client, &request);
    assert_eq!(status, 200, "{request} → {content}");
    content["result"].clone()
}

/// Logs in on a connection of its own (logins are limited per connection); the token.
fn login(server: &Server, username: &str) -> String {
    let mut client = LineClient::connect(&server.address("line"));
    call(
        &mut client,
        json!({"controller": "auth", "action": "login", "strategy": "local",
               "body": {"username": username, "password": "pw-0123456789"}}),
    )["jwt"]
        .as_str()
        .expect("a token")
        .to_string()
}

/// Shares of this node's counts completed so far (asked with an unlimited user's token).
fn shares(client: &mut LineClient, observer: &str) -> u64 {
    call(
        client,
        json!({"controller": "server", "action": "info", "jwt": observer}),
    )["serverInfo"]["kuzzle"]["cluster"]["rateLimits"]["shares"]
        .as_u64()
        .expect("a count of shares")
}

/// Waits (for `WAIT` at most) until this node has completed two more shares than now: the
/// second began after this call, so it carried everything counted before it.
fn two_more_shares(client: &mut LineClient, observer: &str) {
    let start = shares(client, observer);
    let until = Instant::now() + WAIT;
    while shares(client, observer) < start + 2 {
        assert!(Instant::now() < until, "no share within {WAIT:?}");
    }
}

#[test]
fn a_user_who_used_up_its_rate_limit_on_one_node_is_refused_on_the_other() {
    let test =
        "cluster_limits::a_user_who_used_up_its_rate_limit_on_one_node_is_refused_on_the_other";
    let Some(server) = postgres::server(test) else {
        return;
    };
    let Some(redis) = Redis::start(test) else {
        return;
    };
    let database = server.database("rate_limits");
    let a = node(&database, &redis.url(), "a");
    let b = node(&database, &redis.url(), "b");
    let mut on_a = LineClient::connect(&a.address("line"));
    let mut on_b = LineClient::connect(&b.address("line"));
    // Before the first admin, anonymous may do anything (Kuzzle's open bootstrap).
    call(
        &mut on_a,
        json!({"controller": "security", "action": "createProfile", "_id": "limited",
               "body": {"policies": [{"roleId": "default"}], "rateLimit": LIMIT}}),
    );
    for (kuid, profile) in [("u", "limited"), ("observer", "admin")] {
        call(
            &mut on_a,
            json!({"controller": "security", "action": "createUser", "_id": kuid,
                   "body": {"content": {"profileIds": [profile]},
                            "credentials": {"local": {"username": kuid, "password": "pw-0123456789"}}}}),
        );
    }
    let user = login(&a, "u");
    let observer = login(&a, "observer");
    // B reads the users and tokens A wrote once A tells it (a Redis round trip).
    for token in [&user, &observer] {
        let until = Instant::now() + WAIT;
        loop {
            let checked = call(
                &mut on_b,
                json!({"controller": "auth", "action": "checkToken", "body": {"token": token}}),
            );
            if checked["valid"] == true {
                break;
            }
            assert!(
                Instant::now() < until,
                "B never accepted A's token: {checked}"
            );
        }
    }

    let now = json!({"controller": "server", "action": "now", "jwt": user});
    let second_of = |answer: &Value| answer["result"]["now"].as_u64().expect("now") / 1000;
    for attempt in 1..=10 {
        // On A: exactly LIMIT admitted, then refused (within one second).
        let mut admitted = Vec::new();
        let refused = loop {
            let (status, answer) = ask(&mut on_a, &now);
            if status != 200 {
                break answer;
            }
            admitted.push(second_of(&answer));
            assert!(admitted.len() <= 2 * LIMIT, "A never refused: {admitted:?}");
        };
        assert_eq!(
            refused["error"]["id"], "api.process.too_many_requests",
            "{refused}"
        );
        assert_eq!(refused["status"], 429, "{refused}");
        // A refusal before any admission: the previous attempt used up this second's limit.
        let Some(&second) = admitted.first() else {
            eprintln!("attempt {attempt} began in a second already used up on A; again");
            continue;
        };
        if admitted.iter().any(|s| *s != second) {
            eprintln!("attempt {attempt} straddled two seconds on A; again");
            continue;
        }
        assert_eq!(admitted.len(), LIMIT, "{admitted:?}");
        // A shares its counts, then B reads them.
        two_more_shares(&mut on_a, &observer);
        two_more_shares(&mut on_b, &observer);
        // On B, within the same second: refused, the user's LIMIT requests being A's.
        let (status, answer) = ask(&mut on_b, &now);
        let (_, clock) = ask(
            &mut on_b,
            &json!({"controller": "server", "action": "now", "jwt": observer}),
        );
        if second_of(&clock) != second {
            eprintln!("attempt {attempt} reached B in the next second; again");
            continue;
        }
        assert_eq!(
            (status, &answer["error"]["id"]),
            (429, &json!("api.process.too_many_requests")),
            "B admitted a request of a user who had used up its rate limit on A: {answer}"
        );
        return;
    }
    panic!("every attempt straddled two seconds or began in a used-up one");
}
