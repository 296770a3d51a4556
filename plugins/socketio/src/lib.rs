//! Switchyard's Socket.io protocol plugin (work in progress).

#![deny(unsafe_code)]
