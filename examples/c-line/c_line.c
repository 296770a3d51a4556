/*
 * c-line: a Switchyard protocol in plain C. A line protocol over TCP:
 *
 *   client -> host:  one Kuzzle API request per line, a JSON object
 *                    {"controller":"realtime","action":"subscribe","index":"i",...}
 *   host -> client:  answer <status> <content JSON>
 *                    notification <channel> <payload JSON>
 *                    error <text>
 *
 * Settings ([server.protocols.<name>]): `port` (0 = any free port). It listens on 127.0.0.1.
 *
 * Threads: one accept thread per instance; per connection a reader thread (which calls the
 * host's `execute`) and a writer thread that owns the socket's output. Hooks and `execute`
 * callbacks never write to a socket: they append a line to the connection's queue (capped) and
 * signal its writer. Locks are held only for bookkeeping, never across I/O or a host call.
 */
#define _POSIX_C_SOURCE 200809L

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "switchyard_protocol.h"

/* A client sending more than this without a newline is disconnected. */
#define MAX_LINE (1024 * 1024)
/* A client this far behind is disconnected rather than buffered without end. */
#define MAX_QUEUED_LINES 10000

struct line {
    struct line *next;
    size_t len;
    char text[];
};

struct instance;

struct connection {
    switchyard_connection_id id;
    int fd;
    struct instance *instance;
    pthread_mutex_t lock; /* the queue and the flags below */
    pthread_cond_t wake;  /* a line was queued, or the connection is ending */
    struct line *head, *tail;
    size_t queued;
    int closing;    /* write what is queued, then shut the socket down */
    int reader_done;
    int references; /* the reader and the writer: the last one frees */
    struct connection *next;
};

/* One (channel, connection) pair a client joined. */
struct member {
    char *channel;
    switchyard_connection_id connection;
    struct member *next;
};

struct instance {
    switchyard_host host;
    int listener;
    pthread_mutex_t lock; /* connections and members */
    struct connection *connections;
    struct member *members;
};

static switchyard_str text(const char *value) {
    switchyard_str s = {value, strlen(value)};
    return s;
}

static void log_line(struct instance *instance, uint32_t level, const char *message) {
    instance->host.api->log(instance->host.context, level, text("c-line"), text(message));
}

/* Queues `prefix` + `body` + "\n" for the connection's writer. Caller holds instance->lock. */
static void enqueue(struct connection *connection, const char *prefix, switchyard_str body) {
    size_t prefix_len = strlen(prefix);
    struct line *line = malloc(sizeof *line + prefix_len + body.len + 1);
    if (line == NULL) {
        return;
    }
    line->next = NULL;
    line->len = prefix_len + body.len + 1;
    memcpy(line->text, prefix, prefix_len);
    if (body.len > 0) {
        memcpy(line->text + prefix_len, body.ptr, body.len);
    }
    line->text[line->len - 1] = '\n';

    pthread_mutex_lock(&connection->lock);
    if (connection->closing) {
        free(line);
    } else if (connection->queued >= MAX_QUEUED_LINES) {
        free(line);
        connection->closing = 1; /* too slow: drop it */
    } else {
        if (connection->tail != NULL) {
            connection->tail->next = line;
        } else {
            connection->head = line;
        }
        connection->tail = line;
        connection->queued++;
    }
    pthread_cond_signal(&connection->wake);
    pthread_mutex_unlock(&connection->lock);
}

/* The connection with this id, or NULL. Caller holds instance->lock. */
static struct connection *find(struct instance *instance, switchyard_connection_id id) {
    for (struct connection *c = instance->connections; c != NULL; c = c->next) {
        if (c->id == id) {
            return c;
        }
    }
    return NULL;
}

static void release(struct connection *connection) {
    pthread_mutex_lock(&connection->lock);
    int last = --connection->references == 0;
    pthread_mutex_unlock(&connection->lock);
    if (!last) {
        return;
    }
    for (struct line *line = connection->head; line != NULL;) {
        struct line *next = line->next;
        free(line);
        line = next;
    }
    pthread_cond_destroy(&connection->wake);
    pthread_mutex_destroy(&connection->lock);
    close(connection->fd);
    free(connection);
}

static int write_all(int fd, const char *bytes, size_t len) {
    while (len > 0) {
        ssize_t written = send(fd, bytes, len, MSG_NOSIGNAL);
        if (written < 0 && errno == EINTR) {
            continue;
        }
        if (written <= 0) {
            return -1;
        }
        bytes += written;
        len -= (size_t)written;
    }
    return 0;
}

static void *writer(void *argument) {
    struct connection *connection = argument;
    pthread_mutex_lock(&connection->lock);
    for (;;) {
        while (connection->head == NULL && !connection->closing && !connection->reader_done) {
            pthread_cond_wait(&connection->wake, &connection->lock);
        }
        struct line *line = connection->head;
        if (line == NULL) {
            break; /* closing or the client left, and everything is written */
        }
        connection->head = line->next;
        if (connection->head == NULL) {
            connection->tail = NULL;
        }
        connection->queued--;
        pthread_mutex_unlock(&connection->lock);
        int failed = write_all(connection->fd, line->text, line->len);
        free(line);
        pthread_mutex_lock(&connection->lock);
        if (failed) {
            connection->closing = 1;
        }
    }
    pthread_mutex_unlock(&connection->lock);
    /* Ends the reader too: it sees end of stream and tells the host. */
    shutdown(connection->fd, SHUT_RDWR);
    release(connection);
    return NULL;
}

struct pending {
    struct instance *instance;
    switchyard_connection_id connection;
};

/* The answer to one request: runs exactly once, on any thread, maybe inside `execute`. */
static void on_response(void *context, const switchyard_response *response) {
    struct pending *pending = context;
    char prefix[32];
    snprintf(prefix, sizeof prefix, "answer %u ", (unsigned)response->status);
    pthread_mutex_lock(&pending->instance->lock);
    struct connection *connection = find(pending->instance, pending->connection);
    if (connection != NULL) {
        enqueue(connection, prefix, response->content);
    }
    pthread_mutex_unlock(&pending->instance->lock);
    free(pending);
}

static void handle_line(struct connection *connection, char *line, size_t len) {
    struct instance *instance = connection->instance;
    if (len > 0 && line[len - 1] == '\r') {
        len--;
    }
    if (len == 0) {
        return;
    }
    if (line[0] != '{') {
        pthread_mutex_lock(&instance->lock);
        enqueue(connection, "error ", text("expected a JSON request on one line"));
        pthread_mutex_unlock(&instance->lock);
        return;
    }
    struct pending *pending = malloc(sizeof *pending);
    if (pending == NULL) {
        return;
    }
    pending->instance = instance;
    pending->connection = connection->id;
    switchyard_str request = {line, len};
    /* No lock held: the callback may run before `execute` returns, and takes the lock. */
    instance->host.api->execute(instance->host.context, connection->id, request, on_response,
                                pending);
}

static void *reader(void *argument) {
    struct connection *connection = argument;
    struct instance *instance = connection->instance;
    size_t capacity = 4096, used = 0;
    char *buffer = malloc(capacity);
    while (buffer != NULL) {
        if (used == capacity) {
            if (capacity >= MAX_LINE) {
                break; /* a line too long: disconnect */
            }
            char *larger = realloc(buffer, capacity * 2);
            if (larger == NULL) {
                break;
            }
            buffer = larger;
            capacity *= 2;
        }
        ssize_t got = recv(connection->fd, buffer + used, capacity - used, 0);
        if (got < 0 && errno == EINTR) {
            continue;
        }
        if (got <= 0) {
            break;
        }
        used += (size_t)got;
        size_t start = 0;
        for (size_t i = used - (size_t)got; i < used; i++) {
            if (buffer[i] == '\n') {
                handle_line(connection, buffer + start, i - start);
                start = i + 1;
            }
        }
        memmove(buffer, buffer + start, used - start);
        used -= start;
    }
    free(buffer);

    /* Forget it first, so no hook or callback queues to it any more, then tell the host. */
    pthread_mutex_lock(&instance->lock);
    for (struct connection **c = &instance->connections; *c != NULL; c = &(*c)->next) {
        if (*c == connection) {
            *c = connection->next;
            break;
        }
    }
    pthread_mutex_unlock(&instance->lock);
    instance->host.api->remove_connection(instance->host.context, connection->id);

    pthread_mutex_lock(&connection->lock);
    connection->reader_done = 1;
    pthread_cond_signal(&connection->wake);
    pthread_mutex_unlock(&connection->lock);
    release(connection);
    return NULL;
}

static int start_thread(void *(*body)(void *), void *argument) {
    pthread_t thread;
    if (pthread_create(&thread, NULL, body, argument) != 0) {
        return -1;
    }
    pthread_detach(thread);
    return 0;
}

static void *acceptor(void *argument) {
    struct instance *instance = argument;
    for (;;) {
        struct sockaddr_in peer;
        socklen_t peer_len = sizeof peer;
        int fd = accept(instance->listener, (struct sockaddr *)&peer, &peer_len);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED || errno == EMFILE || errno == ENFILE) {
                continue;
            }
            log_line(instance, SWITCHYARD_LOG_ERROR, "accept failed: no more connections");
            return NULL;
        }
        if (instance->host.api->is_shutting_down(instance->host.context)) {
            close(fd);
            continue;
        }
        struct connection *connection = calloc(1, sizeof *connection);
        if (connection == NULL) {
            close(fd);
            continue;
        }
        char ip[INET_ADDRSTRLEN] = "";
        inet_ntop(AF_INET, &peer.sin_addr, ip, sizeof ip);
        switchyard_str ips[1] = {text(ip)};
        connection->fd = fd;
        connection->instance = instance;
        connection->references = 2;
        pthread_mutex_init(&connection->lock, NULL);
        pthread_cond_init(&connection->wake, NULL);
        connection->id = instance->host.api->new_connection(instance->host.context, ips, 1,
                                                            text("{}"));
        pthread_mutex_lock(&instance->lock);
        connection->next = instance->connections;
        instance->connections = connection;
        pthread_mutex_unlock(&instance->lock);
        if (start_thread(writer, connection) != 0) {
            connection->references--;
            shutdown(fd, SHUT_RDWR);
        }
        if (start_thread(reader, connection) != 0) {
            /* Without a reader nobody removes it: run the reader here on a shut socket, which
             * sees end of stream at once and does the clean-up. */
            shutdown(fd, SHUT_RDWR);
            reader(connection);
        }
    }
}

/* The `port` of the section's JSON, 0 when absent. A real plugin would use a JSON parser. */
static long config_port(switchyard_str config) {
    char *copy = strndup(config.ptr, config.len);
    long port = 0;
    if (copy != NULL) {
        char *key = strstr(copy, "\"port\":");
        if (key != NULL) {
            port = strtol(key + strlen("\"port\":"), NULL, 10);
        }
        free(copy);
    }
    return port;
}

static int32_t line_init(switchyard_host host, const switchyard_init_args *args,
                         void **instance_out) {
    long port = config_port(args->config);
    if (port < 0 || port > 65535) {
        snprintf(args->error, args->error_size, "server.protocols.%.*s.port: %ld is not a port",
                 (int)args->name.len, args->name.ptr, port);
        return 1;
    }
    int listener = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in address;
    memset(&address, 0, sizeof address);
    address.sin_family = AF_INET;
    address.sin_port = htons((uint16_t)port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t address_len = sizeof address;
    int one = 1;
    if (listener < 0 || setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(listener, (struct sockaddr *)&address, sizeof address) != 0 ||
        listen(listener, 128) != 0 ||
        getsockname(listener, (struct sockaddr *)&address, &address_len) != 0) {
        snprintf(args->error, args->error_size, "cannot listen on 127.0.0.1:%ld: %s", port,
                 strerror(errno));
        if (listener >= 0) {
            close(listener);
        }
        return 1;
    }
    struct instance *instance = calloc(1, sizeof *instance);
    if (instance == NULL) {
        close(listener);
        snprintf(args->error, args->error_size, "out of memory");
        return 1;
    }
    instance->host = host;
    instance->listener = listener;
    pthread_mutex_init(&instance->lock, NULL);
    char url[64];
    snprintf(url, sizeof url, "tcp://127.0.0.1:%u", (unsigned)ntohs(address.sin_port));
    host.api->announce_listener(host.context, text(url));
    if (start_thread(acceptor, instance) != 0) {
        snprintf(args->error, args->error_size, "cannot start the accept thread");
        return 1;
    }
    char message[96];
    snprintf(message, sizeof message, "listening on %s", url);
    log_line(instance, SWITCHYARD_LOG_INFO, message);
    *instance_out = instance;
    return 0;
}

static int same(const char *a, switchyard_str b) {
    return strlen(a) == b.len && memcmp(a, b.ptr, b.len) == 0;
}

static int32_t line_broadcast(void *context, const switchyard_str *channels, size_t n_channels,
                              switchyard_str payload) {
    struct instance *instance = context;
    pthread_mutex_lock(&instance->lock);
    for (size_t i = 0; i < n_channels; i++) {
        char prefix[256];
        snprintf(prefix, sizeof prefix, "notification %.*s ", (int)channels[i].len,
                 channels[i].ptr);
        for (struct member *m = instance->members; m != NULL; m = m->next) {
            if (same(m->channel, channels[i])) {
                struct connection *connection = find(instance, m->connection);
                if (connection != NULL) {
                    enqueue(connection, prefix, payload);
                }
            }
        }
    }
    pthread_mutex_unlock(&instance->lock);
    return 0;
}

static int32_t line_notify(void *context, switchyard_connection_id id,
                           const switchyard_str *channels, size_t n_channels,
                           switchyard_str payload) {
    struct instance *instance = context;
    pthread_mutex_lock(&instance->lock);
    struct connection *connection = find(instance, id);
    for (size_t i = 0; connection != NULL && i < n_channels; i++) {
        char prefix[256];
        snprintf(prefix, sizeof prefix, "notification %.*s ", (int)channels[i].len,
                 channels[i].ptr);
        enqueue(connection, prefix, payload);
    }
    pthread_mutex_unlock(&instance->lock);
    return 0;
}

static int32_t line_join_channel(void *context, switchyard_str channel,
                                 switchyard_connection_id id) {
    struct instance *instance = context;
    int32_t status = 0;
    pthread_mutex_lock(&instance->lock);
    struct member *m = instance->members;
    while (m != NULL && !(m->connection == id && same(m->channel, channel))) {
        m = m->next;
    }
    if (m == NULL) { /* idempotent: a pair already joined stays one pair */
        m = malloc(sizeof *m);
        char *name = strndup(channel.ptr, channel.len);
        if (m != NULL && name != NULL) {
            m->channel = name;
            m->connection = id;
            m->next = instance->members;
            instance->members = m;
        } else {
            free(m);
            free(name);
            status = 1;
        }
    }
    pthread_mutex_unlock(&instance->lock);
    return status;
}

static int32_t line_leave_channel(void *context, switchyard_str channel,
                                  switchyard_connection_id id) {
    struct instance *instance = context;
    pthread_mutex_lock(&instance->lock);
    for (struct member **m = &instance->members; *m != NULL; m = &(*m)->next) {
        if ((*m)->connection == id && same((*m)->channel, channel)) {
            struct member *gone = *m;
            *m = gone->next;
            free(gone->channel);
            free(gone);
            break;
        }
    }
    pthread_mutex_unlock(&instance->lock);
    return 0;
}

static int32_t line_disconnect(void *context, switchyard_connection_id id, uint32_t reason,
                               switchyard_str message) {
    struct instance *instance = context;
    (void)reason; /* SHUTDOWN or REQUESTED: the client is told why either way */
    pthread_mutex_lock(&instance->lock);
    struct connection *connection = find(instance, id);
    if (connection != NULL) {
        enqueue(connection, "closing ", message);
        pthread_mutex_lock(&connection->lock);
        connection->closing = 1; /* the writer flushes the queue, then shuts the socket */
        pthread_cond_signal(&connection->wake);
        pthread_mutex_unlock(&connection->lock);
    }
    pthread_mutex_unlock(&instance->lock);
    return 0;
}

static const switchyard_protocol description = {
    .abi_version = SWITCHYARD_ABI_VERSION,
    .size = sizeof(switchyard_protocol),
    .name = "c-line",
    .version = "0.1.0",
    .init = line_init,
    .broadcast = line_broadcast,
    .notify = line_notify,
    .join_channel = line_join_channel,
    .leave_channel = line_leave_channel,
    .disconnect = line_disconnect,
};

SWITCHYARD_EXPORT const switchyard_protocol *switchyard_protocol_entry(void) {
    return &description;
}
