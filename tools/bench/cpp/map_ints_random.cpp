// The same work as map_ints_random.ms with std::unordered_map.
#include <cstdint>
#include <cstdio>
#include <unordered_map>

int main() {
    long n = @N@;
    std::unordered_map<int64_t, int64_t> m;
    uint64_t x = 1;
    for (long i = 0; i < n; i++) {
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        m[(int64_t)x] = i;
    }
    long sum = 0;
    x = 1;
    for (long i = 0; i < n; i++) {
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        sum += m.at((int64_t)x);
    }
    std::printf("%zu\n%ld\n", m.size(), sum);
}
