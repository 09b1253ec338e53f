/* net.h — TCP sockets: HOST:PORT parsing, listen, accept, connect. */
#ifndef MS_NET_H
#define MS_NET_H

#include <stddef.h>

#define MS_ADDR_LEN 300 /* room for any "[v6addr]:port" or "host:port" */

typedef struct ms_hostport {
    char host[256]; /* without brackets */
    char port[8];
} ms_hostport;

/* Parse "HOST:PORT" or "[V6ADDR]:PORT" (PORT 0..65535). 0, or -1 with a
 * reason in err. */
int ms_parse_hostport(const char *s, ms_hostport *out, char *err, size_t errlen);

/* Listen on hp (non-blocking, close-on-exec). On success returns the fd,
 * sets *loopback to 1 when the bound address is a loopback one, writes the
 * bound address (with the real port) to `bound` and a loopback address of
 * the same port that local processes can connect to into `local`. On
 * failure returns -1 with a reason in err. */
int ms_listen(const ms_hostport *hp, int *loopback, char *bound, char *local,
              char *err, size_t errlen);

/* Whether every address hp's host resolves to for listening is a loopback
 * one (1) or not (0), before anything is bound; -1 with a reason in err
 * when it does not resolve. */
int ms_host_is_loopback(const ms_hostport *hp, char *err, size_t errlen);

/* Accept one connection from `lfd`: returns a non-blocking close-on-exec fd
 * with TCP_NODELAY set and the peer's address in `peer`, or a negative
 * errno (-EAGAIN when none is waiting). */
int ms_accept(int lfd, char *peer, size_t peerlen);

/* Connect to hp (blocking, close-on-exec, TCP_NODELAY). Returns the fd;
 * -1 when it may work later (nobody listens yet, the name service is
 * down for now), with the reason in err ("connection refused") and, when
 * connect failed, in errno (ECONNREFUSED); or
 * MS_CONNECT_NO_HOST when hp's host name does not exist, with err saying
 * "cannot resolve HOST: ...". */
#define MS_CONNECT_NO_HOST (-2)
int ms_connect(const ms_hostport *hp, char *err, size_t errlen);

int ms_set_nonblock(int fd);

#endif
