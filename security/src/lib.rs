//! Kuzzle's security model as pure logic: users, profiles and roles, rights, tokens, passwords
//! and abuse limits. No I/O: storage goes through [`repository::SecurityRepository`].

#![forbid(unsafe_code)]

pub mod catalog;
pub mod clock;
pub mod error;
pub mod secret;
