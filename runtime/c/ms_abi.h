/* ms_abi.h — the contract between compiled M/s code and the runtime.
 *
 * The compiler (compiler/passes/codegen.py) emits one object file per
 * program. That object DEFINES the symbols in part A and CALLS the functions
 * in part B. Both libmsmaster.a and libmsslave.a define every part-B
 * function (the slave's versions of the master-only calls report an
 * internal error, except for the unset handle job code may hold: see
 * ms_reap_job).
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
 *   mKV map with keys K (i, c, b or vc) and values V (SPEC 13: u32 count,
 *       then each key and its value)
 *   ^N  the struct whose `{` is N characters back, which this one is
 *       inside of through a vector (a recursive struct): struct L { int v;
 *       vector<struct L> next; } is {iv^3}
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
 * "SOURCE:LINE:COL: runtime error: MSG" to stderr, tells the slaves, exits 1
 * (line 0: the runtime knows no position, "SOURCE: runtime error: MSG").
 * In a slave: fails the current job with that text (the slave goes on). */
_Noreturn void ms_runtime_error(int32_t line, int32_t col, const char *msg);
/* A shift whose count is outside 0..63 (SPEC 12.4): the runtime error
 * "shift count N out of range 0..63" at line:col (the operator). */
_Noreturn void ms_shift_error(int64_t count, int32_t line, int32_t col);

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
 * `args` is the calling thread's one argument buffer (ms_args_new empties
 * it); ms_start_job takes its bytes and returns a new reference.
 * `get(h)` on a job<T> compiles to:
 *     ms_reader r;  ms_reap_job(h, &r, line, col);  then decode a T from &r
 * ms_reap_job waits for the job; if it failed or was cancelled, or h is
 * unset, it raises the runtime error at line:col. The bytes `r` points at
 * stay valid while the handle does. Job code holds only unset handles (it
 * cannot start jobs, and handles are not sent): there get, state and cancel
 * raise the same runtime error, which fails the job. */
#define MS_UNSET_HANDLE_ERROR "job handle is not set"
ms_buf *ms_args_new(void);
ms_handle ms_start_job(uint32_t ordinal, ms_buf *args);
void ms_reap_job(ms_handle h, ms_reader *out, int32_t line, int32_t col);
int32_t ms_job_state(ms_handle h, int32_t line, int32_t col);
void ms_job_cancel(ms_handle h, int32_t line, int32_t col);
/* Handle reference counts: copying a job<T> retains, dropping releases.
 * Both accept NULL (the unset handle). */
void ms_handle_retain(ms_handle h);
void ms_handle_release(ms_handle h);

/* ------------------------------------ C. values: vectors, strings, structs
 *
 * Memory layout of values (all types' zero values are all-zero bytes):
 *   int i64, double, bool/char i8, jobstate i32, job<T> pointer,
 *   vector<T> (and string = vector<char>): a pointer to an ms_vec, or NULL
 *     for the empty vector. Elements follow the 24-byte header, packed at
 *     the element type's size (element sizes are multiples of their
 *     alignment, at most 8, so every element is aligned).
 *   struct: its fields in declaration order at C struct layout (the natural
 *     alignment of each field, size rounded up to the struct's alignment);
 *     an empty struct has size 0 (LLVM type {}).
 * Reference counts are not atomic: a value is used by one thread at a
 * time, never by two at once (jobs get fresh decoded copies; a result
 * decoded by the master's I/O thread, or a job's arguments by a slave's
 * connection reader, is handed over under a lock to the one thread that
 * uses it from then on). A vector whose refcount is
 * at least MS_RC_IMMORTAL (string literals, emitted as constants) is never
 * freed and never written: retain and release leave it alone.
 *
 * Value semantics (SPEC section 3): copying a vector retains it; a write
 * through a vector first makes it unique (ms_vec_unique), which copies the
 * elements, retaining what they refer to, only when the count is not 1. */
typedef struct ms_vec {
    int64_t refcount;
    int64_t len;
    int64_t cap;
    /* elements follow */
} ms_vec;

#define MS_RC_IMMORTAL ((int64_t)1 << 62)

/* Type descriptors, emitted by the compiler as constants (one per type that
 * a runtime call needs). LLVM type: { i32, i32, i32, i32, ptr, ptr, ptr, ptr }. */
enum { MS_T_INT = 0, MS_T_DOUBLE = 1, MS_T_BOOL = 2, MS_T_CHAR = 3,
       MS_T_JOBSTATE = 4, MS_T_JOB = 5, MS_T_VECTOR = 6, MS_T_STRUCT = 7,
       MS_T_MAP = 8 /* SPEC 13: fields[0] the key type, fields[1] (and
                     * elem) the value type, nfields 2 */ };
typedef struct ms_type {
    uint32_t kind;                 /* MS_T_* */
    uint32_t size;                 /* bytes of one value in memory */
    uint32_t has_refs;             /* 1 if a value holds vectors or handles */
    uint32_t nfields;              /* struct: number of fields */
    const struct ms_type *elem;    /* vector: the element type */
    const struct ms_type *const *fields; /* struct: field types */
    const uint32_t *offsets;       /* struct: field byte offsets */
    const char *name;              /* struct: its name; else NULL */
} ms_type;

/* A new vector of `len` zero elements (NULL when len is 0); refcount 1. */
ms_vec *ms_vec_new(const ms_type *vec_type, int64_t len);
/* Retain/release everything a value refers to; `value` points at the value
 * in memory (for a vector type: at the ms_vec* variable). */
void ms_value_retain(const ms_type *t, const void *value);
void ms_value_release(const ms_type *t, void *value);
/* Drop one reference to a vector; frees it (releasing its elements) at 0. */
void ms_vec_release(const ms_type *vec_type, ms_vec *v);
/* Before a write through *vp: make it unique. Returns the (possibly new)
 * vector, also stored into *vp; one reference of the old one is dropped. */
ms_vec *ms_vec_unique(const ms_type *vec_type, ms_vec **vp);
/* Append one zero element to *vp (made unique, grown by doubling so that
 * appending is amortized O(1)); returns the new element's address. */
void *ms_vec_push(const ms_type *vec_type, ms_vec **vp);
/* a + b: a new vector (refcount 1) holding both, the elements retained. */
ms_vec *ms_vec_concat(const ms_type *vec_type, const ms_vec *a, const ms_vec *b);
/* *vp += b (vector `+=`): appends b's elements, retained, to *vp in place
 * when *vp is unique (growing it geometrically, so a loop of `s += x` is
 * amortized linear), else into a new vector that replaces it (one
 * reference of the old one is dropped). b is borrowed and may be *vp. */
void ms_vec_append_all(const ms_type *vec_type, ms_vec **vp, const ms_vec *b);
/* Structural equality of two values of type t (IEEE == for doubles,
 * identity for job handles). */
int8_t ms_value_eq(const ms_type *t, const void *a, const void *b);
/* Lexicographic comparison of two strings by unsigned byte: <0, 0 or >0. */
int32_t ms_string_cmp(const ms_vec *a, const ms_vec *b);
/* Index out of range: the runtime error "index I out of bounds for length N"
 * at line:col. */
_Noreturn void ms_index_error(int64_t index, int64_t len, int32_t line, int32_t col);

/* Strings. */
ms_vec *ms_string_from_bytes(const uint8_t *bytes, int64_t n);
ms_vec *ms_str_int(int64_t v);
ms_vec *ms_str_double(double v);
ms_vec *ms_str_bool(int8_t v);
ms_vec *ms_str_char(uint8_t v);
ms_vec *ms_str_jobstate(int32_t v);
void ms_print_string(const ms_vec *s);

/* Serialization of any serializable value (SPEC section 9): encode appends
 * the value at `value` to b; decode reads one from r (already validated
 * against the signature) into `out`, whose old contents are overwritten
 * without being released. */
void ms_value_encode(const ms_type *t, const void *value, ms_buf *b);
void ms_value_decode(const ms_type *t, ms_reader *r, void *out);

/* ------------------------------------------ D. runtime additions (later)
 *
 * Added by the runtime after parts A to C were fixed; nothing above
 * changed. */

/* Optional, part A: a compiled program may define this (e.g. as the hex
 * SHA-256 of its source text); the runtime mixes it into the program
 * fingerprint checked in the handshake, so that slaves built from another
 * version of the same program are refused even when every job signature is
 * the same. The runtime declares it weak: leaving it out is fine. */
extern const char ms_program_hash[];

/* Optional, part A: the version of the compiler that built the program
 * (pyproject.toml's), which `--version` prints as the M/s version. The
 * runtime declares it weak, like ms_program_hash. */
extern const char ms_compiler_version[];

/* Cancellation inside a slave (SPEC 6 `cancel`): when the master cancels a
 * running job, the slave sets a flag for it. Compiled job code may poll it,
 * e.g. at loop back-edges: *ms_cancel_flag_ptr() is nonzero once the
 * current job was cancelled (the pointer is fixed for the thread, so it may
 * be loaded once per function). ms_cancel_point() abandons the current job
 * when it was cancelled (the slave tells the master, frees the vectors
 * the job made and moves on) and returns otherwise. ms_cancel_requested() is
 * the flag as a call. In the master all three say "not cancelled". */
const volatile int32_t *ms_cancel_flag_ptr(void);
int32_t ms_cancel_requested(void);
void ms_cancel_point(void);

/* The keyword of a jobstate ("running", ...), static storage. */
const char *ms_jobstate_name(int32_t v);

/* ------------------------- E. text, numbers and vectors (SPEC 12.3)
 *
 * Arguments are borrowed; vector results are new references owned by the
 * caller. `vt` is the descriptor of the vector type involved (the
 * argument's for find, slice and sort; the result's for repeat). The
 * functions taking line and col raise their runtime errors there (the
 * builtin's name, SPEC 11); their messages are in docs/language.md. */

/* int(s), double(s): SPEC 12.3's forms only, else
 * `cannot convert "S" to int` (or double). */
int64_t ms_string_to_int(const ms_vec *s, int32_t line, int32_t col);
double ms_string_to_double(const ms_vec *s, int32_t line, int32_t col);
/* split(s, sep) (a vector<string>) and join(parts, sep) (a string). */
ms_vec *ms_split(const ms_vec *s, const ms_vec *sep, int32_t line, int32_t col);
ms_vec *ms_join(const ms_vec *parts, const ms_vec *sep);
/* find(v, x) with x an element (at `x` in memory), and find(v, sub). */
int64_t ms_vec_find(const ms_type *vt, const ms_vec *v, const void *x);
int64_t ms_vec_find_run(const ms_type *vt, const ms_vec *v, const ms_vec *sub);
ms_vec *ms_vec_slice(const ms_type *vt, const ms_vec *v, int64_t from, int64_t to,
                     int32_t line, int32_t col);
ms_vec *ms_vec_sort(const ms_type *vt, const ms_vec *v);
/* repeat(x, n): x is the element value in memory. */
ms_vec *ms_vec_repeat(const ms_type *vt, const void *x, int64_t n,
                      int32_t line, int32_t col);
/* SPEC 12.1, 12.2: the program's arguments, files and standard streams.
 * Strings are borrowed; results are new references owned by the caller.
 * The calls that may fail take the call's line and column last and raise
 * "cannot read 'PATH': REASON" (write, list) there. ms_args, ms_read_stdin
 * and ms_write_file are master-only (typecheck keeps them out of jobs);
 * read_file and list_dir run where they are called (in a job: on its
 * slave). */
ms_vec *ms_args(void);
ms_vec *ms_read_file(const ms_vec *path, int32_t line, int32_t col);
void ms_write_file(const ms_vec *path, const ms_vec *data, int32_t line,
                   int32_t col);
ms_vec *ms_list_dir(const ms_vec *path, int32_t line, int32_t col);
ms_vec *ms_read_stdin(int32_t line, int32_t col);
/* eprint(e): like print, to stderr, each line with one write so that lines
 * of other processes sharing that stderr do not cut it. */
void ms_eprint_int(int64_t v);
void ms_eprint_double(double v);
void ms_eprint_bool(int8_t v);
void ms_eprint_char(uint8_t v);
void ms_eprint_jobstate(int32_t v);
void ms_eprint_string(const ms_vec *s);

/* Controlling jobs (SPEC 12.5). Timeouts and durations are seconds; a
 * negative or NaN one counts as 0, +inf means no timeout. Calls whose
 * answer is known at once make no system call.
 * ms_wait_any: the smallest index of a set handle in js (a vector of
 *   handles, borrowed; NULL is empty) whose job is not running, waiting
 *   up to `seconds` for one; -1 if js holds no set handle or the time
 *   passes first (wait_any(js) is seconds = +inf).
 * ms_wait_job: waits up to `seconds` for h; 1 if h is no longer running.
 * ms_job_error: "" (NULL) while h runs or once it finished; a failed
 *   job's error as get reports it after "job 'NAME' failed: "; "cancelled"
 *   for a cancelled job. A new string, owned by the caller.
 * The two raise "job handle is not set" at line:col for an unset h. In a
 *   slave, where no handle can be set, they see only unset ones.
 * ms_fail: the runtime error msg (borrowed) at line:col; never returns.
 * ms_slaves: the slaves connected and through the handshake (master only).
 * ms_clock: seconds of CLOCK_MONOTONIC.
 * ms_sleep: pauses the calling thread; in a slave, a cancel of the
 *   sleeping job ends it at once (as ms_cancel_point). */
int64_t ms_wait_any(const ms_vec *js, double seconds);
int8_t ms_wait_job(ms_handle h, double seconds, int32_t line, int32_t col);
ms_vec *ms_job_error(ms_handle h, int32_t line, int32_t col);
_Noreturn void ms_fail(const ms_vec *msg, int32_t line, int32_t col);
int64_t ms_slaves(void);
double ms_clock(void);
void ms_sleep(double seconds);

/* ------------------------------------------------- F. maps (SPEC 13)
 *
 * A map<K, V> value is an ms_vec* like a vector's (NULL: the empty map)
 * pointing at a map header whose first three words are refcount, number of
 * keys, and an unused word (runtime/c/maps.h): compiled code retains it
 * and reads len(m) as it does a vector's, and releases it, makes it unique
 * and compares it with ms_vec_release, ms_vec_unique and ms_value_eq given
 * the map's descriptor (kind MS_T_MAP). `mt` is that descriptor; keys are
 * passed by address, in memory form (bool as i8), borrowed; the calls that
 * change a map take the address of the map variable (or element, field),
 * make it unique first, and may move it. */
/* m[k] read or written where k must be there: the value's address, valid
 * until the map next changes; raises `key K not in map` at line:col. */
void *ms_map_get(const ms_type *mt, const ms_vec *m, const void *key,
                 int32_t line, int32_t col);
/* m[k] = e: the value's address, k inserted (retained) with the zero value
 * when absent. */
void *ms_map_insert(const ms_type *mt, ms_vec **mp, const void *key);
int8_t ms_map_has(const ms_type *mt, const ms_vec *m, const void *key);
void ms_map_remove(const ms_type *mt, ms_vec **mp, const void *key);
/* New vectors (owned by the caller) of the keys, the values, in insertion
 * order. */
ms_vec *ms_map_keys(const ms_type *mt, const ms_vec *m);
ms_vec *ms_map_values(const ms_type *mt, const ms_vec *m);

#endif
