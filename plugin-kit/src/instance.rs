//! A protocol instance as the kit sees it, and `protocol!`, which makes the plugin's ABI type
//! from it: every plugin's `Protocol` implementation was the same forwarding, written once here.
//!
//! `Instance` takes channels as iterators, so tests and benches call the hooks with plain
//! strings; the ABI's `Channels` only exist inside a hook call.

use switchyard_plugin_api::{
    BoxError, ConnectionId, DisconnectReason, Host, InitConfig, StatsSink,
};

/// One running instance of a protocol: what `init` returns and what the hooks reach.
pub trait Instance: Sized + Send + Sync + 'static {
    /// The `init` hook: parse the configuration, bind the listener, start serving.
    fn init(host: Host, config: InitConfig<'_>) -> Result<Self, BoxError>;

    /// The `broadcast` hook: `payload` to every member of each channel.
    fn broadcast<'c>(&self, channels: impl Iterator<Item = &'c str>, payload: &str);

    /// The `notify` hook: `payload` once per channel, to one connection.
    fn notify<'c>(
        &self,
        connection: ConnectionId,
        channels: impl Iterator<Item = &'c str>,
        payload: &str,
    );

    /// The `joinChannel` hook. Default: nothing (a protocol whose clients subscribe themselves,
    /// as MQTT's, or that has no realtime, as HTTP).
    fn join_channel(&self, _channel: &str, _connection: ConnectionId) {}

    /// The `leaveChannel` hook. Default: nothing.
    fn leave_channel(&self, _channel: &str, _connection: ConnectionId) {}

    /// The `disconnect` hook: close the connection after what is queued.
    fn disconnect(&self, connection: ConnectionId, reason: DisconnectReason, message: &str);

    /// The `stats` hook: the instance's counters (usually its pressure's,
    /// `Pressure::report_stats`). Default: none.
    fn stats(&self, _sink: &mut StatsSink<'_>) {}
}

/// Declares the plugin's type, `$name`, holding one `$instance` (an `Instance`), and implements
/// the ABI's `Protocol` for it. Follow it with `export_protocol!($name, name = "...")`.
#[macro_export]
macro_rules! protocol {
    ($(#[$meta:meta])* $name:ident => $instance:ty) => {
        $(#[$meta])*
        #[derive(Debug)]
        pub struct $name {
            /// The running instance; dropping it stops it.
            instance: $instance,
        }

        impl $crate::__api::Protocol for $name {
            fn init(
                host: $crate::__api::Host,
                config: $crate::__api::InitConfig<'_>,
            ) -> Result<Self, $crate::__api::BoxError> {
                let instance = <$instance as $crate::instance::Instance>::init(host, config)?;
                Ok($name { instance })
            }

            fn broadcast(&self, channels: $crate::__api::Channels<'_>, payload: &str) {
                $crate::instance::Instance::broadcast(&self.instance, channels.iter(), payload);
            }

            fn notify(
                &self,
                connection: $crate::__api::ConnectionId,
                channels: $crate::__api::Channels<'_>,
                payload: &str,
            ) {
                $crate::instance::Instance::notify(
                    &self.instance,
                    connection,
                    channels.iter(),
                    payload,
                );
            }

            fn join_channel(&self, channel: &str, connection: $crate::__api::ConnectionId) {
                $crate::instance::Instance::join_channel(&self.instance, channel, connection);
            }

            fn leave_channel(&self, channel: &str, connection: $crate::__api::ConnectionId) {
                $crate::instance::Instance::leave_channel(&self.instance, channel, connection);
            }

            fn disconnect(
                &self,
                connection: $crate::__api::ConnectionId,
                reason: $crate::__api::DisconnectReason,
                message: &str,
            ) {
                $crate::instance::Instance::disconnect(&self.instance, connection, reason, message);
            }

            fn stats(&self, sink: &mut $crate::__api::StatsSink<'_>) {
                $crate::instance::Instance::stats(&self.instance, sink);
            }
        }
    };
}
