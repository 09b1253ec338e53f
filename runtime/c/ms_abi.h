/* ms_abi.h — the contract between compiled M/s code and the runtime.
 *
 * The compiler (compiler/passes/codegen.py) emits one object file per
 * program. That object DEFINES the symbols in part A and CALLS the functions
 * in part B. Both libmsmaster.a and libmsslave.a define every part-B
 * function (the slave's versions of the master-only calls report an
 * internal error: typecheck guarantees job code never reaches them).
 *
 * Calling convention notes for the code generator (x86_64 SysV, LP64):
 *   int      -> i64           double -> double
 *   bool     -> i8 (0 or 1)   char   -> i8 (unsigned byte)
 *   jobstate -> i32 (MS_STATE_*)
 *   job<T>   -> ms_handle, an opaque pointer (NULL is the unset handle)
 *   ms_buf*, ms_reader* -> opaque pointers, except that ms_reader's layout
 *   below is fixed so compiled code may allocate one on its stack.
 */
#ifndef MS_ABI_H
#define MS_ABI_H

#include <stddef.h>
#include <stdint.h>

/* ---------------------------------------------------------------- values */

/* A growable byte buffer that serialized values are written into. */
typedef struct ms_buf {
    uint8_t *data;
    uint64_t len;
    uint64_t cap;
} ms_buf;

/* A cursor over serialized bytes: LLVM type { i8*, i64, i64 }.
 * Payloads are validated against their type signature before any compiled
 * decoder sees them, so the ms_read_* calls cannot fail on well-formed
 * input; they still check bounds and return 0 past the end. */
typedef struct ms_reader {
    const uint8_t *data;
    uint64_t len;
    uint64_t off;
} ms_reader;

/* Job states, as returned by ms_job_state (the order of SPEC's keywords). */
enum { MS_STATE_RUNNING = 0, MS_STATE_FINISHED = 1, MS_STATE_FAILED = 2,
       MS_STATE_CANCELLED = 3 };

typedef struct ms_job *ms_handle;

/* ------------------------------------------- A. defined by compiled code */

/* Type signatures, used by the runtime to validate payloads before decoding
 * and to fingerprint the program:
 *   i int (8 bytes)  d double (8)  b bool (1 byte, 0 or 1)  c char (1)
 *   vT  vector of T (u32 count, then the elements)
 *   {T...}  struct: its fields' signatures in declaration order
 * A signature string for several values (a job's arguments) is their
 * signatures concatenated; a void result is "". */
typedef struct ms_job_entry {
    const char *name;     /* the job's name, for messages */
    const char *arg_sig;  /* signature of the argument list */
    const char *ret_sig;  /* signature of the result ("" for void) */
    /* Decode the (validated) arguments from `args`, run the job, and encode
     * its result into `result` (borrowed; the caller owns both). */
    void (*run)(ms_reader *args, ms_buf *result);
} ms_job_entry;

extern const char ms_program_source[];   /* source path as given to msc */
extern const uint32_t ms_job_count;
extern const ms_job_entry ms_job_table[]; /* entry k-1 is job ordinal k */
void ms_master_main(void);               /* the master block */

/* ---------------------------------------------- B. called by compiled code */

/* Runtime errors. Never return. In the master: prints
 * "SOURCE:LINE:COL: runtime error: MSG" to stderr, tells the slaves, exits 1.
 * In a slave: fails the current job with that text (the slave goes on). */
_Noreturn void ms_runtime_error(int32_t line, int32_t col, const char *msg);

/* Stack overflow detection: each thread that runs compiled code has a limit
 * (lowest safe stack address). Compiled code compares a frame address with
 * *ms_stack_limit_ptr() before a call that may recurse and raises
 * ms_runtime_error(..., "stack overflow") at the call when below it. */
uintptr_t *ms_stack_limit_ptr(void);

/* print(e): each writes the value and a newline to stdout. */
void ms_print_int(int64_t v);
void ms_print_double(double v);
void ms_print_bool(int8_t v);
void ms_print_char(uint8_t v);
void ms_print_jobstate(int32_t v);

/* Double formatting of SPEC section 6 into `out` (at least 32 bytes),
 * NUL-terminated; returns the length. Shared by print and str(). */
int ms_format_double(double v, char *out);

/* Serialization of scalars (used by generated encoders and decoders). */
void ms_buf_put_i64(ms_buf *b, int64_t v);
void ms_buf_put_f64(ms_buf *b, double v);
void ms_buf_put_u8(ms_buf *b, uint8_t v);   /* bool and char */
void ms_buf_put_u32(ms_buf *b, uint32_t v); /* vector counts */
int64_t ms_read_i64(ms_reader *r);
double ms_read_f64(ms_reader *r);
uint8_t ms_read_u8(ms_reader *r);
uint32_t ms_read_u32(ms_reader *r);

/* Jobs (master only). `remote f(a, b)` compiles to:
 *     ms_buf *args = ms_args_new();
 *     ms_buf_put_...(args, a); ms_buf_put_...(args, b);
 *     ms_handle h = ms_start_job(ORDINAL_OF_f, args);
 * ms_start_job takes ownership of `args` and returns a new reference.
 * `get(h)` on a job<T> compiles to:
 *     ms_reader r;  ms_reap_job(h, &r, line, col);  then decode a T from &r
 * ms_reap_job waits for the job; if it failed or was cancelled, or h is
 * unset, it raises the runtime error at line:col. The bytes `r` points at
 * stay valid while the handle does. */
ms_buf *ms_args_new(void);
ms_handle ms_start_job(uint32_t ordinal, ms_buf *args);
void ms_reap_job(ms_handle h, ms_reader *out, int32_t line, int32_t col);
int32_t ms_job_state(ms_handle h, int32_t line, int32_t col);
void ms_job_cancel(ms_handle h, int32_t line, int32_t col);
/* Handle reference counts: copying a job<T> retains, dropping releases.
 * Both accept NULL (the unset handle). */
void ms_handle_retain(ms_handle h);
void ms_handle_release(ms_handle h);

#endif
