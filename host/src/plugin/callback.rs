//! The continuation of one `execute`, as a plugin handed it over: called exactly once.
//!
//! `Callback` hides which ABI the plugin speaks; the entry point's `Responder` owns one and
//! makes "exactly once" hold by construction (it answers on drop if nothing else did).

use abi_stable::std_types::RStr;
use switchyard_plugin_api::abi::{FfiCallback, FfiResponse};
use switchyard_plugin_api::c_abi::{CAbiCallback, CAbiResponse, CAbiStr};

/// An in-process continuation: status, request id, response JSON.
pub type NativeCallback = Box<dyn FnOnce(u16, &str, &str) + Send>;

/// Where the answer to one request goes.
pub enum Callback {
    /// An abi_stable plugin's `FfiCallback`.
    Abi(FfiCallback),
    /// A C plugin's `switchyard_callback_fn` and its context.
    C(CAbiCallback),
    /// A caller inside the host (tests, and later in-process callers): gets the status, the
    /// request id and the response's JSON.
    Native(NativeCallback),
}

impl std::fmt::Debug for Callback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Callback::Abi(_) => "Callback::Abi",
            Callback::C(_) => "Callback::C",
            Callback::Native(_) => "Callback::Native",
        })
    }
}

impl Callback {
    /// Answers the request: consumes the callback, so it cannot run twice.
    pub fn call(self, status: u16, request_id: &str, content: &str) {
        match self {
            Callback::Abi(callback) => {
                let response = FfiResponse {
                    status,
                    request_id: RStr::from_str(request_id),
                    content: RStr::from_str(content),
                    headers: RStr::from_str("{}"),
                };
                (callback.call)(callback.context, response);
            }
            Callback::C(callback) => {
                let response = CAbiResponse {
                    status,
                    request_id: CAbiStr::new(request_id),
                    content: CAbiStr::new(content),
                    headers: CAbiStr::new("{}"),
                };
                (callback.call)(callback.context, &response);
            }
            Callback::Native(callback) => callback(status, request_id, content),
        }
    }
}
