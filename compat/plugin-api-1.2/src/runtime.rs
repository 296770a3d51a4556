//! A protocol instance's own tokio runtime (feature `runtime`): what every multi-threaded
//! plugin needs around it, written once.
//!
//! The threads are named after the instance and tagged for its logs (`Host::tag_thread_logs`),
//! and dropping the runtime never blocks: a host, or a test, may drop an instance from inside
//! another runtime, where a blocking shutdown panics.

use std::sync::Arc;

use tokio::runtime::{Handle, Runtime};

use crate::sdk::{Backend, BoxError};

/// A running multi-thread runtime owned by one protocol instance.
pub struct InstanceRuntime {
    /// `None` only while dropping.
    runtime: Option<Runtime>,
}

impl std::fmt::Debug for InstanceRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InstanceRuntime").finish_non_exhaustive()
    }
}

impl InstanceRuntime {
    /// Starts the runtime of protocol `name`; its threads are called `<name>-<suffix>`.
    /// `worker_threads`: 0 for tokio's default (one per core).
    pub fn start(
        name: &str,
        suffix: &str,
        worker_threads: usize,
        backend: &Arc<dyn Backend>,
    ) -> Result<InstanceRuntime, BoxError> {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        if worker_threads > 0 {
            builder.worker_threads(worker_threads);
        }
        let backend = Arc::clone(backend);
        let runtime = builder
            .thread_name(format!("{name}-{suffix}"))
            .on_thread_start(move || backend.tag_thread_logs())
            .enable_io()
            .enable_time()
            .build()
            .map_err(|error| format!("protocol \"{name}\" cannot start its runtime: {error}"))?;
        Ok(InstanceRuntime {
            runtime: Some(runtime),
        })
    }

    /// Spawns on it, enters it: what a plugin does with its runtime.
    pub fn handle(&self) -> &Handle {
        self.runtime
            .as_ref()
            .expect("the runtime is only taken while dropping")
            .handle()
    }
}

impl Drop for InstanceRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}
