//! Kuzzle's security model as pure logic: users, profiles and roles with Kuzzle's validation,
//! rights decided exactly as Kuzzle decides them (precompiled per user), tokens and API keys,
//! `local` strategy passwords, and abuse limits. No I/O: storage goes through
//! [`repository::SecurityRepository`], time through [`clock::Clock`].

#![forbid(unsafe_code)]

pub mod auth;
pub mod catalog;
pub mod clock;
pub mod defaults;
pub mod error;
pub mod expiry;
pub mod limits;
pub mod model;
pub mod password;
pub mod repository;
pub mod rights;
pub mod secret;
pub mod token;

pub use error::{RepositoryError, Result, SecurityError};
pub use model::{Policy, Profile, Restriction, Role, User, ANONYMOUS_KUID};
pub use rights::{RightsRequest, Target, UserRights};
