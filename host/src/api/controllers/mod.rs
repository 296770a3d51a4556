//! The built-in controllers, one file each. Each file declares its `CONTROLLER`: its actions,
//! their argument rules, their HTTP routes and where they run.
//!
//! Adding a controller: write `<name>.rs` with its `CONTROLLER`, and add its name to the one
//! line below.

macro_rules! controllers {
    ($($name:ident),* $(,)?) => {
        $(pub mod $name;)*
        /// Every built-in controller, in the order the API describes them.
        pub const ALL: &[&crate::api::action::Controller] = &[$(&$name::CONTROLLER),*];
    };
}

controllers![admin, auth, collection, document, index, realtime, security, server];
