/* maps.h — the hash maps of SPEC 13, shared by maps.c, values.c (release,
 * copy on write, equality) and codec.c (encoding and decoding).
 *
 * A map<K, V> value is a pointer to a map header, or NULL for the empty
 * map. The header starts like an ms_vec — refcount, len (the number of
 * live keys, so len(m) and retain/release of compiled code read it as they
 * read a vector's), cap (unused; the dead list of values.c borrows it) —
 * and continues with the map's own fields. Up to four allocations, all
 * from msv_alloc so that a slave's tracking frees them with a job's
 * vectors:
 *   the header;
 *   `entries`, an ms_vec of entry slots in insertion order, esize bytes
 *     each: { u64 hash; string key; value } for string keys, whose hash is
 *     dear to compute again, and { key (8 bytes of room); value } for int,
 *     char and bool keys, whose keyed mix is cheaper to redo than to store
 *     (a third of a map<int, int>). A removed entry keeps its slot (a
 *     tombstone) until the array is compacted (when half of it is dead,
 *     and it must grow);
 *   `dead_bits`, NULL until an entry is removed: one bit per entry slot,
 *     set for a tombstone (freed by the compaction that drops them);
 *   `index`, an ms_vec of u64 slots, a prime number of them, with the
 *     entry capacity three quarters of it (so that the index is at most
 *     3/4 full, tombstones included): 0 empty, else the top 32 bits of an
 *     entry's hash (its tag) above the position of that entry in
 *     `entries`, found by linear probing from the key's home slot; a
 *     removed entry's slot is marked with a top half no tag has
 *     (MSM_TOMB), so that probes go on past it and never stop at it. A
 *     probe compares the slot's tag first and reads an entry only when it
 *     matches: a lookup reads the one entry it finds.
 * Where a key's home is (maps.c, "placement"): an int, char or bool key
 * starts out placed by its value, at key mod slots, as C++'s
 * unordered_map and Python's dict place ints: consecutive keys, and keys
 * in any arithmetic progression whose step the prime does not divide, get
 * distinct homes in order, so that the index and the entries are read as
 * streams. The map watches how far its keys sit from home; once that
 * exceeds what random keys would give (crafted or unlucky keys), it moves
 * for good to placement by the keyed hash, from the hash's top bits, as
 * string keys always are. Growth reallocates `entries` in place (no copy
 * when nothing is dead) and, for hashed keys, builds the new index from
 * the old one's slots, whose tags say where each belongs without the
 * entry being read.
 * Iteration walks `entries`, skipping tombstones, so its order never
 * depends on the hash. Hashes are keyed by a random 128-bit key per
 * process (SipHash-1-3 for strings, a keyed mixer for the other keys) and
 * have their top bit set, so that an index slot of a live entry is never 0
 * and never MSM_TOMB. */
#ifndef MS_MAPS_H
#define MS_MAPS_H

#include "hash.h"
#include "values.h"

typedef struct ms_map {
    int64_t refcount;
    int64_t len;        /* live keys */
    int64_t cap;        /* unused (values.c's dead list) */
    ms_vec *entries;    /* NULL until the first insertion; len = slots used */
    ms_vec *index;      /* NULL with entries */
    ms_vec *dead_bits;  /* NULL while no entry slot is a tombstone */
    int64_t dead;       /* tombstones in entries */
    /* String keys: 1 + the entry slot the last lookup found or the last
     * insertion filled, 0 for none: `if (has(m, k)) m[k] += 1` looks k up twice,
     * and the second lookup then costs a comparison, not a hash and a
     * probe. It names a live entry or is 0 (removal and rebuilding reset
     * it); the entry's key is compared before use, and it is written even
     * through a borrowed map: maps are
     * never constants, and a value is used by one thread at a time
     * (ms_abi.h). */
    int64_t hint;
    /* How far the entries placed in the index sit from their home slots
     * (in slots passed over), summed, and the largest: a lookup stops
     * after max_disp + 1 slots, since no key sits further from home. */
    int64_t disp;
    int32_t max_disp;
    /* 1 when keys are placed by their hash; 0 while int, char and bool
     * keys are placed by their value (maps.c, spread placement). */
    int32_t mixed;
} ms_map;

/* The index slot of a removed entry (the top bit of every hash is set). */
#define MSM_TOMB ((uint64_t)1 << 32)

/* The map type's key and value types (descriptor kind MS_T_MAP). */
#define MSM_KEY(mt) ((mt)->fields[0])
#define MSM_VAL(mt) ((mt)->fields[1])

/* Where an entry slot's key and value are, and its size in bytes: string
 * keys (kind MS_T_VECTOR) keep their hash in front. */
static inline uint32_t msm_key_off_kind(uint32_t key_kind)
{
    return key_kind == MS_T_VECTOR ? 8u : 0u;
}

static inline uint32_t msm_key_off(const ms_type *mt)
{
    return msm_key_off_kind(MSM_KEY(mt)->kind);
}

static inline uint32_t msm_val_off_kind(uint32_t key_kind)
{
    return msm_key_off_kind(key_kind) + 8u;
}

static inline uint32_t msm_val_off(const ms_type *mt)
{
    return msm_val_off_kind(MSM_KEY(mt)->kind);
}

static inline uint32_t msm_esize(const ms_type *mt)
{
    return msm_val_off(mt) + ((MSM_VAL(mt)->size + 7u) & ~7u);
}

/* Slot i of the entries (live or dead). */
static inline unsigned char *msm_entry(const ms_map *m, uint32_t esize, int64_t i)
{
    return MSV_DATA(m->entries) + (size_t)i * esize;
}

/* Whether entry slot i of m holds a key (is no tombstone). */
static inline int msm_live(const ms_map *m, int64_t i)
{
    if (!m->dead_bits)
        return 1;
    const uint64_t *bits = (const uint64_t *)MSV_DATA(m->dead_bits);
    return !((bits[i >> 6] >> (i & 63)) & 1);
}

/* The value for the key at `key` (in memory, borrowed) in m (borrowed,
 * may be NULL), or NULL when absent. */
void *msm_find(const ms_type *mt, const ms_map *m, const void *key);

/* The number of index slots a lookup of key in m (borrowed, may be NULL)
 * reads: 1 when its first slot decides. For the tests of crafted keys. */
int64_t msm_probe_length(const ms_type *mt, const ms_map *m, const void *key);

/* A new, empty map able to hold n keys without growing; owned by the
 * caller. */
ms_map *msm_new(const ms_type *mt, int64_t n);

/* The value slot for key in m (unique, owned by the caller), inserted with
 * a zero value and the key retained when absent; *inserted says which.
 * Never grows the table when m has room (msm_new's n). */
void *msm_insert(const ms_type *mt, ms_map *m, const void *key, int *inserted);

/* Frees m's blocks without looking at keys or values (the caller has
 * released them). */
void msm_free(ms_map *m);

/* A copy of m (borrowed, non-NULL) with its keys and values retained;
 * the caller owns it. */
ms_map *msm_copy(const ms_type *mt, const ms_map *m);

#endif
