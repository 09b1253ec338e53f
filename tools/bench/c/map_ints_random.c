/* The same work as map_ints_random.ms with map_ints.c's table and hash
 * (map_table.h): keys without the regularity of map_ints' i * c, so
 * that no hash gains from spreading them evenly. */
#define RANDOM_KEYS
#include "map_table.h"

static uint64_t slot_hash(int64_t key) {
    return ((uint64_t)key * 0x9E3779B97F4A7C15ULL) >> 20;
}

int main(void) {
    return run(@N@);
}
