//! The host's request parser (`host/src/api/request.rs`): every request text a protocol hands
//! to `execute`, parsed strictly and leniently (for the error answer's `requestId`…).

#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard::api::Request;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Request::parse(text) {
        Ok(request) => {
            let owned = request.clone().into_owned();
            assert_eq!(owned.controller, request.controller);
            assert_eq!(owned.request_id, request.request_id);
            let _ = request.index_and_collection();
            let _ = request.body_string("_id");
            let _ = request.string_arg("_id");
        }
        Err(rejected) => {
            let _ = rejected.error.to_string();
        }
    }
    let lenient = Request::parse_lenient(text);
    let _ = lenient.request_id.len();
});
