//! Switchyard's document storage: the `Storage` trait, its query language and the embedded store.
