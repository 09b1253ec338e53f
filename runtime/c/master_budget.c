/* master_budget.c — the memory budget for partial input across
 * connections (SPEC 10: no peer, nor all of them together, makes the
 * master allocate without bound).
 *
 * A connection may hold a message of up to IN_FREE bytes (header
 * included) without asking. One whose next message, by the length its
 * header announces, needs more reserves the whole message from the
 * process-wide budget (M.in_budget: the larger of --max-message and
 * IN_BUDGET_MIN) before its buffer grows past IN_FREE; its buffer is then
 * sized to the message exactly, so that doubling never takes twice the
 * reservation. A connection that cannot reserve is paused: nobody reads
 * it (ep_want_conn, io_main, main_may_read_locked) and the heartbeat
 * timeout does not run for it, until the budget frees. Waiters are served
 * in the order they came, so a message bigger than what is left gets the
 * whole budget once the messages before it are done (the budget holds any
 * one message: it is at least --max-message); a reservation is given back
 * once its message is parsed, or when its connection is gone. Whoever
 * holds a reservation is read as usual, so every reservation ends (its
 * message comes whole, or its peer is cut off by the heartbeat timeout or
 * a closed connection), and a paused connection whose result the main
 * thread waits for is served by the I/O thread once it resumes.
 *
 * Locks: everything here runs with M.lock held (the fields are guarded by
 * it: M.in_* and conn.in_grant, in_paused, in_need, in_ticket). A paused
 * connection has no reader, so resizing its buffer under M.lock is safe;
 * a connection being settled is parsed by the thread that reads it. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "master.h"
#include "ser.h"
#include "wire.h"

#define IN_FREE (1u << 20)            /* held without a reservation */
#define IN_BUDGET_MIN (256ull << 20)
#define IN_SLACK 65536                /* a read's room beyond the message */

void in_budget_init(void)
{
    uint64_t most = (uint64_t)M.opt.max_message + MS_HDR_LEN + MS_TAG_LEN;
    M.in_budget = most > IN_BUDGET_MIN ? most : IN_BUDGET_MIN;
}

/* c's buffer: its unparsed bytes moved to the front, capacity `cap`
 * (at least those bytes). 0, or -1 when memory is short (c is closed). */
static int in_resize(conn *c, uint64_t cap)
{
    uint64_t have = c->in.len - c->in_off;
    if (c->in_off > 0 && have)
        memmove(c->in.data, c->in.data + c->in_off, (size_t)have);
    c->in.len = have;
    c->in_off = 0;
    if (cap == c->in.cap)
        return 0;
    if (cap == 0) {
        ms_buf_free(&c->in);
        return 0;
    }
    uint8_t *p = cap <= SIZE_MAX ? realloc(c->in.data, (size_t)cap) : NULL;
    if (!p) {
        conn_close(c, "out of memory for a message of %" PRIu64 " bytes", cap);
        return -1;
    }
    c->in.data = p;
    c->in.cap = cap;
    return 0;
}

/* Give c what it needs now (caller checked that it fits). */
static void grant(conn *c, uint64_t need)
{
    M.in_granted += need - c->in_grant;
    c->in_grant = need;
    (void)in_resize(c, need + IN_SLACK);
}

/* Serve waiters in order while the budget has room for the first. */
static void resume_waiters(void)
{
    while (M.in_waiting > 0) {
        conn *first = NULL;
        for (size_t i = 0; i < M.nconns; i++) {
            conn *c = M.conns[i];
            if (c->in_paused && (!first || c->in_ticket < first->in_ticket))
                first = c;
        }
        if (!first || M.in_granted + (first->in_need - first->in_grant) >
                          M.in_budget)
            return;
        first->in_paused = 0;
        M.in_waiting--;
        first->t_recv = ms_now_ms(); /* its silence was ours */
        grant(first, first->in_need);
        if (first->phase == C_DEAD) /* no memory for its buffer */
            continue;
        M.in_resumed = 1;
        ms_logv("connection from %s goes on with its message of %" PRIu64
                " bytes (%" PRIu64 " of %" PRIu64 " bytes of the budget "
                "reserved)",
                first->peer, first->in_need, M.in_granted, M.in_budget);
    }
}

/* Give back what c reserved and shrink its buffer to what is left in it
 * (less than IN_FREE + IN_SLACK: a connection with a reservation reads no
 * more than IN_SLACK past its message). Waiters are not served here. */
static void give_back(conn *c)
{
    if (!c->in_grant)
        return;
    M.in_granted -= c->in_grant;
    c->in_grant = 0;
    uint64_t have = c->in.len - c->in_off;
    (void)in_resize(c, have > IN_FREE / 4 ? have : IN_FREE / 4);
}

void in_settle_locked(conn *c, uint64_t need)
{
    if (c->in_paused || c->phase == C_DEAD)
        return;
    if (need <= IN_FREE) {
        if (c->in_grant) {
            give_back(c);
            resume_waiters();
        }
        return;
    }
    if (need <= c->in_grant)
        return;
    /* A reservation never grows: it is given back and the new one waits
     * its turn like any other, so that no paused connection holds any. */
    give_back(c);
    if (M.in_waiting == 0 && M.in_granted + need <= M.in_budget) {
        grant(c, need);
        return;
    }
    c->in_paused = 1;
    c->in_need = need;
    c->in_ticket = ++M.in_tickets;
    M.in_waiting++;
    ms_logv("connection from %s waits to read its message of %" PRIu64
            " bytes: %" PRIu64 " of the %" PRIu64 " bytes for partial input "
            "are taken",
            c->peer, need, M.in_granted, M.in_budget);
    resume_waiters();
}

void in_forget_locked(conn *c)
{
    if (c->in_paused) {
        c->in_paused = 0;
        M.in_waiting--;
    }
    if (c->in_grant) {
        M.in_granted -= c->in_grant;
        c->in_grant = 0;
    }
}

void in_resume_locked(void)
{
    resume_waiters();
}
