/* The same work as map_ints.ms with a small open-addressing table (linear
 * probing, a multiplicative hash, doubling at half full): map_table.h. */
#include "map_table.h"

static uint64_t slot_hash(int64_t key) {
    return ((uint64_t)key * 0x9E3779B97F4A7C15ULL) >> 20;
}

int main(void) {
    return run(@N@);
}
