/* net.c — TCP sockets: address parsing, listen, accept, connect. */
#include "net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int ms_parse_hostport(const char *s, ms_hostport *out, char *err, size_t errlen)
{
    const char *colon;
    const char *host = s;
    size_t hostlen;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close || close[1] != ':') {
            snprintf(err, errlen, "bad address '%s' (expected [IPV6]:PORT)", s);
            return -1;
        }
        host = s + 1;
        hostlen = (size_t)(close - host);
        colon = close + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon) {
            snprintf(err, errlen, "bad address '%s' (expected HOST:PORT)", s);
            return -1;
        }
        hostlen = (size_t)(colon - s);
    }
    if (hostlen == 0 || hostlen >= sizeof out->host) {
        snprintf(err, errlen, "bad address '%s' (expected HOST:PORT)", s);
        return -1;
    }
    const char *port = colon + 1;
    size_t plen = strlen(port);
    if (plen == 0 || plen > 5 || strspn(port, "0123456789") != plen ||
        atoi(port) > 65535) {
        snprintf(err, errlen, "bad port in '%s' (expected 0 to 65535)", s);
        return -1;
    }
    memcpy(out->host, host, hostlen);
    out->host[hostlen] = '\0';
    memcpy(out->port, port, plen + 1);
    return 0;
}

static void format_addr(const struct sockaddr *sa, char *out, size_t n)
{
    char host[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
        port = ntohs(in->sin_port);
        snprintf(out, n, "%s:%u", host, port);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
        port = ntohs(in6->sin6_port);
        snprintf(out, n, "[%s]:%u", host, port);
    } else {
        snprintf(out, n, "(unknown address family %d)", sa->sa_family);
    }
}

static int is_loopback(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        if (IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr))
            return 1;
        if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr))
            return in6->sin6_addr.s6_addr[12] == 127;
    }
    return 0;
}

static void set_nodelay(int fd)
{
    int one = 1;
    /* Best effort: without it latency suffers, nothing breaks. */
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

int ms_set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return -errno;
    return 0;
}

/* The addresses to listen on for hp (caller frees *res with
 * freeaddrinfo); -1 with a reason in err. */
static int resolve_passive(const ms_hostport *hp, struct addrinfo **res,
                           char *err, size_t errlen)
{
    struct addrinfo hints = {0};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    int rc = getaddrinfo(hp->host, hp->port, &hints, res);
    if (rc != 0) {
        snprintf(err, errlen, "cannot resolve %s: %s", hp->host,
                 rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
        return -1;
    }
    return 0;
}

int ms_host_is_loopback(const ms_hostport *hp, char *err, size_t errlen)
{
    struct addrinfo *res = NULL;
    if (resolve_passive(hp, &res, err, errlen) != 0)
        return -1;
    int all = 1;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next)
        all &= is_loopback(ai->ai_addr);
    freeaddrinfo(res);
    return all;
}

int ms_listen(const ms_hostport *hp, int *loopback, char *bound, char *local,
              char *err, size_t errlen)
{
    struct addrinfo *res = NULL;
    if (resolve_passive(hp, &res, err, errlen) != 0)
        return -1;
    int fd = -1;
    int last = 0;
    const char *what = "socket";
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
                    ai->ai_protocol);
        if (fd < 0) {
            last = errno;
            what = "socket";
            continue;
        }
        int one = 1;
        if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0) {
            last = errno;
            what = "setsockopt(SO_REUSEADDR)";
        } else if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
            last = errno;
            what = "bind";
        } else if (listen(fd, 128) != 0) {
            last = errno;
            what = "listen";
        } else {
            break;
        }
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        snprintf(err, errlen, "cannot listen on %s:%s: %s: %s", hp->host,
                 hp->port, what, strerror(last));
        return -1;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) != 0) {
        snprintf(err, errlen, "getsockname: %s", strerror(errno));
        close(fd);
        return -1;
    }
    *loopback = is_loopback((struct sockaddr *)&ss);
    format_addr((struct sockaddr *)&ss, bound, MS_ADDR_LEN);
    /* Where local slaves connect: the address itself unless it is a
     * wildcard, then the loopback address of its family. */
    if (ss.ss_family == AF_INET) {
        struct sockaddr_in in = *(struct sockaddr_in *)&ss;
        if (in.sin_addr.s_addr == htonl(INADDR_ANY))
            in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        format_addr((struct sockaddr *)&in, local, MS_ADDR_LEN);
    } else {
        struct sockaddr_in6 in6 = *(struct sockaddr_in6 *)&ss;
        if (IN6_IS_ADDR_UNSPECIFIED(&in6.sin6_addr))
            in6.sin6_addr = in6addr_loopback;
        format_addr((struct sockaddr *)&in6, local, MS_ADDR_LEN);
    }
    return fd;
}

int ms_accept(int lfd, char *peer, size_t peerlen)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    int fd;
    do {
        fd = accept4(lfd, (struct sockaddr *)&ss, &sl,
                     SOCK_NONBLOCK | SOCK_CLOEXEC);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0)
        return -errno;
    set_nodelay(fd);
    format_addr((struct sockaddr *)&ss, peer, peerlen);
    return fd;
}

int ms_connect(const ms_hostport *hp, char *err, size_t errlen)
{
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int rc = getaddrinfo(hp->host, hp->port, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "cannot resolve %s: %s", hp->host,
                 rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
        return rc == EAI_NONAME || rc == EAI_FAIL ? MS_CONNECT_NO_HOST : -1;
    }
    int fd = -1, last = 0;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
                    ai->ai_protocol);
        if (fd < 0) {
            last = errno;
            continue;
        }
        int r;
        do {
            r = connect(fd, ai->ai_addr, ai->ai_addrlen);
        } while (r != 0 && errno == EINTR);
        if (r == 0)
            break;
        last = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        /* "connection refused", as it reads inside a sentence. */
        snprintf(err, errlen, "%s", strerror(last));
        if (err[0] >= 'A' && err[0] <= 'Z' && err[1] >= 'a' && err[1] <= 'z')
            err[0] = (char)(err[0] - 'A' + 'a');
        errno = last;
        return -1;
    }
    set_nodelay(fd);
    return fd;
}
