/*
 * switchyard_protocol.h: Switchyard's protocol plugin ABI for C, version 1.3.
 *
 * A protocol plugin written in C (or any language that can export a C function) is a shared
 * library that exports ONE symbol, `switchyard_protocol_entry`, returning a pointer to a
 * static `switchyard_protocol`: the ABI version, the plugin's name and version, and six hooks.
 * The host calls the hooks; the plugin calls the host through the `switchyard_host_api` table
 * it receives in `init`. Only C types cross: pointers with lengths, fixed-width integers.
 *
 * The contract is the same as the Rust ABI's (plugin-api/ABI.md): read its "Threads",
 * "Borrowed buffers", "Hooks" and "The host API" sections. In short:
 *
 * - Strings (`switchyard_str`) are UTF-8, NOT NUL-terminated, borrowed for the duration of the
 *   call only, in both directions: copy what you need later.
 * - `init` runs once per enabled `[server.protocols.<name>]` section, on a host thread, and may
 *   block (bind sockets) within `server.initTimeout`. It returns an instance pointer the host
 *   passes back, unchanged, to every other hook of that section.
 * - Every other hook is called from host threads, possibly concurrently, possibly re-entrantly
 *   from inside a host function the plugin called (`remove_connection` may call
 *   `leave_channel` before it returns). Hooks must only record or enqueue work and return:
 *   no blocking I/O, no waiting on a lock the plugin holds across a host call.
 * - Hooks return 0 on success; any other value is logged by the host as a failed hook
 *   ("hook failed: returned <n>"). There is no panic to catch: C does not unwind, and the host
 *   calls hooks through `extern "C"`, so a C++ plugin must not let an exception escape a hook
 *   (mark them `noexcept`); if one does, the process aborts.
 * - The library is never unloaded; keep no mutable global state (two sections may load the
 *   same library: two instances side by side).
 *
 * Versioning: `abi_version` is plugin-api's version, (major << 16) | minor. The host loads a
 * plugin whose major equals its own and whose minor is at least the oldest it supports; it
 * refuses any other with the same message as a Rust plugin. Within a major, structs only grow
 * by appending fields; `size` says how much of a struct its writer knows, and a reader treats
 * fields beyond `size` as absent (NULL). Nothing is ever inserted, reordered or retyped.
 */
#ifndef SWITCHYARD_PROTOCOL_H
#define SWITCHYARD_PROTOCOL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SWITCHYARD_ABI_MAJOR 1
#define SWITCHYARD_ABI_MINOR 3
/* What `switchyard_protocol.abi_version` must hold. */
#define SWITCHYARD_ABI_VERSION ((uint32_t)((SWITCHYARD_ABI_MAJOR << 16) | SWITCHYARD_ABI_MINOR))
/* The one symbol the host looks up. */
#define SWITCHYARD_PROTOCOL_ENTRY_NAME "switchyard_protocol_entry"

/* A connection, as allocated by the host's `new_connection`. Never 0, never reused. */
typedef uint64_t switchyard_connection_id;

/* A UTF-8 string: `len` bytes at `ptr`, not NUL-terminated. Borrowed for one call. */
typedef struct switchyard_str {
    const char *ptr;
    size_t len;
} switchyard_str;

/* Log levels, as the host orders them (`log`, `max_log_level`). */
#define SWITCHYARD_LOG_OFF 0u
#define SWITCHYARD_LOG_ERROR 1u
#define SWITCHYARD_LOG_WARN 2u
#define SWITCHYARD_LOG_INFO 3u
#define SWITCHYARD_LOG_DEBUG 4u
#define SWITCHYARD_LOG_TRACE 5u

/* Why the host asks for a connection to close (`disconnect`). Treat unknown values like
 * REQUESTED: new reasons may come in a minor version. */
#define SWITCHYARD_DISCONNECT_SHUTDOWN 1u  /* the client should reconnect later */
#define SWITCHYARD_DISCONNECT_REQUESTED 2u /* the host wants this connection gone */
#define SWITCHYARD_DISCONNECT_RESTART 3u   /* since 1.3: a hot upgrade; reconnect at once */

/* What a `stats` hook reports (since 1.2): counters are totals since `init`, gauges are values
 * now. The host ignores ids it does not know; report only those you keep. */
#define SWITCHYARD_STAT_CLOSED_SLOW_CONSUMER 1u /* counter: closed as too slow */
#define SWITCHYARD_STAT_CLOSED_IDLE 2u          /* counter: closed as idle */
#define SWITCHYARD_STAT_CLOSED_RATE_LIMIT 3u    /* counter: closed past a rate limit */
#define SWITCHYARD_STAT_CLOSED_ERROR 4u         /* counter: closed on a protocol error */
#define SWITCHYARD_STAT_DELIVERIES 5u           /* counter: notification frames queued */
#define SWITCHYARD_STAT_BYTES_IN 6u             /* counter: bytes read from clients */
#define SWITCHYARD_STAT_BYTES_OUT 7u            /* counter: bytes written to clients */
#define SWITCHYARD_STAT_QUEUED_BYTES 8u         /* gauge: bytes queued for clients now */
#define SWITCHYARD_STAT_CONNECTIONS_REFUSED 9u  /* counter: connections refused unserved */

/* Records one figure; valid only during the `stats` call that received it, on its thread. */
typedef void (*switchyard_stat_fn)(void *sink, uint32_t stat, uint64_t value);

/* The answer to one `execute`, borrowed for the duration of the callback. */
typedef struct switchyard_response {
    /* HTTP-like status: 200, 400, 503... */
    uint16_t status;
    /* The request's id (the client's `requestId`, or one the host generated). */
    switchyard_str request_id;
    /* Kuzzle's response `content` as a JSON object (no `room`: see ABI.md). */
    switchyard_str content;
    /* Response headers an action set, as a JSON object (usually `{}`). */
    switchyard_str headers;
} switchyard_response;

/* Called exactly once per `execute`, on any thread, possibly before `execute` returns. It must
 * not block, and must not take a lock the plugin holds across `execute`. */
typedef void (*switchyard_callback_fn)(void *context, const switchyard_response *response);

/* The host's functions (Kuzzle's entry point). Every function takes the `context` of the
 * `switchyard_host` given to `init`, is callable from any thread for the life of the process,
 * and never blocks on I/O. */
typedef struct switchyard_host_api {
    /* sizeof(switchyard_host_api) as the host knows it: a function added in a later minor is
     * present only when `size` covers it. */
    uint32_t size;
    /* Declares a client connection; returns its id. `ips`: the client's addresses (the peer
     * first); `headers_json`: a JSON object of lower-case header names ("{}" when none). */
    switchyard_connection_id (*new_connection)(void *host, const switchyard_str *ips,
                                               size_t n_ips, switchyard_str headers_json);
    /* The connection is gone: the host makes it leave every channel (calling `leave_channel`,
     * possibly before returning) and forgets it. Call it exactly once per connection. */
    void (*remove_connection)(void *host, switchyard_connection_id connection);
    /* Runs one Kuzzle API request (a JSON object). `callback(callback_context, response)` runs
     * exactly once. */
    void (*execute)(void *host, switchyard_connection_id connection, switchyard_str request_json,
                    switchyard_callback_fn callback, void *callback_context);
    /* One line in the host's log, tagged with the plugin's and protocol's names. */
    void (*log)(void *host, uint32_t level, switchyard_str target, switchyard_str message);
    /* Non-zero once shutdown began: stop accepting connections. */
    int32_t (*is_shutting_down)(void *host);
    /* Where this instance listens ("tcp://127.0.0.1:7600"), for the ready line. */
    void (*announce_listener)(void *host, switchyard_str address);
    /* Since 1.2 (present when `size` covers it): this instance's queued outgoing bytes passed
     * its high-water mark (non-zero) or drained below its low-water mark (0); the host paces the
     * requests that fan out meanwhile. Call it on crossings only. */
    void (*report_pressure)(void *host, int32_t congested);
    /* Since 1.3 (present when `size` covers it): a listening TCP socket for `address:port`
     * (`address` an IP address as text, port 0: any free port), owned by the host: one it made,
     * or one it inherited from the process it replaced in a hot upgrade, so no client is
     * refused while the host is replaced. Returns a new descriptor the plugin owns (blocking,
     * close-on-exec, already listening), or -1 after writing a NUL-terminated message
     * (`error_size` bytes at most) into `error` (a port in use). Call it from `init` instead of
     * socket()/bind()/listen(); on an older host (`size` too small) bind your own. */
    int32_t (*listener)(void *host, switchyard_str address, uint16_t port, char *error,
                        size_t error_size);
} switchyard_host_api;

/* The host as one protocol instance sees it: pass `context` back on every call. */
typedef struct switchyard_host {
    const switchyard_host_api *api;
    void *context;
} switchyard_host;

/* What `init` receives besides the host. Borrowed for the duration of `init`. */
typedef struct switchyard_init_args {
    /* The protocol's name: its `[server.protocols.<name>]` section. */
    switchyard_str name;
    /* That section as a JSON object, without the host's keys (`enabled`, `library`). */
    switchyard_str config;
    /* The whole `[server]` table as a JSON object. */
    switchyard_str server;
    /* The most verbose level the host prints (SWITCHYARD_LOG_*). */
    uint32_t max_log_level;
    /* When `init` fails, it may write a NUL-terminated message here (at most `error_size`
     * bytes, NUL included); the host shows it. */
    char *error;
    size_t error_size;
} switchyard_init_args;

/* A protocol plugin's description, returned by `switchyard_protocol_entry`. Static: the host
 * reads it without copying, for the life of the process. */
typedef struct switchyard_protocol {
    /* SWITCHYARD_ABI_VERSION. */
    uint32_t abi_version;
    /* sizeof(switchyard_protocol) as the plugin was compiled: fields beyond it are absent. */
    uint32_t size;
    /* The plugin's name and version (semver), NUL-terminated UTF-8, static. */
    const char *name;
    const char *version;
    /* Starts one instance: parse `args->config`, bind listeners, call `announce_listener`,
     * start the plugin's threads; store the instance in `*instance`. 0 on success. */
    int32_t (*init)(switchyard_host host, const switchyard_init_args *args, void **instance);
    /* Delivers `payload` (a JSON object) to this instance's connections that joined any of
     * `channels`. Called on every protocol for every notification. */
    int32_t (*broadcast)(void *instance, const switchyard_str *channels, size_t n_channels,
                         switchyard_str payload);
    /* Delivers `payload` to one connection, once per channel. */
    int32_t (*notify)(void *instance, switchyard_connection_id connection,
                      const switchyard_str *channels, size_t n_channels, switchyard_str payload);
    /* `connection` joins `channel`; idempotent. */
    int32_t (*join_channel)(void *instance, switchyard_str channel,
                            switchyard_connection_id connection);
    /* `connection` leaves `channel`; ignore pairs never joined or connections already gone. */
    int32_t (*leave_channel)(void *instance, switchyard_str channel,
                             switchyard_connection_id connection);
    /* Closes `connection` (SWITCHYARD_DISCONNECT_*); call `remove_connection` once closed. */
    int32_t (*disconnect)(void *instance, switchyard_connection_id connection, uint32_t reason,
                          switchyard_str message);
    /* Since 1.2, optional (NULL: the plugin reports no counters): calls `record(sink, id,
     * value)` for each SWITCHYARD_STAT_* it keeps. Called when the host is asked for its
     * metrics, from any host thread: sum what you count, do not block. 0 on success. */
    int32_t (*stats)(void *instance, switchyard_stat_fn record, void *sink);
} switchyard_protocol;

/* Exports a symbol from a library built with -fvisibility=hidden. */
#if defined(_WIN32)
#define SWITCHYARD_EXPORT __declspec(dllexport)
#else
#define SWITCHYARD_EXPORT __attribute__((visibility("default")))
#endif

/* The entry symbol. It must only return the address of a static description: the host calls
 * it while checking the library (`switchyard check` too), before any `init`. */
SWITCHYARD_EXPORT const switchyard_protocol *switchyard_protocol_entry(void);

#ifdef __cplusplus
}
#endif

#endif /* SWITCHYARD_PROTOCOL_H */
