/* maps.c — the hash maps of SPEC 13: the table (lookup,
 * insertion, removal, growth and compaction), copy on write, and the
 * calls compiled code makes (ms_abi.h part F). Layout in maps.h; the keyed
 * hashes are hash.c's. */
#include "maps.h"

#include <stdio.h>
#include <string.h>

#include "hash.h"

/* Inlined wherever called, so that a call with a constant kind (the
 * lookups of compiled code dispatch on the key type once, below) is
 * specialised: no switch, no call, on the path of an int key. */
#define HOT static inline __attribute__((always_inline))

/* The hash of the key at `key` (in memory) of kind `kind` (the key type's),
 * top bit set. */
HOT uint64_t key_hash(uint32_t kind, const void *key)
{
    uint64_t h;
    switch (kind) {
    case MS_T_INT:
        h = msm_mix((uint64_t)*(const int64_t *)key, msm_mix_key());
        break;
    case MS_T_CHAR:
    case MS_T_BOOL:
        h = msm_mix(*(const uint8_t *)key, msm_mix_key());
        break;
    default: { /* string */
        const ms_vec *s = *(ms_vec *const *)key;
        h = s ? msm_hash_bytes(MSV_DATA(s), (size_t)s->len) : msm_hash_bytes("", 0);
        break;
    }
    }
    return h | (UINT64_C(1) << 63);
}

HOT int key_eq(uint32_t kind, const void *a, const void *b)
{
    switch (kind) {
    case MS_T_INT:
        return *(const int64_t *)a == *(const int64_t *)b;
    case MS_T_CHAR:
    case MS_T_BOOL:
        return *(const uint8_t *)a == *(const uint8_t *)b;
    default: {
        const ms_vec *x = *(ms_vec *const *)a, *y = *(ms_vec *const *)b;
        int64_t nx = x ? x->len : 0, ny = y ? y->len : 0;
        return nx == ny && (nx == 0 || x == y ||
                            memcmp(MSV_DATA(x), MSV_DATA(y), (size_t)nx) == 0);
    }
    }
}

/* ---------------------------------------------------------------- table */

#define MIN_ENTRIES 4

/* Placement by value (maps.h) gives way to placement by hash, for good,
 * when an insertion would put a key more than SPREAD_MAX_DISP slots from
 * its home, or the displacements summed would pass SPREAD_MEAN_DISP per
 * entry (plus SPREAD_SLACK, for small maps). Random keys in an index at
 * most 3/4 full sit 1.5 slots from home on average; keys in arithmetic
 * progression, placed by value, sit at home. Crafted keys (many sharing a
 * residue of the prime) pass a bound after a few dozen insertions, so
 * they cost what random keys cost under the keyed hash; and because a
 * lookup stops max_disp + 1 slots from home, no crafted key, present or
 * absent, is dearer to look up than SPREAD_MAX_DISP + 1 slots. Random
 * keys in a big map also pass the largest-displacement bound at times,
 * which costs one rebuild: under either placement they land at random. */
#define SPREAD_MAX_DISP 64
#define SPREAD_MEAN_DISP 2
#define SPREAD_SLACK 64

static inline uint64_t *index_of(const ms_map *m)
{
    return (uint64_t *)MSV_DATA(m->index);
}

/* The index slot of entry i whose hash is h: the hash's top half (never 0,
 * its top bit being set) above the entry's position. */
static inline uint64_t slot_of(uint64_t h, int64_t i)
{
    return (h & ~(uint64_t)0xffffffffu) | (uint64_t)i;
}

static inline int64_t slot_entry(uint64_t slot)
{
    return (int64_t)(slot & 0xffffffffu);
}

/* Whether m (of keys of kind `kind`) places its keys by value. */
HOT int by_value(uint32_t kind, const ms_map *m)
{
    return kind != MS_T_VECTOR && !m->mixed;
}

/* The tag-bearing hash of the key at `key`: for placement by value (spread),
 * the key times an odd constant (a bijection, so that neighbouring keys,
 * which share a probe run, get different tags); else key_hash. Top bit
 * set. */
HOT uint64_t hash_in(uint32_t kind, int spread, const void *key)
{
    if (spread) {
        uint64_t x = kind == MS_T_INT ? (uint64_t)*(const int64_t *)key
                                      : (uint64_t)*(const uint8_t *)key;
        return (x * UINT64_C(0x9E3779B97F4A7C15)) | (UINT64_C(1) << 63);
    }
    return key_hash(kind, key);
}

/* The home slot, in an index of `slots` slots, of a key placed by hash h:
 * the 31 bits of h below its top one scaled to [0, slots). They are in
 * an index slot's tag, so that a slot says where it belongs in another
 * index without its entry being read (rebuild). */
static inline uint64_t hashed_home(uint64_t h, uint64_t slots)
{
    return (((h >> 32) & 0x7fffffffu) * slots) >> 31;
}

/* The home slot of the key at `key` (hash h, hash_in's) in an index of
 * `slots` slots: placed by value (spread), its value mod slots (negative keys counted down from
 * the top, so that keys around zero do not meet), or hashed_home. */
HOT uint64_t home_in(uint32_t kind, int spread, const void *key, uint64_t h,
                     uint64_t slots)
{
    if (spread) {
        if (kind != MS_T_INT)
            return *(const uint8_t *)key % slots;
        int64_t r = *(const int64_t *)key % (int64_t)slots;
        return (uint64_t)(r < 0 ? r + (int64_t)slots : r);
    }
    return hashed_home(h, slots);
}

/* The primes of index sizes: the largest below each power of two from
 * 2^3 to 2^31. A prime, so that placement by value spreads any
 * arithmetic progression of keys whose step is not a multiple of it. */
static const int64_t index_primes[] = {
    7, 13, 31, 61, 127, 251, 509, 1021, 2039, 4093, 8191, 16381, 32749,
    65521, 131071, 262139, 524287, 1048573, 2097143, 4194301, 8388593,
    16777213, 33554393, 67108859, 134217689, 268435399, 536870909,
    1073741789, 2147483647,
};

/* The entry capacity an index of `slots` slots serves (at least 4 slots,
 * so that one is always empty). */
static inline int64_t entry_cap(int64_t slots)
{
    return slots - slots / 4;
}

/* Index slots for an entry capacity of at least cap: the smallest of
 * index_primes whose three quarters hold cap (so that the index is at
 * most 3/4 full and probes stay short). */
static int64_t index_slots(int64_t cap)
{
    for (size_t i = 0; i < sizeof index_primes / sizeof index_primes[0]; i++)
        if (entry_cap(index_primes[i]) >= cap)
            return index_primes[i];
    msv_oom();
}

ms_map *msm_new(const ms_type *mt, int64_t n)
{
    ms_vec *h = msv_alloc(sizeof(ms_map) - sizeof(ms_vec), 1, 1);
    ms_map *m = (ms_map *)h;
    m->len = 0;
    m->cap = 0;
    m->entries = NULL;
    m->index = NULL;
    m->dead_bits = NULL;
    m->dead = 0;
    m->hint = 0;
    m->disp = 0;
    m->max_disp = 0;
    m->mixed = MSM_KEY(mt)->kind == MS_T_VECTOR;
    if (n > 0) {
        /* Room for n without growing. */
        int64_t slots = index_slots(n < MIN_ENTRIES ? MIN_ENTRIES : n);
        m->entries = msv_alloc(msm_esize(mt), 0, entry_cap(slots));
        m->index = msv_alloc_zeroed(8, slots, slots);
    }
    return m;
}

static void free_dead_bits(ms_map *m)
{
    if (m->dead_bits) {
        msv_free(m->dead_bits);
        m->dead_bits = NULL;
    }
}

void msm_free(ms_map *m)
{
    if (m->entries)
        msv_free(m->entries);
    if (m->index)
        msv_free(m->index);
    free_dead_bits(m);
    msv_free((ms_vec *)m);
}

/* Whether placing one more key d slots from home, after m's others,
 * breaks the bounds of placement by value. */
static inline int too_displaced(const ms_map *m, int64_t d)
{
    return d > SPREAD_MAX_DISP ||
           m->disp + d > SPREAD_MEAN_DISP * m->entries->len + SPREAD_SLACK;
}

/* The index slot holding key (with hash h and home slot `home`, of kind
 * `kind`) in m, with *found = 1; else *found = 0 and, for an insertion
 * (for_insert), the empty slot where it goes, *disp slots from home, or,
 * for a lookup, -1. m has entries. A slot whose tag differs from h's is
 * passed over without reading its entry, so a probe reads one entry, the
 * one it finds, but for a 1 in 2^31 chance per slot passed; and no key
 * sits more than max_disp slots from home, so a lookup reads no more
 * than max_disp + 1 slots. */
HOT int64_t probe_kind(uint32_t kind, uint32_t esize, const ms_map *m,
                       const void *key, uint64_t h, uint64_t home, int for_insert,
                       int *found, int64_t *disp)
{
    const uint64_t *ix = index_of(m);
    uint64_t slots = (uint64_t)m->index->len, tag = slot_of(h, 0), s = home;
    int64_t d = 0;
    for (; d <= m->max_disp; d++) {
        uint64_t slot = ix[s];
        if (slot == 0) {
            *found = 0;
            *disp = d;
            return (int64_t)s;
        }
        if ((slot & ~(uint64_t)0xffffffffu) == tag) {
            const unsigned char *ent = msm_entry(m, esize, slot_entry(slot));
            /* A string key's stored hash decides before its bytes are read. */
            if ((kind != MS_T_VECTOR || *(const uint64_t *)ent == h) &&
                key_eq(kind, ent + msm_key_off_kind(kind), key)) {
                *found = 1;
                return (int64_t)s;
            }
        }
        if (++s == slots)
            s = 0;
    }
    *found = 0;
    if (!for_insert)
        return -1;
    while (ix[s] != 0) { /* an index is never full */
        if (++s == slots)
            s = 0;
        d++;
    }
    *disp = d;
    return (int64_t)s;
}

/* probe_kind for map type mt, the hash and home computed (not inlined:
 * the cold paths). */
static int64_t probe(const ms_type *mt, const ms_map *m, const void *key,
                     int for_insert, int *found, int64_t *disp)
{
    uint32_t kind = MSM_KEY(mt)->kind, esize = msm_esize(mt);
    int spread = by_value(kind, m);
    uint64_t h = hash_in(kind, spread, key), slots = (uint64_t)m->index->len;
    uint64_t home = home_in(kind, spread, key, h, slots);
    switch (kind) {
    case MS_T_INT:
        return probe_kind(MS_T_INT, esize, m, key, h, home, for_insert, found, disp);
    case MS_T_CHAR:
    case MS_T_BOOL:
        return probe_kind(MS_T_CHAR, esize, m, key, h, home, for_insert, found, disp);
    default:
        return probe_kind(MS_T_VECTOR, esize, m, key, h, home, for_insert, found, disp);
    }
}

int64_t msm_probe_length(const ms_type *mt, const ms_map *m, const void *key)
{
    if (!m || !m->entries)
        return 0;
    int found;
    int64_t d = 0;
    int64_t s = probe(mt, m, key, 0, &found, &d);
    if (!found) /* stopped at an empty slot, or after max_disp + 1 */
        return s < 0 ? (int64_t)m->max_disp + 1 : d + 1;
    uint32_t kind = MSM_KEY(mt)->kind;
    uint64_t slots = (uint64_t)m->index->len;
    int spread = by_value(kind, m);
    uint64_t home = home_in(kind, spread, key, hash_in(kind, spread, key), slots);
    return (int64_t)(((uint64_t)s + slots - home) % slots) + 1;
}

/* Whether keys of kind `kind` use the hint (maps.h): strings, whose hash
 * (SipHash) and comparison cost more than the check. An int key's second
 * lookup finds its index slot and entry in the cache, and the hint's store
 * after each lookup would tie the next lookup to this one's cache miss. */
#define HINTED(kind) ((kind) == MS_T_VECTOR)

/* The value slot of the entry m's hint names, when that entry holds key;
 * else NULL. */
HOT unsigned char *hinted(uint32_t kind, uint32_t esize, const ms_map *m,
                          const void *key)
{
    if (!HINTED(kind) || m->hint == 0)
        return NULL;
    unsigned char *e = msm_entry(m, esize, m->hint - 1);
    return key_eq(kind, e + msm_key_off_kind(kind), key) ? e + msm_val_off_kind(kind) : NULL;
}

/* msm_find for a key of kind `kind`. */
HOT void *find_kind(uint32_t kind, const ms_type *mt, const ms_map *m, const void *key)
{
    if (!m || m->len == 0)
        return NULL;
    uint32_t esize = msm_esize(mt);
    unsigned char *v = hinted(kind, esize, m, key);
    if (v)
        return v;
    int found;
    int64_t d;
    int spread = by_value(kind, m);
    uint64_t h = hash_in(kind, spread, key);
    int64_t s = probe_kind(kind, esize, m, key, h,
                           home_in(kind, spread, key, h, (uint64_t)m->index->len), 0,
                           &found, &d);
    if (!found)
        return NULL;
    int64_t i = slot_entry(index_of(m)[s]);
    if (HINTED(kind))
        ((ms_map *)m)->hint = i + 1; /* see maps.h */
    return msm_entry(m, esize, i) + msm_val_off_kind(kind);
}

/* find_kind with the kind of mt's keys, each kind's copy specialised. */
HOT void *find(const ms_type *mt, const ms_map *m, const void *key)
{
    switch (MSM_KEY(mt)->kind) {
    case MS_T_INT:
        return find_kind(MS_T_INT, mt, m, key);
    case MS_T_CHAR:
    case MS_T_BOOL:
        return find_kind(MS_T_CHAR, mt, m, key);
    default:
        return find_kind(MS_T_VECTOR, mt, m, key);
    }
}

void *msm_find(const ms_type *mt, const ms_map *m, const void *key)
{
    return find(mt, m, key);
}

/* Stores slot in the index ix (of `slots` slots) at the first empty
 * slot from s, its home, and counts its displacement in m's; -1 instead,
 * storing nothing, when that would be more than `limit` slots from home
 * (checked as it goes: crafted keys would make a rebuild quadratic). */
static int64_t put_slot(ms_map *m, uint64_t *ix, uint64_t slots, uint64_t s,
                        uint64_t slot, int64_t limit)
{
    int64_t d = 0;
    while (ix[s] != 0) {
        if (++s == slots)
            s = 0;
        if (++d > limit)
            return -1;
    }
    ix[s] = slot;
    m->disp += d;
    if (d > m->max_disp)
        m->max_disp = (int32_t)d;
    return d;
}

/* Fills the zeroed index ix (of `slots` slots) with m's entries (m's
 * layout, m's placement); sets m's displacements. 0 when, placing by
 * value, a key would break the bounds of too_displaced: m's statistics
 * are then partial, and ix must be zeroed again. */
static int place_entries(const ms_type *mt, ms_map *m, uint64_t *ix, uint64_t slots)
{
    uint32_t kind = MSM_KEY(mt)->kind, esize = msm_esize(mt), key_off = msm_key_off(mt);
    int spread = by_value(kind, m);
    m->disp = 0;
    m->max_disp = 0;
    for (int64_t i = 0; i < m->entries->len; i++) {
        const unsigned char *e = msm_entry(m, esize, i);
        uint64_t h = kind == MS_T_VECTOR ? *(const uint64_t *)e
                                         : hash_in(kind, spread, e + key_off);
        uint64_t home = home_in(kind, spread, e + key_off, h, slots);
        if (put_slot(m, ix, slots, home, slot_of(h, i),
                     spread ? SPREAD_MAX_DISP : INT64_MAX) < 0 ||
            (spread && m->disp > SPREAD_MEAN_DISP * i + SPREAD_SLACK))
            return 0;
    }
    return 1;
}

/* Rebuilds m's index (a new one, zeroed, for an entry capacity of at
 * least cap >= m->len) and its entries: when none is dead, grown in place
 * (realloc), else the live entries copied, in order, into a new array.
 * With hashed placement and nothing dead, the new index is built from the
 * old one, both read and written in order (a slot's home in the new
 * index is in its tag, hashed_home); else from the entries, and when
 * placement by value breaks its bounds (too_displaced), by hash from then
 * on. mix asks for hashed placement now. */
static void rebuild(const ms_type *mt, ms_map *m, int64_t cap, int mix)
{
    uint32_t esize = msm_esize(mt);
    int64_t slots = index_slots(cap);
    cap = entry_cap(slots);
    ms_vec *index = msv_alloc_zeroed(8, slots, slots);
    uint64_t *ix = (uint64_t *)MSV_DATA(index);
    int from_old_index = m->mixed && m->dead == 0 && m->entries;
    if (mix)
        m->mixed = 1;
    if (!m->entries) {
        m->entries = msv_alloc(esize, 0, cap);
    } else if (m->dead == 0) {
        if (cap != m->entries->cap)
            m->entries = msv_grow(m->entries, esize, cap);
    } else {
        ms_vec *entries = msv_alloc(esize, 0, cap);
        int64_t n = 0;
        for (int64_t i = 0; i < m->entries->len; i++)
            if (msm_live(m, i))
                memcpy(MSV_DATA(entries) + (size_t)n++ * esize, msm_entry(m, esize, i), esize);
        entries->len = n;
        msv_free(m->entries);
        m->entries = entries;
        free_dead_bits(m);
    }
    if (from_old_index) {
        const uint64_t *old = index_of(m);
        m->disp = 0;
        m->max_disp = 0;
        for (int64_t i = 0; i < m->index->len; i++)
            if (old[i] != 0)
                put_slot(m, ix, (uint64_t)slots, hashed_home(old[i], (uint64_t)slots),
                         old[i], INT64_MAX);
    } else if (!place_entries(mt, m, ix, (uint64_t)slots)) {
        m->mixed = 1;
        memset(ix, 0, (size_t)slots * 8);
        place_entries(mt, m, ix, (uint64_t)slots);
    }
    if (m->index)
        msv_free(m->index);
    m->index = index;
    m->dead = 0;
    m->hint = 0;
}

/* msm_insert for a key of kind `kind`. */
HOT void *insert_kind(uint32_t kind, const ms_type *mt, ms_map *m, const void *key,
                      int *inserted)
{
    uint32_t esize = msm_esize(mt);
    unsigned char *v = hinted(kind, esize, m, key);
    if (v) {
        *inserted = 0;
        return v;
    }
    if (!m->entries)
        rebuild(mt, m, MIN_ENTRIES, 0);
    uint64_t h;
    int64_t s, d;
    /* Until the key has room: a rebuild changes the index, and may
     * change the placement, so the probe is done again (and finds
     * nothing: the key is absent). */
    for (;;) {
        int spread = by_value(kind, m), found;
        h = hash_in(kind, spread, key);
        s = probe_kind(kind, esize, m, key, h,
                       home_in(kind, spread, key, h, (uint64_t)m->index->len), 1,
                       &found, &d);
        if (found) {
            *inserted = 0;
            int64_t i = slot_entry(index_of(m)[s]);
            if (HINTED(kind))
                m->hint = i + 1;
            return msm_entry(m, esize, i) + msm_val_off_kind(kind);
        }
        int full = m->entries->len == m->entries->cap;
        int mix = !full && spread && too_displaced(m, d);
        if (!full && !mix)
            break;
        /* Full: compact in place when half of it is dead, else grow to
         * the next size (about twice). Too far from home: placed by hash
         * from now on. */
        int64_t cap = m->entries->cap;
        if (full && m->dead * 2 < cap)
            cap += 1;
        rebuild(mt, m, cap, mix);
    }
    m->disp += d;
    if (d > m->max_disp)
        m->max_disp = (int32_t)d;
    int64_t i = m->entries->len++;
    unsigned char *ent = msm_entry(m, esize, i);
    memset(ent, 0, esize);
    const uint32_t key_off = msm_key_off_kind(kind);
    if (kind == MS_T_VECTOR)
        *(uint64_t *)ent = h;
    const ms_type *kt = MSM_KEY(mt);
    memcpy(ent + key_off, key, kt->size);
    if (kt->has_refs)
        msv_retain_range(kt, ent + key_off, 1);
    index_of(m)[s] = slot_of(h, i);
    m->len++;
    if (HINTED(kind))
        m->hint = i + 1;
    *inserted = 1;
    return ent + msm_val_off_kind(kind);
}

HOT void *insert(const ms_type *mt, ms_map *m, const void *key, int *inserted)
{
    switch (MSM_KEY(mt)->kind) {
    case MS_T_INT:
        return insert_kind(MS_T_INT, mt, m, key, inserted);
    case MS_T_CHAR:
    case MS_T_BOOL:
        return insert_kind(MS_T_CHAR, mt, m, key, inserted);
    default:
        return insert_kind(MS_T_VECTOR, mt, m, key, inserted);
    }
}

void *msm_insert(const ms_type *mt, ms_map *m, const void *key, int *inserted)
{
    return insert(mt, m, key, inserted);
}

ms_map *msm_copy(const ms_type *mt, const ms_map *m)
{
    uint32_t esize = msm_esize(mt);
    ms_map *c = msm_new(mt, 0);
    c->len = m->len;
    c->dead = m->dead;
    c->hint = m->hint; /* the same slots */
    c->disp = m->disp;
    c->max_disp = m->max_disp;
    c->mixed = m->mixed;
    if (!m->entries)
        return c;
    int64_t used = m->entries->len, slots = m->index->len;
    c->entries = msv_alloc(esize, used, m->entries->cap);
    memcpy(MSV_DATA(c->entries), MSV_DATA(m->entries), (size_t)used * esize);
    c->index = msv_alloc(8, slots, slots);
    memcpy(MSV_DATA(c->index), MSV_DATA(m->index), (size_t)slots * 8);
    if (m->dead_bits) {
        int64_t words = m->dead_bits->len;
        c->dead_bits = msv_alloc(8, words, words);
        memcpy(MSV_DATA(c->dead_bits), MSV_DATA(m->dead_bits), (size_t)words * 8);
    }
    const ms_type *kt = MSM_KEY(mt), *vt = MSM_VAL(mt);
    uint32_t key_off = msm_key_off(mt), val_off = msm_val_off(mt);
    if (kt->has_refs || vt->has_refs) {
        for (int64_t i = 0; i < used; i++) {
            if (!msm_live(c, i))
                continue;
            unsigned char *e = msm_entry(c, esize, i);
            msv_retain_range(kt, e + key_off, 1);
            msv_retain_range(vt, e + val_off, 1);
        }
    }
    return c;
}

/* ------------------------------------------------- calls of compiled code */

/* *mp made unique (a new map when it was empty); returned, borrowed. */
static ms_map *map_unique_slow(const ms_type *mt, ms_vec **mp)
{
    ms_map *m = (ms_map *)*mp;
    if (!m) {
        m = msm_new(mt, 0);
    } else if (m->refcount != 1) {
        ms_map *c = msm_copy(mt, m);
        if (m->refcount < MS_RC_IMMORTAL)
            m->refcount--; /* shared: never the last reference */
        m = c;
    }
    *mp = (ms_vec *)m;
    return m;
}

HOT ms_map *map_unique(const ms_type *mt, ms_vec **mp)
{
    ms_map *m = (ms_map *)*mp;
    return m && m->refcount == 1 ? m : map_unique_slow(mt, mp);
}

/* The text of a key in an error message (SPEC 13): a string as
 * msv_quote writes it, other keys as print writes them. out holds at least
 * MSV_QUOTE_BYTES. */
static void format_key(const ms_type *kt, const void *key, char *out)
{
    switch (kt->kind) {
    case MS_T_INT:
        snprintf(out, MSV_QUOTE_BYTES, "%lld", (long long)*(const int64_t *)key);
        break;
    case MS_T_BOOL:
        snprintf(out, MSV_QUOTE_BYTES, "%s", *(const uint8_t *)key ? "true" : "false");
        break;
    case MS_T_CHAR:
        out[0] = *(const char *)key;
        out[1] = '\0';
        break;
    default:
        msv_quote(*(ms_vec *const *)key, out);
        break;
    }
}

_Noreturn static void key_error(const ms_type *kt, const void *key,
                                int32_t line, int32_t col)
{
    /* Thread-local: ms_runtime_error may unwind before the text is used. */
    static _Thread_local char msg[MSV_QUOTE_BYTES + 32];
    char text[MSV_QUOTE_BYTES];
    format_key(kt, key, text);
    snprintf(msg, sizeof msg, "key %s not in map", text);
    ms_runtime_error(line, col, msg);
}

void *ms_map_get(const ms_type *mt, const ms_vec *m, const void *key,
                 int32_t line, int32_t col)
{
    void *v = find(mt, (const ms_map *)m, key);
    if (!v)
        key_error(MSM_KEY(mt), key, line, col);
    return v;
}

void *ms_map_insert(const ms_type *mt, ms_vec **mp, const void *key)
{
    int inserted;
    return insert(mt, map_unique(mt, mp), key, &inserted);
}

int8_t ms_map_has(const ms_type *mt, const ms_vec *m, const void *key)
{
    return find(mt, (const ms_map *)m, key) != NULL;
}

void ms_map_remove(const ms_type *mt, ms_vec **mp, const void *key)
{
    if (!msm_find(mt, (const ms_map *)*mp, key))
        return; /* nothing to remove: no copy either */
    ms_map *m = map_unique(mt, mp);
    int found;
    int64_t d;
    int64_t s = probe(mt, m, key, 0, &found, &d);
    uint32_t esize = msm_esize(mt);
    uint64_t *ix = index_of(m);
    int64_t i = slot_entry(ix[s]);
    unsigned char *e = msm_entry(m, esize, i);
    /* The index slot stays taken, so that probes go on past it, but
     * matches no hash; rebuild drops it and the entry. */
    ix[s] = MSM_TOMB;
    m->hint = 0;
    if (!m->dead_bits) {
        int64_t words = (m->entries->cap + 63) / 64;
        m->dead_bits = msv_alloc_zeroed(8, words, words);
    }
    ((uint64_t *)MSV_DATA(m->dead_bits))[i >> 6] |= (uint64_t)1 << (i & 63);
    m->len--;
    m->dead++;
    ms_value_release(MSM_KEY(mt), e + msm_key_off(mt));
    ms_value_release(MSM_VAL(mt), e + msm_val_off(mt));
    if (m->len == 0) { /* empty again: start over at no cost */
        m->entries->len = 0;
        m->dead = 0;
        m->disp = 0;
        m->max_disp = 0;
        free_dead_bits(m);
        memset(MSV_DATA(m->index), 0, (size_t)m->index->len * 8);
    }
}

/* The keys (which 0) or values (1) of m, borrowed, in insertion order: a
 * new vector owned by the caller. */
static ms_vec *map_column(const ms_type *mt, const ms_vec *mv, int which)
{
    const ms_map *m = (const ms_map *)mv;
    if (!m || m->len == 0)
        return NULL;
    const ms_type *t = which ? MSM_VAL(mt) : MSM_KEY(mt);
    uint32_t off = which ? msm_val_off(mt) : msm_key_off(mt), esize = msm_esize(mt);
    ms_vec *r = msv_alloc(t->size, m->len, m->len);
    unsigned char *out = MSV_DATA(r);
    for (int64_t i = 0, n = 0; i < m->entries->len; i++)
        if (msm_live(m, i))
            memcpy(out + (size_t)n++ * t->size, msm_entry(m, esize, i) + off, t->size);
    msv_retain_range(t, out, m->len);
    return r;
}

ms_vec *ms_map_keys(const ms_type *mt, const ms_vec *m)
{
    return map_column(mt, m, 0);
}

ms_vec *ms_map_values(const ms_type *mt, const ms_vec *m)
{
    return map_column(mt, m, 1);
}
